"""Several fto processes on one PostgreSQL store, against the simulated provider with injected faults: every job
submitted once and ended once, every event recorded once, a killed poller's jobs taken over within the lease
time, and the database going away mid-poll waited out without losing anything."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest
import yaml

from fto.orchestrator.poll import LEASE_SECONDS
from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.conftest import ANIMALS, FTO

pytestmark = pytest.mark.slow  # a thousand jobs through three processes


def _job_file(tmp_path, url: str, jobs: int, duration: float) -> str:
    (tmp_path / "train.jsonl").write_text("".join(ANIMALS.read_text().splitlines(keepends=True)[:12]))
    section = {"type": "sim", "url": url, "duration": duration, "min_poll_interval": 1.0, "max_poll_interval": 2.0,
               "timeout": 0.5}  # fmt: skip
    spec = {"name": "team", "data": {"train": "train.jsonl", "validation": None}, "eval": None,
            "check": {"enabled": False}, "backends": {f"sim{i}": dict(section) for i in range(jobs)}}  # fmt: skip
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(spec))
    return str(path)


def _start(command: list[str], log) -> subprocess.Popen:
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=out)


def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout} s: {what}"
        time.sleep(0.2)


def _duplicated_events(store: Store) -> list[dict]:
    return store.db.read(
        "SELECT job_id, message, COUNT(*) AS n FROM events GROUP BY job_id, message HAVING COUNT(*) > 1"
    )


@pytest.mark.timeout(400)
def test_submit_and_two_pollers_on_postgresql_500_jobs_once_each_and_a_killed_poller_taken_over(
    sim_server, postgres_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTO_STORE", postgres_server.new_database())
    server = sim_server(duration=8, fail_rate=0.05, stall=1.0)
    job = _job_file(tmp_path, server.url, jobs=500, duration=8)
    submitter = _start([*FTO, "submit", job], tmp_path / "submitter.log")
    store = Store()
    _until(lambda: store.experiments() or submitter.poll() is not None, 120, "the experiment is recorded")
    [experiment] = store.experiments()
    # Both pollers start while the submitter is still sending: they finish submitting what it has not reached.
    pollers = [_start([*FTO, "wait", experiment.id], tmp_path / f"poller{i}.log") for i in range(2)]

    def holder() -> int | None:
        """The pid of the poller holding most leases, once one holds some."""
        rows = store.db.read("SELECT lease_owner, COUNT(*) AS n FROM jobs WHERE lease_owner IS NOT NULL GROUP BY 1")
        return int(max(rows, key=lambda r: r["n"])["lease_owner"].split(":")[1]) if rows else None

    _until(lambda: holder() is not None, 120, "a poller holds leases")
    victim = next(p for p in pollers if p.pid == holder())
    survivor = next(p for p in pollers if p is not victim)
    killed_at = time.monotonic()
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert submitter.wait(timeout=240) in (0, 1), (tmp_path / "submitter.log").read_text()
    assert survivor.wait(timeout=300) == 0
    took = time.monotonic() - killed_at
    assert took < LEASE_SECONDS + 20, f"the survivor ended every job {took:.0f} s after the kill"

    jobs = store.jobs(experiment.id)
    assert len(jobs) == 500 and all(j.status == JobStatus.SUCCEEDED and j.finished_at for j in jobs)
    stats = server.stats()
    assert stats["jobs"] == 500 and stats["duplicates"] == {}  # each job created at the provider once
    assert {j.provider_job_id for j in jobs} == {f"simjob-{i}" for i in range(1, 501)}
    assert _duplicated_events(store) == []  # every event recorded once
    ended = store.db.read("SELECT COUNT(*) AS n FROM events WHERE message = 'job succeeded'")
    assert ended[0]["n"] == 500


@pytest.mark.timeout(300)
def test_the_database_going_away_mid_poll_is_waited_out_and_nothing_is_lost(
    sim_server, postgres_server, tmp_path, monkeypatch
):
    monkeypatch.setenv("FTO_STORE", postgres_server.new_database())
    server = sim_server(duration=10)
    job = _job_file(tmp_path, server.url, jobs=20, duration=10)
    assert subprocess.run([*FTO, "submit", job], capture_output=True, timeout=120).returncode == 0
    store = Store()
    [experiment] = store.experiments()
    poller = subprocess.Popen([*FTO, "wait", experiment.id], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              text=True)  # fmt: skip
    try:
        _until(lambda: store.db.read("SELECT COUNT(*) AS n FROM metrics")[0]["n"] >= 20, 60, "training under way")
        postgres_server.stop()
        time.sleep(5)  # the poller's writes fail meanwhile: it waits and retries
        postgres_server.start()
        assert poller.wait(timeout=120) == 0, poller.stderr.read() if poller.stderr else ""
    finally:
        poller.kill()
    jobs = store.jobs(experiment.id)
    assert all(j.status == JobStatus.SUCCEEDED for j in jobs) and len(jobs) == 20
    assert server.stats()["duplicates"] == {} and _duplicated_events(store) == []
    for job in jobs:
        assert [m.step for m in store.metrics(job.id)] == list(range(1, 11))  # every step, across the outage
        messages = [e.message for e in store.events(job.id)]
        assert {"job queued", "training started", "job succeeded"} <= set(messages)
