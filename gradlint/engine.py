"""The single-file pipeline: source -> parse (ast) -> layer graphs -> rules -> suppressions
-> sort/dedupe (:func:`analyse`, :func:`analyse_source`).

Stages are pure functions of their inputs, with no I/O, and their verb is *analyse*:
:func:`analyse` (bytes or text -> :class:`~gradlint.settings.FileResult`), :func:`analyse_source`
(its findings alone) and :func:`analyse_tree` (a parsed module). Runs over many files (workers,
the cache, notebooks, fix edits, findings across files) are :mod:`gradlint.run`, above this,
and their verb is *lint*.
"""

from __future__ import annotations

import ast
import dataclasses
import warnings

from gradlint.diagnostics import Diagnostic, Related
from gradlint.flow.hazards import forget as forget_judges
from gradlint.graph.builder import FileIndex, build_graphs
from gradlint.graph.seqlen import attach_lengths
from gradlint.graph.training import extract as extract_training
from gradlint.rule import FileModel, RuleContext, enabled_rules, rule_by_code, select_rules
from gradlint.settings import FileResult, Settings, configured_for
from gradlint.suppressions import parse_directives, removal, suppressing, unused
from gradlint.text import decode, split_lines
from gradlint.vocab import Confidence

#: files that never mention torch are skipped before parsing
PREFILTER = b"torch"


# ---------------------------------------------------------------- one file
def _tool_diagnostic(code: str, path: str, line: int, column: int, message: str) -> Diagnostic:
    rule = rule_by_code(code)
    return Diagnostic(
        path=path,
        line=max(line, 1),
        column=max(column, 1),
        end_line=max(line, 1),
        end_column=max(column, 1) + 1,
        code=code,
        name=rule.name,
        severity=rule.severity,
        message=message,
        confidence=Confidence.CONFIRMED,
    )


def analyse_source(data: bytes | str, path: str = "<string>", settings: Settings = Settings()) -> list[Diagnostic]:
    """Every diagnostic for one file's content (findings that depend on other files dropped)."""
    return analyse(data, path, settings).diagnostics


