"""Our job schema in Fireworks' terms, and Fireworks' answers in ours. No I/O."""

from __future__ import annotations

import re
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec, JobStatus

STATES = {
    "JOB_STATE_CREATING": JobStatus.QUEUED,
    "JOB_STATE_PENDING": JobStatus.QUEUED,
    "JOB_STATE_RE_QUEUEING": JobStatus.QUEUED,
    "JOB_STATE_IDLE": JobStatus.QUEUED,
    "JOB_STATE_CREATING_INPUT_DATASET": JobStatus.VALIDATING,
    "JOB_STATE_VALIDATING": JobStatus.VALIDATING,
    "JOB_STATE_RUNNING": JobStatus.RUNNING,
    "JOB_STATE_WRITING_RESULTS": JobStatus.RUNNING,  # trained; the model is being written out
    "JOB_STATE_COMPLETED": JobStatus.SUCCEEDED,
    "JOB_STATE_EARLY_STOPPED": JobStatus.SUCCEEDED,  # stopped by early stopping: a model exists
    "JOB_STATE_FAILED": JobStatus.FAILED,
    "JOB_STATE_EXPIRED": JobStatus.FAILED,
    "JOB_STATE_CANCELLING": JobStatus.CANCELLING,
    "JOB_STATE_CANCELLED": JobStatus.CANCELLED,
    "JOB_STATE_DELETING": JobStatus.CANCELLED,
    "JOB_STATE_DELETING_CLEANING_UP": JobStatus.CANCELLED,
    "JOB_STATE_PAUSED": JobStatus.PAUSED,
}
# Fireworks' documented ranges for supervised fine-tuning
EPOCHS = (1, 100)
LORA_RANKS = (4, 8, 16, 32, 64)
LOCAL_ONLY = ("learning_rate_multiplier", "warmup_ratio")


def status(state: str | None) -> JobStatus:
    """A JOB_STATE_* as ours; an unknown one keeps the job running (polling goes on)."""
    return STATES.get(state or "", JobStatus.RUNNING)


def resource_id(text: str) -> str:
    """A Fireworks resource id (lowercase letters, digits, hyphens; at most 63) made from `text`."""
    cleaned = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")
    return cleaned[:63].rstrip("-") or "fto"


def training(spec: JobSpec, base_model: str, output_model: str | None, max_context: int | None) -> dict[str, Any]:
    """The training settings both supervised and DPO jobs take (SDK argument names), ranges checked."""
    hp = spec.hyperparameters
    args: dict[str, Any] = {"base_model": base_model}
    if hp.epochs != "auto":
        if not EPOCHS[0] <= hp.epochs <= EPOCHS[1]:
            raise UnsupportedError(
                f"hyperparameters.epochs = {hp.epochs} is outside Fireworks' range {EPOCHS[0]}–{EPOCHS[1]}",
                backend="fireworks",
            )
        args["epochs"] = hp.epochs
    if hp.batch_size != "auto":
        args["batch_size_samples"] = hp.batch_size
    if hp.learning_rate is not None:
        args["learning_rate"] = hp.learning_rate
    if "lora" in hp.model_fields_set or spec.method == "sft":
        if hp.lora.r not in LORA_RANKS:
            raise UnsupportedError(
                f"hyperparameters.lora.r = {hp.lora.r}: Fireworks takes a LoRA rank of "
                f"{', '.join(map(str, LORA_RANKS))}",
                backend="fireworks",
            )
        args["lora_rank"] = hp.lora.r
    if hp.max_seq_length is not None or max_context:
        args["max_context_length"] = hp.max_seq_length or max_context
    if output_model:
        args["output_model"] = output_model
    return args
