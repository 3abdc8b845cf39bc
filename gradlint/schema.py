"""The JSON Schema of ``[tool.gradlint]`` (and of a ``gradlint.toml``), generated from the key
tables of :mod:`gradlint.config` that :mod:`gradlint.config_validate` validates with, so the two
cannot drift.

Editors read it through the SchemaStore convention: a schema for the tool's table, which a
TOML language server (Taplo, Even Better TOML, tombi) associates with ``gradlint.toml`` or
with ``tool.gradlint`` of ``pyproject.toml``. ``gradlint schema`` prints it; the copy in
``docs/gradlint.schema.json`` is checked against it by the tests.
"""

from __future__ import annotations

from gradlint import __version__
from gradlint.config import NUMBER, TOP_KEYS, Key, rule_option_keys

SCHEMA_URL = "https://json-schema.org/draft-07/schema#"
SCHEMA_ID = "https://raw.githubusercontent.com/gradlint/gradlint/main/docs/gradlint.schema.json"


def _type(key: Key) -> dict:
    if key.kind == "whole":  # 4 or 4.0, as gradlint reads them
        return {"type": "number", "multipleOf": 1}
    if key.type is NUMBER:
        return {"type": "number"}
    return {"type": {str: "string", int: "integer", bool: "boolean", list: "array", dict: "object"}[key.type]}


def _selectors() -> dict:
    """A rule code, a code prefix (``GL1``) or a rule's name."""
    from gradlint.rule import all_rules

    rules = all_rules()
    return {
        "anyOf": [
            {
                "type": "string",
                "pattern": "^[Gg][Ll][0-9]{0,3}$",
                "description": "A rule code or a code prefix, e.g. GL1.",
            },
            {"enum": sorted(r.name for r in rules), "description": "A rule's name."},
        ]
    }


def _key(key: Key) -> dict:
    out = {"description": key.help} if key.help else {}
    out.update(_type(key))
    allowed = key.allowed()
    if allowed and key.type is str:
        out["enum"] = list(allowed)
    if key.minimum is not None:
        out["exclusiveMinimum" if key.above else "minimum"] = key.minimum
    if key.kind == "selectors":
        out["items"] = _selectors()
    elif key.items is str:
        out["items"] = {"type": "string"}
    elif key.items is int:
        out["items"] = {"type": "integer", **({"minimum": key.item_minimum} if key.item_minimum is not None else {})}
        out["minItems"] = 1
    if key.kind == "rules":
        out.update(_rules())
    elif key.kind == "tensors":  # each a shape, or a table
        out["items" if key.type is list else "additionalProperties"] = _tensor(_table(key.values))
    elif key.kind == "models":
        out["propertyNames"] = {"pattern": "::"}
        out["additionalProperties"] = _table(key.values)
    elif isinstance(key.values, dict):  # one nested table
        out.update(_table(key.values))
    elif isinstance(key.values, Key):
        value = _key(key.values)
        value.pop("description", None)
        if key.values.kind == "selectors":  # per-file-ignores: a list of codes, or one
            value = {"anyOf": [value, _selectors()]}
        names = key.allowed()
        if names:
            out["properties"] = {name: value for name in names}
            out["additionalProperties"] = False
        else:
            out["additionalProperties"] = value
    return out


def _tensor(table: dict) -> dict:
    shape = table["properties"]["shape"]
    return {"anyOf": [{k: v for k, v in shape.items() if k != "description"}, {**table, "required": ["shape"]}]}


def _table(keys: dict) -> dict:
    return {"type": "object", "properties": {name: _key(k) for name, k in keys.items()}, "additionalProperties": False}


def _rules() -> dict:
    from gradlint.rule import all_rules

    properties = {}
    for rule in all_rules():
        options = rule_option_keys(rule)
        table = {
            "type": "object",
            "description": f"{rule.code} ({rule.name}): {rule.summary}",
            "properties": {k: _key(o) for k, o in options.items()},
            "additionalProperties": False,
        }
        properties[rule.code] = table
        properties[rule.name] = table
    return {"properties": properties, "additionalProperties": False}


def config_schema() -> dict:
    """The schema of the ``[tool.gradlint]`` table (the whole of a ``gradlint.toml``)."""
    return {
        "$schema": SCHEMA_URL,
        "$id": SCHEMA_ID,
        "title": "gradlint",
        "description": f"Configuration of gradlint {__version__}: [tool.gradlint] in pyproject.toml, or a"
        f" gradlint.toml.",
        **_table(TOP_KEYS),
    }


def pyproject_schema() -> dict:
    """A schema for a whole ``pyproject.toml`` that checks only its ``[tool.gradlint]`` table."""
    return {
        "$schema": SCHEMA_URL,
        "type": "object",
        "properties": {"tool": {"type": "object", "properties": {"gradlint": config_schema()}}},
    }
