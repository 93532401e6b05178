"""A hosted-only user's install (`pip install .`, no extras): every backend whose SDK is missing says so in one line
naming the extra, before anything is read or sent, and `fto backends` says which are usable (issue 31, item 2)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # a venv and a pip install

HOSTED = REPO / "examples" / "hosted.yaml"


@pytest.fixture(scope="module")
def base_fto(tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("base-venv")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", str(REPO)], check=True, timeout=600,
                   capture_output=True)  # fmt: skip
    return venv / "bin" / "fto"


def _run(fto: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(TOGETHER_API_KEY="k" * 20, FIREWORKS_API_KEY="k" * 20)
    return subprocess.run([str(fto), *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    ("backend", "extra", "module"),
    [("together", "together", "together"), ("fireworks", "fireworks", "fireworks"),
     ("vertex", "vertex", "google.genai"), ("bedrock", "bedrock", "boto3"), ("local", "local", "torch"),
     ("sagemaker", "sagemaker", "boto3")],
)  # fmt: skip
def test_a_backend_without_its_sdk_is_one_line_naming_the_extra(base_fto: Path, backend: str, extra: str, module):
    done = _run(base_fto, "run", str(HOSTED), "--backend", backend)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = done.stderr.strip().splitlines()
    assert "hosted.yaml:" in line and f"needs {module}" in line and f"pip install 'fto[{extra}]'" in line


def test_backends_lists_which_are_usable(base_fto: Path):
    listed = _run(base_fto, "backends").stdout
    rows = {line.split()[0]: line for line in listed.splitlines() if line and not line.startswith(" ")}
    for name in ("together", "fireworks", "vertex", "bedrock", "local"):
        assert "not usable here" in rows[name], listed
    assert "not usable" not in rows["openai"] and "not usable" not in rows["sim"]
    assert "pip install 'fto[together]'" in listed
