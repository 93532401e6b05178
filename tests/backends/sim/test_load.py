"""The job layer under load and faults, against the simulated provider over real HTTP."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from fto.orchestrator.data.load import load_splits
from fto.orchestrator.poll import Poller
from fto.orchestrator.store import Store
from fto.orchestrator.submit import backend_for, submit_job
from fto.schemas import JobSpec, JobStatus
from tests.conftest import ANIMALS

pytestmark = pytest.mark.slow  # a thousand jobs


def _spec(url: str, interval: float, duration: float | None = None, **extra) -> JobSpec:
    section = {"url": url, "min_poll_interval": interval, "max_poll_interval": interval, "timeout": 0.5, **extra}
    if duration:
        section["duration"] = duration
    return JobSpec.model_validate(
        {
            "name": "load",
            "data": {"train": str(ANIMALS), "validation": None},
            "backends": {"sim": section},
            "eval": None,
        }
    )


def submit_many(spec: JobSpec, n: int, workers: int = 16) -> list[str]:
    """n experiments of one sim job each, submitted from several threads (each with its own store connection)."""
    data = load_splits(spec)

    def submit_some(count: int) -> list[str]:
        store, backend = Store(), backend_for(spec, "sim")
        ids = []
        for _ in range(count):
            experiment, (job,) = store.create_experiment(spec, None, ["sim"])
            submit_job(store, experiment, job, backend, data)
            ids.append(job.id)
        return ids

    first = submit_some(1)  # uploads the data; the others find the upload in the store and reuse it
    with ThreadPoolExecutor(workers) as pool:
        parts = pool.map(submit_some, [(n - 1) // workers + (i < (n - 1) % workers) for i in range(workers)])
    return first + [job_id for part in parts for job_id in part]


def test_1000_jobs_all_end_none_lost_none_twice_with_near_minimal_requests(sim_server):
    server = sim_server(duration=6, fail_rate=0.05, stall=1.0)
    store = Store()
    interval = 1.0
    ids = submit_many(_spec(server.url, interval, batch_poll=False), 1000)  # job by job (test_batch_poll: lists)
    assert all(store.job(i).provider_job_id for i in ids)  # every create went through, despite the faults

    started = time.time()
    poller = Poller(store)
    jobs = asyncio.run(poller.run(ids, timeout=120))
    assert [j.status for j in jobs] == [JobStatus.SUCCEEDED] * 1000
    stats = server.stats()
    assert stats["jobs"] == 1000 and stats["duplicates"] == {}
    assert stats["requests"]["POST /v1/files"] == 1  # the same data is uploaded once

    # Polled once per interval from the start until a job ends, plus the poll that sees the end: no more.
    minimum = sum(max(0.0, end - started) / interval + 1 for end in stats["ends"].values())
    answered = stats["requests"]["GET /v1/jobs/{id}"]
    assert answered <= 1.1 * minimum, (answered, minimum)  # never more than once per interval: no flood
    # and about once per interval (on a loaded 2-core machine some polls come late, so fewer happen)
    assert answered >= 0.75 * minimum, (answered, minimum)
    assert all(store.events(i) and store.last_metric(i).step == 10 for i in ids[:20])
