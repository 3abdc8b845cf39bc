"""The wheel as a user gets it: built, installed into a fresh venv without torch, and run."""

import email
import os
import re
import shlex
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT

from gradlint import DISTRIBUTION

README = (ROOT / "README.md").read_text(encoding="utf-8")

SIGMOID = (ROOT / "fixtures" / "models" / "deep_sigmoid_mlp.py").read_text()


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    res = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if res.returncode != 0 and "No matching distribution" in res.stderr + res.stdout:
        pytest.skip("the build backend cannot be fetched here (no package index)")
    assert res.returncode == 0, res.stderr
    [built] = out.glob("*.whl")
    return built


def test_the_wheel_carries_its_name_licence_and_urls(wheel):
    assert wheel.name.startswith("torch_gradlint-")
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
        names = z.namelist()
    assert meta["Name"] == "torch-gradlint"
    assert meta["License-Expression"] == "MIT"
    assert any(n.endswith("licenses/LICENSE") for n in names)
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Issues"].endswith("/issues") and "Repository" in urls
    assert "Programming Language :: Python :: 3" in meta.get_all("Classifier")
    assert any(n.startswith("gradlint/rules/") for n in names)  # the rules ship as gradlint.rules


def _readme_block(heading: str, lang: str = "") -> str:
    """The first code block of the README section ``## heading``."""
    section = README.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.search(rf"```{lang}\n(.*?)```", section, re.S).group(1)


def _install_lines() -> dict:
    """The README's install lines, by their tool: "pip", "pipx", "uv", "pip[lsp]", ..."""
    out = {}
    for line in _readme_block("Install").splitlines():
        words = shlex.split(line.split("#", 1)[0])
        if not words:
            continue
        spec = words[-1]
        extra = spec[spec.index("[") :] if "[" in spec else ""
        out[words[0] + extra] = words
    return out


def _with_wheel(words: list, wheel) -> list:
    """An install command with the wheel in place of the published name (not on PyPI yet)."""
    spec = words[-1]
    assert spec.startswith(DISTRIBUTION), words
    return [*words[:-1], str(wheel) + spec[len(DISTRIBUTION) :]]


def _no_index(res) -> bool:
    text = res.stderr + res.stdout
    return res.returncode != 0 and any(
        s in text
        for s in (
            "No matching distribution",
            "Could not find",
            "Failed to fetch",
            "dns error",
            "Network is unreachable",
        )
    )


def test_the_readme_installs_what_exists():
    lines = _install_lines()
    assert set(lines) >= {"pip", "pipx", "uv", "pip[dynamic]", "pip[lsp]"}, lines
    assert lines["pip"] == ["pip", "install", DISTRIBUTION]
    assert lines["pipx"] == ["pipx", "install", DISTRIBUTION] and lines["uv"] == ["uv", "tool", "install", DISTRIBUTION]


def test_the_readme_pip_line_and_ci_snippet_work_without_torch(wheel, tmp_path):
    """`pip install torch-gradlint` (the wheel) into a fresh venv without torch, then the README's
    CI step, `gradlint --version`, a check of a file and of standard input."""
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    words = _with_wheel(_install_lines()["pip"], wheel)
    res = subprocess.run([str(py), "-m", *words, "--quiet"], capture_output=True, text=True, timeout=600)
    if _no_index(res):
        pytest.skip("the dependencies cannot be fetched here (no package index)")
    assert res.returncode == 0, res.stderr
    assert subprocess.run([str(py), "-c", "import torch"], capture_output=True).returncode != 0  # no torch in it
    gradlint = env_dir / "bin" / "gradlint"
    res = subprocess.run([str(gradlint), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "gradlint" in res.stdout
    model = tmp_path / "net.py"
    model.write_text(SIGMOID)
    res = subprocess.run(
        [str(gradlint), "check", "--output-format", "concise", str(model)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 1 and "GL101" in res.stdout, res.stderr
    res = subprocess.run(
        [str(gradlint), "check", "--output-format", "concise", "--stdin-filename", "piped.py", "-"],
        input=SIGMOID,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 1 and res.stdout.startswith("piped.py:26:27: GL101"), res.stderr
    # the README's CI step, as the workflow runs it (the install part is the one above)
    step = _readme_block("In CI", "yaml").split("- run:", 1)[1].strip()
    install, _, command = step.partition(" && ")
    assert shlex.split(install) == _install_lines()["pip"]
    res = subprocess.run(
        shlex.split(command),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "PATH": f"{env_dir / 'bin'}{os.pathsep}{os.environ['PATH']}"},
    )
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("::error file=net.py,line=26,col=27,"), res.stdout
    # the hint for --dynamic names the distribution that exists
    res = subprocess.run(
        [str(gradlint), "check", "--dynamic", str(model)], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert res.returncode == 2 and "pip install 'torch-gradlint[dynamic]'" in res.stderr


def test_the_readme_lsp_line_installs_the_language_server(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    res = subprocess.run(
        [str(py), "-m", *_with_wheel(_install_lines()["pip[lsp]"], wheel), "--quiet"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if _no_index(res):
        pytest.skip("the dependencies cannot be fetched here (no package index)")
    assert res.returncode == 0, res.stderr
    # the server answers `initialize` over stdio
    import json

    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"capabilities": {}}})
    message = f"Content-Length: {len(body)}\r\n\r\n{body}"
    res = subprocess.run(
        [str(env_dir / "bin" / "gradlint"), "server"], input=message, capture_output=True, text=True, timeout=60
    )
    assert '"id":1' in res.stdout.replace(" ", "") and "capabilities" in res.stdout, res.stderr


def _tool_env(tmp_path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PIPX_", "UV_", "VIRTUAL_ENV"))}
    env.update(
        PIPX_HOME=str(tmp_path / "pipx"),
        PIPX_BIN_DIR=str(tmp_path / "bin"),
        PIPX_MAN_DIR=str(tmp_path / "man"),
        UV_TOOL_DIR=str(tmp_path / "uv-tools"),
        UV_TOOL_BIN_DIR=str(tmp_path / "bin"),
        UV_CACHE_DIR=str(tmp_path / "uv-cache"),
        UV_PYTHON=sys.executable,
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


@pytest.mark.parametrize("tool", ["pipx", "uv"])
def test_the_readme_tool_lines_install_a_working_command(wheel, tmp_path, tool):
    """`pipx install torch-gradlint` and `uv tool install torch-gradlint`, with the wheel."""
    runner = Path(sys.executable).with_name(tool)
    if not runner.exists():
        pytest.skip(f"{tool} is a dev dependency: pip install -e '.[dev]'")
    words = _with_wheel(_install_lines()[tool], wheel)
    env = _tool_env(tmp_path)
    extra = ["--python", sys.executable] if tool == "pipx" else []
    res = subprocess.run([str(runner), *words[1:], *extra], capture_output=True, text=True, timeout=600, env=env)
    if _no_index(res):
        pytest.skip(f"{tool} cannot fetch the dependencies here (no package index)")
    assert res.returncode == 0, res.stdout + res.stderr
    gradlint = tmp_path / "bin" / "gradlint"
    res = subprocess.run([str(gradlint), "--version"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "gradlint" in res.stdout, res.stderr
    model = tmp_path / "net.py"
    model.write_text(SIGMOID)
    res = subprocess.run(
        [str(gradlint), "check", "--output-format", "concise", "net.py"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert res.returncode == 1 and res.stdout.startswith("net.py:26:27: GL101"), res.stderr
