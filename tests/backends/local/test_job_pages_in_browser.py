"""Every job page of local runs opens in a real browser (Playwright driving Debian's Chromium): an SFT run of the
quickstart and a DPO run, both with checkpoints (issue 31, item 1: the page was a 500 for every local job whose
worker had reported a checkpoint). Sim jobs' pages are opened by tests/backends/sim/test_dashboard.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, QUICKSTART, run_fto
from tests.serving import free_port, wait_until_up

pytestmark = pytest.mark.slow  # two trainings and a browser
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs Debian's chromium (.ci/run installs it; Playwright's own download is unreachable)",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")
CLASSES = ["bird", "mammal", "fish", "reptile", "insect"]


def _job_file(tmp_path: Path, name: str, method: str, train: Path) -> Path:
    spec = yaml.safe_load(QUICKSTART.read_text())
    spec.update(name=name, method=method, eval=None)
    spec["data"] = {"train": str(train), "validation": 0.1}
    spec["hyperparameters"].update(epochs=1, batch_size=8)
    spec["backends"]["local"]["checkpoint_every"] = 5  # checkpoints, as a long run's every 50 steps
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _preferences(tmp_path: Path) -> Path:
    """Pairs from the quickstart's data: the right class preferred to a wrong one."""
    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()[:120]]
    out = tmp_path / "pairs.jsonl"
    with out.open("w") as f:
        for row in rows:
            right = row["messages"][-1]["content"]
            wrong = CLASSES[(CLASSES.index(right) + 1) % len(CLASSES)]
            pair = {"input": {"messages": row["messages"][:-1]},
                    "preferred_output": [{"role": "assistant", "content": right}],
                    "non_preferred_output": [{"role": "assistant", "content": wrong}]}  # fmt: skip
            f.write(json.dumps(pair) + "\n")
    return out


def test_every_job_page_of_an_sft_and_a_dpo_run_opens(tmp_path: Path):
    rows = ANIMALS.read_text().splitlines()[:160]
    sft_data = tmp_path / "sft.jsonl"
    sft_data.write_text("\n".join(rows) + "\n")
    for job_file in (
        _job_file(tmp_path, "sft", "sft", sft_data),
        _job_file(tmp_path, "dpo", "dpo", _preferences(tmp_path)),
    ):
        done = run_fto("run", str(job_file), "--backend", "local", timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
    jobs = Store().jobs()
    assert len(jobs) == 2 and all(j.status.value == "succeeded" for j in jobs)
    assert all(any("checkpoint" in e.data for e in Store().events(j.id)) for j in jobs)
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "fto.orchestrator", "ui", "--port", str(port)],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/api/experiments", ui)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            for job in jobs:
                response = page.goto(f"{base}/jobs/{job.id}")
                assert response is not None and response.status == 200, job.id
                page.wait_for_selector("#checkpoints td", timeout=30_000)
                assert page.locator("#checkpoints tr").count() >= 2
                page.wait_for_selector("#loss-chart canvas", timeout=30_000)
            browser.close()
        assert errors == [], errors  # no script error and no refused resource (the page's own policy included)
    finally:
        ui.terminate()
        ui.wait(timeout=10)
