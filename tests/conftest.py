import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"

#: an 8-layer sigmoid tower the static pass reports (GL101): the model the --dynamic tests of
#: user-code failures and isolation append their hostile code to
SIGMOID_TOWER = """
import torch.nn as nn

class Tower(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(*[m for _ in range(8) for m in (nn.Linear(16, 16), nn.Sigmoid())])

    def forward(self, x):
        return self.net(x)
"""


def pytest_addoption(parser):
    parser.addoption(
        "--update-snapshots",
        action="store_true",
        default=False,
        help="rewrite fixture snapshots from the current output (review the diff!)",
    )


#: suites that start real processes, virtual environments or torch: `make test` runs them;
#: `pytest -m "not slow"` leaves them out while iterating
SLOW_SUITES = frozenset(
    {
        "test_dynamic",
        "test_dynamic_isolation",
        "test_precommit",
        "test_wheel",
        "test_lsp",
        "test_calibrate_cells",
        "test_accuracy_bench",
        "test_watch",
        "test_notebook",
    }
)


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: a suite of real processes (see SLOW_SUITES in tests/conftest.py)")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.module is not None and item.module.__name__.rpartition(".")[2] in SLOW_SUITES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture
def update_snapshots(request):
    return request.config.getoption("--update-snapshots")


def run_cli(*args, cwd=None, env=None, input=None, subprocess=False):
    """Run the `gradlint` command: in this process through click's CliRunner (the command
    itself, with its own stdin, stdout, stderr, environment, working folder and exit code),
    or, with ``subprocess=True`` or ``GRADLINT_TEST_SUBPROCESS=1``, as a real
    ``python -m gradlint`` process (for what only a process has: signals, the entry point, a
    fresh interpreter). Returns a ``subprocess.CompletedProcess`` either way."""
    import subprocess as sp

    if subprocess or os.environ.get("GRADLINT_TEST_SUBPROCESS") == "1":
        full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
        return sp.run(
            [sys.executable, "-m", "gradlint", *args],
            cwd=cwd or ROOT,
            env=full_env,
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
    import traceback

    from click.testing import CliRunner

    from gradlint.cli import cli

    before = os.getcwd()
    os.chdir(cwd or ROOT)
    try:
        result = CliRunner().invoke(
            cli, [str(a) for a in args], input=input, env={"NO_COLOR": "1", **(env or {})}, prog_name="gradlint"
        )
    finally:
        os.chdir(before)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        # what the interpreter would print for an uncaught exception
        stderr += "".join(traceback.format_exception(result.exception))
    return sp.CompletedProcess(["gradlint", *args], result.exit_code, result.stdout, stderr)


def format_diagnostics(diags) -> str:
    return (
        "".join(f"  {d.path}:{d.line}:{d.column}: {d.code} [{d.severity}] {d.message}\n" for d in diags) or "  (none)\n"
    )
