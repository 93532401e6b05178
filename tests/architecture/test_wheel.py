"""The built wheel, installed (not editable) into a clean venv, is one `fto` namespace that works on its own.

Its dependencies come from this environment's site-packages through a path entry (so nothing is downloaded);
this repository is neither on the path nor installed there, so what runs is only what the wheel holds.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def _run(*args: str | Path, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def clean_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(root)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stderr
    wheel = next(root.glob("fto-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps", "--no-index",
         str(wheel)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    site = Path(
        subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()
    )  # fmt: skip
    (site / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")  # dependencies, read-only
    return venv


@pytest.fixture
def outside(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A working folder away from the repository, with the quickstart copied into it."""
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["FTO_HOME"] = str(tmp_path / "fto-home")
    return tmp_path, env


def test_nothing_generic_is_installed(clean_venv: Path, outside: tuple[Path, dict[str, str]]):
    cwd, env = outside
    python = clean_venv / "bin" / "python"
    for generic in ("backends", "orchestrator", "schemas"):
        result = _run(python, "-c", f"import {generic}", cwd=cwd, env=env)
        assert result.returncode != 0 and "ModuleNotFoundError" in result.stderr, generic
    located = _run(python, "-c", "import fto.orchestrator.cli as m; print(m.__file__)", cwd=cwd, env=env)
    assert str(clean_venv) in located.stdout and str(REPO) not in located.stdout


def test_the_wheel_runs_help_validate_and_the_quickstart(clean_venv: Path, outside: tuple[Path, dict[str, str]]):
    cwd, env = outside
    fto = clean_venv / "bin" / "fto"
    assert "Commands:" in _run(fto, "--help", cwd=cwd, env=env).stdout
    validated = _run(fto, "data", "validate", "examples/data/animals.jsonl", "--for", "openai", cwd=cwd, env=env)
    assert validated.returncode == 0 and "ok: 500 examples" in validated.stdout, validated.stderr
    backends = _run(fto, "backends", cwd=cwd, env=env).stdout
    assert all(name in backends for name in ("local", "openai", "anthropic", "sim"))
    run = _run(fto, "run", "examples/quickstart.yaml", "--backend", "local", cwd=cwd, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "local/fine-tuned" in run.stdout and "report:" in run.stdout
