"""The dashboard in a real browser (Playwright driving Debian's Chromium) over a running sim experiment.

Screenshots of each page go to a temp folder, or to $FTO_UI_SCREENSHOTS (docs/ui is made that way).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fto.orchestrator.store import Store
from tests.conftest import ANIMALS, run_fto
from tests.serving import free_port, wait_until_up

pytestmark = pytest.mark.slow
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("needs Debian's chromium (.ci/run installs it; Playwright's own download is unreachable)",
                allow_module_level=True)  # fmt: skip
sync_api = pytest.importorskip("playwright.sync_api", reason="the dev extra installs playwright")


def _with_choices(source: Path, target: Path) -> Path:
    """The animals data with the classes named in each question, and every third answer mislabelled: the base
    model (which echoes) then scores on token_f1 where the fine-tuned one answers wrong (it repeats the label of
    the closest training prompt), so some examples are worse than base."""
    classes = ["bird", "mammal", "fish", "reptile", "insect"]
    rows = [json.loads(line) for line in source.read_text().splitlines() if line.strip()]
    for i, row in enumerate(rows):
        row["messages"][1]["content"] += " Choose: bird, mammal, fish, reptile or insect."
        if i % 3 == 0:
            answer = row["messages"][-1]
            answer["content"] = classes[(classes.index(answer["content"]) + 1) % len(classes)]
    target.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return target


def _drawn_pixels(page, selector: str) -> int:
    """Pixels of a chart's canvas that are neither blank nor grey: the series' colours, drawn."""
    return page.evaluate(
        """(selector) => {
          const canvas = document.querySelector(selector + ' canvas');
          const ctx = canvas.getContext('2d');
          const px = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
          let n = 0;
          for (let i = 0; i < px.length; i += 4) {
            const [r, g, b, a] = [px[i], px[i + 1], px[i + 2], px[i + 3]];
            if (a > 0 && Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
          }
          return n;
        }""",
        selector,
    )


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FTO_UI_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.mark.timeout(240)
def test_a_live_experiment_in_the_browser(sim_server, tmp_path, shots):
    server = sim_server()
    data = _with_choices(ANIMALS, tmp_path / "animals-choices.jsonl")
    sim = {"type": "sim", "url": server.url, "min_poll_interval": 0.2, "max_poll_interval": 0.5}
    spec = {
        "name": "live-demo",
        "data": {"train": str(data), "validation": 0.1},
        "backends": {"a": {**sim, "duration": 6.0}, "b": {**sim, "duration": 9.0}, "slow": {**sim, "duration": 300.0}},
        "eval": {"max_examples": 30, "scorers": ["token_f1", "exact_match"]},
    }
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps(spec))
    submitted = run_fto("submit", str(job))
    assert submitted.returncode == 0, submitted.stderr
    (experiment,) = Store().experiments()
    port = free_port()
    env = {**os.environ}
    waiter = subprocess.Popen(
        [sys.executable, "-m", "fto.orchestrator", "wait", experiment.id],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip  (the poller)
    ui = subprocess.Popen([sys.executable, "-m", "fto.orchestrator", "ui", "--allow-actions", "--port", str(port)],
                          env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/api/experiments", ui)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            # bypass_csp: Playwright's wait_for_function evaluates strings, which the pages' policy refuses (the
            # pages under their policy: tests/backends/local/test_job_pages_in_browser.py)
            page = browser.new_page(viewport={"width": 1280, "height": 1000}, bypass_csp=True)
            page.goto(f"{base}/experiments/{experiment.id}")
            page.evaluate("window.__sameDocument = true")  # gone if the page reloads
            page.wait_for_selector("#loss-chart canvas", timeout=30_000)
            points_before = int(page.get_attribute("#loss-chart", "data-points") or 0)

            # jobs change state and the chart gains points, without a reload
            first = _job(experiment.id, "a")
            page.wait_for_function(
                f"document.querySelector('#row-{first} .status').textContent.trim() === 'succeeded'", timeout=60_000
            )
            page.wait_for_function(
                f"+document.querySelector('#loss-chart').dataset.points > {points_before}", timeout=30_000
            )
            assert page.evaluate("window.__sameDocument") is True
            assert _drawn_pixels(page, "#loss-chart") > 200
            page.screenshot(path=str(shots / "experiment.png"), full_page=True)

            # cancel from the page cancels the job at the provider
            slow = _job(experiment.id, "slow")
            page.click(f"#row-{slow} button[data-action$='/cancel']")
            page.wait_for_function(
                f"document.querySelector('#row-{slow} .status').textContent.trim() === 'cancelled'", timeout=60_000
            )
            assert Store().job(slow).status.value == "cancelled"
            assert page.evaluate("window.__sameDocument") is True

            waiter.wait(timeout=90)
            # evaluate from the page: what `fto eval` runs, on the server
            page.click("button[data-action$='/evaluate']")
            page.wait_for_function("document.querySelector('#action-result').textContent.startsWith('evaluating')")
            # scores land model by model, so wait for the evaluation's end, not the table's first row
            for _ in range(240):
                page.goto(f"{base}/experiments/{experiment.id}")
                if "evaluation: running" not in page.inner_text("body"):
                    break
                page.wait_for_timeout(250)
            assert "evaluation: done" in page.inner_text("body")
            page.goto(f"{base}/experiments/{experiment.id}/compare")

            # the comparison: intervals, and the per-example view filtered to "worse than base"
            cells = page.inner_text("#score-table")
            assert "a/fine-tuned" in cells and "[" in cells  # each score with its 95% interval
            assert page.locator("#paired li").count() >= 2
            page.screenshot(path=str(shots / "comparison.png"), full_page=True)
            total = page.locator("#examples tr.example").count()
            page.click("a[data-show='worse']")
            page.wait_for_url("**show=worse")
            worse = page.locator("#examples tr.example")
            assert 0 < worse.count() < total
            assert all("kind-worse" in (worse.nth(i).get_attribute("class") or "") for i in range(worse.count()))
            assert page.locator("#examples .worse").count() >= worse.count()  # each row says which model got worse
            page.screenshot(path=str(shots / "comparison-worse.png"), full_page=True)

            page.goto(f"{base}/jobs/{_job(experiment.id, 'a')}")
            page.wait_for_selector("#token-histogram canvas", timeout=30_000)
            assert "learning_rate_multiplier" in page.inner_text("#hyperparameters") or page.inner_text(
                "#hyperparameters"
            ).strip().startswith("{")
            assert page.locator("#timeline li").count() >= 3
            page.screenshot(path=str(shots / "job.png"), full_page=True)

            page.goto(f"{base}/?sort=name")
            assert "live-demo" in page.inner_text("#experiments")
            page.screenshot(path=str(shots / "experiments.png"), full_page=True)

            page.goto(f"{base}/data/files/{Store().register_file(str(data))}")  # no address names a path
            page.wait_for_selector("#token-histogram canvas", timeout=30_000)
            assert "examples" in page.inner_text("h2")
            page.screenshot(path=str(shots / "data.png"), full_page=True)
            browser.close()
    finally:
        ui.terminate()
        waiter.terminate()
        ui.wait(timeout=10)
        waiter.wait(timeout=10)
    for name in ("experiment", "comparison", "comparison-worse", "job", "experiments", "data"):
        assert (shots / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _job(experiment_id: str, section: str) -> str:
    return next(j.id for j in Store().jobs(experiment_id) if j.backend == section)
