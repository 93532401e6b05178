"""Tell the user's systems when an experiment has finished: a webhook POST or a shell command, sent once."""

from __future__ import annotations

import json
import os
import subprocess
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from fto.orchestrator.secrets import redact
from fto.orchestrator.store import Store
from fto.schemas import Experiment, Job


def summary(experiment: Experiment, jobs: list[Job]) -> dict[str, Any]:
    """What a webhook or command is told when every job of an experiment has ended."""
    status = "succeeded" if all(j.status.value == "succeeded" for j in jobs) else "failed"
    return {
        "experiment": experiment.id,
        "name": experiment.name,
        "status": status,
        "jobs": [
            {
                "id": j.id,
                "backend": j.backend,
                "status": j.status.value,
                "fine_tuned_model": j.fine_tuned_model,
                "error": j.error,
            }
            for j in jobs
        ],
    }


def notify_finished(store: Store, experiment_ids: list[str]) -> list[str]:
    """Notify for each experiment whose jobs have all ended; returns problems to show (never raises)."""
    problems = []
    for experiment_id in dict.fromkeys(experiment_ids):
        experiment = store.experiment(experiment_id)
        jobs = store.jobs(experiment_id)
        target = experiment.spec.notify
        if target is None or not all(j.status.terminal for j in jobs) or not store.claim_notification(experiment_id):
            continue
        payload = summary(experiment, jobs)
        url = target.webhook or (os.environ.get(target.webhook_env) if target.webhook_env else None)
        try:
            if url:
                _post(url, payload)
            if target.command:
                env = {**os.environ, "FTO_EXPERIMENT": experiment_id, "FTO_STATUS": payload["status"]}
                subprocess.run(
                    target.command,
                    shell=True,
                    env=env,
                    input=json.dumps(payload),
                    text=True,
                    timeout=120,
                    check=True,
                    capture_output=True,
                )
        except (httpx.HTTPError, subprocess.SubprocessError, OSError) as exc:
            problems.append(redact(f"notification for {experiment_id} failed: {exc}"))
    return problems


def _post(url: str, payload: dict[str, Any]) -> None:
    for attempt in Retrying(
        retry=retry_if_exception_type(httpx.TransportError),
        stop=stop_after_attempt(3),
        wait=wait_exponential(multiplier=0.5),
        reraise=True,
    ):
        with attempt:
            httpx.post(url, json=payload, timeout=10).raise_for_status()
