"""Every package of the source tree is installed: a fresh install (pre-commit's, pip's) has it."""

import tomllib
from conftest import ROOT


def test_every_subpackage_is_listed_in_pyproject():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(config["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "gradlint").rglob("__init__.py")}
    assert found <= listed, f"not packaged: {sorted(found - listed)}"
    assert "gradlint.rules" in listed
