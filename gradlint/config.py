"""``[tool.gradlint]`` in the nearest ``pyproject.toml`` (or a ``gradlint.toml``) of each file.

Keys equal the CLI flags' names (``extend-exclude`` for ``--extend-exclude``); the command line
wins over the file. ``extend`` inherits another file (:func:`merge`); :class:`Resolver` gives
each checked file the settings of its own nearest configuration. A wrong type or value is a
:class:`ConfigError` with a message that names the key and the file (the CLI exits 2); an
unknown key is a warning naming the closest valid key. ``--isolated`` ignores every
configuration file.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from gradlint.vocab import Severity

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


@dataclass(frozen=True)
class Key:
    """One configuration key: its TOML type and the values it takes. The validation below and
    the JSON Schema (:mod:`gradlint.schema`) are both read off these tables, so they agree."""

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


def settings_from(
    config: Config,
    *,
    select=(),
    extend_select=(),
    ignore=(),
    exclude=(),
    extend_exclude=(),
    respect_gitignore=None,
    force_exclude=None,
    preview=None,
    jobs=None,
    fixes=False,
):
    """The engine's Settings: command-line values (given) over the file's, over the defaults.

    ``select`` and ``exclude`` replace; ``extend-select``, ``ignore`` and ``extend-exclude``
    add to what the file says."""
    from gradlint.engine import Settings
    from gradlint.files import DEFAULT_EXCLUDE

    data = config.data
    root = str(config.root.resolve())
    return Settings(
        select=tuple(select or data.get("select", ())),
        extend_select=tuple(data.get("extend-select", ())) + tuple(extend_select),
        ignore=tuple(data.get("ignore", ())) + tuple(ignore),
        per_file_ignores=tuple((p, tuple(c)) for p, c in data.get("per-file-ignores", {}).items()),
        preview=bool(data.get("preview", False) if preview is None else preview),
        rule_options=tuple(sorted((code, tuple(sorted(opts.items()))) for code, opts in data.get("rules", {}).items())),
        exclude=tuple(exclude or data.get("exclude", ()) or DEFAULT_EXCLUDE),
        extend_exclude=tuple(data.get("extend-exclude", ())) + tuple(extend_exclude),
        respect_gitignore=bool(data.get("respect-gitignore", True) if respect_gitignore is None else respect_gitignore),
        force_exclude=bool(data.get("force-exclude", False) if force_exclude is None else force_exclude),
        jobs=int(data.get("jobs", 0) if jobs is None else jobs),
        fixes=fixes,
        root=root,
        configured=configured_models(data.get("dynamic", {}).get("models", {})),
    )


def configured_models(models: dict) -> tuple:
    """The models ``[tool.gradlint.dynamic.models]`` builds with constructor kwargs, for the
    static analysis too: ((absolute path, class name, sorted kwargs pairs), ...)."""
    out = []
    for (path, name), spec in sorted(models.items()):
        kwargs = spec.get("kwargs")
        if kwargs and not name.endswith("()"):
            out.append((path, name, tuple(sorted((str(k), _frozen(v)) for k, v in kwargs.items()))))
    return tuple(out)


def _frozen(value):
    if isinstance(value, list):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, dict):
        return tuple((str(k), _frozen(v)) for k, v in value.items())
    return value


def settings_for(path: Path, isolated: bool = False):
    """Settings for linting one file from its nearest configuration (the language server's view)."""
    return Resolver(isolated=isolated)(path)


class Resolver:
    """The settings of each file: those of its nearest configuration file, as ruff resolves
    them (so a file's findings do not depend on what else is checked with it), with the
    command line's values (``overrides``, the keywords of :func:`settings_from`) over them.

    With ``config_file`` (``--config``) or ``isolated``, every file gets that one
    configuration. Lookups are memoized per folder and per configuration file; a
    configuration's warnings go to ``warn`` once, when it is first read."""

    def __init__(self, overrides: dict | None = None, *, isolated: bool = False, config_file=None, warn=None) -> None:
        self.overrides = dict(overrides or {})
        self.warn = warn
        self.isolated, self.config_file = isolated, config_file
        self._fixed: Config | None = None
        self._folders: dict[str, Path | None] = {}
        self._configs: dict[Path | None, Config] = {}
        self._settings: dict[Path | None, object] = {}
        if isolated:
            self._fixed = Config()
        elif config_file is not None:
            self._fixed = self._read(Path(os.path.abspath(config_file)))

    def read_files(self) -> list[Path]:
        """Every configuration file read so far (with the files they extend)."""
        return sorted({p for config in self._configs.values() for p in config.chain})

    def override(self, **values) -> None:
        """Set more command-line values (the settings made so far are made again)."""
        self.overrides.update(values)
        self._settings.clear()

    def _read(self, path: Path | None) -> Config:
        config = self._configs.get(path)
        if config is None:
            config = self._configs[path] = Config() if path is None else load_config_file(path)
            if self.warn is not None:
                for warning in config.warnings:
                    self.warn(warning)
        return config

    def _nearest(self, folder: str) -> Path | None:
        walked = []
        found: Path | None = None
        while True:
            if folder in self._folders:
                found = self._folders[folder]
                break
            walked.append(folder)
            found = config_in(Path(folder))
            if found is not None:
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                break
            folder = parent
        for f in walked:
            self._folders[f] = found
        return found

    def config_for(self, path) -> Config:
        """The configuration that governs ``path`` (a file, a folder, or a name not on disk)."""
        if self._fixed is not None:
            return self._fixed
        path = os.path.abspath(path)
        folder = path if os.path.isdir(path) else os.path.dirname(path)
        while folder and not os.path.isdir(folder):  # a new buffer's name: its nearest existing folder
            folder = os.path.dirname(folder) if os.path.dirname(folder) != folder else ""
        return self._read(self._nearest(folder or os.getcwd()))

    def __call__(self, path):
        """The Settings for ``path``."""
        config = self.config_for(path)
        key = config.path
        settings = self._settings.get(key)
        if settings is None:
            settings = self._settings[key] = settings_from(config, **self.overrides)
        return settings

    def show(self, path) -> str:
        """``--show-settings``: the resolved settings of ``path`` and the files they came from."""
        config = self.config_for(path)
        settings = self(path)
        lines = [
            f"Settings for {path}",
            "Read from: "
            + (" <- extends ".join(map(str, config.chain)) if config.chain else "no configuration file (the defaults)"),
        ]
        if self.overrides:
            given = sorted(k for k, v in self.overrides.items() if v not in (None, (), False))
            if given:
                lines.append("Command line: " + ", ".join(k.replace("_", "-") for k in given))
        for f in fields(settings):
            lines.append(f"  {f.name.replace('_', '-')} = {getattr(settings, f.name)!r}")
        from gradlint.engine import enabled_codes

        lines.append(
            f"  enabled rules for this file = {', '.join(sorted(enabled_codes(settings, str(path)))) or 'none'}"
        )
        return "\n".join(lines) + "\n"
