"""Polling at scale: 10,000 simulated jobs watched by one fto process, on each store engine in turn, with each way
of polling in turn: job by job, and batch polls (the provider's list endpoint, carrying news or states only).

    python bench/poll_scale.py              # JOBS=10000 DURATION=30 INTERVAL=1 (min) / 5 (max)
    ENGINES=sqlite POLLING=jobs,lists python bench/poll_scale.py   # default: sqlite,postgresql × jobs,lists,states
    PROFILE=1 ENGINES=postgresql POLLING=lists python bench/poll_scale.py   # the poller's cProfile on stderr

Prints requests/s, the poller's CPU seconds per 1,000 jobs per minute (and, on PostgreSQL, the server's), and the
lag between a job ending at the provider and the store recording it (p50, p99, max). The provider is the sim
server in its own process, on 127.0.0.1, failing 1% of requests (429/500/stalls). PostgreSQL is a throwaway
cluster (Debian's binaries, initdb into a temp folder, fsync on).
"""

from __future__ import annotations

import asyncio
import cProfile
import json
import os
import pstats
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-")  # set again per engine in run()

from fto.orchestrator.poll import Poller  # noqa: E402
from fto.orchestrator.store import Store  # noqa: E402
from fto.schemas import JobSpec  # noqa: E402
from tests.backends.sim.conftest import SimServer  # noqa: E402
from tests.backends.sim.test_load import submit_many  # noqa: E402

JOBS = int(os.environ.get("JOBS", "10000"))
DURATION = float(os.environ.get("DURATION", "30"))
MIN_INTERVAL, MAX_INTERVAL = float(os.environ.get("INTERVAL", "1")), float(os.environ.get("MAX_INTERVAL", "5"))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pg: object | None) -> float:
    """CPU seconds of the PostgreSQL server's processes so far (0 for SQLite, which runs inside fto)."""
    if pg is None:
        return 0.0
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and str(pg.data) in " ".join(process.info["cmdline"] or []):  # type: ignore[attr-defined]
            times = process.cpu_times()
            total += times.user + times.system
            total += sum(child.cpu_times().user + child.cpu_times().system for child in process.children())
    return total


POLLING = {  # the sim section's options for each way of polling
    "jobs": {"batch_poll": False},
    "lists": {"batch_poll": True, "list_news": True},
    "states": {"batch_poll": True, "list_news": False},
}


def run(engine: str, polling: str) -> dict[str, object]:
    os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-")
    pg = None
    if engine == "postgresql":
        from tests.postgres import PostgresServer

        pg = PostgresServer(fsync=True)  # as a real server commits
        os.environ["FTO_STORE"] = pg.new_database()
    else:
        os.environ.pop("FTO_STORE", None)
    server = SimServer(duration=DURATION, fail_rate=0.01, stall=1.0)
    try:
        spec = JobSpec.model_validate(
            {
                "name": "scale",
                "data": {"train": str(REPO / "examples" / "data" / "animals.jsonl"), "validation": None},
                "backends": {
                    "sim": {
                        "url": server.url,
                        "min_poll_interval": MIN_INTERVAL,
                        "max_poll_interval": MAX_INTERVAL,
                        "timeout": 0.5,
                        "max_concurrency": 32,
                        **POLLING[polling],
                    }
                },
                "eval": None,
            }
        )
        started = time.time()
        ids = submit_many(spec, JOBS, workers=32)
        submitted = time.time()
        print(f"submitted {JOBS} jobs in {submitted - started:.1f}s", flush=True)
        submit_seconds = submitted - started
        store = Store()
        cpu_before, wall_before, db_before = cpu(), time.time(), server_cpu(pg)
        poller = Poller(store)
        profile = cProfile.Profile() if os.environ.get("PROFILE") == "1" else None
        if profile:
            profile.enable()
        jobs = asyncio.run(poller.run(ids))
        if profile:  # where the poller's time went, on stderr
            profile.disable()
            pstats.Stats(profile, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
        wall, cpu_used, db_used = time.time() - wall_before, cpu() - cpu_before, server_cpu(pg) - db_before
        stats = server.stats()
    finally:
        server.stop()
        if pg is not None:
            pg.close()
    ends = stats["ends"]
    # From a job's end at the provider (or from the start of polling, for jobs that ended while others were still
    # being submitted) to the store recording it: what the poller adds, whatever the submission took.
    lags = sorted(
        j.finished_at.timestamp() - max(ends[j.id], wall_before) for j in jobs if j.finished_at and j.id in ends
    )
    answered = sum(n for route, n in stats["requests"].items() if route.startswith("GET /v1/jobs"))
    result = {
        "engine": engine,
        "polling": polling,
        "jobs": JOBS,
        "submit_s": round(submit_seconds, 1),
        "ended": sum(j.status.terminal for j in jobs),
        "duplicates": len(stats["duplicates"]),
        "poll_seconds": round(wall, 1),
        "requests": answered,
        "requests_per_s": round(answered / wall, 1),
        "cpu_seconds": round(cpu_used, 1),
        "cpu_s_per_1000_jobs_per_minute": round(cpu_used / (JOBS / 1000) / (wall / 60), 2),
        "db_server_cpu_s_per_1000_jobs_per_minute": round(db_used / (JOBS / 1000) / (wall / 60), 2),
        "lag_p50_s": round(statistics.median(lags), 2),
        "lag_p99_s": round(lags[int(len(lags) * 0.99) - 1], 2),
        "lag_max_s": round(lags[-1], 2),
        "intervals_s": [MIN_INTERVAL, MAX_INTERVAL],
        "job_duration_s": DURATION,
    }
    print(json.dumps(result, indent=1), flush=True)
    shutil.rmtree(os.environ["FTO_HOME"], ignore_errors=True)
    return result


def main() -> None:
    results = [
        run(engine, polling)
        for engine in os.environ.get("ENGINES", "sqlite,postgresql").split(",")
        for polling in os.environ.get("POLLING", "jobs,lists,states").split(",")
    ]
    print(
        "\n| engine | polling | jobs | submit s | ended | submitted twice | requests/s | fto CPU s /1,000 jobs/min | "
        "server CPU s /1,000 jobs/min | lag p50 s | lag p99 s | lag max s |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r['engine']} | {r['polling']} | {r['jobs']:,} | {r['submit_s']} | {r['ended']:,} | "
            f"{r['duplicates']} | "
            f"{r['requests_per_s']} | "
            f"{r['cpu_s_per_1000_jobs_per_minute']} | {r['db_server_cpu_s_per_1000_jobs_per_minute']} | "
            f"{r['lag_p50_s']} | {r['lag_p99_s']} | {r['lag_max_s']} |"
        )


if __name__ == "__main__":
    main()
