"""``[tool.gradlint]`` in the nearest ``pyproject.toml`` (or a ``gradlint.toml``) of each file.

Keys equal the CLI flags' names (``extend-exclude`` for ``--extend-exclude``); the command line
wins over the file. ``extend`` inherits another file (:func:`gradlint.config_files.merge`);
:class:`gradlint.config_resolve.Resolver` gives each checked file the settings of its own
nearest configuration. A wrong type or value is a :class:`ConfigError` with a message that
names the key and the file (the CLI exits 2); an unknown key is a warning naming the closest
valid key. ``--isolated`` ignores every configuration file.

The configuration, one concern a module, lowest first:

- this module: the keys a configuration may hold (:class:`Key` tables, which the validation and
  the JSON Schema of :mod:`gradlint.schema` are read off) and :class:`ConfigError`;
- :mod:`gradlint.config_validate`: a table checked against them;
- :mod:`gradlint.config_files`: finding and reading configuration files, and ``extend``;
- :mod:`gradlint.config_resolve`: the engine's Settings of each file, from its configuration
  and the command line.
"""

from __future__ import annotations

from dataclasses import dataclass

from gradlint.vocab import Severity


class ConfigError(Exception):
    """A configuration file that cannot be used as written."""


@dataclass(frozen=True)
class Key:
    """One configuration key: its TOML type and the values it takes. The validation
    (:mod:`gradlint.config_validate`) and the JSON Schema (:mod:`gradlint.schema`) are both read
    off these tables, so they agree."""

    #: str, int, bool, list, dict or NUMBER
    type: object
    help: str
    #: the allowed values (a tuple, or a function returning one, for values defined elsewhere)
    choices: object = ()
    #: the least value (inclusive; exclusive when ``above``)
    minimum: float | None = None
    above: bool = False
    #: how the bound reads in an error ("must be 0 (one per core) or more")
    bound: str = ""
    #: an array's items: str, or int (with ``item_minimum``)
    items: object = None
    item_minimum: int | None = None
    #: a table's values: another key table (a dict of Key), or a Key they all are
    values: object = None
    #: what the value is beyond its type: "selectors" (rule codes, prefixes or names), "rules"
    #: (options by rule), "models" (``values`` tables by "path::Class"), "tensors" (each a shape
    #: or a ``values`` table), "whole" (a whole number)
    kind: str = ""

    def allowed(self) -> tuple:
        return tuple(self.choices() if callable(self.choices) else self.choices)


NUMBER = (int, float)


def _formats() -> tuple:
    from gradlint.reporters import FORMATS

    return tuple(FORMATS)


def _thresholds() -> tuple:
    from gradlint.dynamic.verdict import THRESHOLDS

    return tuple(THRESHOLDS)


#: ``fail-level``: the least severe finding that makes the run exit 1
FAIL_LEVELS = (Severity.INFO, Severity.WARNING, Severity.ERROR)
DEFAULT_FAIL_LEVEL = Severity.WARNING
TENSOR_DTYPES = {"float32": "float", "float": "float", "long": "long", "int64": "long", "int": "long", "bool": "bool"}
TENSOR_FILLS = ("random", "ones", "zeros")

