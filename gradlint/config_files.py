"""Finding and reading configuration files: the nearest ``gradlint.toml``, or ``pyproject.toml``
with a ``[tool.gradlint]`` table, of a file or folder; one file read and validated
(:mod:`gradlint.config_validate`), with the files it ``extend``s merged under it."""

from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gradlint.config import ConfigError
from gradlint.config_validate import validate_top

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib


@dataclass
class Config:
    path: Path | None = None
    data: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    #: the files this configuration was read from: its own first, then those it extends
    chain: tuple = ()

    @property
    def root(self) -> Path:
        return self.path.parent if self.path else Path.cwd()


def find_config(start: Path) -> Path | None:
    """The nearest ``gradlint.toml``, or ``pyproject.toml`` with a ``[tool.gradlint]`` table,
    from ``start`` upwards."""
    start = start.resolve()
    for folder in [start, *start.parents] if start.is_dir() else [start.parent, *start.parent.parents]:
        found = config_in(folder)
        if found is not None:
            return found
    return None


def config_in(folder: Path) -> Path | None:
    """The configuration file of ``folder`` itself: its ``gradlint.toml``, or its
    ``pyproject.toml`` when that has a ``[tool.gradlint]`` table; else None."""
    own = folder / "gradlint.toml"
    if own.is_file():
        return own
    pyproject = folder / "pyproject.toml"
    if pyproject.is_file():
        try:
            text = pyproject.read_text(encoding="utf-8")
            if "gradlint" not in text:
                return None
            data = tomllib.loads(text)
        except (OSError, UnicodeDecodeError):
            return None
        except tomllib.TOMLDecodeError as exc:  # meant for us: say so rather than run without it
            raise ConfigError(f"{pyproject}: not valid TOML: {exc}") from None
        tool = data.get("tool")
        if isinstance(tool, dict) and "gradlint" in tool:
            return pyproject
    return None


def load_config(start: Path | None = None, isolated: bool = False) -> Config:
    """The nearest configuration from ``start`` (default: the current directory) upwards."""
    if isolated:
        return Config()
    path = find_config(start or Path.cwd())
    if path is None:
        return Config()
    return load_config_file(path)


def load_config_file(path: Path, _chain: tuple = ()) -> Config:
    """One named ``pyproject.toml`` (its ``[tool.gradlint]``) or ``gradlint.toml``, with the
    files it ``extend``s merged under it (see :func:`merge`)."""
    path = Path(os.path.abspath(path))
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    if path.name == "pyproject.toml":
        tool = data.get("tool", {})
        data = tool.get("gradlint", {}) if isinstance(tool, dict) else {}
    config = Config(path, {})
    where = f"{path}: [tool.gradlint]" if path.name == "pyproject.toml" else f"{path}:"
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must be a table")
    config.data = validate_top(data, path, where, config.warnings)
    config.chain = (path,)
    parent_name = config.data.pop("extend", None)
    if parent_name is not None:
        parent_path = Path(os.path.abspath(path.parent / os.path.expanduser(parent_name)))
        if parent_path in (path, *_chain):
            cycle = " -> ".join(str(p) for p in (*_chain, path, parent_path))
            raise ConfigError(f"{where} extend makes a cycle: {cycle}")
        if not parent_path.is_file():
            raise ConfigError(f"{where} extend: no such file: {parent_path}")
        if len(_chain) >= MAX_EXTEND_DEPTH:
            raise ConfigError(f"{where} extend: more than {MAX_EXTEND_DEPTH} files deep")
        parent = load_config_file(parent_path, (*_chain, path))
        config.data = merge(parent.data, parent.root, config.data, config.root)
        config.warnings = parent.warnings + config.warnings
        config.chain = (path, *parent.chain)
    return config


#: how many files an ``extend`` chain may hold
MAX_EXTEND_DEPTH = 16


