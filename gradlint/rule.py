"""The rule base class, the per-file rule context, and rule discovery.

A rule is one class in one module of ``gradlint.rules`` (the repository's ``rules/``
folder). It is found by walking that package: there is no hand-kept list.
"""

from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
import textwrap
from functools import lru_cache
from typing import ClassVar

from gradlint.diagnostics import Diagnostic, Edit, Fix, Related, prediction_pairs
from gradlint.graph.model import ModelGraph, Span
from gradlint.settings import Settings
from gradlint.vocab import Applicability, Confidence, Hazard, ModelKind, Probe, Severity

DOC_HEADINGS = (
    "What it does",
    "Why is this bad?",
    "Example",
    "Known problems",
    "Fix safety",
    "Options",
    "References",
)
REQUIRED_HEADINGS = ("What it does", "Why is this bad?", "Example", "References")


def _block(source: str) -> str:
    """A triple-quoted example as the file it stands for: dedented, its first line break
    (the one after the opening quotes) dropped."""
    text = textwrap.dedent(source)
    return text[1:] if text.startswith("\n") else text


class Valid(str):
    """Source on which a rule must stay silent, written as a dedented triple-quoted block.
    It runs with only its rule selected, and the rules of ``also`` (when another rule is the
    one that reports this code, name it here)."""

    also: tuple[str, ...]

    def __new__(cls, source: str, *, also: tuple[str, ...] = ()):
        obj = super().__new__(cls, _block(source))
        obj.also = tuple(also)
        return obj


class Invalid(str):
    """Source on which a rule must report, written as a dedented triple-quoted block: on
    exactly the lines of ``line`` (an int or a tuple of them) and, where the rule has a fix,
    giving ``fixed`` once its fixes are applied (safe and unsafe; None: left unchanged). It
    runs with only its rule selected, and the rules of ``also``."""

    lines: tuple[int, ...]
    fixed: str | None
    also: tuple[str, ...]

    def __new__(cls, source: str, *, line, fixed: str | None = None, also: tuple[str, ...] = ()):
        obj = super().__new__(cls, _block(source))
        obj.lines = (line,) if isinstance(line, int) else tuple(sorted(line))
        obj.fixed = None if fixed is None else _block(fixed)
        obj.also = tuple(also)
        return obj


class Rule:
    """Base class of every rule. Subclasses set the class attributes and ``check``."""

    code: ClassVar[str]
    name: ClassVar[str]  # kebab-case pattern name, not an order
    severity: ClassVar[Severity] = Severity.WARNING  # default level
    #: every level a finding of the rule can have -> when it has it; empty: only ``severity``
    severities: ClassVar[dict[Severity, str]] = {}
    summary: ClassVar[str]  # one line, for `gradlint rules`
    #: sources on which the rule must stay silent / must report (its tests)
    VALID: ClassVar[list[Valid]] = []
    INVALID: ClassVar[list[Invalid]] = []
    #: option name -> default value (``[tool.gradlint.rules.GL101]``)
    options: ClassVar[dict] = {}
    #: whether the rule's fixes are safe, when it offers fixes (documented under ``## Fix safety``)
    fix_safety: ClassVar[Applicability | None] = None
    #: diagnostics of this code are produced by the engine itself (parse errors)
    engine_emitted: ClassVar[bool] = False
    #: diagnostics of this code come from ``--dynamic``'s measurements (GL9xx): its examples are
    #: measured by the dynamic tests, not linted
    measured: ClassVar[bool] = False
    #: for a measured rule, the hazard class of the measurement it reports, and its help text
    measures: ClassVar[Hazard | None] = None
    measured_help: ClassVar[str] = ""
    #: the probes (:class:`gradlint.vocab.Probe`) by which ``--dynamic`` confirms this rule's
    #: findings: ``report(expect=...)`` accepts only these. A rule with probes is *confirmable*:
    #: its finding without a target (its model could not be resolved) gets a verdict saying why
    #: it was not measured
    probes: ClassVar[tuple[Probe, ...]] = ()
    #: derived from ``probes``
    confirmable: ClassVar[bool] = False
    #: new rules start in preview: enabled only with ``--preview`` / ``preview = true``
    preview: ClassVar[bool] = False
    #: the flow model's causes (:class:`gradlint.vocab.Cause`) whose hazards this rule
    #: reports; each cause has one claimant
    claims: ClassVar[tuple] = ()
    #: causes this rule reports when no enabled rule claims them, so that switching one rule
    #: off never leaves a hazard reported by nobody (the engine hands them over: ``ctx.orphaned``)
    takes_over: ClassVar[tuple] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.probes = tuple(Probe(p) for p in cls.probes)
        cls.confirmable = bool(cls.probes)
        cls.severity = Severity(cls.severity)
        cls.severities = {Severity(k): v for k, v in cls.severities.items()}
        if cls.fix_safety is not None:
            cls.fix_safety = Applicability(cls.fix_safety)

    def check(self, graph: ModelGraph, ctx: "RuleContext") -> None:
        """Per model class. Rules about training code implement ``check_training`` instead."""

    def check_training(self, file: "FileModel", ctx: "RuleContext") -> None:
        """Once per file, with its training loops and the models they train."""

    @classmethod
    def levels(cls) -> dict[Severity, str]:
        """Each level a finding of this rule can have, most severe first, with when it has it."""
        given = cls.severities or {cls.severity: "always"}
        return {level: given[level] for level in Severity if level in given}

    @classmethod
    def documentation(cls) -> str:
        """The rule's docstring; ``{shared-thresholds}`` stands for the tests every gradient
        rule shares with ``--dynamic``, ``{calibration-note}`` for how its calibration table was
        measured, both written from their one home."""
        text = inspect.cleandoc(cls.__doc__ or "")
        if "{measured-" in text:
            from gradlint.flow.convention import MEASURED_DOC

            for key, value in MEASURED_DOC.items():
                text = text.replace("{" + key + "}", value)
        if "{shared-thresholds}" in text or "{calibration-note}" in text:
            from gradlint.flow.convention import describe_calibration, describe_tests

            text = text.replace("{shared-thresholds}", describe_tests())
            text = text.replace("{calibration-note}", describe_calibration())
        return text

    @classmethod
    def doc_sections(cls) -> dict[str, str]:
        sections: dict[str, str] = {}
        current = None
        for line in cls.documentation().splitlines():
            m = re.match(r"^## (.+?)\s*$", line)
            if m:
                current = m.group(1)
                sections[current] = ""
            elif current is not None:
                sections[current] += line + "\n"
        return {k: v.strip() for k, v in sections.items()}


