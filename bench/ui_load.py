"""The dashboard under load: an experiment of 1,000 jobs, one of them with 100,000 metric points; or (CASE=report)
an experiment of 10,000 held-out examples evaluated on 6 models.

    python bench/ui_load.py            # JOBS=1000 POINTS=100 (per job) LONG=100000 (the long job) REPEAT=7
    CASE=report python bench/ui_load.py    # EXAMPLES=10000 MODELS=6: report.md + report.html, the compare page

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
from collections.abc import Iterator
from contextlib import contextmanager
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


EXAMPLES = int(os.environ.get("EXAMPLES", "10000"))
MODELS = int(os.environ.get("MODELS", "6"))


def fill_results() -> str:
    """One experiment of MODELS // 2 sections, each a base and a fine-tuned model, scored on EXAMPLES examples
    (answers, three scorers, tokens, cost per example) as the eval records them; then the eval's paired tests."""
    import json
    import random

    from fto.orchestrator import experiment_files as files
    from fto.orchestrator.eval.report import record_paired_tests
    from fto.schemas.results import ModelRole, Target

    store = Store()
    sections = {f"s{i}": {"type": "sim", "url": "http://127.0.0.1:9"} for i in range(MODELS // 2)}
    spec = JobSpec.model_validate({"name": "results", "data": {"train": "t.jsonl"}, "backends": sections,
                                   "eval": {"scorers": ["exact_match", "token_f1", "rouge_l"]}})  # fmt: skip
    experiment, jobs = store.create_experiment(spec, None, list(sections))
    rng = random.Random(0)
    for k, job in enumerate(jobs):
        store.update_from_provider(job.id, ProviderJob(status=JobStatus.SUCCEEDED, fine_tuned_model=f"ft-{k}",
                                                       trained_tokens=1_000_000))  # fmt: skip
        for role, skill in ((ModelRole.BASE, 0.2), (ModelRole.FINE_TUNED, 0.5 + 0.1 * k)):
            label = f"{job.backend}/{'base' if role == ModelRole.BASE else 'fine-tuned'}"
            target = Target(label=label, section=job.backend, role=role, model=f"m-{label}", job=job.id)
            rows = []
            for i in range(EXAMPLES):
                right = rng.random() < skill
                values = {"exact_match": float(right), "token_f1": rng.random() * 0.5 + 0.5 * right,
                          "rouge_l": rng.random() * 0.5 + 0.5 * right}  # fmt: skip
                rows.append({"line": i + 1, "prompt": f"question {i} " * 8, "output": f"answer {i} " * 6,
                             "reference": f"reference {i}", "scores": values, "input_tokens": 40,
                             "output_tokens": 12, "seconds": 0.2, "cost_usd": 1e-5})  # fmt: skip
            files.save(store, experiment.id, files.outputs_name(label), files.rows_text(rows))
            means = {name: (sum(r["scores"][name] for r in rows) / EXAMPLES, 0.0, 1.0) for name in rows[0]["scores"]}
            store.save_scores(experiment.id, target, means, EXAMPLES)
    files.save(store, experiment.id, files.USAGE, json.dumps({}))
    started = time.perf_counter()
    record_paired_tests(store, store.experiment(experiment.id))
    print(f"paired tests recorded (the eval's last step) in {time.perf_counter() - started:.2f} s")
    return experiment.id


def report_case() -> None:
    """report.md and report.html written (`fto compare`), in process and as the CLI; then the dashboard's page."""
    from fto.orchestrator.eval.report import comparison, write_reports

    filled = time.perf_counter()
    experiment_id = fill_results()
    print(f"store filled in {time.perf_counter() - filled:.1f} s: {EXAMPLES:,} examples x {MODELS} models")
    store = Store()
    experiment = store.experiment(experiment_id)
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        write_reports(store, experiment, comparison(store, experiment))
        times.append(time.perf_counter() - started)
    print(
        f"{'report.md + report.html (in process)':40} first {times[0]:.3f} s, median {statistics.median(times):.3f} s"
    )
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "fto.orchestrator", "compare", experiment_id],
                              capture_output=True, env=os.environ.copy())  # fmt: skip
        times.append(time.perf_counter() - started)
        assert done.returncode == 0, done.stderr
    print(f"{'fto compare (whole process)':40} first {times[0]:.3f} s, median {statistics.median(times):.3f} s")
    with dashboard() as (client, _):
        for show in ("all", "disagree"):
            first, seconds, response = timed(client, f"/experiments/{experiment_id}/compare?show={show}")
            label = f"dashboard compare page (show={show})"
            print(f"{label:40} first {first:.3f} s, median {seconds:.3f} s, {len(response.content) / 1024:.0f} KB")


@contextmanager
def dashboard() -> Iterator[tuple[httpx.Client, str]]:
    """`fto ui` in its own process on 127.0.0.1, as users start it, and a client of it."""
    port = free_port()
    ui = subprocess.Popen([sys.executable, "-m", "fto.orchestrator", "ui", "--port", str(port)], env=os.environ.copy())
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(base + "/api/experiments", ui)
        with httpx.Client(base_url=base, timeout=60) as client:
            yield client, base
    finally:
        ui.terminate()
        ui.wait(timeout=10)


def main() -> None:
    if os.environ.get("CASE") == "report":
        report_case()
        return
    filled = time.perf_counter()
    experiment_id, long_job = fill()
    print(f"store filled in {time.perf_counter() - filled:.1f} s: {JOBS} jobs, {(JOBS - 1) * POINTS + LONG:,} points")
    with dashboard() as (client, base):
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


if __name__ == "__main__":
    main()
