"""``[tool.gradlint]`` in the nearest ``pyproject.toml`` (or a ``gradlint.toml``).

This module reads and validates the ``dynamic`` table; the other keys follow the CLI flags'
names. A wrong type or value is a :class:`ConfigError` with a message that names the key and
the file; an unknown key is a warning naming the closest valid key.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass, field
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    """A configuration file that cannot be used as written."""


@dataclass
class Config:
    path: Path | None = None
    data: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


def find_config(start: Path) -> Path | None:
    """The nearest ``gradlint.toml``, or ``pyproject.toml`` with a ``[tool.gradlint]`` table,
    from ``start`` upwards."""
    start = start.resolve()
    for folder in [start, *start.parents] if start.is_dir() else [start.parent, *start.parent.parents]:
        own = folder / "gradlint.toml"
        if own.is_file():
            return own
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file():
            try:
                data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
                continue
            if "gradlint" in data.get("tool", {}):
                return pyproject
    return None


def load_config(start: Path | None = None, isolated: bool = False) -> Config:
    if isolated:
        return Config()
    path = find_config(start or Path.cwd())
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    if path.name == "pyproject.toml":
        data = data.get("tool", {}).get("gradlint", {})
    config = Config(path, data)
    dyn = data.get("dynamic")
    if dyn is not None:
        config.data["dynamic"] = validate_dynamic(dyn, path, config.warnings)
    return config


DYNAMIC_KEYS = {
    "device": str, "seeds": int, "timeout": (int, float), "report": str, "memory-limit": (int, float),
    "hide-refuted": bool, "thresholds": dict, "models": dict,
}
MODEL_KEYS = {"kwargs": dict, "input-shape": list, "input-dtype": str, "input-high": int}
_TYPE_NAMES = {str: "a string", int: "an integer", bool: "true or false", dict: "a table", list: "an array",
               (int, float): "a number"}


def _norm_keys(table: dict) -> dict:
    return {str(k).replace("_", "-"): v for k, v in table.items()}


def _check_type(value, expected, where: str) -> None:
    ok = isinstance(value, expected) and not (expected in (int, (int, float)) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where} must be {_TYPE_NAMES[expected]}, not {type(value).__name__} ({value!r})")


def _unknown(key: str, valid, where: str, warnings: list[str]) -> None:
    close = difflib.get_close_matches(key, list(valid), n=1)
    warnings.append(f"{where}: unknown key `{key}`" + (f"; did you mean `{close[0]}`?" if close else ""))


def _known_keys(table: dict, schema: dict, where: str, warnings: list[str]) -> dict:
    """The keys of ``table`` that ``schema`` (key -> type) knows, type-checked; unknown keys
    are warned about with the closest known key."""
    out = {}
    for key, value in _norm_keys(table).items():
        if key not in schema:
            _unknown(key, schema, where, warnings)
            continue
        _check_type(value, schema[key], f"{where} {key}")
        out[key] = value
    return out


def validate_dynamic(table, path: Path, warnings: list[str]) -> dict:
    where = f"{path}: [tool.gradlint.dynamic]" if path.name == "pyproject.toml" else f"{path}: [dynamic]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    out = _known_keys(table, DYNAMIC_KEYS, where, warnings)
    if "device" in out and out["device"] not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"{where} device must be one of auto, cpu, cuda, not {out['device']!r}")
    if "seeds" in out and out["seeds"] < 1:
        raise ConfigError(f"{where} seeds must be at least 1")
    if "timeout" in out and out["timeout"] <= 0:
        raise ConfigError(f"{where} timeout must be a positive number of seconds")
    from gradlint.dynamic.verdict import THRESHOLDS

    schema = {key: (int, float) for key in THRESHOLDS}
    out["thresholds"] = {k: float(v) for k, v in _known_keys(out.get("thresholds", {}), schema, f"{where} thresholds", warnings).items()}
    models = {}
    for key, spec in out.get("models", {}).items():
        mwhere = f'{where} models."{key}"'
        if "::" not in key:
            raise ConfigError(f'{mwhere}: the key must be "path/to/file.py::ClassName" (or ::factory())')
        if not isinstance(spec, dict):
            raise ConfigError(f"{mwhere} must be a table")
        clean = _known_keys(spec, MODEL_KEYS, mwhere, warnings)
        if "input-shape" in clean and not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in clean["input-shape"]):
            raise ConfigError(f"{mwhere} input-shape must be an array of positive integers")
        if clean.get("input-dtype", "float32") not in ("float32", "float", "long", "int64"):
            raise ConfigError(f"{mwhere} input-dtype must be float32 or long")
        file_part, _, name = key.rpartition("::")
        models[(str((path.parent / file_part).resolve()), name)] = clean
    out["models"] = models
    return out
