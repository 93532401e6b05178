"""The local job's worker process: `python -m fto.backends.local.worker JOB_FOLDER LOCK_FD [--resume]`.

Runs detached from the fto process that started it and reports only through the job folder. Under torchrun
(`processes: N`), every process trains its share and rank 0 alone writes to the folder.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fto.backends.local import EMBEDDED_MODEL, LocalOptions
from fto.backends.local.folder import JobFolder
from fto.backends.local.sizes import AUTO_BATCH_SIZE
from fto.schemas import JobSpec, JobStatus

if TYPE_CHECKING:  # torch loads after the first status write
    from fto.backends.local.train import Trainer, TrainSettings

AUTO_EPOCHS, AUTO_BETA = 3, 0.1
AUTO_RFT_BETA, AUTO_SAMPLES, AUTO_ANSWER_TOKENS = 0.04, 8, 64  # RFT: KL weight, answers per prompt, answer length
AUTO_LR = {"embedded": 3e-3, "lora": 2e-4, "full": 2e-5}  # a random-init model needs a far bigger step


CANCEL_GRACE_SECONDS = 10.0  # a cancelled step may finish; past this, the worker stops without it


class _Stop:
    requested = False  # a cancel arrived (signal or cancel file)
    training = False  # the training loop runs: it stops itself at the next step, keeping a checkpoint
    saving = False  # the loop has ended: the last checkpoint and outputs are being written (never cut short)


class _Cancelled(Exception):
    """Cancelled before training began: nothing to keep."""


def wait_for_slot(folder: JobFolder, options: LocalOptions) -> int | None:
    """Wait, queued, until fewer than `max_workers` local jobs train; returns the held slot's descriptor.

    Slots are files locked for a worker's life (the OS frees them when it exits, however it exits), so jobs
    beyond the limit wait in their own process, cheaply, before anything heavy is loaded.
    """
    if not _is_rank_zero():
        return None  # the other processes of a torchrun job wait for rank 0 in the process group
    slots = folder.path.parents[2] / "local-slots"  # FTO_HOME/backends/: shared by every local-type backend
    slots.mkdir(parents=True, exist_ok=True)
    limit = options.max_workers or _device_slots(options.device)
    announced = False
    while True:
        for index in range(limit):
            fd = os.open(slots / f"slot-{index}.lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        if not announced:
            folder.event(f"queued: {limit} local job(s) are training; this one starts when one ends")
            announced = True
        time.sleep(0.5)


def _device_slots(device: str) -> int:
    """How many jobs the machine fits at once: one per GPU, else one (CPU cores are shared by torch's threads)."""
    if device in ("auto", "cuda") and shutil.which("nvidia-smi"):
        listed = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10).stdout
        return max(1, sum(line.startswith("GPU ") for line in listed.splitlines()))
    return 1


def watch_for_cancel(folder: JobFolder) -> None:
    """A cancel stops the worker promptly whatever it is doing: before training, at once; during a step that
    runs on (a huge example), after a grace period, with the last checkpoint kept."""

    def watch() -> None:
        while not (_Stop.requested or folder.cancel_file.exists()):
            time.sleep(0.2)
        _Stop.requested = True
        if not _Stop.training:
            _thread.interrupt_main()  # loading or encoding: stop now (KeyboardInterrupt in the main thread)
        time.sleep(CANCEL_GRACE_SECONDS)
        if _Stop.saving:
            return
        if _is_rank_zero():
            folder.event(f"cancelled: the step still ran after {CANCEL_GRACE_SECONDS:g} s, so it was cut short",
                         level="warning")  # fmt: skip
            folder.write_status(JobStatus.CANCELLED)
        os._exit(1)

    threading.Thread(target=watch, name="cancel-watch", daemon=True).start()


