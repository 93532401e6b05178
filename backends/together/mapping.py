"""Our job schema in Together's terms, and Together's answers in ours. No I/O.

Ranges not fixed here come from Together's model-limits endpoint, which the SDK asks before every create.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fto.orchestrator.errors import UnsupportedError
from fto.schemas import Checkpoint, JobEvent, JobSpec, JobStatus, Metric

STATUSES = {
    "pending": JobStatus.QUEUED,
    "queued": JobStatus.QUEUED,
    "running": JobStatus.RUNNING,
    "compressing": JobStatus.RUNNING,  # the model is trained; Together packs and stores it
    "uploading": JobStatus.RUNNING,
    "cancel_requested": JobStatus.CANCELLING,
    "cancelled": JobStatus.CANCELLED,
    "error": JobStatus.FAILED,
    "completed": JobStatus.SUCCEEDED,
}
SUFFIX_LENGTH = 40  # Together's limit on a model-name suffix
LOCAL_ONLY = ("learning_rate_multiplier",)


def status(value: str) -> JobStatus:
    """Together's job status as ours; one we do not know keeps the job running (polling goes on)."""
    return STATUSES.get(value, JobStatus.RUNNING)


def suffix(spec: JobSpec, job_id: str) -> str:
    """The model-name suffix: the job file's, then our job id (how `find` recognises the job), within the limit."""
    mine = "".join(c if c.isalnum() or c in "-_" else "-" for c in (spec.suffix or ""))
    room = SUFFIX_LENGTH - len(job_id) - 1
    return f"{mine[:room]}-{job_id}" if mine and room > 0 else job_id


def training_arguments(spec: JobSpec, options: Any) -> dict[str, Any]:
    """Keyword arguments of the SDK's `fine_tuning.create` for this job ("auto" leaves Together's default)."""
    hp = spec.hyperparameters
    args: dict[str, Any] = {
        "lora": options.lora,
        "n_evals": options.n_evals,
        "n_checkpoints": options.n_checkpoints,
        "warmup_ratio": hp.warmup_ratio,
        "train_on_inputs": options.train_on_inputs,
    }
    if spec.seed is not None:
        args["random_seed"] = spec.seed
    if hp.epochs != "auto":
        args["n_epochs"] = hp.epochs
    if hp.batch_size != "auto":
        args["batch_size"] = hp.batch_size
    if hp.learning_rate is not None:
        args["learning_rate"] = hp.learning_rate
    if hp.max_seq_length is not None:
        args["max_seq_length"] = hp.max_seq_length
    if options.lora:
        args["lora_r"] = hp.lora.r
        args["lora_alpha"] = int(hp.lora.alpha)
        args["lora_dropout"] = hp.lora.dropout
        modules = hp.lora.target_modules
        args["lora_trainable_modules"] = modules if isinstance(modules, str) else ",".join(modules)
    if spec.method == "dpo":
        args["training_method"] = "dpo"
        args.pop("train_on_inputs")  # a preference pair has no inputs to mask
        if hp.beta != "auto":
            args["dpo_beta"] = hp.beta
    if options.from_checkpoint:
        args["from_checkpoint"] = options.from_checkpoint
    return args


def check_limits(args: dict[str, Any], limits: Any, backend: str) -> None:
    """Refuse, before upload, what Together's limits for the model would refuse at create."""
    epochs = args.get("n_epochs")
    if epochs is not None and not 1 <= epochs <= limits.max_num_epochs:
        raise UnsupportedError(
            f"hyperparameters.epochs = {epochs} is outside Together's range 1–{limits.max_num_epochs} for this model",
            backend=backend,
        )
    rate = args.get("learning_rate")
    if rate is not None and not limits.min_learning_rate <= rate <= limits.max_learning_rate:
        raise UnsupportedError(
            f"hyperparameters.learning_rate = {rate:g} is outside Together's range "
            f"{limits.min_learning_rate:g}–{limits.max_learning_rate:g} for this model",
            backend=backend,
        )
    training = limits.lora_training if args["lora"] else limits.full_training
    if training is None:
        kind = "LoRA" if args["lora"] else "full"
        raise UnsupportedError(f"Together offers no {kind} fine-tuning of this model", backend=backend)
    batch = args.get("batch_size")
    top = training.max_batch_size_dpo if args.get("training_method") == "dpo" else training.max_batch_size
    if batch is not None and not training.min_batch_size <= batch <= top:
        raise UnsupportedError(
            f"hyperparameters.batch_size = {batch} is outside Together's range {training.min_batch_size}–{top}",
            backend=backend,
        )
    if args["lora"] and args["lora_r"] > limits.lora_training.max_rank:
        raise UnsupportedError(
            f"hyperparameters.lora.r = {args['lora_r']} is above Together's {limits.lora_training.max_rank}",
            backend=backend,
        )
    if args.get("n_evals", 0) > limits.max_num_evals:
        raise UnsupportedError(
            f"n_evals = {args['n_evals']} is above Together's {limits.max_num_evals}", backend=backend
        )


def event(item: Any) -> JobEvent:
    """One of Together's job events as ours."""
    level = str(item.level or "info").removeprefix("legacy_i").removeprefix("legacy_")
    return JobEvent(
        created_at=_when(item.created_at),
        level="error" if level == "error" else "warning" if level == "warning" else "info",
        message=f"{item.type}: {item.message}" if item.message else str(item.type),
    )


def metrics(rows: list[dict[str, float]], total_steps: int | None) -> list[Metric]:
    """Together's metric rows (`train/loss`, `eval/loss`, `train/global_step`, …) as ours, one per step."""
    out = []
    for row in rows:
        step = row.get("train/global_step") or row.get("global_step")
        if step is None:
            continue
        out.append(
            Metric(
                step=int(step),
                total_steps=total_steps,
                epoch=row.get("train/epoch"),
                loss=row.get("train/loss"),
                valid_loss=row.get("eval/loss"),
                learning_rate=row.get("train/learning_rate"),
                grad_norm=row.get("train/grad_norm"),
            )
        )
    return out


def checkpoint(item: Any, job_id: str) -> Checkpoint:
    """A saved checkpoint; its model is what `from_checkpoint` and inference accept: JOB_ID:STEP."""
    return Checkpoint(step=item.step, model=f"{job_id}:{item.step}", created_at=_when(item.created_at))


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return datetime.now(UTC)
