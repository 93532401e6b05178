"""Batch polls: a provider that lists many jobs per request is asked about a job itself only when it changed."""

import asyncio
import threading
import time

import httpx
import pytest

from fto.orchestrator.poll import Poller
from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.backends.sim.test_load import _spec, submit_many

pytestmark = pytest.mark.timeout(90)


@pytest.mark.parametrize("listing", ["with news", "states only", "none"])
def test_a_listing_provider_is_asked_about_a_job_only_when_its_listing_changed(sim_server, listing):
    server = sim_server(duration=60, fail_rate=0.05, stall=0.6)  # queued for 18 s: nothing changes by itself
    store = Store()
    options = {"batch_poll": listing != "none", "list_news": listing == "with news"}
    ids = submit_many(_spec(server.url, 0.2, **options), 40, workers=4)
    provider_ids = {store.job(job_id).provider_job_id: job_id for job_id in ids}
    cancelled = sorted(provider_ids)[:5]
    before = server.stats()["requests"]

    def cancel_at_the_provider() -> None:
        time.sleep(1.5)
        for provider_job_id in cancelled:  # the server's injected 429s and 500s hit these too: asked again
            while httpx.post(f"{server.url}/v1/jobs/{provider_job_id}/cancel", timeout=5).status_code != 200:
                time.sleep(0.05)

    canceller = threading.Thread(target=cancel_at_the_provider)
    canceller.start()
    jobs = asyncio.run(Poller(store).run(ids, timeout=4))
    canceller.join()

    requests = server.stats()["requests"]
    own_polls = requests.get("GET /v1/jobs/{id}", 0)  # answered ones: a failed request is counted apart
    listings = requests.get("GET /v1/jobs", 0) - before.get("GET /v1/jobs", 0)
    if listing == "with news":
        assert own_polls == 0 and listings >= 10  # every 0.2 s for about 4 s, and nothing else
    elif listing == "states only":
        assert own_polls == 40 + 5  # one each (news since the stored cursor), then only the 5 that changed
        assert listings >= 10
    else:
        assert own_polls >= 40 * 8 and listings == 0  # every job, every interval
    status = {job.id: job.status for job in jobs}
    assert {status[provider_ids[p]] for p in cancelled} == {JobStatus.CANCELLED}
    assert {status[j] for p, j in provider_ids.items() if p not in cancelled} == {JobStatus.QUEUED}
    assert "job cancelled" in [e.message for e in store.events(provider_ids[cancelled[0]])]  # its last news


@pytest.mark.parametrize("list_news", [True, False])
def test_every_job_ends_with_all_its_news_once_however_it_is_listed(sim_server, list_news):
    server = sim_server(duration=2, fail_rate=0.05, stall=0.6)
    store = Store()
    ids = submit_many(_spec(server.url, 0.2, list_news=list_news), 30, workers=4)
    jobs = asyncio.run(Poller(store).run(ids, timeout=60))
    assert [job.status for job in jobs] == [JobStatus.SUCCEEDED] * 30
    ends = server.stats()["ends"]
    for job in jobs:
        assert job.finished_at is not None and job.finished_at.timestamp() - ends[job.id] < 5
        assert [m.step for m in store.metrics(job.id)] == list(range(1, 11))
        assert [e.message for e in store.events(job.id)] == ["job queued", "training started", "job succeeded"]
