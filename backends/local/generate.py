"""Batched generation from a local model folder or adapter folder, for the eval harness."""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from fto.backends.base import GenerationParams
from fto.schemas import Completion, Message

# The eval shares the user's terminal with our own progress bars: keep transformers' quiet.
hf_logging.set_verbosity_error()
hf_logging.disable_progress_bar()
warnings.filterwarnings("ignore", category=FutureWarning, module="transformers")

BATCH = 32


def pick_device(choice: str) -> torch.device:
    """The torch device for a `device` option (auto: CUDA, then MPS, then CPU)."""
    if choice != "auto":
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def load(path: str, device: torch.device) -> tuple[Any, Any]:
    """A full model folder, or a LoRA adapter folder (its base is named in adapter_config.json)."""
    folder = Path(path)
    if (folder / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder)
    elif (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder)
    else:
        raise FileNotFoundError(f"not a model or adapter folder: {folder}")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.to(device).eval(), tokenizer


class Generator:
    """Keeps loaded models, so evaluating many examples loads each model once."""

    def __init__(self, device: str = "auto"):
        self.device = pick_device(device)
        self._models: dict[str, tuple[Any, Any]] = {}
        # One caller at a time: fast tokenizers fail when two threads use one ("Already borrowed"), and a model
        # must not be loaded twice. `fto serve` checks prompts in threads while a batch generates.
        self._lock = threading.RLock()

    def generate(self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams) -> list[Completion]:
        """Replies of `model` (base folder or adapter) to each prompt, generated in batches."""
        with self._lock:
            return self._generate(model, prompts, params)

    def _generate(self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams) -> list[Completion]:
        if model not in self._models:
            self._models[model] = load(model, self.device)
        net, tokenizer = self._models[model]
        tokenizer.padding_side = "left"  # generated tokens must follow each prompt directly
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        torch.manual_seed(params.seed)
        outputs: list[Completion] = []
        for k in range(0, len(prompts), BATCH):
            texts = [
                tokenizer.apply_chat_template(
                    [m.model_dump(exclude_none=True, exclude={"weight"}) for m in messages],
                    tokenize=False,
                    add_generation_prompt=True,
                )
                for messages in prompts[k : k + BATCH]
            ]
            batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
            sampling = (
                {"do_sample": True, "temperature": params.temperature}
                if params.temperature > 0
                else {"do_sample": False}
            )
            started = time.perf_counter()
            with torch.no_grad():
                out = net.generate(
                    **batch,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=pad_id,
                    eos_token_id=tokenizer.eos_token_id,
                    **sampling,
                )
            width = batch["input_ids"].shape[1]
            seconds = (time.perf_counter() - started) / len(texts)  # the batch's time, shared by its prompts
            for prompt_mask, row in zip(batch["attention_mask"], out, strict=True):
                new = row[width:]
                ended = (new == tokenizer.eos_token_id).nonzero()
                length = int(ended[0]) + 1 if len(ended) else len(new)
                outputs.append(
                    Completion(
                        text=tokenizer.decode(new, skip_special_tokens=True).strip(),
                        input_tokens=int(prompt_mask.sum()),
                        output_tokens=length,
                        seconds=seconds,
                    )
                )
        return outputs

    def check_prompt(self, model: str, messages: Sequence[Message], params: GenerationParams) -> int:
        """The prompt's length in tokens; a ValueError when prompt and reply cannot fit the model's context."""
        with self._lock:
            return self._check_prompt(model, messages, params)

    def _check_prompt(self, model: str, messages: Sequence[Message], params: GenerationParams) -> int:
        if model not in self._models:
            self._models[model] = load(model, self.device)
        net, tokenizer = self._models[model]
        chat = [m.model_dump(exclude_none=True, exclude={"weight"}) for m in messages]
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
        tokens = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        context = int(getattr(net.config, "max_position_embeddings", 0) or 0)
        if context and tokens + params.max_new_tokens > context:
            raise ValueError(
                f"the prompt has {tokens} tokens and the reply may have {params.max_new_tokens}: together more than "
                f"this model's context of {context} tokens"
            )
        return tokens

    def reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        """Mean negative log-likelihood of each conversation's last assistant turn, teacher-forced."""
        with self._lock:
            return self._reference_losses(model, conversations)

    def _reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        from fto.backends.local.packing import packed_row, token_logprobs
        from fto.backends.local.tokenized import encode
        from fto.orchestrator.data.formats.chat import dump_messages

        if model not in self._models:
            self._models[model] = load(model, self.device)
        net, tokenizer = self._models[model]
        losses = []
        with torch.no_grad():
            for messages in conversations:
                *before, last = list(messages)
                chat = [{**m, "weight": 0} if m["role"] == "assistant" else m for m in dump_messages(before)]
                encoded = encode(tokenizer, {"messages": [*chat, *dump_messages([last])]}, 4096)
                if not encoded.trained_tokens:
                    losses.append(float("nan"))
                    continue
                logp, _, _ = token_logprobs(net, packed_row([encoded], self.device))
                losses.append(float(-logp.mean()))
        return losses
