"""Our schema ↔ Bedrock's model customization API for Claude: hyperparameters, limits, statuses. No I/O.

Hyperparameter ranges are AWS's table for Claude 3 models ("Anthropic Claude 3 model customization
hyperparameters", Bedrock user guide): Bedrock takes every value as a string.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec, JobStatus, Metric

# name in Bedrock → (minimum, maximum, integer?)
RANGES: dict[str, tuple[float, float, bool]] = {
    "epochCount": (1, 10, True),
    "batchSize": (4, 256, True),
    "learningRateMultiplier": (0.1, 2.0, False),
    "earlyStoppingThreshold": (0.0, 0.1, False),
    "earlyStoppingPatience": (1, 10, True),
}
OURS = {"epochCount": "epochs", "batchSize": "batch_size", "learningRateMultiplier": "learning_rate_multiplier"}
LOCAL_ONLY = ("learning_rate", "warmup_ratio", "max_seq_length", "lora")


def hyperparameters(
    spec: JobSpec, early_stopping: dict[str, float | None], has_validation: bool, backend: str
) -> dict[str, str]:
    """Bedrock's hyperParameters: only what the job sets ("auto" leaves Bedrock's default), ranges checked."""
    hp = spec.hyperparameters
    values: dict[str, Any] = {
        "epochCount": hp.epochs,
        "batchSize": hp.batch_size,
        "learningRateMultiplier": hp.learning_rate_multiplier,
    }
    if has_validation:  # early stopping watches the validation loss; without validation data it has no effect
        values["earlyStoppingThreshold"] = early_stopping.get("threshold")
        values["earlyStoppingPatience"] = early_stopping.get("patience")
    out: dict[str, str] = {}
    for name, value in values.items():
        if value is None or value == "auto":
            continue
        low, high, integer = RANGES[name]
        where = f"hyperparameters.{OURS[name]}" if name in OURS else f"early_stopping_{name[13:].lower()}"
        if not low <= value <= high:
            raise UnsupportedError(f"{where} = {value} is outside Bedrock's range {low:g}–{high:g}", backend=backend)
        out[name] = str(int(value)) if integer else f"{float(value):g}"
    return out


def ignored_settings(spec: JobSpec) -> list[str]:
    """Local-training settings the job file sets explicitly, which Bedrock does not take."""
    return [name for name in LOCAL_ONLY if name in spec.hyperparameters.model_fields_set]


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
