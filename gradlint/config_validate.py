"""A ``[tool.gradlint]`` table checked against the key tables of :mod:`gradlint.config`: the
values it keeps, normalized (rule options typed by their defaults, ``dynamic`` models keyed by
absolute path), a :class:`~gradlint.config.ConfigError` for a wrong type or value, and a
warning naming the closest valid key for an unknown one."""

from __future__ import annotations

import difflib
from pathlib import Path

from gradlint.config import (
    DYNAMIC_KEYS,
    MODEL_KEYS,
    NUMBER,
    TENSOR_DTYPES,
    TENSOR_KEYS,
    TOP_KEYS,
    ConfigError,
    Key,
    rule_option_keys,
)

_TYPE_NAMES = {
    str: "a string",
    int: "an integer",
    bool: "true or false",
    dict: "a table",
    list: "an array",
    NUMBER: "a number",
    float: "a number",
}


def _strings(value, where: str) -> list[str]:
    if not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where} must be an array of strings, not {value!r}")
    return list(value)


def _selectors(values: list[str], where: str) -> list[str]:
    """Rule codes, code prefixes or rule names; unknown ones are an error naming the closest."""
    from gradlint.rule import all_rules

    names = [r.code for r in all_rules()] + [r.name for r in all_rules()]
    for v in values:
        if not any(n.startswith(v.upper()) or n == v for n in names):
            close = difflib.get_close_matches(v, names, n=1)
            raise ConfigError(
                f"{where}: unknown rule selector `{v}`" + (f"; did you mean `{close[0]}`?" if close else "")
            )
    return values


def validate_top(data: dict, path: Path, where: str, warnings: list[str]) -> dict:
    out = _known_keys(data, TOP_KEYS, where, warnings)
    for key in ("select", "extend-select", "ignore"):
        if key in out:
            out[key] = _selectors(out[key], f"{where} {key}")
    if "per-file-ignores" in out:
        pfi = {}
        for pattern, codes in out["per-file-ignores"].items():
            if isinstance(codes, str):
                codes = [codes]
            if not isinstance(codes, list):
                raise ConfigError(f'{where} per-file-ignores."{pattern}" must be an array of rule codes, not {codes!r}')
            pfi[pattern] = _selectors(
                _strings(codes, f'{where} per-file-ignores."{pattern}"'), f'{where} per-file-ignores."{pattern}"'
            )
        out["per-file-ignores"] = pfi
    if "rules" in out:
        out["rules"] = validate_rule_options(out["rules"], where, warnings)
    if "dynamic" in out:
        out["dynamic"] = validate_dynamic(out["dynamic"], path, warnings)
    return out


def validate_rule_options(table: dict, where: str, warnings: list[str]) -> dict:
    """``[tool.gradlint.rules.GL101]``: each rule's options, typed by their defaults."""
    from gradlint.rule import all_rules, rule_by_code

    out = {}
    for key, options in table.items():
        rule = rule_by_code(str(key))
        rwhere = f"{where} rules.{key}"
        if rule is None:
            _unknown(
                str(key), [r.code for r in all_rules()] + [r.name for r in all_rules()], f"{where} rules", warnings
            )
            continue
        if not isinstance(options, dict):
            raise ConfigError(f"{rwhere} must be a table of options")
        if not rule.options:
            warnings.append(f"{rwhere}: {rule.code} has no options")
            continue
        clean = _known_keys(options, rule_option_keys(rule), rwhere, warnings)
        for k, v in clean.items():
            default = rule.options[k]
            if isinstance(default, float):
                clean[k] = float(v)
            elif isinstance(default, int) and not isinstance(default, bool):
                clean[k] = int(v)
        out[rule.code] = {**out.get(rule.code, {}), **clean}
    return out


def _norm_keys(table: dict) -> dict:
    return {str(k).replace("_", "-"): v for k, v in table.items()}


def _check_type(value, expected, where: str) -> None:
    ok = isinstance(value, expected) and not (expected in (int, NUMBER) and isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where} must be {_TYPE_NAMES[expected]}, not {type(value).__name__} ({value!r})")


def _bound_text(key: Key) -> str:
    return "must be positive" if key.above and key.minimum == 0 else f"must be at least {key.minimum:g}"