def char_column(lines: list[str], line: int, byte_col: int) -> int:
    """1-based character column, on 1-based ``line`` of ``lines``, of a 0-based UTF-8 byte
    offset (``ast`` gives bytes)."""
    if 1 <= line <= len(lines):
        text = lines[line - 1]
        if text.isascii():
            return byte_col + 1
        return len(text.encode("utf-8")[:byte_col].decode("utf-8", "replace")) + 1
    return byte_col + 1


class FileModel:
    """What a file holds besides model graphs: its training loops, and which of its classes
    are recurrent (for rules about how models are trained)."""

    def __init__(self, graphs, training, recurrent_classes, model_classes=()):
        self.graphs = graphs
        self.training = training
        self.recurrent_classes = frozenset(recurrent_classes)
        #: every nn.Module subclass of the file
        self.model_classes = frozenset(model_classes)

    def is_recurrent(self, model) -> bool | None:
        """True/False for a model resolved in this file; None when it is imported or unknown."""
        if model is None:
            return None
        kind, name = model
        if kind == ModelKind.TORCH:
            return True
        if kind == ModelKind.LOCAL:
            return name in self.recurrent_classes
        return None


class RuleContext:
    """What a rule needs besides the graph: the file, its lines, options, and ``report``."""

    def __init__(self, path: str, lines: list[str], rule: type[Rule], options: dict | None = None):
        self.path = path
        self.lines = lines
        self.rule = rule
        self.options = {**rule.options, **(options or {})}
        self.diagnostics: list[Diagnostic] = []
        self.deferred: list[tuple] = []  # (requirement, Diagnostic) resolved across files
        self.graph = None  # the model graph being checked (set by the engine), for targets
        #: the causes of ``rule.takes_over`` that no enabled rule claims (set by the engine)
        self.orphaned: tuple = ()

    def column(self, line: int, byte_col: int) -> int:
        """1-based character column of a 0-based UTF-8 byte offset (``ast`` gives bytes)."""
        return char_column(self.lines, line, byte_col)

    def edit(self, span: Span, content: str) -> Edit:
        """A text edit replacing ``span`` (ast byte columns) with ``content``."""
        return Edit(
            span.line,
            self.column(span.line, span.col),
            span.end_line,
            self.column(span.end_line, span.end_col),
            content,
        )

    def related(self, span: Span | None, message: str, line: int | None = None) -> Related:
        if span is None:
            return Related(self.path, line or 1, 1, message)
        return Related(self.path, span.line, self.column(span.line, span.col), message)

    def report(
        self,
        span: Span,
        message: str,
        *,
        severity: Severity | None = None,
        confidence: Confidence = Confidence.INFERRED,
        help: str | None = None,
        related: tuple[Related, ...] = (),
        fix: Fix | None = None,
        requires: tuple | None = None,
        layers: tuple = (),
        expect: Probe | None = None,
        target: tuple | None = None,
        hazard=None,
        prediction=None,
    ) -> None:
        """``requires=("recurrent", qualname)``: keep the finding only if the engine finds that
        class, imported from another file of the run, to be recurrent.

        ``layers`` (module names in forward order) and ``expect`` (the direction the finding
        predicts) tell ``--dynamic`` what to measure on the model being checked; ``target``
        gives the whole target for findings that are not about ``self.graph``.

        ``hazard`` (a :class:`gradlint.vocab.Hazard` or its text; default ``none``) says
        what the finding predicts for the gradient at initialization; ``prediction`` is the
        flow model's numbers, as the JSON object of ``Diagnostic.prediction_json`` (a dict,
        ``layers`` a list of ``{name, grad_norm}``) or already as (key, value) pairs."""
        if target is None and expect is not None and self.graph is not None:
            target = (("model", self.graph.name), ("layers", tuple(layers)), ("expect", expect))
        probe = dict(target or ()).get("expect")
        if probe is not None and probe not in self.rule.probes:
            raise ValueError(f"{self.rule.code} reports the probe `{probe}`, which its `probes` do not declare")
        item = Diagnostic(
            path=self.path,
            line=span.line,
            column=self.column(span.line, span.col),
            end_line=span.end_line,
            end_column=self.column(span.end_line, span.end_col),
            code=self.rule.code,
            name=self.rule.name,
            severity=severity or self.rule.severity,
            message=message,
            confidence=confidence,
            help=help,
            related=tuple(related),
            fix=fix,
            target=target or (),
            hazard=Hazard.NONE if hazard is None else hazard,
            prediction=prediction_pairs(prediction),
        )
        if requires is not None:
            self.deferred.append((requires, item))
        else:
            self.diagnostics.append(item)


