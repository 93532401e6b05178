"""The local job's worker process: `python -m backends.local.worker JOB_FOLDER LOCK_FD`.

Runs detached from the fto process that started it and reports only through the job folder.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from backends.local.folder import JobFolder
from schemas import JobSpec, JobStatus

AUTO_EPOCHS, AUTO_BATCH_SIZE = 3, 8
AUTO_LR = {"embedded": 3e-3, "pretrained": 2e-4}  # a random-init model needs a far bigger step


class _Stop:
    requested = False


def _read_jsonl(path: str | None) -> list[dict[str, Any]]:
    if not path:
        return []
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def run(folder: JobFolder) -> None:
    config = json.loads(folder.config.read_text())
    spec = JobSpec.model_validate(config["spec"])
    options = config["options"]
    folder.write_status(JobStatus.VALIDATING)

    import torch  # heavy imports after the status write, so a watcher sees the job start at once
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from backends.local import EMBEDDED_MODEL, embedded
    from backends.local.generate import pick_device
    from backends.local.train import TrainSettings, train
    from orchestrator.data.tokenized import encode

    if options.get("threads"):
        torch.set_num_threads(options["threads"])
    device = pick_device(options["device"])
    train_rows = _read_jsonl(config["train_file"])
    validation_rows = _read_jsonl(config["validation_file"])

    is_embedded = options["model"] == EMBEDDED_MODEL
    if is_embedded:
        folder.event("building the embedded tiny Llama and training its tokenizer on the job's data")
        base_path = embedded.build(train_rows, spec.seed, folder.base_dir)
    else:
        base_path = Path(options["model"]).expanduser()
        if not (base_path / "config.json").is_file():
            raise ValueError(f"model folder not found or has no config.json: {base_path}")
    folder.write_status(JobStatus.VALIDATING, base_model=str(base_path))
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = AutoModelForCausalLM.from_pretrained(base_path).to(device)

    hp = spec.hyperparameters
    max_length = hp.max_seq_length or min(getattr(model.config, "max_position_embeddings", 2048), 2048)
    train_set = [encode(tokenizer, row, max_length) for row in train_rows]
    validation_set = [encode(tokenizer, row, max_length) for row in validation_rows]
    train_set = [e for e in train_set if e.trained_tokens]
    if not train_set:
        raise ValueError("no example has assistant tokens left to train on (after truncation)")

    torch.manual_seed(spec.seed)
    lora = LoraConfig(
        r=hp.lora.r,
        lora_alpha=hp.lora.alpha,
        lora_dropout=hp.lora.dropout,
        target_modules=hp.lora.target_modules,
        modules_to_save=embedded.TRAINED_IN_FULL if is_embedded else None,
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(model, lora)
    settings = TrainSettings(
        epochs=AUTO_EPOCHS if hp.epochs == "auto" else hp.epochs,
        batch_size=AUTO_BATCH_SIZE if hp.batch_size == "auto" else hp.batch_size,
        learning_rate=hp.learning_rate or AUTO_LR["embedded" if is_embedded else "pretrained"],
        warmup_ratio=hp.warmup_ratio,
        seed=spec.seed,
        pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
    )
    trained_tokens = sum(e.trained_tokens for e in train_set) * settings.epochs
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    folder.event(
        f"training {len(train_set)} examples for {settings.epochs} epochs on {device.type}; "
        f"{trainable:,} trainable parameters",
        examples=len(train_set),
        epochs=settings.epochs,
        device=device.type,
        trainable_parameters=trainable,
    )
    folder.write_status(JobStatus.RUNNING)
    finished = train(
        model,
        train_set,
        validation_set,
        settings,
        device,
        on_metric=folder.metric,
        should_stop=lambda: _Stop.requested or folder.cancel_file.exists(),
    )
    if not finished:
        folder.event("cancelled", level="warning")
        folder.write_status(JobStatus.CANCELLED)
        return
    model.save_pretrained(folder.adapter_dir)
    tokenizer.save_pretrained(folder.adapter_dir)
    folder.event(f"saved the adapter to {folder.adapter_dir}")
    folder.write_status(JobStatus.SUCCEEDED, fine_tuned_model=str(folder.adapter_dir), trained_tokens=trained_tokens)


def main() -> None:
    folder = JobFolder(Path(sys.argv[1]))
    lock_fd = int(sys.argv[2])  # held until this process exits: the backend's sign of life  # noqa: F841
    signal.signal(signal.SIGTERM, lambda *_: setattr(_Stop, "requested", True))
    folder.write_status(JobStatus.QUEUED, pid=os.getpid())
    try:
        run(folder)
    except BaseException as exc:  # the job must end as failed with its reason, never stay "running"
        traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        folder.event(message, level="error")
        folder.write_status(JobStatus.FAILED, error=message)
        sys.exit(1)


if __name__ == "__main__":
    main()
