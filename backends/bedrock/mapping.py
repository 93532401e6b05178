"""Bedrock's model customization answers in our terms: statuses, stages, step metrics. No I/O.

What each model family takes (format, hyperparameters, limits) lives in families.py.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fto.schemas import JobStatus, Metric


def status(job: dict[str, Any]) -> JobStatus:
    """GetModelCustomizationJob's status, refined by statusDetails while the job is in progress."""
    value = job.get("status")
    if value == "Completed":
        return JobStatus.SUCCEEDED
    if value == "Failed":
        return JobStatus.FAILED
    if value == "Stopped":
        return JobStatus.CANCELLED
    if value == "Stopping":
        return JobStatus.RUNNING  # not over until Bedrock says Stopped
    details = job.get("statusDetails") or {}
    stage = {key: (details.get(key) or {}).get("status") for key in ("validationDetails", "dataProcessingDetails",
                                                                      "trainingDetails")}  # fmt: skip
    if stage["trainingDetails"] in ("InProgress", "Completed"):
        return JobStatus.RUNNING
    if stage["validationDetails"] == "InProgress" or stage["dataProcessingDetails"] == "InProgress":
        return JobStatus.VALIDATING
    if details and all(s in (None, "NotStarted") for s in stage.values()):
        return JobStatus.QUEUED
    return JobStatus.RUNNING


def stage_text(job: dict[str, Any]) -> str:
    """A one-line summary of where the job is, for events when it changes."""
    details = job.get("statusDetails") or {}
    parts = [f"{key.removesuffix('Details')}: {(details.get(key) or {}).get('status')}" for key in details]
    return f"{job.get('status')}" + (f" ({', '.join(parts)})" if parts else "")


def step_metrics(text: str) -> list[Metric]:
    """Bedrock's step_wise_training_metrics.csv (step_number, epoch_number, training_loss) as our metrics."""
    rows = list(csv.DictReader(io.StringIO(text)))
    total = max((int(float(r["step_number"])) for r in rows), default=None)
    return [
        Metric(
            step=int(float(r["step_number"])),
            total_steps=total,
            epoch=float(r["epoch_number"]) if r.get("epoch_number") else None,
            loss=float(r["training_loss"]) if r.get("training_loss") else None,
        )
        for r in rows
    ]
