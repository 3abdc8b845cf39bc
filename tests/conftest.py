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


@pytest.fixture
def update_snapshots(request):
    return request.config.getoption("--update-snapshots")


def run_cli(*args, cwd=None, env=None, input=None):
    """Run the real `gradlint` entry point in a subprocess."""
    import subprocess

    full_env = {**os.environ, "NO_COLOR": "1", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gradlint", *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        input=input,
        timeout=120,
    )


def format_diagnostics(diags) -> str:
    return (
        "".join(f"  {d.path}:{d.line}:{d.column}: {d.code} [{d.severity}] {d.message}\n" for d in diags) or "  (none)\n"
    )
