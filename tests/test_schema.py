"""The JSON Schema of [tool.gradlint]: generated from the tables the configuration is validated
with, valid itself, true to the project's own example configurations, and in agreement with
the validation on right and wrong values alike."""

import json
import re
import sys
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from gradlint.cli import cli
from gradlint.config import ConfigError
from gradlint.schema import config_schema, pyproject_schema

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
VALIDATOR = jsonschema.Draft7Validator(config_schema())


def test_the_schema_is_a_valid_draft_7_schema():
    jsonschema.Draft7Validator.check_schema(config_schema())
    jsonschema.Draft7Validator.check_schema(pyproject_schema())


def test_the_published_copy_is_the_generated_schema(update_snapshots):
    """docs/gradlint.schema.json is what editors fetch; regenerate it with
    `gradlint schema > docs/gradlint.schema.json` (or pytest --update-snapshots)."""
    target = ROOT / "docs" / "gradlint.schema.json"
    if update_snapshots:
        target.write_text(json.dumps(config_schema(), indent=2) + "\n", encoding="utf-8")
    published = json.loads(target.read_text(encoding="utf-8"))
    assert published == config_schema()
    result = CliRunner().invoke(cli, ["schema"])
    assert result.exit_code == 0 and json.loads(result.stdout) == published


def _example_tables():
    """Every [tool.gradlint] TOML example of the README and docs/, as (where, table)."""
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        text = doc.read_text(encoding="utf-8")
        for k, block in enumerate(re.findall(r"```toml\n(.*?)```", text, re.S)):
            if "[tool.gradlint" not in block:
                continue
            data = tomllib.loads(block)
            yield f"{doc.name} toml block {k}", data["tool"]["gradlint"]


EXAMPLES = list(_example_tables())


def test_the_docs_have_configuration_examples():
    assert len(EXAMPLES) >= 2, [w for w, _ in EXAMPLES]


@pytest.mark.parametrize("where, table", EXAMPLES, ids=[w for w, _ in EXAMPLES])
def test_the_project_s_own_examples_validate(where, table, tmp_path):
    VALIDATOR.validate(table)
    # and gradlint reads them without an error or a warning
    assert _read(tmp_path, table).warnings == []


def _read(folder, table):
    """gradlint's own validation of ``table``, as the [tool.gradlint] of a pyproject.toml in
    ``folder`` (what load_config_file runs on the parsed TOML)."""
    from gradlint.config_files import Config
    from gradlint.config_validate import validate_top

    path = folder / "pyproject.toml"
    config = Config(path)
    config.data = validate_top(table, path, f"{path}: [tool.gradlint]", config.warnings)
    return config


#: (table, whether it is right): the schema and gradlint's own validation must agree on each
CASES = [
    ({"select": ["GL1", "GL201"], "ignore": ["saturating-activation-stack"]}, True),
    ({"select": 5}, False),
    ({"select": "GL1"}, False),
    ({"select": [1]}, False),
    ({"preview": 1}, False),
    ({"jobs": -1}, False),
    ({"jobs": 0}, True),
    ({"output-format": "xml"}, False),
    ({"output-format": "sarif"}, True),
    ({"fail-level": "info"}, True),
    ({"fail-level": "errors"}, False),
    ({"extend": "../pyproject.toml"}, True),
    ({"extend": 3}, False),
    ({"per-file-ignores": {"tests/*": ["GL2"], "x.py": "GL101"}}, True),
    ({"per-file-ignores": {"a.py": 3}}, False),
    ({"rules": {"GL101": {"min-layers": 4}}}, True),
    ({"rules": {"GL101": {"min-layers": "many"}}}, False),
    ({"rules": {"GL101": {"min-layers": 0}}}, False),
    ({"rules": {"GL101": {"min-layers": 4.5}}}, False),
    ({"rules": {"GL101": {"min-layers": 4.0}}}, True),
    ({"rules": {"saturating-activation-stack": {"min-layers": 12}}}, True),
    ({"dynamic": {"seeds": 2, "device": "cpu", "timeout": 30, "scope": "findings"}}, True),
    ({"dynamic": {"seeds": 0}}, False),
    ({"dynamic": {"seeds": "3"}}, False),
    ({"dynamic": {"device": "tpu"}}, False),
    ({"dynamic": {"timeout": 0}}, False),
    ({"dynamic": {"scope": "some"}}, False),
    ({"dynamic": {"thresholds": {"vanishing-ratio": 1e-4}}}, True),
    ({"dynamic": {"thresholds": {"vanishing-ratio": "small"}}}, False),
    ({"dynamic": {"models": {"m.py::Net": {"kwargs": {"depth": 4}, "input-shape": [8, 16]}}}}, True),
    ({"dynamic": {"models": {"m.py::Net": {"input-shape": [8, 0]}}}}, False),
    ({"dynamic": {"models": {"m.py::Net": {"inputs": [[8, 16], {"shape": [8], "dtype": "long", "high": 5}]}}}}, True),
    ({"dynamic": {"models": {"m.py::Net": {"inputs": [{"shape": [8], "dtype": "complex"}]}}}}, False),
    ({"dynamic": {"models": {"m.py::Net": {"kwargs-inputs": {"mask": {"shape": [8, 4], "fill": "ones"}}}}}}, True),
    ({"dynamic": {"models": {"m.py::Net": {"kwargs-inputs": {"mask": {"shape": [8, 4], "fill": "twos"}}}}}}, False),
    ({"dynamic": {"models": {"m.py::Net": {"input-high": 0}}}}, False),
]


@pytest.mark.parametrize("table, right", CASES, ids=[json.dumps(t)[:60] for t, _ in CASES])
def test_the_schema_and_the_validation_agree(table, right, tmp_path):
    schema_ok = VALIDATOR.is_valid(table)
    try:
        _read(tmp_path, table)
        gradlint_ok = True
    except ConfigError:
        gradlint_ok = False
    assert (schema_ok, gradlint_ok) == (right, right)


def test_an_unknown_key_is_flagged_by_the_schema_and_warned_about_by_gradlint(tmp_path):
    table = {"extend-exlude": ["x"]}
    assert not VALIDATOR.is_valid(table)
    assert "did you mean `extend-exclude`" in _read(tmp_path, table).warnings[0]


def test_every_key_gradlint_reads_is_in_the_schema():
    from gradlint.config import DYNAMIC_KEYS, MODEL_KEYS, TOP_KEYS

    schema = config_schema()["properties"]
    assert set(schema) == set(TOP_KEYS)
    assert set(schema["dynamic"]["properties"]) == set(DYNAMIC_KEYS)
    assert set(schema["dynamic"]["properties"]["models"]["additionalProperties"]["properties"]) == set(MODEL_KEYS)


def test_the_pyproject_schema_checks_only_the_gradlint_table():
    validator = jsonschema.Draft7Validator(pyproject_schema())
    assert validator.is_valid({"project": {"name": "x"}, "tool": {"ruff": {"line-length": 3}, "gradlint": {"jobs": 2}}})
    assert not validator.is_valid({"tool": {"gradlint": {"jobs": "two"}}})
