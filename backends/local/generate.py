"""Batched generation from a local model folder or adapter folder, for the eval harness."""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.utils import logging as hf_logging

from fto.backends.base import GenerationParams
from fto.backends.local.hub import cached_model
from fto.backends.local.shared_lock import SharedLock
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
    """A full model folder, a LoRA adapter folder (its base is named in adapter_config.json), or a model in the
    Hugging Face cache by its id (never downloaded here)."""
    folder = Path(path)
    if (folder / "adapter_config.json").is_file():
        from peft import AutoPeftModelForCausalLM

        model = AutoPeftModelForCausalLM.from_pretrained(folder)
    elif (folder / "config.json").is_file():
        model = AutoModelForCausalLM.from_pretrained(folder)
    else:
        folder = Path(cached_model(path))
        model = AutoModelForCausalLM.from_pretrained(folder)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    return model.to(device).eval(), tokenizer


class Generator:
    """Keeps loaded models, so evaluating many examples loads each model once."""

    def __init__(self, device: str = "auto"):
        self.device = pick_device(device)
        self._models: dict[str, tuple[Any, Any]] = {}
        # One caller at a time: fast tokenizers fail when two threads use one ("Already borrowed"), and a model
        # must not be loaded twice. `fto serve` checks prompts in threads while a batch generates.
        self._lock = SharedLock()
        self._engine: Any = None
        self._json_tables: dict[str, Any] = {}

    def loaded(self, model: str) -> tuple[Any, Any]:
        """`model`'s network and tokenizer, loaded on first use."""
        with self._lock:
            if model not in self._models:
                self._models[model] = load(model, self.device)
            return self._models[model]

    def engine(self) -> Any:
        """The continuous-batching engine over these models (`fto serve` streams through it)."""
        from fto.backends.local.engine import Engine

        with self._lock:
            if self._engine is None:
                self._engine = Engine(self.loaded, self._lock, self.device)
            return self._engine

    def encode_chat(
        self, model: str, messages: Sequence[dict[str, Any]], tools: list[dict[str, Any]] | None
    ) -> list[int]:
        """The prompt's tokens: the messages (and tools) through the model's chat template, ready for a reply."""
        with self._lock:
            _, tokenizer = self.loaded(model)
            text = tokenizer.apply_chat_template(
                list(messages), tools=tools, tokenize=False, add_generation_prompt=True
            )
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def encode_text(self, model: str, text: str) -> list[int]:
        """A plain prompt's tokens (the tokenizer's own start token included, as the model was trained)."""
        with self._lock:
            return list(self.loaded(model)[1](text)["input_ids"])

    def takes_tools(self, model: str) -> bool:
        """Whether the model's chat template renders tool definitions."""
        with self._lock:
            template = self.loaded(model)[1].chat_template or ""
            return "tools" in (template if isinstance(template, str) else str(template))

    def context(self, model: str) -> int:
        """The model's context length in tokens (0 when its config does not say)."""
        return int(getattr(self.loaded(model)[0].config, "max_position_embeddings", 0) or 0)

    def vocabulary_size(self, model: str) -> int:
        """How many token ids the model knows."""
        with self._lock:
            return len(self.loaded(model)[1])

    def decode(self, model: str, tokens: Sequence[int]) -> list[str]:
        """Each token's text."""
        with self._lock:
            tokenizer = self.loaded(model)[1]
            return [tokenizer.decode([t]) for t in tokens]

    def score(self, model: str, tokens: Sequence[int], top: int) -> list[tuple[float | None, list[tuple[str, float]]]]:
        """Each token's log-probability given those before it (None for the first) and the `top` likeliest there."""
        with self._lock:
            net, tokenizer = self.loaded(model)
            with torch.no_grad():
                logits = net(input_ids=torch.tensor([list(tokens)], device=self.device)).logits[0].float()
            logp = torch.log_softmax(logits, dim=-1)
            scored: list[tuple[float | None, list[tuple[str, float]]]] = [(None, [])]
            for position in range(1, len(tokens)):
                row = logp[position - 1]
                best = torch.topk(row, top) if top else None
                alternatives = (
                    [(tokenizer.decode([int(i)]), float(v)) for v, i in zip(best.values, best.indices, strict=True)]
                    if best is not None
                    else []
                )
                scored.append((float(row[tokens[position]]), alternatives))
            return scored

    def json_mode(self, model: str) -> Any:
        """For one reply: the function giving the tokens allowed next for it to stay a JSON object."""
        from fto.backends.local.engine import end_ids
        from fto.backends.local.json_mode import json_object, vocabulary

        with self._lock:
            if model not in self._json_tables:
                net, tokenizer = self.loaded(model)
                self._json_tables[model] = vocabulary(tokenizer, sorted(end_ids(net, tokenizer)))
            return json_object(self._json_tables[model])

    def generate(self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams) -> list[Completion]:
        """Replies of `model` (base folder or adapter) to each prompt, generated in batches."""
        with self._lock:
            return self._generate(model, prompts, params)

    def _generate(self, model: str, prompts: Sequence[Sequence[Message]], params: GenerationParams) -> list[Completion]:
        net, tokenizer = self.loaded(model)
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

    def reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        """Mean negative log-likelihood of each conversation's last assistant turn, teacher-forced."""
        with self._lock:
            return self._reference_losses(model, conversations)

    def _reference_losses(self, model: str, conversations: Sequence[Sequence[Message]]) -> list[float]:
        from fto.backends.local.packing import packed_row, token_logprobs
        from fto.backends.local.tokenized import encode
        from fto.orchestrator.data.formats.chat import dump_messages

        net, tokenizer = self.loaded(model)
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
