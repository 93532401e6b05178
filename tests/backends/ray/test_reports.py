"""The Ray backend's parts that need no cluster: the report lines read back from a Ray job log (as Ray prefixes
and repeats them), and the check that a job can ever be placed on a cluster's nodes."""

from __future__ import annotations

import json

import pytest

from fto.backends.ray.driver import failure_cause, unschedulable
from fto.backends.ray.reports import MARK, Reporter, parse

pytestmark = pytest.mark.timeout(30)


def test_reports_survive_ray_prefixes_repeats_and_a_line_cut_short(capsys):
    reporter = Reporter("rank0")
    reporter.report("status", {"status": "running"})
    reporter.report("metric", {"step": 1, "loss": 2.5})
    printed = capsys.readouterr().out.splitlines()
    log = "\n".join([
        "Running entrypoint for job fto-job-1-1: python -m fto.backends.ray.driver",
        f"\x1b[36m(RayTrainWorker pid=29317)\x1b[0m {printed[0]}",
        f"\x1b[36m(RayTrainWorker pid=29317)\x1b[0m {printed[0]}",  # Ray forwarded it twice
        f"(RayTrainWorker pid=29317) {printed[1]}",
        f'{MARK} {{"source": "rank0", "n": 3, "kind": "ev',  # the worker died mid-line
    ])  # fmt: skip
    found = parse(log)
    assert [(r.source, r.n, r.kind) for r in found] == [("rank0", 1, "status"), ("rank0", 2, "metric")]
    assert found[1].body == {"step": 1, "loss": 2.5}
    other = json.dumps({"source": "driver", "n": 1, "kind": "status", "body": {"status": "failed"}})
    assert [r.source for r in parse(log + f"\n{MARK} {other}")] == ["rank0", "rank0", "driver"]  # own numbering


def test_a_job_that_can_never_be_placed_says_what_it_asked_and_what_the_cluster_has():
    nodes = [{"CPU": 2.0, "memory": 8e9, "object_store_memory": 1e9}]
    assert unschedulable({"CPU": 1.0}, 2, nodes) is None
    problem = unschedulable({"CPU": 1.0, "GPU": 1.0}, 2, nodes)
    assert problem == (
        "unschedulable: the job asks for 2 worker(s) with {CPU: 1, GPU: 1} each, and the cluster has {CPU: 2} in "
        "all (0 such worker(s) fit); lower num_workers or resources_per_worker, or add nodes"
    )
    assert unschedulable({"CPU": 2.0}, 2, nodes) is not None  # one node of 2 CPUs holds one such worker
    assert unschedulable({"CPU": 2.0}, 2, nodes * 2) is None  # two nodes hold two


def test_the_local_backends_process_settings_are_refused_in_a_ray_section_with_what_to_use(write_job):
    from fto.orchestrator.config import load_job
    from fto.orchestrator.errors import ConfigError

    job = write_job({"backends": {"ray": {"processes": 2}}})
    with pytest.raises(ConfigError) as found:
        load_job(job)
    assert found.value.field == "backends.ray" and found.value.line is not None
    assert found.value.message == "processes is a local backend setting; on Ray, use num_workers"


def test_a_killed_worker_is_named_as_the_cause_before_the_error_it_gave_its_peer():
    from ray.exceptions import ActorDiedError
    from ray.train.v2._internal.exceptions import WorkerHealthCheckFailedError
    from ray.train.v2.api.exceptions import WorkerGroupError

    peer = RuntimeError("[gloo/transport/tcp/pair.cc:553] Connection closed by peer [127.0.0.1]:1234")
    death = WorkerHealthCheckFailedError("Worker health check failed.", ActorDiedError())
    both = WorkerGroupError("2 workers failed", {0: peer, 1: death})
    assert failure_cause(both).startswith("WorkerHealthCheckFailedError: ")
    assert "died" in failure_cause(both).lower()
    assert failure_cause(WorkerGroupError("1 worker failed", {0: peer})) == f"RuntimeError: {peer}"
    try:
        raise ValueError("the root") from KeyError("deeper")
    except ValueError as exc:
        assert failure_cause(exc) == "KeyError: 'deeper'"