def analyse(data: bytes | str, path: str = "<string>", settings: Settings = Settings()) -> FileResult:
    if isinstance(data, str):
        data = data.encode("utf-8")
    if PREFILTER not in data:
        return FileResult([])
    enabled = {r.code for r in enabled_rules(settings, path)}
    parse_reported = "GL001" in enabled

    def gl001(line, col, msg):
        return FileResult([_tool_diagnostic("GL001", path, line, col, msg)] if parse_reported else [])

    try:
        text = decode(data)
    except (UnicodeDecodeError, LookupError, SyntaxError) as exc:
        pos = getattr(exc, "start", 0)
        line = data.count(b"\n", 0, pos) + 1
        col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        reason = exc.reason if isinstance(exc, UnicodeDecodeError) else str(exc)
        return gl001(line, col, f"cannot decode: {reason} — file skipped")
    nul = text.find("\0")
    if nul != -1:
        line = text.count("\n", 0, nul) + 1
        col = nul - (text.rfind("\n", 0, nul) + 1) + 1
        return gl001(line, col, "cannot parse: source contains a NUL byte — file skipped")
    try:
        with warnings.catch_warnings():
            # compiling the user's code warns of what Python will warn them of itself (an invalid
            # escape sequence: SyntaxWarning on 3.12, DeprecationWarning before): not ours to print
            warnings.simplefilter("ignore", SyntaxWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            tree = ast.parse(text, filename=path)
    except SyntaxError as exc:
        return _unless_suppressed(
            gl001(exc.lineno or 1, exc.offset or 1, f"cannot parse: {exc.msg} — file skipped"), text
        )
    except (ValueError, RecursionError, MemoryError) as exc:
        return _unless_suppressed(gl001(1, 1, f"cannot parse: {type(exc).__name__}: {exc} — file skipped"), text)
    lines = split_lines(text)
    return analyse_tree(tree, lines, path, settings, text)


def _unless_suppressed(result: FileResult, text: str) -> FileResult:
    """A file that does not parse may still say ``# gradlint: file-ignore[GL001]`` (what
    ``--add-noqa`` writes), or ``# noqa: GL001`` on the line the parse fails at: its comments
    are read by the tokenizer up to where it fails."""
    if not result.diagnostics:
        return result
    directives = parse_directives(text, split_lines(text))
    kept = [d for d in result.diagnostics if not suppressing(directives, d.code, d.name, d.line)]
    return FileResult(kept) if len(kept) != len(result.diagnostics) else result


def checked_graphs(tree: ast.Module, path: str, lines: list[str] | None = None, configured: tuple = ()):
    """``(index, graphs, training facts)`` of a parsed file as ``check`` builds them: the models
    rules judge (classes, factories, the models as the script and the configuration build
    them: ``configured`` is ((class name, kwargs pairs), ...)) with what the file's training
    code says of them (the sequence length it uses)."""
    index = FileIndex(tree)
    graphs = build_graphs(tree, path, everything=False, index=index, configured_kwargs=configured)
    training = extract_training(tree, index, lines)
    attach_lengths(graphs, training, index)
    return index, graphs, training


def _locate_at_site(rule, graph, graphs, ctx, before: int, options) -> None:
    """Findings on a model as the script configures it (``model = Net(constant_weight=0.5)``):
    one found in the class's own code that the class's defaults do not have is caused by the
    call's arguments, so it is reported at the call (the line to change), with a note at the
    layer it concerns. Any other stays where it is (the class's own code, or the init function
    the script applies), with a note at the call."""
    site = graph.site_span
    default = next((g for g in graphs if g.name == graph.factory_of and g.site_span is None), None)
    codes = None
    if default is not None:
        probe = RuleContext(ctx.path, ctx.lines, type(rule), options)
        probe.graph = default
        try:
            rule.check(default, probe)
            codes = {d.code for d in probe.diagnostics}
        except Exception:  # noqa: BLE001 - only a comparison; the real check already ran
            codes = None
    call = ctx.related(site, f"the model as configured here: `{graph.name}`")
    for k in range(before, len(ctx.diagnostics)):
        d = ctx.diagnostics[k]
        if d.line == site.line:
            continue
        in_class = default is not None and default.span.line <= d.line <= default.span.end_line
        if in_class and codes is not None and d.code not in codes and graph.from_config:
            # no call in the file to point at: the finding stays at its layers and says why
            ctx.diagnostics[k] = dataclasses.replace(
                d,
                message=f"{d.message} (with the constructor kwargs of [tool.gradlint.dynamic.models]: "
                f"`{graph.name}`; `{graph.factory_of}` with its defaults does not have it)",
            )
        elif in_class and codes is not None and d.code not in codes:
            where = Related(d.path, d.line, d.column, "the layers it concerns")
            ctx.diagnostics[k] = dataclasses.replace(
                d,
                line=site.line,
                column=ctx.column(site.line, site.col),
                end_line=site.end_line,
                end_column=ctx.column(site.end_line, site.end_col),
                related=(where, *d.related),
                message=f"{d.message} (caused by this call's arguments: `{graph.factory_of}` with its defaults "
                f"does not have it)",
                # the fix rewrites the class's own code, which is right with its defaults: the
                # arguments are what to change, and no edit here knows how
                fix=None,
            )
        else:
            ctx.diagnostics[k] = dataclasses.replace(d, related=(*d.related, call))


def analyse_tree(
    tree: ast.Module, lines: list[str], path: str, settings: Settings, text: str | None = None
) -> FileResult:
    """Graph stage, rule stage, suppressions, sort/dedupe for one parsed file."""
    diagnostics: list[Diagnostic] = []
    deferred: list[tuple] = []
    rules = enabled_rules(settings, path)
    directives = parse_directives(text if text is not None else "\n".join(lines), lines, tree)
    try:
        index, graphs, training = checked_graphs(tree, path, lines, configured_for(settings, path))
    except Exception as exc:  # a builder bug must not end the run
        return FileResult(
            [_tool_diagnostic("GL002", path, 1, 1, f"internal error in the graph builder: {type(exc).__name__}: {exc}")]
        )
    for name, span, message in getattr(index, "build_errors", ()):
        diagnostics.append(
            _tool_diagnostic(
                "GL002",
                path,
                span.line,
                span.col + 1,
                f"internal error in the graph builder on class {name}: {message}",
            )
        )
    file_model = FileModel(graphs, training, index.recurrent_classes, index.module_classes)
    options = {code: dict(opts) for code, opts in settings.rule_options}
    claimed = {cause for rule in rules for cause in rule.claims}
    for rule in rules:
        if rule.engine_emitted:
            continue
        ctx = RuleContext(path, lines, type(rule), options.get(rule.code))
        ctx.orphaned = tuple(cause for cause in rule.takes_over if cause not in claimed)
        for graph in graphs:
            if graph.checked_in_context:
                continue
            ctx.graph = graph
            before = len(ctx.diagnostics)
            try:
                rule.check(graph, ctx)
                if graph.site_span is not None and len(ctx.diagnostics) > before:
                    _locate_at_site(rule, graph, graphs, ctx, before, options.get(rule.code))
            except Exception as exc:
                diagnostics.append(
                    _tool_diagnostic(
                        "GL002",
                        path,
                        graph.span.line,
                        graph.span.col + 1,
                        f"internal error in {rule.code} on class {graph.name}: {type(exc).__name__}: {exc}",
                    )
                )
        ctx.graph = None
        if training.loops or training.fits:
            try:
                rule.check_training(file_model, ctx)
            except Exception as exc:
                diagnostics.append(
                    _tool_diagnostic(
                        "GL002",
                        path,
                        1,
                        1,
                        f"internal error in {rule.code} on training code: {type(exc).__name__}: {exc}",
                    )
                )
        diagnostics.extend(ctx.diagnostics)
        deferred.extend((req, d) for req, d in ctx.deferred if not suppressing(directives, d.code, d.name, d.line))
    for graph in graphs:
        forget_judges(graph)  # the rules are done with it: free it by reference counting
    enabled = {r.code for r in rules}
    return FileResult(
        finalize(diagnostics, lines, directives, enabled, path), deferred, frozenset(index.recurrent_classes)
    )


def finalize(
    diagnostics: list[Diagnostic], lines: list[str], directives=(), enabled=frozenset(), path: str = "<string>"
) -> list[Diagnostic]:
    """Drop suppressed findings, then duplicates (same place and code; first wins), then sort;
    then report the suppressions that hid nothing (GL003) when that rule is enabled."""
    kept, seen = [], set()
    for d in diagnostics:
        if d.code != "GL002" and suppressing(directives, d.code, d.name, d.line):
            continue
        key = (d.path, d.line, d.column, d.code)
        if key in seen:
            continue
        seen.add(key)
        kept.append(d)
    if directives and "GL003" in enabled:
        everything = {r.code for r in select_rules()} <= set(enabled)
        kept.extend(_unused_suppressions(directives, enabled, lines, path, everything))
    return sorted(kept, key=Diagnostic.sort_key)


def _listing(codes: list[str], shown: int = 10) -> str:
    """``GL101, GL102`` or, for a long list, its first codes and how many more."""
    if len(codes) <= shown:
        return ", ".join(codes)
    return f"{', '.join(codes[:shown])} and {len(codes) - shown} more"


def _unused_suppressions(directives, enabled, lines, path, everything=True) -> list[Diagnostic]:
    from gradlint.diagnostics import Edit, Fix
    from gradlint.rule import all_rules

    known = {r.code: r.code for r in all_rules()} | {r.name: r.code for r in all_rules()}
    rule = rule_by_code("GL003")

    def own(written: str) -> bool:  # GL003 itself (its code, a prefix of it, or its name)
        return written == rule.name or (written.upper().startswith("GL") and "GL003".startswith(written.upper()))

    # A directive that hides nothing is kept by a `# noqa: GL003` (or an ignore[GL003]) that
    # names GL003 and covers its line, as ruff's RUF100 is kept by `# noqa: RUF100`; then, and only then, that
    # GL003 hid something. GL003's own codes are judged once that is known.
    excused = set()
    for k, directive in enumerate(directives):
        dead, unknown = unused(directive, enabled, known, everything)
        if [c for c in dead if not own(c)] or unknown:
            for other in directives:  # only a directive that names GL003 (a bare one is judged itself)
                written = other.matches("GL003", rule.name) if other.covers(directive.line) else None
                if written not in (None, "*"):
                    other.used.add(written)
                    excused.add(k)
    out = []
    for k, directive in enumerate(directives):
        dead, unknown = unused(directive, enabled, known, everything)
        if k in excused:
            dead, unknown = [c for c in dead if own(c)], []
        if not dead and not unknown:
            continue
        written = (
            f"# noqa: {', '.join(directive.codes)}"
            if directive.kind == "noqa"
            else f"# gradlint: {directive.kind}" + (f"[{', '.join(directive.codes)}]" if directive.codes else "")
        )
        if len(written) > 80:
            written = written[:76] + " ..."
        parts = []
        if dead == ["*"]:
            parts.append("hides no finding")
        elif dead:
            parts.append(f"{_listing(dead)} hide{'s' if len(dead) == 1 else ''} no finding")
        if unknown:
            parts.append(f"{_listing(unknown)} name{'s' if len(unknown) == 1 else ''} no rule")
        line_text = lines[directive.line - 1] if directive.line <= len(lines) else ""
        start, end, content = removal(directive, dead + unknown, line_text)
        title = "remove the unused suppression" if not content else f"keep only `{content}`"
        fix = Fix(title, rule.fix_safety, (Edit(directive.line, start, directive.line, end, content),))
        where = {"noqa": "on this line", "ignore": "here", "file-ignore": "in this file"}[directive.kind]
        out.append(
            Diagnostic(
                path=path,
                line=directive.line,
                column=directive.column,
                end_line=directive.line,
                end_column=directive.end_column,
                code="GL003",
                name=rule.name,
                severity=rule.severity,
                message=f"unused suppression `{written}`: {'; '.join(parts)} {where}",
                confidence=Confidence.CONFIRMED,
                fix=fix,
            )
        )
    return out
