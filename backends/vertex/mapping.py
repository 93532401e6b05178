"""Our job schema in Vertex AI's terms, and Vertex's answers in ours. No I/O.

Ranges checked here: epochs 1–100, adapter sizes 1–32, at most 5,000 validation examples (Vertex
refuses the rest at create, before any training).
"""

from __future__ import annotations

from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import JobSpec, JobStatus

STATES = {
    "JOB_STATE_QUEUED": JobStatus.QUEUED,
    "JOB_STATE_PENDING": JobStatus.QUEUED,
    "JOB_STATE_RUNNING": JobStatus.RUNNING,
    "JOB_STATE_UPDATING": JobStatus.RUNNING,
    "JOB_STATE_SUCCEEDED": JobStatus.SUCCEEDED,
    "JOB_STATE_PARTIALLY_SUCCEEDED": JobStatus.SUCCEEDED,
    "JOB_STATE_FAILED": JobStatus.FAILED,
    "JOB_STATE_EXPIRED": JobStatus.FAILED,
    "JOB_STATE_CANCELLING": JobStatus.CANCELLING,
    "JOB_STATE_CANCELLED": JobStatus.CANCELLED,
    "JOB_STATE_PAUSED": JobStatus.PAUSED,
}
ADAPTER_SIZES = {1: "ONE", 2: "TWO", 4: "FOUR", 8: "EIGHT", 16: "SIXTEEN", 32: "THIRTY_TWO"}
EPOCHS = (1, 100)
MAX_VALIDATION = 5000
LOCAL_ONLY = ("learning_rate", "warmup_ratio", "max_seq_length")


def status(state: Any) -> JobStatus:
    """A JobState as ours; an unknown one keeps the job running (polling goes on)."""
    return STATES.get(str(getattr(state, "value", state)), JobStatus.RUNNING)


def is_open(model: str) -> bool:
    """Whether `model` is one of Model Garden's open models (`publisher/family@version`), not Gemini."""
    return "/" in model and "@" in model


def tuning_config(spec: JobSpec, options: Any, job_id: str, validation_uri: str | None) -> Any:
    """The SDK's CreateTuningJobConfig for this job ("auto" leaves Vertex's default), ranges checked."""
    from google.genai import types

    hp = spec.hyperparameters
    if is_open(options.model):
        return _open_model_config(spec, options, job_id, validation_uri)
    values: dict[str, Any] = {
        "tuned_model_display_name": f"{spec.suffix or spec.name}-{job_id}"[:128],
        "labels": {"fto_job_id": job_id},  # how `find` recognises the job
        "export_last_checkpoint_only": options.export_last_checkpoint_only or None,
    }
    if spec.method == "rft":
        values |= _reinforcement(spec)
    if spec.method == "dpo":
        values["method"] = types.TuningMethod.PREFERENCE_TUNING
        if hp.beta != "auto":
            values["beta"] = hp.beta
    if hp.epochs != "auto":
        values["epoch_count"] = _epochs(hp.epochs)
    if hp.learning_rate_multiplier != "auto":
        values["learning_rate_multiplier"] = hp.learning_rate_multiplier
    if hp.batch_size != "auto":
        values["batch_size"] = hp.batch_size
    size = options.adapter_size or (hp.lora.r if "lora" in hp.model_fields_set else None)
    if size is not None:
        if size not in ADAPTER_SIZES:
            raise UnsupportedError(
                f"adapter size {size}: Vertex takes {', '.join(map(str, ADAPTER_SIZES))} (set adapter_size, or "
                "hyperparameters.lora.r to one of them)",
                backend="vertex",
            )
        values["adapter_size"] = f"ADAPTER_SIZE_{ADAPTER_SIZES[size]}"
    if validation_uri:
        values["validation_dataset"] = types.TuningValidationDataset(gcs_uri=validation_uri)
    return types.CreateTuningJobConfig(**{k: v for k, v in values.items() if v is not None})


def _open_model_config(spec: JobSpec, options: Any, job_id: str, validation_uri: str | None) -> Any:
    """An open model's tuning: LoRA or full, an absolute learning rate, the tuned weights written to Cloud Storage."""
    from google.genai import types

    hp = spec.hyperparameters
    values: dict[str, Any] = {
        "tuned_model_display_name": f"{spec.suffix or spec.name}-{job_id}"[:128],
        "labels": {"fto_job_id": job_id},
        "tuning_mode": types.TuningMode.TUNING_MODE_FULL if options.tuning_mode == "full"
        else types.TuningMode.TUNING_MODE_PEFT_ADAPTER,
        "output_uri": f"gs://{options.bucket}/{options.prefix}/tuned/{job_id}/",
    }  # fmt: skip
    if hp.epochs != "auto":
        values["epoch_count"] = _epochs(hp.epochs)
    if hp.learning_rate is not None:
        values["learning_rate"] = hp.learning_rate
    if hp.batch_size != "auto":
        values["batch_size"] = hp.batch_size
    if validation_uri:
        values["validation_dataset"] = types.TuningValidationDataset(gcs_uri=validation_uri)
    return types.CreateTuningJobConfig(**values)


def _epochs(epochs: int) -> int:
    if not EPOCHS[0] <= epochs <= EPOCHS[1]:
        raise UnsupportedError(
            f"hyperparameters.epochs = {epochs} is outside Vertex's range {EPOCHS[0]}–{EPOCHS[1]}", backend="vertex"
        )
    return epochs


THINKING = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}


def _reinforcement(spec: JobSpec) -> dict[str, Any]:
    """RL tuning's part of CreateTuningJobConfig: the reward, samples per prompt, answer length, evaluations."""
    from google.genai import types

    from fto.backends.vertex.reward import reward_config
    from fto.orchestrator.graders.offered import reward_grader

    rft = spec.rft
    assert rft is not None  # the job file's check requires it for method: rft
    values: dict[str, Any] = {"method": types.TuningMethod.REINFORCEMENT_TUNING}
    values |= reward_config(reward_grader(spec), "vertex")
    if rft.samples_per_prompt != "auto":
        values["samples_per_prompt"] = rft.samples_per_prompt
    if rft.max_new_tokens != "auto":
        values["max_output_tokens"] = rft.max_new_tokens
    if rft.eval_interval != "auto":
        values["evaluate_interval"] = rft.eval_interval
    if rft.reasoning_effort != "auto":
        values["thinking_level"] = THINKING[rft.reasoning_effort]
    return values


def _stats(job: Any) -> Any:
    stats = getattr(job, "tuning_data_stats", None)
    return getattr(stats, "supervised_tuning_data_stats", None) if stats else None


def billable_tokens(job: Any) -> int | None:
    """Tokens Vertex bills the job for, once it has counted them."""
    stats = _stats(job)
    count = getattr(stats, "total_billable_token_count", None) if stats else None
    return int(count) if count is not None else None


def data_stats(job: Any) -> str | None:
    """One line of the statistics Vertex computes over the training data, once it has them."""
    stats = _stats(job)
    if not stats or stats.tuning_dataset_example_count is None:
        return None
    parts = [f"Vertex read {stats.tuning_dataset_example_count} training examples"]
    if stats.total_billable_token_count is not None:
        parts.append(f"{stats.total_billable_token_count} billable tokens")
    if stats.tuning_step_count is not None:
        parts.append(f"{stats.tuning_step_count} steps")
    if stats.total_truncated_example_count:
        parts.append(f"{stats.total_truncated_example_count} examples truncated")
    return ", ".join(parts)
