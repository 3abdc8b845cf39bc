"""The child process of ``--dynamic``: imports one user file, builds its models, measures.

Run as ``python -m gradlint.dynamic.worker JOB.json RESULT.json`` by :mod:`gradlint.dynamic.runner`,
never imported by the parent. It is the only place user code runs: this driver reads the job,
imports the user's file and writes the result; the models are built by
:mod:`gradlint.dynamic.build` and measured by :mod:`gradlint.dynamic.probes` (with
:mod:`gradlint.dynamic.recorder`). These four are the only modules of gradlint that import
torch at module level. It measures and reports raw numbers; the parent
judges them (:mod:`gradlint.dynamic.verdict`), so thresholds never need to cross the process
boundary. The result file is rewritten after every model, so a model that hangs or crashes
the process does not lose the ones measured before it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import io
import json
import os
import sys
import time
from pathlib import Path

import torch

from gradlint.dynamic.build import _out_of_memory, _short, _Skip, _where
from gradlint.dynamic.probes import measure_model
from gradlint.text import write_atomic


def _write(result_path: str, result: dict) -> None:
    # the run's own folder: no link to follow, and a crash loses nothing the parent rebuilds
    write_atomic(result_path, json.dumps(result, allow_nan=True).encode("utf-8"), durable=False, keep_links=False)


def _cap(job: dict) -> str:
    cap = job.get("memory_cap_gib")
    return f" (the {cap:g} GiB memory cap; raise it with --memory-limit)" if cap else ""


def import_user_file(path: str):
    """Import ``path`` as a module, inside its package when it has one (relative imports).
    A notebook's imports, definitions and constants are executed; its other cells are not."""
    file = Path(path).resolve()
    if file.suffix == ".ipynb":
        import types

        from gradlint.notebook import definitions_source, load

        sys.path.insert(0, str(file.parent))
        module = types.ModuleType(f"gradlint_user_{file.stem}")
        module.__file__ = str(file)
        sys.modules[module.__name__] = module
        exec(compile(definitions_source(load(file.read_bytes())), str(file), "exec"), module.__dict__)
        return module
    parts = [file.stem]
    root = file.parent
    while (root / "__init__.py").exists():
        parts.insert(0, root.name)
        root = root.parent
    sys.path.insert(0, str(root))
    if len(parts) > 1:
        return importlib.import_module(".".join(parts))
    sys.path.insert(0, str(file.parent))
    spec = importlib.util.spec_from_file_location(f"gradlint_user_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def resolve_device(requested: str) -> torch.device:
    if requested == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda was asked, but torch sees no CUDA device")
    if requested in ("cuda", "auto") and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def main(argv: list[str]) -> int:
    job_path, result_path = argv
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    result = {"torch": torch.__version__, "device": None, "models": {}, "import_note": None}
    try:
        device = resolve_device(job.get("device", "auto"))
    except RuntimeError as exc:
        result["import_note"] = str(exc)
        _write(result_path, result)
        return 0
    result["device"] = str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
    torch.set_num_threads(max(1, int(job.get("threads", 2))))
    _write(result_path, result)
    sink = io.StringIO()  # what the user's code prints stays out of gradlint's output
    path = os.path.abspath(job["path"])
    try:
        with contextlib.redirect_stdout(sink):
            module = import_user_file(path)
    except SystemExit as exc:
        result["import_note"] = f"importing the file called sys.exit({exc.code!r})"
        _write(result_path, result)
        return 0
    except BaseException as exc:  # noqa: BLE001 - any failure of user code is a note
        if _out_of_memory(exc):
            result["import_note"] = f"ran out of memory while importing the file{_cap(job)}"
        else:
            result["import_note"] = f"importing the file failed: {_short(exc)}{_where(exc, path)}"
        _write(result_path, result)
        return 0
    for spec in job["models"]:
        start = time.perf_counter()
        entry: dict = {"ok": False}
        try:
            with contextlib.redirect_stdout(sink):
                entry.update(measure_model(module, spec, job, device))
            entry["ok"] = True
        except _Skip as exc:
            entry["note"] = str(exc)
        except SystemExit as exc:
            entry["note"] = f"building or running the model called sys.exit({exc.code!r})"
        except torch.cuda.OutOfMemoryError:
            entry["note"] = "ran out of GPU memory"
        except BaseException as exc:  # noqa: BLE001
            if _out_of_memory(exc):
                entry["note"] = f"ran out of memory{_cap(job)}"
            else:
                entry["note"] = f"building or running the model failed: {_short(exc)}{_where(exc, path)}"
        entry["seconds"] = time.perf_counter() - start
        result["models"][spec["id"]] = entry
        _write(result_path, result)
    return 0


if __name__ == "__main__":
    status = main(sys.argv[1:])
    # the result is complete: gradlint ends this process now, whatever the model file left
    # running (threads, children) that would keep it from exiting
    with open(sys.argv[2] + ".done", "w", encoding="ascii"):
        pass
    sys.exit(status)