def check_value(value, key: Key, where: str) -> None:
    """What :class:`Key` says of a value: its type, its choices, its bounds, its items."""
    _check_type(value, key.type, where)
    allowed = key.allowed()
    if allowed and key.type is str and value not in allowed:
        raise ConfigError(f"{where} must be one of {', '.join(allowed)}, not {value!r}")
    if key.minimum is not None and (value <= key.minimum if key.above else value < key.minimum):
        raise ConfigError(f"{where} {key.bound or _bound_text(key)}, not {value!r}")
    if key.kind == "whole" and isinstance(value, float) and not value.is_integer():
        raise ConfigError(f"{where} must be a whole number, not {value!r}")
    if key.items is str:
        _strings(value, where)
    elif key.items is int:
        low = key.item_minimum
        if not value or not all(
            isinstance(n, int) and not isinstance(n, bool) and (low is None or n >= low) for n in value
        ):
            raise ConfigError(f"{where} must be a non-empty array of {'positive ' if low == 1 else ''}integers")


def _unknown(key: str, valid, where: str, warnings: list[str]) -> None:
    close = difflib.get_close_matches(key, list(valid), n=1)
    warnings.append(f"{where}: unknown key `{key}`" + (f"; did you mean `{close[0]}`?" if close else ""))


def _known_keys(table: dict, schema: dict, where: str, warnings: list[str]) -> dict:
    """The keys of ``table`` that ``schema`` (key -> :class:`Key`) knows, checked; unknown keys
    are warned about with the closest known key."""
    out = {}
    for key, value in _norm_keys(table).items():
        if key not in schema:
            _unknown(key, schema, where, warnings)
            continue
        check_value(value, schema[key], f"{where} {key}")
        out[key] = value
    return out


def validate_dynamic(table, path: Path, warnings: list[str]) -> dict:
    where = f"{path}: [tool.gradlint.dynamic]" if path.name == "pyproject.toml" else f"{path}: [dynamic]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    out = _known_keys(table, DYNAMIC_KEYS, where, warnings)
    threshold = DYNAMIC_KEYS["thresholds"]
    schema = {name: threshold.values for name in threshold.allowed()}
    out["thresholds"] = {
        k: float(v) for k, v in _known_keys(out.get("thresholds", {}), schema, f"{where} thresholds", warnings).items()
    }
    models = {}
    for key, spec in out.get("models", {}).items():
        mwhere = f'{where} models."{key}"'
        if "::" not in key:
            raise ConfigError(f'{mwhere}: the key must be "path/to/file.py::ClassName" (or ::factory())')
        if not isinstance(spec, dict):
            raise ConfigError(f"{mwhere} must be a table")
        clean = _known_keys(spec, MODEL_KEYS, mwhere, warnings)
        if "inputs" in clean:
            clean["inputs"] = [
                _tensor_spec(t, f"{mwhere} inputs[{k}]", warnings) for k, t in enumerate(clean["inputs"])
            ]
        if "kwargs-inputs" in clean:
            clean["kwargs-inputs"] = {
                str(n): _tensor_spec(t, f"{mwhere} kwargs-inputs.{n}", warnings)
                for n, t in clean["kwargs-inputs"].items()
            }
        if "input-fn" in clean:
            where_fn, _, fn = clean["input-fn"].rpartition(":")
            if not where_fn or not fn.isidentifier():
                raise ConfigError(
                    f'{mwhere} input-fn must be "module:function" or "path/file.py:function", not {clean["input-fn"]!r}'
                )
            if where_fn.endswith(".py"):  # a file, relative to this configuration file
                clean["input-fn"] = f"{(path.parent / where_fn).resolve()}:{fn}"
        file_part, _, name = key.rpartition("::")
        models[(str((path.parent / file_part).resolve()), name)] = clean
    out["models"] = models
    return out


def _tensor_spec(value, where: str, warnings: list[str]) -> dict:
    """One input tensor: a shape (``[8, 32]``) or a table ``{shape, dtype, high, fill}``, as
    the plain dict ``--dynamic`` passes to its worker (``dtype`` float, long or bool)."""
    if isinstance(value, list):
        value = {"shape": value}
    if not isinstance(value, dict):
        raise ConfigError(f"{where} must be a shape (an array of positive integers) or a table with `shape`")
    clean = _known_keys(value, TENSOR_KEYS, where, warnings)
    if "shape" not in clean:
        raise ConfigError(f"{where} shape must be a non-empty array of positive integers")
    out = {
        "shape": list(clean["shape"]),
        "dtype": TENSOR_DTYPES[clean.get("dtype", "float32")],
        "fill": clean.get("fill", "random"),
    }
    if "high" in clean:
        out["high"] = clean["high"]
    elif out["dtype"] == "long":
        out["high"] = 2
    return out
