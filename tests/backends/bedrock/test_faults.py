"""Bedrock's faults, injected by a proxy in front of moto's server: throttling with Retry-After, 5xx, a read past
the client's timeout, a create whose answer is lost (one job, found by its name), an S3 upload refused once; and a
job Bedrock fails, whose message reaches `fto status`."""

from __future__ import annotations

import json

import pytest

from fto.orchestrator.store import Store
from fto.schemas import JobStatus
from tests.backends.bedrock.servers import BUCKET, ROLE
from tests.conftest import run_fto
from tests.loopback import Proxy, running

pytestmark = pytest.mark.slow  # runs moto's server


def test_faults_are_retried_and_a_failed_jobs_message_reaches_status(aws, messages, write_job):
    proxy = Proxy(aws.url)
    with running(proxy) as url:
        faults = proxy.faults
        faults.add("PUT", rf"/{BUCKET}/fto/data/.*/train.jsonl", "503")
        faults.add("POST", "/model-customization-jobs", "429")
        faults.add("POST", "/model-customization-jobs", "lost")  # Bedrock made the job; the answer was lost
        faults.add("GET", "/model-customization-jobs/fto-job-.*", "503")
        faults.add("GET", "/model-customization-jobs/fto-job-.*", "slow", seconds=3)  # past the 1 s timeout
        section = {"role_arn": ROLE, "s3_bucket": BUCKET, "endpoint_url": url, "runtime_url": messages.url,
                   "timeout": 1, "min_poll_interval": 0.2, "max_poll_interval": 0.5}  # fmt: skip
        job_file = write_job({"backends": {"bedrock": section}})
        submitted = run_fto("submit", str(job_file), "--backend", "bedrock", timeout=120)
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        [job] = Store().jobs()
        listed = aws.bedrock.list_model_customization_jobs()["modelCustomizationJobSummaries"]
        assert [j["jobName"] for j in listed] == [f"fto-{job.id}"]  # the retried create found the first job
        remote = aws.job(job.provider_job_id)
        remote.status, remote.failure_message = "Failed", "Training data row 12 has 3 consecutive user turns"
        waited = run_fto("wait", job.id, timeout=120)
        assert waited.returncode != 0
        assert not faults.pending  # every fault happened, and each was survived
    status = json.loads(run_fto("status", job.id, "--json").stdout)
    assert Store().job(job.id).status == JobStatus.FAILED
    assert "Training data row 12 has 3 consecutive user turns" in json.dumps(status)
