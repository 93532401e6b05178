"""The dashboard under load: an experiment of 1,000 jobs, one of them with 100,000 metric points.

    python bench/ui_load.py            # JOBS=1000 POINTS=100 (per job) LONG=100000 (the long job) REPEAT=7

Starts `fto ui` as users do (its own process, uvicorn, 127.0.0.1) over a SQLite store filled through the Store
API, then times with httpx, medians of REPEAT: the experiment page (1,000 rows, server-rendered), the rows
fragment that live updates fetch, the loss endpoint for all jobs, and for the long job alone; prints the most
points any series came back with (the server's downsampling cap); then, in Chromium (Playwright), the time until
the page shows its rows and until its loss chart is drawn.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-ui-")

import httpx  # noqa: E402

from fto.orchestrator.store import Store, now  # noqa: E402
from fto.schemas import JobSpec, JobStatus, Metric, ProviderJob  # noqa: E402
from tests.serving import free_port, wait_until_up  # noqa: E402

JOBS = int(os.environ.get("JOBS", "1000"))
POINTS = int(os.environ.get("POINTS", "100"))
LONG = int(os.environ.get("LONG", "100000"))
REPEAT = int(os.environ.get("REPEAT", "7"))


def fill() -> tuple[str, str]:
    """One experiment of JOBS sim jobs with POINTS metrics each, and one job with LONG points."""
    store = Store()
    sections = {f"s{i}": {"type": "sim", "url": "http://127.0.0.1:9"} for i in range(JOBS)}
    spec = JobSpec.model_validate({"name": "load", "data": {"train": "t.jsonl"}, "backends": sections})
    experiment, jobs = store.create_experiment(spec, None, list(sections))
    start = now()
    for k, job in enumerate(jobs):
        steps = LONG if k == 0 else POINTS
        metrics = [
            Metric(step=s, total_steps=steps, loss=2.0 / s + 0.01 * (s % 7), created_at=start + timedelta(seconds=s))
            for s in range(1, steps + 1)
        ]
        store.add_updates(job.id, [], metrics, None)
        status = JobStatus.SUCCEEDED if k % 3 else JobStatus.RUNNING
        store.update_from_provider(job.id, ProviderJob(status=status, trained_tokens=1000 * steps))
    return experiment.id, jobs[0].id


def timed(client: httpx.Client, url: str) -> tuple[float, float, httpx.Response]:
    """(first, median of REPEAT) seconds: the first request finds nothing cached."""
    times, response = [], None
    for _ in range(REPEAT):
        started = time.perf_counter()
        response = client.get(url)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    return times[0], statistics.median(times), response  # type: ignore[return-value]


def browser_times(url: str) -> None:
    """In Chromium (Playwright, Debian's browser): until the rows are shown, and until the loss chart is drawn."""
    import shutil

    chromium = shutil.which("chromium")
    if chromium is None:
        print("browser: no chromium here, skipped")
        return
    from playwright.sync_api import sync_playwright

    shown, drawn = [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(REPEAT):
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            started = time.perf_counter()
            page.goto(url, wait_until="domcontentloaded")
            page.wait_for_selector("#jobs tbody tr:last-child")
            shown.append(time.perf_counter() - started)
            page.wait_for_selector("#loss-chart canvas", timeout=60_000)
            drawn.append(time.perf_counter() - started)
            page.close()
        browser.close()
    print(f"{'browser: page shown (1,000 rows)':34} {shown[0]:8.3f} {statistics.median(shown):9.3f}")
    print(f"{'browser: loss chart drawn':34} {drawn[0]:8.3f} {statistics.median(drawn):9.3f}")


def main() -> None:
    filled = time.perf_counter()
    experiment_id, long_job = fill()
    print(f"store filled in {time.perf_counter() - filled:.1f} s: {JOBS} jobs, {(JOBS - 1) * POINTS + LONG:,} points")
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "fto.orchestrator", "ui", "--port", str(port)], env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/api/experiments", ui)
        with httpx.Client(base_url=base, timeout=60) as client:
            rows = [
                ("experiment page (1,000 rows)", f"/experiments/{experiment_id}"),
                ("rows fragment (live refresh)", f"/experiments/{experiment_id}/jobs"),
                ("experiments page", "/"),
                (f"loss, all {JOBS} jobs", f"/api/experiments/{experiment_id}/loss"),
                (f"loss, one job of {LONG:,} points", f"/api/jobs/{long_job}/loss"),
            ]
            print(f"{'request':34} {'first s':>8} {'median s':>9} {'KB':>8}  most points in a series")
            for label, url in rows:
                first, seconds, response = timed(client, url)
                most = ""
                if "/loss" in url:
                    most = str(max(len(s["x"]) for s in response.json()["series"]))
                print(f"{label:34} {first:8.3f} {seconds:9.3f} {len(response.content) / 1024:8.0f}  {most}")
        browser_times(f"{base}/experiments/{experiment_id}")
    finally:
        ui.terminate()
        ui.wait(timeout=10)


if __name__ == "__main__":
    main()
