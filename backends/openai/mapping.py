"""Our schema ↔ OpenAI's fine-tuning API: hyperparameters, statuses, events, checkpoints. Pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import Checkpoint, JobEvent, JobSpec, JobStatus, Metric

STATUSES = {
    "validating_files": JobStatus.VALIDATING,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "paused": JobStatus.PAUSED,  # returned by the pause endpoint, though the spec's enum lacks it
    "cancelling": JobStatus.CANCELLING,  # fto serve's answer to a cancel, until the worker has stopped
    "succeeded": JobStatus.SUCCEEDED,
    "failed": JobStatus.FAILED,
    "cancelled": JobStatus.CANCELLED,
}
METHODS = {"sft": "supervised", "dpo": "dpo", "rft": "reinforcement"}
# OpenAI's documented ranges (API reference, FineTuneSupervisedHyperparameters / FineTuneDPOHyperparameters).
RANGES: dict[str, tuple[float, float]] = {"batch_size": (1, 256), "n_epochs": (1, 50)}
MAX_BETA = 2.0
MAX_METADATA_KEYS, MAX_METADATA_KEY, MAX_METADATA_VALUE = 16, 64, 512
# Settings of the local trainer that a hosted service chooses itself: ignored here, and said so.
LOCAL_ONLY = ("learning_rate", "warmup_ratio", "max_seq_length", "lora")


def hyperparameters(spec: JobSpec, backend: str) -> dict[str, Any]:
    """Our hyperparameters in OpenAI's names, "auto" passed through, ranges checked before any request."""
    hp = spec.hyperparameters
    out: dict[str, Any] = {
        "n_epochs": hp.epochs,
        "batch_size": hp.batch_size,
        "learning_rate_multiplier": hp.learning_rate_multiplier,
    }
    for name, (low, high) in RANGES.items():
        value = out[name]
        if value != "auto" and not low <= value <= high:
            ours = "epochs" if name == "n_epochs" else name
            raise UnsupportedError(
                f"hyperparameters.{ours} = {value} is outside OpenAI's range {low:g}–{high:g}", backend=backend
            )
    if spec.method == "dpo":
        if hp.beta != "auto" and not 0 < hp.beta <= MAX_BETA:
            raise UnsupportedError(
                f"hyperparameters.beta = {hp.beta} is outside OpenAI's range (0, 2]", backend=backend
            )
        out["beta"] = hp.beta
    return out


def ignored_settings(spec: JobSpec) -> list[str]:
    """Local-training settings the job file sets explicitly, which this provider does not take."""
    return [name for name in LOCAL_ONLY if name in spec.hyperparameters.model_fields_set]


def metadata(spec: JobSpec, job_id: str, backend: str) -> dict[str, str]:
    """The job file's metadata plus our job id, which is how `find` recognises the job after a crash."""
    out = {**spec.metadata, "fto_job_id": job_id}
    if len(out) > MAX_METADATA_KEYS:
        raise UnsupportedError(
            f"metadata: OpenAI takes at most {MAX_METADATA_KEYS} keys, and fto uses one (fto_job_id)", backend=backend
        )
    for key, value in out.items():
        if len(key) > MAX_METADATA_KEY or len(value) > MAX_METADATA_VALUE:
            raise UnsupportedError(
                f"metadata.{key}: OpenAI takes keys of at most {MAX_METADATA_KEY} characters and values of at most "
                f"{MAX_METADATA_VALUE}",
                backend=backend,
            )
    return out


def method(spec: JobSpec, backend: str) -> dict[str, Any]:
    """The job file's method and hyperparameters as OpenAI's `method` object."""
    kind = METHODS[spec.method]
    if spec.method == "rft":
        from fto.backends.openai.graders import reinforcement

        return {"type": kind, kind: reinforcement(spec, hyperparameters(spec, backend), backend)}
    return {"type": kind, kind: {"hyperparameters": hyperparameters(spec, backend)}}


def status(value: str) -> JobStatus:
    # A status added after this was written is not an end: keep polling rather than give up on the job.
    """OpenAI's job status in fto's terms."""
    return STATUSES.get(value, JobStatus.RUNNING)


def error_text(error: Any) -> str | None:
    """A failed job's error as one line (code, message, parameter)."""
    if not error or not getattr(error, "message", None):
        return None
    param = f" (parameter {error.param})" if getattr(error, "param", None) else ""
    return f"{error.code}: {error.message}{param}" if getattr(error, "code", None) else f"{error.message}{param}"


def _time(seconds: int | float | None) -> datetime:
    return datetime.fromtimestamp(seconds, UTC) if seconds else datetime.now(UTC)


def event(raw: Any) -> JobEvent | Metric:
    """A fine_tuning.job.event: a message, or (type "metrics") one step's training metrics."""
    data = dict(getattr(raw, "data", None) or {})
    if getattr(raw, "type", None) == "metrics" and "step" in data:
        return Metric(
            step=int(data["step"]),
            total_steps=data.get("total_steps"),
            loss=data.get("train_loss"),
            valid_loss=data.get("valid_loss") or data.get("full_valid_loss"),
            reward=data.get("train_reward_mean"),  # RFT's
            valid_reward=data.get("valid_reward_mean") or data.get("full_valid_mean_reward"),
            created_at=_time(raw.created_at),
        )
    level = {"warn": "warning"}.get(raw.level, raw.level)
    return JobEvent(
        created_at=_time(raw.created_at),
        level=level if level in ("info", "warning", "error") else "info",
        message=raw.message,
        data={"id": raw.id, **data},
    )


def checkpoint(raw: Any) -> Checkpoint:
    """An OpenAI checkpoint in fto's terms."""
    metrics = raw.metrics.model_dump(exclude_none=True) if raw.metrics else {}
    return Checkpoint(
        step=raw.step_number,
        model=raw.fine_tuned_model_checkpoint,
        metrics={k: float(v) for k, v in metrics.items() if isinstance(v, int | float)},
        created_at=_time(raw.created_at),
    )
