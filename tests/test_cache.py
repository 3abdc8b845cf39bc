"""The result cache (gradlint/cache.py): hits, what invalidates an entry, corrupt entries,
several processes writing at once."""

from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import time
import warnings

import pytest
from conftest import FIXTURES

import gradlint
from gradlint import cache as cache_mod
from gradlint import engine, run
from gradlint.cache import ResultCache, default_cache_dir
from gradlint.run import lint_cached
from gradlint.settings import FileResult, Settings

MODELS = FIXTURES / "models"
DEEP = MODELS / "deep_sigmoid_mlp.py"  # GL101 at DEPTH = 10
HEALTHY = MODELS / "kaiming_relu_healthy.py"


def codes(result: FileResult) -> list[str]:
    return [d.code for d in result.diagnostics]


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A folder with a deep sigmoid model and a healthy one, files a while old, as cwd."""
    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(DEEP, src / "deep.py")
    shutil.copy(HEALTHY, src / "healthy.py")
    old = time.time() - 3600
    for f in src.iterdir():
        os.utime(f, (old, old))
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def calls(monkeypatch):
    """Count the analyses the engine really runs."""
    seen: list[str] = []
    real = engine.analyse

    def counting(data, path="<string>", settings=Settings()):
        seen.append(path)
        return real(data, path, settings)

    monkeypatch.setattr(engine, "analyse", counting)
    return seen


def forbid_analysis(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("analysed again: the cache missed")

    monkeypatch.setattr(engine, "analyse", fail)
    monkeypatch.setattr(run, "lint_file", fail)


def all_files(root) -> list[str]:
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs)


# ---------------------------------------------------------------- hits
def test_second_run_is_served_from_the_cache(project, monkeypatch):
    cache = ResultCache(".gradlint_cache", Settings())
    first = lint_cached(cache, "src/deep.py")
    assert "GL101" in codes(first)
    assert first == run.lint_file("src/deep.py", Settings())
    assert lint_cached(cache, "src/healthy.py").diagnostics == []

    forbid_analysis(monkeypatch)
    again = ResultCache(".gradlint_cache", Settings())  # a new run
    assert lint_cached(again, "src/deep.py") == first
    assert lint_cached(again, "src/healthy.py").diagnostics == []


def test_unchanged_old_file_is_a_hit_without_reading_it(project, monkeypatch):
    monkeypatch.setattr(cache_mod, "RACY_NS", 0)
    cache = ResultCache(".gradlint_cache", Settings())
    lint_cached(cache, "src/deep.py")
    found = cache.lookup("src/deep.py")
    assert found.result is not None
    assert found.digest == b""  # the stat matched: the content was neither read nor hashed


def test_recently_modified_file_is_checked_by_its_content(project, calls):
    # written just now: its stat cannot be trusted yet, the content hash decides
    cache = ResultCache(".gradlint_cache", Settings())
    (project / "src" / "deep.py").write_bytes(DEEP.read_bytes())
    lint_cached(cache, "src/deep.py")
    found = cache.lookup("src/deep.py")
    assert found.result is not None and found.digest != b""
    assert calls == ["src/deep.py"]


def test_result_carries_the_path_as_given(project):
    cache = ResultCache(".gradlint_cache", Settings())
    relative = lint_cached(cache, "src/deep.py")
    absolute = lint_cached(cache, str(project / "src" / "deep.py"))
    assert {d.path for d in relative.diagnostics} == {"src/deep.py"}
    assert {d.path for d in absolute.diagnostics} == {str(project / "src" / "deep.py")}


# ---------------------------------------------------------------- invalidation
@pytest.mark.parametrize("racy_ns", [0, cache_mod.RACY_NS], ids=["stat-shortcut", "racy"])
def test_same_size_edit_with_mtime_put_back_is_a_miss(project, monkeypatch, calls, racy_ns):
    monkeypatch.setattr(cache_mod, "RACY_NS", racy_ns)
    path = project / "src" / "deep.py"
    before = os.stat(path)
    cache = ResultCache(".gradlint_cache", Settings())
    assert "GL101" in codes(lint_cached(cache, "src/deep.py"))

    text = path.read_text()
    edited = text.replace("DEPTH = 10", "DEPTH =  1")
    assert edited != text and len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)

    result = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    assert "GL101" not in codes(result)
    assert calls == ["src/deep.py", "src/deep.py"]


def test_touched_file_with_same_content_is_a_hit_and_its_stat_refreshed(project, monkeypatch, calls):
    monkeypatch.setattr(cache_mod, "RACY_NS", 0)
    path = project / "src" / "deep.py"
    cache = ResultCache(".gradlint_cache", Settings())
    lint_cached(cache, "src/deep.py")
    later = time.time() - 60
    os.utime(path, (later, later))  # a checkout, a `touch`
    found = cache.lookup("src/deep.py")
    assert found.result is not None and found.digest != b""  # found by content
    assert cache.lookup("src/deep.py").digest == b""  # and the entry now has the new stat
    assert calls == ["src/deep.py"]


def test_settings_that_change_results_invalidate(project, calls):
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    ignored = lint_cached(ResultCache(".gradlint_cache", Settings(ignore=("GL101",))), "src/deep.py")
    assert "GL101" not in codes(ignored)
    assert len(calls) == 2
    for other in (
        Settings(preview=True),
        Settings(select=("GL1",)),
        Settings(fixes=True),
        Settings(rule_options=(("GL101", (("threshold", 1e-3),)),)),
        Settings(per_file_ignores=(("src/*", ("GL101",)),)),
        Settings(root=str(project / "src")),
    ):
        assert ResultCache(".gradlint_cache", other).folder != ResultCache(".gradlint_cache", Settings()).folder, other


def test_discovery_only_settings_share_the_entries(project, monkeypatch):
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    forbid_analysis(monkeypatch)
    for other in (
        Settings(jobs=1),
        Settings(extend_exclude=("legacy/",)),
        Settings(respect_gitignore=False),
        Settings(force_exclude=True),
        Settings(exclude=()),
    ):
        assert "GL101" in codes(lint_cached(ResultCache(".gradlint_cache", other), "src/deep.py"))


def test_unknown_settings_fields_count(project):
    """A field added to Settings later is part of the key unless declared discovery-only."""
    from dataclasses import field, make_dataclass

    Extended = make_dataclass("Extended", [("new_knob", int, field(default=0))], bases=(Settings,), frozen=True)
    assert cache_mod.settings_key(Extended(new_knob=1)) != cache_mod.settings_key(Extended(new_knob=2))


def test_version_change_invalidates(project, monkeypatch, calls):
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    monkeypatch.setattr(gradlint, "__version__", "99.0.0")
    cache = ResultCache(".gradlint_cache", Settings())
    assert "99.0.0" in cache.folder
    lint_cached(cache, "src/deep.py")
    assert len(calls) == 2


def test_gradlint_source_change_invalidates(project, monkeypatch, calls):
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    monkeypatch.setattr(cache_mod, "code_stamp", lambda: "an edited rule")
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    assert len(calls) == 2


def test_code_stamp_covers_the_engine_and_the_rules(monkeypatch):
    stats: list[str] = []
    real_stat = os.stat
    monkeypatch.setattr(cache_mod, "_code_stamp", None)

    def recording(path, *args, **kwargs):
        stats.append(str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(cache_mod.os, "stat", recording)
    stamp = cache_mod.code_stamp()
    names = {os.path.basename(p) for p in stats}
    assert {"engine.py", "builder.py", "saturating_activation_stack.py", "_common.py"} <= names
    monkeypatch.setattr(cache_mod, "_code_stamp", None)
    assert cache_mod.code_stamp() == stamp  # deterministic


# ---------------------------------------------------------------- damage
def _entry(cache: ResultCache, path: str) -> str:
    return cache.entry_path(path)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "flipped-byte", "not-a-result", "other-format"])
def test_corrupt_entry_is_rebuilt_silently(project, monkeypatch, calls, capsys, damage):
    cache = ResultCache(".gradlint_cache", Settings())
    good = lint_cached(cache, "src/deep.py")
    entry = _entry(cache, "src/deep.py")
    blob = open(entry, "rb").read()
    if damage == "garbage":
        blob = os.urandom(300)
    elif damage == "truncated":
        blob = blob[: len(blob) // 2]
    elif damage == "empty":
        blob = b""
    elif damage == "flipped-byte":  # still unpickles, to another result: the checksum catches it
        at = blob.rindex(b"GL101") + 4
        blob = blob[:at] + b"9" + blob[at + 1 :]
    elif damage == "not-a-result":
        import zlib

        payload = pickle.dumps({"not": "a FileResult"})
        header = blob[len(cache_mod.MAGIC) : len(cache_mod.MAGIC) + cache_mod._HEADER.size]
        fields = list(cache_mod._HEADER.unpack(header))
        fields[-1] = zlib.crc32(payload)
        blob = cache_mod.MAGIC + cache_mod._HEADER.pack(*fields) + payload
    elif damage == "other-format":
        blob = b"GLCACHE0" + blob[len(cache_mod.MAGIC) :]
    with open(entry, "wb") as fh:
        fh.write(blob)

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    assert again == good
    assert len(calls) == 2  # a miss, re-analysed
    assert capsys.readouterr() == ("", "")
    forbid_analysis(monkeypatch)
    assert lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py") == good  # rebuilt


def test_entry_replaced_by_a_folder_or_cache_dir_a_file_only_stops_caching(project, calls):
    cache = ResultCache(".gradlint_cache", Settings())
    os.makedirs(_entry(cache, "src/deep.py"))
    assert "GL101" in codes(lint_cached(cache, "src/deep.py"))
    assert "GL101" in codes(lint_cached(cache, "src/deep.py"))
    (project / "not_a_dir").write_text("x")
    blocked = ResultCache("not_a_dir", Settings())
    assert "GL101" in codes(lint_cached(blocked, "src/deep.py"))
    assert (project / "not_a_dir").read_text() == "x"
    assert not [p for p in all_files(project) if ".tmp-" in p]


def test_unreadable_files_are_reported_not_cached(project):
    cache = ResultCache(".gradlint_cache", Settings())
    missing = lint_cached(cache, "src/missing.py")
    assert codes(missing) == ["GL001"]
    assert not os.path.exists(_entry(cache, "src/missing.py"))
    assert codes(lint_cached(cache, "src")) == ["GL001"]  # a directory


def test_internal_errors_are_not_cached(project, monkeypatch):
    cache = ResultCache(".gradlint_cache", Settings())
    crashed = FileResult([engine._tool_diagnostic("GL002", "src/deep.py", 1, 1, "internal error: boom")])
    monkeypatch.setattr(engine, "analyse", lambda *a, **k: crashed)
    assert lint_cached(cache, "src/deep.py") is crashed
    assert not os.path.exists(_entry(cache, "src/deep.py"))


def test_cache_folder_is_tagged_and_ignored(project):
    lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    root = project / ".gradlint_cache"
    assert (root / "CACHEDIR.TAG").read_bytes().startswith(b"Signature: 8a477f597d28d172789f06886806bc55")
    assert "*" in (root / ".gitignore").read_text().splitlines()
    assert not [p for p in all_files(root) if ".tmp-" in p]


def test_default_cache_dir(project, monkeypatch):
    monkeypatch.delenv("GRADLINT_CACHE_DIR", raising=False)
    assert default_cache_dir(Settings()) == str(project / ".gradlint_cache")
    assert default_cache_dir(Settings(root=str(project / "src"))) == str(project / "src" / ".gradlint_cache")
    monkeypatch.setenv("GRADLINT_CACHE_DIR", "elsewhere")
    assert default_cache_dir(Settings()) == str(project / "elsewhere")


def test_cache_pickles_for_workers(project):
    cache = ResultCache(".gradlint_cache", Settings(jobs=2))
    clone = pickle.loads(pickle.dumps(cache))
    assert clone.folder == cache.folder
    assert "GL101" in codes(lint_cached(clone, "src/deep.py"))


# ---------------------------------------------------------------- several processes
def _hammer(args):
    root, files, rounds = args
    os.chdir(root)
    for i in range(rounds):
        cache = ResultCache(".gradlint_cache", Settings())
        for f in files:
            if i % 2 == 0:
                try:  # force misses, so that the processes write the same entries at once
                    os.unlink(cache.entry_path(f))
                except OSError:
                    pass
            lint_cached(cache, f)
    cache = ResultCache(".gradlint_cache", Settings())
    return [(f, lint_cached(cache, f)) for f in files]


def test_concurrent_writers_leave_a_valid_cache(project):
    src = project / "src"
    for name in ("deep_gelu_mlp.py", "rnn_tanh.py", "residual_sigmoid.py", "tanh_default_deep.py"):
        shutil.copy(MODELS / name, src / name)
    files = sorted(f"src/{p.name}" for p in src.iterdir())
    expected = {f: run.lint_file(f, Settings()) for f in files}
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    with multiprocessing.get_context(method).Pool(4) as pool:
        outcomes = pool.map(_hammer, [(str(project), files, 6)] * 4)
    for outcome in outcomes:
        assert dict(outcome) == expected

    cache = ResultCache(".gradlint_cache", Settings())
    for f in files:
        stored = cache_mod._read_entry(cache.entry_path(f))
        assert stored is not None, f
        assert cache_mod._load(stored[2]) == expected[f]
    leftovers = [p for p in all_files(project / ".gradlint_cache") if ".tmp" in os.path.basename(p)]
    assert leftovers == []
    entries = [p for p in all_files(cache.folder)]
    assert len(entries) == len(files)


def test_results_round_trip_with_fixes_and_deferred_findings(project):
    # FileResult round-trips through the JSON entry with every field (fixes, related, deferred)
    cache = ResultCache(".gradlint_cache", Settings(fixes=True))
    shutil.copy(MODELS / "stale_suppression.py", project / "src" / "stale.py")
    first = lint_cached(cache, "src/stale.py")
    assert any(d.fix is not None and d.fix.edits for d in first.diagnostics)
    again = lint_cached(ResultCache(".gradlint_cache", Settings(fixes=True)), "src/stale.py")
    assert again == first and again.deferred == first.deferred
    assert [d.fix for d in again.diagnostics] == [d.fix for d in first.diagnostics]


def test_notebooks_are_cached_like_the_engine_lints_them(project, monkeypatch):
    notebook = FIXTURES / "notebooks" / "sequence_model.ipynb"
    shutil.copy(notebook, project / "src" / "model.ipynb")
    expected = run.lint_file("src/model.ipynb", Settings())
    assert expected.diagnostics and all(d.cell is not None for d in expected.diagnostics)
    assert lint_cached(ResultCache(".gradlint_cache", Settings()), "src/model.ipynb") == expected
    forbid_analysis(monkeypatch)
    again = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/model.ipynb")
    assert again == expected and again.sources == expected.sources


def test_the_fields_equality_ignores_round_trip_too(project):
    cache = ResultCache(".gradlint_cache", Settings())
    first = lint_cached(cache, "src/deep.py")
    again = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    assert first.diagnostics and again is not first
    for a, b in zip(first.diagnostics, again.diagnostics):
        assert (a.target, a.hazard, a.prediction) == (b.target, b.hazard, b.prediction)
        assert a.prediction, "the fixture's finding carries the flow model's prediction"
    assert again.recurrent_classes == first.recurrent_classes


def test_a_planted_pickle_entry_runs_nothing(project, tmp_path):
    """Entries were pickles: one planted for a file ran its code during a plain static check.
    They are JSON now; a pickle, however well framed, is a corrupt entry."""
    import zlib

    cache = ResultCache(".gradlint_cache", Settings())
    good = lint_cached(cache, "src/deep.py")
    entry = _entry(cache, "src/deep.py")
    blob = open(entry, "rb").read()
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    payload = pickle.dumps(Exploit())
    header = blob[len(cache_mod.MAGIC) : len(cache_mod.MAGIC) + cache_mod._HEADER.size]
    fields = list(cache_mod._HEADER.unpack(header))
    fields[-1] = zlib.crc32(payload)
    with open(entry, "wb") as fh:
        fh.write(cache_mod.MAGIC + cache_mod._HEADER.pack(*fields) + payload)
    again = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")
    assert not marker.exists()
    assert again == good


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_an_entry_that_is_not_a_regular_file_is_corrupt_and_never_read(project, calls, kind):
    cache = ResultCache(".gradlint_cache", Settings())
    good = lint_cached(cache, "src/deep.py")
    entry = _entry(cache, "src/deep.py")
    os.unlink(entry)
    if kind == "fifo":
        os.mkfifo(entry)
    else:
        os.symlink("/dev/zero", entry)
    again = lint_cached(ResultCache(".gradlint_cache", Settings()), "src/deep.py")  # would block or fill memory
    assert again == good and len(calls) == 2


def test_the_cache_keeps_the_most_recently_used_runs_only(project):
    """Each (version, settings) combination has its folder; the oldest beyond KEEP_RUNS, and any
    unused for MAX_RUN_AGE_S, are deleted when a run writes."""
    root = project / ".gradlint_cache"
    now = time.time()
    made = []
    for i in range(cache_mod.KEEP_RUNS + 3):
        folder = root / f"0.0.{i}" / f"run{i:02d}"
        (folder / "ab").mkdir(parents=True)
        (folder / "ab" / "entry").write_bytes(b"x")
        age = cache_mod.IN_USE_S + (i + 1) * 60 if i < cache_mod.KEEP_RUNS + 2 else cache_mod.MAX_RUN_AGE_S + 60
        os.utime(folder, (now - age, now - age))
        made.append(folder)
    cache = ResultCache(str(root), Settings())
    lint_cached(cache, "src/deep.py")  # a miss: written, and the others pruned
    kept = [f for f in made if f.exists()]
    assert kept == made[: cache_mod.KEEP_RUNS - 1]  # the newest others, beside this run's own
    assert os.path.isdir(cache.folder)
    assert not (root / f"0.0.{cache_mod.KEEP_RUNS + 2}").exists()  # emptied version folders go too


def test_a_monorepo_run_keeps_the_cache_of_every_sub_project(tmp_path, monkeypatch):
    """One combination per configuration file: a run over more sub-projects than KEEP_RUNS
    prunes none of its own (they were all used just now), and the second run hits them all."""
    from gradlint.config_resolve import Resolver
    from gradlint.run import lint_paths

    monkeypatch.chdir(tmp_path)
    n = cache_mod.KEEP_RUNS + 3
    for k in range(n):
        (tmp_path / f"p{k}").mkdir()
        (tmp_path / f"p{k}" / "gradlint.toml").write_text(f"[rules.GL101]\nmin-layers = {k + 2}\n", encoding="utf-8")
        shutil.copy(DEEP, tmp_path / f"p{k}" / "m.py")
        os.utime(tmp_path / f"p{k}" / "m.py", (time.time() - 3600,) * 2)
    cache_dir = str(tmp_path / ".gradlint_cache")
    first = lint_paths(["."], Resolver({"jobs": 1}), cache_dir=cache_dir)
    runs = [p for v in (tmp_path / ".gradlint_cache").iterdir() if v.is_dir() for p in v.iterdir() if p.is_dir()]
    assert len(runs) == n
    calls = []
    real = run.lint_bytes
    monkeypatch.setattr(run, "lint_bytes", lambda *a, **k: calls.append(a[1]) or real(*a, **k))
    again = lint_paths(["."], Resolver({"jobs": 1}), cache_dir=cache_dir)
    assert calls == [] and again.diagnostics == first.diagnostics
