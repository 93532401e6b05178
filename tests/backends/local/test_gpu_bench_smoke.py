"""bench/gpu_train.py runs where no GPU is lent: its CPU smoke configuration, fto and TRL side by side."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow
pytest.importorskip("trl", reason="the dev extra installs trl (the peer the bench compares with)")


@pytest.mark.timeout(300)
def test_the_gpu_bench_runs_on_cpu_and_says_no_gpu_was_lent():
    env = {**os.environ, "SMOKE": "1", "CUDA_VISIBLE_DEVICES": ""}
    out = subprocess.run([sys.executable, str(REPO / "bench" / "gpu_train.py")], capture_output=True, text=True,
                         timeout=280, env=env, cwd=REPO)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "| fto |" in out.stdout and "| trl |" in out.stdout
    assert "GPU: not lent" in out.stdout and "fto ÷ TRL padding_free:" in out.stdout