@lru_cache(maxsize=1)
def all_rules() -> tuple[type[Rule], ...]:
    """Every rule class of ``gradlint.rules``, sorted by code."""
    import gradlint.rules as package

    found = []
    for info in pkgutil.iter_modules(package.__path__, package.__name__ + "."):
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Rule) and obj is not Rule and obj.__module__ == module.__name__:
                found.append(obj)
    return tuple(sorted(found, key=lambda r: r.code))


def rule_by_code(code_or_name: str) -> type[Rule] | None:
    key = code_or_name.strip()
    for rule in all_rules():
        if rule.code == key.upper() or rule.name == key:
            return rule
    return None


def select_rules(select=None, ignore=None, extend_select=(), preview=False) -> list[type[Rule]]:
    """Rules enabled by prefix lists: ``--select GL1 --extend-select GL003 --ignore GL102``.

    ``select`` replaces the default set (every rule), ``extend-select`` adds to it, and
    ``ignore`` removes from the result. Preview rules need ``preview``."""

    def matches(rule, prefixes):
        return any(rule.code.startswith(p.upper()) or rule.name == p for p in prefixes)

    chosen = []
    for rule in all_rules():
        if rule.preview and not preview:
            continue
        if select and not matches(rule, select) and not matches(rule, extend_select):
            continue
        if ignore and matches(rule, ignore):
            continue
        chosen.append(rule)
    return chosen


# ---------------------------------------------------------------- the rules a file's settings enable
_RULES_CACHE: dict = {}


def _file_ignores(settings: Settings, path: str) -> tuple:
    """The codes ``per-file-ignores`` turns off for ``path``."""
    if not settings.per_file_ignores:
        return ()
    import pathspec

    root = settings.root or os.getcwd()
    rel = os.path.relpath(os.path.abspath(path), root).replace(os.sep, "/")
    out: list = []
    for pattern, codes in settings.per_file_ignores:
        key = ("pfi", pattern)
        spec = _RULES_CACHE.get(key)
        if spec is None:
            spec = _RULES_CACHE[key] = pathspec.GitIgnoreSpec.from_lines([pattern])
        if spec.match_file(rel):
            out.extend(codes)
    return tuple(out)


def enabled_rules(settings: Settings, path: str | None = None):
    """The enabled rules (instances), for one file when ``path`` is given."""
    ignore = settings.ignore + (_file_ignores(settings, path) if path else ())
    key = (settings.select, settings.extend_select, ignore, settings.preview)
    if key not in _RULES_CACHE:
        _RULES_CACHE[key] = [
            r() for r in select_rules(settings.select, ignore, settings.extend_select, settings.preview)
        ]
    return _RULES_CACHE[key]


def enabled_codes(settings: Settings, path: str | None = None) -> frozenset[str]:
    """The codes of the rules enabled for ``path`` (selection, ignores, per-file ignores)."""
    return frozenset(r.code for r in enabled_rules(settings, path))