def merge(parent: dict, parent_root: Path, child: dict, child_root: Path) -> dict:
    """The configuration ``child`` (in ``child_root``) that ``extend``s ``parent`` (in
    ``parent_root``), as ruff merges them: a key the child sets replaces the parent's, except

    * ``extend-select`` and ``ignore`` add to the parent's, unless the child sets ``select``
      (which starts the rule selection afresh);
    * ``extend-exclude`` adds to the parent's; ``per-file-ignores`` and ``rules`` are merged by
      pattern and by rule; the ``dynamic`` table key by key (its ``models`` by model).

    Patterns and paths the parent wrote stay relative to the parent's folder: an anchored
    pattern (``/legacy``, ``a/*.py``) is rewritten to match the same files from the child's
    folder, and dropped when it cannot match anything below it."""
    parent = dict(parent)
    for key in ("exclude", "extend-exclude"):
        if key in parent:
            parent[key] = [q for q in (rebase(p, parent_root, child_root) for p in parent[key]) if q is not None]
    if "per-file-ignores" in parent:
        pfi = {}
        for pattern, codes in parent["per-file-ignores"].items():
            moved = rebase(pattern, parent_root, child_root)
            if moved is not None:
                pfi[moved] = codes
        parent["per-file-ignores"] = pfi
    if "cache-dir" in parent:
        parent["cache-dir"] = str((parent_root / parent["cache-dir"]).resolve())
    if "dynamic" in parent and "report" in parent["dynamic"]:
        parent["dynamic"] = {**parent["dynamic"], "report": str((parent_root / parent["dynamic"]["report"]).resolve())}
    out = {**parent, **child}
    if "select" in child:
        out.pop("extend-select", None)
        out.pop("ignore", None)
        out.update({k: child[k] for k in ("extend-select", "ignore") if k in child})
    else:
        for key in ("extend-select", "ignore"):
            if key in parent and key in child:
                out[key] = [*parent[key], *(c for c in child[key] if c not in parent[key])]
    if "extend-exclude" in parent and "extend-exclude" in child:
        out["extend-exclude"] = [*parent["extend-exclude"], *child["extend-exclude"]]
    if "per-file-ignores" in parent and "per-file-ignores" in child:
        out["per-file-ignores"] = {**parent["per-file-ignores"], **child["per-file-ignores"]}
    if "rules" in parent and "rules" in child:
        out["rules"] = {
            code: {**parent["rules"].get(code, {}), **child["rules"].get(code, {})}
            for code in {**parent["rules"], **child["rules"]}
        }
    if "dynamic" in parent and "dynamic" in child:
        dynamic = {**parent["dynamic"], **child["dynamic"]}
        for key in ("thresholds", "models"):
            dynamic[key] = {**parent["dynamic"].get(key, {}), **child["dynamic"].get(key, {})}
        out["dynamic"] = dynamic
    return out


def rebase(pattern: str, old: Path, new: Path) -> str | None:
    """The gitignore-style ``pattern``, written relative to the folder ``old``, relative to the
    folder ``new`` instead; None when it matches nothing below ``new``. A pattern without a
    slash but at its end (``build/``, ``*.py``) matches at any depth, and stays as it is."""
    if old == new:
        return pattern
    negated = pattern.startswith("!")
    body = pattern[1:] if negated else pattern
    if "/" not in body.rstrip("/") or body.startswith("**/"):
        return pattern
    trailing = "/" if body.endswith("/") else ""
    parts = [p for p in body.strip("/").split("/") if p]
    try:
        down = new.resolve().relative_to(old.resolve()).parts  # new lies below old
    except ValueError:
        try:
            up = old.resolve().relative_to(new.resolve()).parts  # old lies below new
        except ValueError:
            return None  # unrelated folders: nothing the parent anchored is below the child
        return ("!" if negated else "") + "/" + "/".join([*up, *parts]) + trailing
    for k, folder in enumerate(down):
        if not parts:
            return ("!" if negated else "") + "**"  # the pattern names a folder above the files: all of them
        if parts[0] == "**":
            return ("!" if negated else "") + "/".join(parts) + trailing
        if not fnmatch.fnmatchcase(folder, parts[0]):
            return None
        parts = parts[1:]
    if not parts:
        return ("!" if negated else "") + "**"
    return ("!" if negated else "") + "/" + "/".join(parts) + trailing