#: one input tensor of ``inputs`` / ``kwargs-inputs``, when written as a table
TENSOR_KEYS = {
    "shape": Key(list, "The tensor's shape, batch first.", items=int, item_minimum=1),
    "dtype": Key(str, "float32 (the default), long (token ids) or bool.", choices=tuple(TENSOR_DTYPES)),
    "high": Key(int, "For a long tensor: values are drawn from 0 to high - 1 (default 2).", minimum=1),
    "fill": Key(str, "random (the default), ones or zeros.", choices=TENSOR_FILLS),
}
#: ``[tool.gradlint.dynamic.models."path/file.py::Class"]``
MODEL_KEYS = {
    "kwargs": Key(dict, "Constructor keyword arguments (they configure the static analysis too)."),
    "input-shape": Key(list, "The shape of the one input tensor, batch first.", items=int, item_minimum=1),
    "input-dtype": Key(
        str, "float32 (the default) or long (token ids).", choices=("float32", "float", "long", "int64")
    ),
    "input-high": Key(int, "For long inputs: token ids are drawn from 0 to input-high - 1.", minimum=1),
    "inputs": Key(
        list,
        "One entry per positional tensor: a shape, or a table {shape, dtype, high, fill}.",
        values=TENSOR_KEYS,
        kind="tensors",
    ),
    "kwargs-inputs": Key(
        dict,
        "Keyword tensors of forward: name -> a shape or a table {shape, dtype, high, fill}.",
        values=TENSOR_KEYS,
        kind="tensors",
    ),
    "input-fn": Key(str, '"module:function" or "path/file.py:function", returning (args, kwargs) for forward.'),
}
DYNAMIC_KEYS = {
    "device": Key(
        str, "Where the backward passes run: auto (CUDA when present), cpu or cuda.", choices=("auto", "cpu", "cuda")
    ),
    "seeds": Key(int, "Random initializations measured per model (default 3).", minimum=1),
    "timeout": Key(
        NUMBER,
        "Seconds per model file before its child process is stopped (default 300).",
        minimum=0,
        above=True,
        bound="must be a positive number of seconds",
    ),
    "report": Key(str, "A folder for the gradient-flow charts and their HTML page."),
    "memory-limit": Key(NUMBER, "GiB of memory per child process; 0: no cap (default 8).", minimum=0),
    "hide-refuted": Key(bool, "Drop the findings the measurement refuted."),
    "thresholds": Key(
        dict,
        "The verdict's thresholds, by name.",
        values=Key(NUMBER, "A threshold.", minimum=0, above=True),
        choices=_thresholds,
    ),
    "models": Key(
        dict,
        'How to build and feed one model: "path/file.py::ClassName" (or ::factory()) -> a table.',
        values=MODEL_KEYS,
        kind="models",
    ),
    "scope": Key(
        str,
        "all: every model of the checked files (the default); findings: only those with findings.",
        choices=("all", "findings"),
    ),
}
_SELECTORS = Key(list, "", items=str, kind="selectors")
#: the top-level keys: the command-line flags' names
TOP_KEYS = {
    "extend": Key(str, "Another pyproject.toml or gradlint.toml whose settings this file inherits (and overrides)."),
    "select": Key(list, "Only these rule codes, prefixes or names (default: every rule).", items=str, kind="selectors"),
    "extend-select": Key(
        list, "Rule codes, prefixes or names to enable on top of the selection.", items=str, kind="selectors"
    ),
    "ignore": Key(list, "Rule codes, prefixes or names to skip.", items=str, kind="selectors"),
    "per-file-ignores": Key(
        dict, "A gitignore-style pattern (from this file's folder) -> the rules to skip there.", values=_SELECTORS
    ),
    "exclude": Key(list, "Replace the default excludes (gitignore syntax).", items=str),
    "extend-exclude": Key(list, "Exclude these too (gitignore syntax).", items=str),
    "respect-gitignore": Key(bool, "Skip the files .gitignore files exclude (default true)."),
    "force-exclude": Key(bool, "Apply the excludes to files named on the command line too."),
    "preview": Key(bool, "Enable rules that are still in preview."),
    "rules": Key(dict, "Each rule's options, by code or name (`gradlint rule CODE` lists them).", kind="rules"),
    "cache-dir": Key(str, "Where the result cache lives (default .gradlint_cache)."),
    "output-format": Key(str, "How findings are printed (default full).", choices=_formats),
    "jobs": Key(int, "Worker processes; 0: one per core.", minimum=0, bound="must be 0 (one per core) or more"),
    "exit-zero": Key(bool, "Exit 0 even when there are findings."),
    "fix": Key(bool, "Apply the safe fixes."),
    "unsafe-fixes": Key(bool, "Apply the unsafe fixes too."),
    "show-fixes": Key(bool, "List the fixes applied, and those available for what remains."),
    "fail-level": Key(
        str, "The least severe finding that makes the run exit 1 (default warning).", choices=FAIL_LEVELS
    ),
    "fail-on-refuted": Key(bool, "Let the findings --dynamic refuted fail the run too."),
    "dynamic": Key(dict, "The --dynamic options.", values=DYNAMIC_KEYS),
}


def rule_option_keys(rule) -> dict:
    """A rule's options as a key table, typed by their defaults."""
    out = {}
    for k, v in rule.options.items():
        if isinstance(v, bool):
            out[k] = Key(bool, f"default {str(v).lower()}")
        elif isinstance(v, int):
            out[k] = Key(NUMBER, f"default {v}; a whole number", minimum=1, kind="whole")
        elif isinstance(v, float):
            out[k] = Key(NUMBER, f"default {v}", minimum=0, above=True)
        else:
            out[k] = Key(type(v), f"default {v!r}")
    return out