def _read_jsonl(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _is_rank_zero() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def load_model(job: WorkerJob) -> tuple[Any, Any, str, bool]:
    """The base model and tokenizer: built (embedded), or loaded from a folder or the Hugging Face cache.

    Returns (model, tokenizer, where the base model lives, whether it is the embedded one).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from fto.backends.local import embedded

    folder, options = job.folder, job.options
    if options.model == EMBEDDED_MODEL:
        if not (job.resume or (folder.base_dir / "config.json").exists()) and job.rank_zero:
            folder.event("building the embedded tiny Llama and training its tokenizer on the job's data")
            texts = [m for r in job.train_rows for m in (r["messages"] if "messages" in r else _pair_messages(r))]
            if job.spec.method == "rft":  # the answers graders look for are words the model must be able to say
                texts += [{"content": str(v)} for r in job.train_rows for k, v in r.items() if k != "messages"]
            embedded.build([{"messages": texts}], job.spec.seed, folder.base_dir)
        _wait_for(folder.base_dir / "config.json")
        base: str | Path = folder.base_dir
    else:
        raw = options.model
        base = Path(raw).expanduser()
        if base.exists() and not (base / "config.json").is_file():
            raise ValueError(f"model folder has no config.json: {base}")
        if not base.exists():
            if raw.startswith(("/", ".", "~")) or raw.count("/") != 1:
                raise ValueError(f"model folder not found: {raw}")
            base = raw  # a hub name: only what the Hugging Face cache already holds, never a download
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "attn_implementation": attention_implementation(options.attention),
    }
    if options.tuning == "qlora":
        kwargs["quantization_config"] = _qlora_config()
    try:
        tokenizer = AutoTokenizer.from_pretrained(base, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(base, **kwargs)
    except OSError as exc:
        raise ValueError(
            f"cannot load model {options.model!r}: not in the Hugging Face cache, and fto never downloads "
            f"(put the model in the cache or give its folder) ({str(exc).splitlines()[0]})"
        ) from None
    except ValueError as exc:
        raise ValueError(f"{options.model!r} is not a causal language model transformers can load: {exc}") from None
    return model, tokenizer, str(base), options.model == EMBEDDED_MODEL


def attention_implementation(choice: str) -> str:
    """The attention kernel for packed rows: flash-attention's varlen kernel on CUDA when installed, SDPA on other
    CUDA set-ups, and on CPU attention per example (varlen.py: no varlen kernel there; docs/benchmarks.md)."""
    import importlib.util

    import torch

    from fto.backends.local import varlen

    if choice == "varlen" or (choice == "auto" and not torch.cuda.is_available()):
        return varlen.register()
    if choice != "auto":
        return choice
    if importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _pair_messages(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [*row["input"]["messages"], *row["preferred_output"], *row["non_preferred_output"]]


def _wait_for(path: Path) -> None:
    for _ in range(600):
        if path.exists():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{path} did not appear")


def _qlora_config() -> Any:
    import importlib.util

    import torch

    if not torch.cuda.is_available() or importlib.util.find_spec("bitsandbytes") is None:
        raise ValueError("QLoRA needs a CUDA GPU and the bitsandbytes package; use tuning: lora on this machine")
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16)


def _encode(tokenizer: Any, rows: list[dict[str, Any]], method: str, max_length: int) -> list[Any]:
    from fto.backends.local.tokenized import encode

    if method == "rft":
        from fto.backends.local.rft import prompt_of

        return [prompt_of(tokenizer, row, max_length) for row in rows]
    if method == "sft":
        return [encode(tokenizer, row, max_length) for row in rows]
    pairs = []
    for row in rows:
        prompt = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in row["input"]["messages"]]
        tools = row["input"].get("tools")
        chosen = encode(tokenizer, {"messages": prompt + row["preferred_output"], "tools": tools}, max_length)
        rejected = encode(tokenizer, {"messages": prompt + row["non_preferred_output"], "tools": tools}, max_length)
        pairs.append((chosen, rejected))
    return pairs


def _trained(example: Any) -> bool:
    from fto.backends.local.rft import Prompt

    if isinstance(example, Prompt):
        return bool(example.input_ids)
    parts = example if isinstance(example, tuple) else (example,)
    return all(p.trained_tokens for p in parts)


@dataclass
class WorkerJob:
    """What this worker was asked to do: the job file's spec, the local options, the data, and its role."""

    folder: JobFolder
    spec: JobSpec
    options: LocalOptions
    train_rows: list[dict[str, Any]]
    validation_rows: list[dict[str, Any]]
    resume: bool
    rank_zero: bool
    world: int

    @classmethod
    def read(cls, folder: JobFolder, resume: bool) -> WorkerJob:
        """The job as the backend wrote it into the folder's config."""
        config = json.loads(folder.config.read_text())
        return cls(
            folder=folder,
            spec=JobSpec.model_validate(config["spec"]),
            options=LocalOptions.model_validate(config["options"]),
            train_rows=_read_jsonl(config["train_file"]),
            validation_rows=_read_jsonl(config["validation_file"]),
            resume=resume,
            rank_zero=_is_rank_zero(),
            world=int(os.environ.get("WORLD_SIZE", "1")),
        )


def run(folder: JobFolder, resume: bool) -> None:
    """Train one job to its end, reporting through its folder: the recipe, one named step at a time."""
    if _is_rank_zero():
        folder.write_status(JobStatus.VALIDATING)  # before the heavy imports, so a watcher sees the start at once
    job = WorkerJob.read(folder, resume)
    device = setup_runtime(job)
    model, tokenizer, base_path, is_embedded = load_model(job)
    if job.rank_zero:
        folder.write_status(JobStatus.VALIDATING, base_model=base_path)
    model = place(model, device, job.options)
    train_set, validation_set = encode_data(job, tokenizer, model)
    model, reference = attach_adapters(model, job, is_embedded)
    settings = train_settings(job, tokenizer, is_embedded, device)
    trainer = build_trainer(job, model, (train_set, validation_set), settings, device, reference, tokenizer)
    outcome = train(job, trainer, device, tokenizer)
    save(job, model, tokenizer, trainer, outcome)


def setup_runtime(job: WorkerJob) -> Any:
    """Process group (under torchrun), threads and quiet logs; returns the torch device to train on."""
    import torch
    import torch.distributed as dist
    from transformers.utils import logging as hf_logging

    from fto.backends.local.generate import pick_device

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    device = pick_device(job.options.device)
    if job.world > 1 and device.type == "cuda":  # one GPU per process: the one its local rank names
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if job.world > 1 and not dist.is_initialized():  # under Ray Train the group is set up already
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if job.options.threads:
        torch.set_num_threads(job.options.threads)
    return device


def place(model: Any, device: Any, options: LocalOptions) -> Any:
    """The model on its device, in bf16 where the GPU supports it (QLoRA's weights are placed when loaded)."""
    import torch

    if options.tuning == "qlora":
        return model
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        model = model.to(torch.bfloat16)
    return model.to(device)


def encode_data(job: WorkerJob, tokenizer: Any, model: Any) -> tuple[list[Any], list[Any]]:
    """Train and validation examples as token ids and labels, through the model's chat template."""
    hp = job.spec.hyperparameters
    max_length = hp.max_seq_length or min(getattr(model.config, "max_position_embeddings", 2048), 4096)
    train_set = [e for e in _encode(tokenizer, job.train_rows, job.spec.method, max_length) if _trained(e)]
    validation_set = [e for e in _encode(tokenizer, job.validation_rows, job.spec.method, max_length) if _trained(e)]
    if not train_set:
        raise ValueError(
            "no example has assistant tokens left to train on (after truncation to "
            f"{max_length} tokens); raise hyperparameters.max_seq_length or check the data"
        )
    return train_set, validation_set


def attach_adapters(model: Any, job: WorkerJob, is_embedded: bool) -> tuple[Any, Any]:
    """LoRA adapters on the model (unless tuning: full); returns it and DPO's reference (the adapter switched off)."""
    import torch

    torch.manual_seed(job.spec.seed)
    if job.options.tuning == "full":
        if job.spec.method in ("dpo", "rft"):
            raise ValueError(
                f"{job.spec.method.upper()} with full fine-tuning would need a second copy of the model "
                "(its reference); use tuning: lora"
            )
        return model, None
    from peft import LoraConfig, get_peft_model

    from fto.backends.local import embedded

    lora_spec = job.spec.hyperparameters.lora
    lora = LoraConfig(
        r=lora_spec.r,
        lora_alpha=lora_spec.alpha,  # type: ignore[arg-type]  # peft hints int, scales by any number
        lora_dropout=lora_spec.dropout,
        target_modules=lora_spec.target_modules,
        modules_to_save=embedded.TRAINED_IN_FULL if is_embedded else None,
        task_type="CAUSAL_LM",
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as exc:
        raise ValueError(f"LoRA target modules {lora_spec.target_modules!r} do not fit this model: {exc}") from None
    return model, model.disable_adapter


def batch_layout(options: LocalOptions, device: Any) -> Literal["packed", "buckets", "padded"]:
    """How micro-batches are laid out: the job's choice, else packed rows — on CPU too, with or without native bf16:
    length-grouped buckets measured slower in fp32 as well, on this CPU and with its kernels held to AVX2
    (docs/benchmarks.md, issue 39)."""
    if not options.packing:
        return "padded"
    return "packed" if options.batching == "auto" else options.batching


def train_settings(job: WorkerJob, tokenizer: Any, is_embedded: bool, device: Any) -> TrainSettings:
    """The job file's hyperparameters and the local options, with fto's defaults for "auto"."""
    from fto.backends.local.train import TrainSettings

    hp, options = job.spec.hyperparameters, job.options
    auto_lr = AUTO_LR["embedded" if is_embedded else ("full" if options.tuning == "full" else "lora")]
    return TrainSettings(
        epochs=AUTO_EPOCHS if hp.epochs == "auto" else hp.epochs,
        batch_size=AUTO_BATCH_SIZE if hp.batch_size == "auto" else hp.batch_size,
        learning_rate=hp.learning_rate or auto_lr * _multiplier(hp.learning_rate_multiplier),
        warmup_ratio=hp.warmup_ratio,
        seed=job.spec.seed,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        batch_tokens=options.batch_tokens,
        layout=batch_layout(options, device),
        schedule=options.schedule,
        early_stopping_patience=options.early_stopping_patience,
        checkpoint_every=options.checkpoint_every,
        method=job.spec.method,
        beta=(AUTO_RFT_BETA if job.spec.method == "rft" else AUTO_BETA) if hp.beta == "auto" else hp.beta,
        frozen_bf16=frozen_bf16(options, device),
    )


def frozen_bf16(options: LocalOptions, device: Any) -> bool:
    """Whether the frozen weights multiply in bf16 (precision.py): on CPU, by default where it is native, and
    never for FSDP, whose sharded weights are only whole during their own layer's forward."""
    from fto.backends.local.precision import cpu_multiplies_bf16

    if device.type != "cpu" or options.frozen_precision == "float32" or (options.shard and options.processes > 1):
        return False
    return options.frozen_precision == "bfloat16" or cpu_multiplies_bf16()


def build_trainer(
    job: WorkerJob,
    model: Any,
    data: tuple[list[Any], list[Any]],
    settings: TrainSettings,
    device: Any,
    reference: Any,
    tokenizer: Any,
) -> Trainer:
    """The trainer over the (sharded, with shard: true) model, restored from the last checkpoint when resuming."""
    from fto.backends.local import checkpoint
    from fto.backends.local.train import Trainer

    sharded = job.options.shard and job.world > 1
    if sharded:
        if job.resume:
            raise ValueError("resuming a sharded (FSDP) run is not supported; resume with shard: false")
        _shard(model)
    if job.spec.method == "rft":
        trainer: Trainer = rft_trainer(job, model, data, settings, device, reference, tokenizer)
    else:
        trainer = Trainer(model, data[0], data[1], settings, device, reference, sharded=sharded)
    saved = checkpoint.latest(job.folder.checkpoints_dir) if job.resume else None
    if saved is not None:
        trainer.load_state(checkpoint.load(saved))
        if job.rank_zero:
            job.folder.event(f"resumed from {saved.name} (step {trainer.position.step} of {trainer.total_steps})")
    elif job.resume and job.rank_zero:
        job.folder.event("no checkpoint to resume from: starting over", level="warning")
    return trainer


def rft_trainer(
    job: WorkerJob,
    model: Any,
    data: tuple[list[Any], list[Any]],
    settings: TrainSettings,
    device: Any,
    reference: Any,
    tokenizer: Any,
) -> Trainer:
    """GRPO over the job's prompts, rewarded by the grader `rft.grader` names (rft.py)."""
    from fto.backends.local.rft import RftSettings, RftTrainer, Scored
    from fto.orchestrator.graders.run import grade_many, sample_of

    spec = job.spec
    assert spec.rft is not None  # the job file's check requires it for method: rft
    grader = next(g for g in spec.graders if g.name == spec.rft.grader)

    def reward(texts: list[str], items: list[dict[str, Any]]) -> list[Scored]:
        return [(g.value, g.error, g.parts) for g in grade_many(grader, [sample_of(t) for t in texts], items)]

    rft = RftSettings(
        samples_per_prompt=AUTO_SAMPLES if spec.rft.samples_per_prompt == "auto" else spec.rft.samples_per_prompt,
        max_new_tokens=AUTO_ANSWER_TOKENS if spec.rft.max_new_tokens == "auto" else spec.rft.max_new_tokens,
        temperature=spec.rft.temperature,
        on_grader_error=spec.rft.on_grader_error,
    )
    log = job.folder.path / "rollouts.jsonl" if job.rank_zero else None
    return RftTrainer(model, data[0], data[1], settings, rft, device, tokenizer, reward, reference, log)


def train(job: WorkerJob, trainer: Trainer, device: Any, tokenizer: Any) -> str:
    """Run the training loop; returns how it ended ('finished', 'stopped' or 'early-stopped')."""
    settings, folder = trainer.settings, job.folder
    if job.rank_zero:
        trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
        kind = {"dpo": "preference pairs", "rft": "prompts"}.get(job.spec.method, "examples")
        folder.event(
            f"training {len(trainer.train_set)} {kind} for {settings.epochs} epochs on {device.type} "
            f"({job.options.tuning}, {settings.layout} batches"
            f"{', frozen weights multiplied in bf16' if settings.frozen_bf16 else ''}); "
            f"{trainable:,} trainable parameters",
            examples=len(trainer.train_set),
            epochs=settings.epochs,
            device=device.type,
            trainable_parameters=trainable,
        )
        # the values "auto" became, as hosted providers report them once a job runs
        resolved = {
            "n_epochs": settings.epochs,
            "batch_size": settings.batch_size,
            "learning_rate": settings.learning_rate,
        }
        folder.write_status(JobStatus.RUNNING, hyperparameters=resolved)
    _Stop.training = True
    outcome = trainer.run(
        on_metric=folder.metric,
        should_stop=lambda: _Stop.requested or folder.cancel_file.exists(),
        on_checkpoint=lambda: _save_checkpoint(folder, trainer, tokenizer if job.options.tuning != "full" else None),
        on_event=folder.event,
    )
    _Stop.saving = True
    return outcome


def save(job: WorkerJob, model: Any, tokenizer: Any, trainer: Trainer, outcome: str) -> None:
    """The last checkpoint, then the adapter (or model), the merged model when asked, and the final status."""
    folder, options = job.folder, job.options
    full_state = _gather(model) if trainer.sharded else None  # every process takes part; rank 0 writes
    if not job.rank_zero:
        return
    if not trainer.sharded:
        _save_checkpoint(folder, trainer)  # the last one: `fto resume` continues from here after a cancel
    if outcome == "stopped":
        folder.event("cancelled; the last checkpoint is kept", level="warning")
        folder.write_status(JobStatus.CANCELLED)
        return
    full = options.tuning == "full"
    output = folder.model_dir if full else folder.adapter_dir
    model.save_pretrained(output, **({"state_dict": full_state} if full_state is not None else {}))
    tokenizer.save_pretrained(output)
    folder.event(f"saved the {'model' if full else 'adapter'}")
    if options.merge and not full and not trainer.sharded:
        merged = model.merge_and_unload()
        merged.save_pretrained(folder.merged_dir)
        tokenizer.save_pretrained(folder.merged_dir)
        folder.event("saved the merged model (transformers layout)")
    _peak_memory(folder)
    folder.write_status(JobStatus.SUCCEEDED, fine_tuned_model=str(output), trained_tokens=trainer.trained_tokens())


def _peak_memory(folder: JobFolder) -> None:
    """The job's peak memory as an event, beside `fto plan`'s estimate: the GPU's allocator peak, or on a CPU the
    process's peak resident size."""
    import resource

    import torch

    if torch.cuda.is_available() and torch.cuda.max_memory_allocated() > 0:
        peak, what = torch.cuda.max_memory_allocated(), "GPU memory allocated"
    else:  # ru_maxrss is in KiB on Linux
        peak, what = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "resident memory"
    folder.event(f"peak {what}: {peak / 1024**3:.2f} GiB", peak_memory_bytes=peak)


def _save_checkpoint(folder: JobFolder, trainer: Trainer, tokenizer: Any = None) -> None:
    """The training state (for `fto resume`) and, with a tokenizer, the adapter as it is now: a model that eval
    can query (`eval: {checkpoint: best}` picks the one before validation loss started rising). Adapters are
    small, so every periodic one is kept; full fine-tunes keep none (a model per checkpoint would be too big)."""
    from fto.backends.local import checkpoint

    step = trainer.position.step
    if (latest := checkpoint.latest(folder.checkpoints_dir)) and latest.stem == f"step-{step:08d}":
        return  # this step is saved already (the last periodic checkpoint can fall on the final step)
    path = checkpoint.save(folder.checkpoints_dir, step, trainer.state())
    folder.saved_checkpoint(path)
    if tokenizer is None or trainer.sharded:
        folder.event(f"checkpoint {path.name}", step=step)
        return
    adapter = folder.checkpoints_dir / f"adapter-step-{step:08d}"
    model: Any = trainer.model  # a peft model: saving writes the adapter alone
    model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    folder.event(f"checkpoint {path.name}; adapter {adapter.name}", step=step, checkpoint=str(adapter))


def _shard(model: Any) -> None:
    """FSDP: each decoder layer's weights (and the rest) split across the processes, for models too big for one."""
    import torch
    from torch.distributed.fsdp import fully_shard

    layers = next(
        m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == model.config.num_hidden_layers
    )
    for layer in layers:
        fully_shard(layer)
    fully_shard(model)


def _gather(model: Any) -> dict[str, Any]:
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def main() -> None:
    folder = JobFolder(Path(sys.argv[1]))
    lock_fd = int(sys.argv[2])  # held until this process exits: the backend's sign of life  # noqa: F841
    resume = "--resume" in sys.argv[3:]
    signal.signal(signal.SIGTERM, lambda *_: setattr(_Stop, "requested", True))
    if _is_rank_zero() and "LOCAL_RANK" not in os.environ:  # under torchrun the backend recorded the launcher's pid
        folder.write_status(JobStatus.QUEUED, pid=os.getpid())
    watch_for_cancel(folder)
    try:
        options = LocalOptions.model_validate(json.loads(folder.config.read_text())["options"])
        slot = wait_for_slot(folder, options)  # noqa: F841  (held until this process exits)
        run(folder, resume)
    except BaseException as exc:  # the job must end as failed with its reason, never stay "running"
        traceback.print_exc()
        if _Stop.requested and isinstance(exc, KeyboardInterrupt | _Cancelled):
            if _is_rank_zero():
                folder.event("cancelled before training began", level="warning")
                folder.write_status(JobStatus.CANCELLED)
            sys.exit(1)
        if _is_rank_zero():
            message = f"{type(exc).__name__}: {exc}"
            if "out of memory" in str(exc).lower():
                message += " (lower hyperparameters.batch_size or the local backend's batch_tokens)"
            folder.event(message, level="error")
            folder.write_status(JobStatus.FAILED, error=message)
        sys.exit(1)
    finally:
        with contextlib.suppress(Exception):
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def _multiplier(value: float | str) -> float:
    """learning_rate_multiplier scales the default rate, as hosted services scale theirs."""
    return 1.0 if value == "auto" else float(value)


if __name__ == "__main__":
    main()
