"""Records → token ids and labels through a model's own chat template, with an assistant-only loss mask.

This is the local backend's training format (`fto data convert --to local --model M`). The template is rendered by the
tokenizer itself (`apply_chat_template`), so the text is exactly what the model's authors intended.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from fto.orchestrator.data.formats.base import Format, RecordError, Warn
from fto.orchestrator.data.formats.chat import dump_messages
from fto.orchestrator.errors import DataError
from fto.schemas import Conversation, Record

IGNORE = -100  # label of tokens the loss skips


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def trained_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def _render(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tools=tools, tokenize=False, add_generation_prompt=generation_prompt)


def assistant_spans(tokenizer: Any, messages: list[dict[str, Any]], tools: Any, text: str) -> list[tuple[int, int]]:
    """Character spans of the assistant turns (weight 1) in the rendered `text`.

    Many stock templates lack `{% generation %}` markers, so the spans come from rendering each prefix of the
    chat: a turn starts where the prompt for it ends and stops where the chat through it ends.
    """
    spans: list[tuple[int, int]] = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        before = _render(tokenizer, messages[:i], tools, generation_prompt=True) if i else ""
        through = _render(tokenizer, messages[: i + 1], tools, generation_prompt=False)
        if not (text.startswith(before) and text.startswith(through.rstrip())):
            # A template that renders a prefix differently (e.g. it drops past reasoning): find the content.
            start = text.find(message.get("content") or "", spans[-1][1] if spans else 0)
            if start < 0:
                raise DataError(f"cannot locate assistant turn {i} in the rendered chat template")
            spans.append((start, start + len(message.get("content") or "")))
            continue
        spans.append((len(before), len(through.rstrip()) if through.rstrip() else len(through)))
    return spans


def encode(tokenizer: Any, conversation: dict[str, Any], max_length: int) -> Encoded:
    """Tokenize one OpenAI-chat-shaped conversation; labels cover its weight-1 assistant turns, nothing else."""
    messages, tools = conversation["messages"], conversation.get("tools")
    text = _render(tokenizer, messages, tools, generation_prompt=False)
    spans = assistant_spans(tokenizer, messages, tools, text)
    batch = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length
    )
    ids, offsets = batch["input_ids"], batch["offset_mapping"]
    labels = [
        token if any(s <= begin < e for s, e in spans) else IGNORE
        for token, (begin, _) in zip(ids, offsets, strict=True)
    ]
    return Encoded(input_ids=ids, labels=labels)


def as_chat(record: Record) -> dict[str, Any]:
    """A conversation as the chat dict a tokenizer's chat template takes."""
    if not isinstance(record, Conversation):
        raise DataError("the local format holds SFT conversations; preference pairs are trained with method: dpo")
    chat: dict[str, Any] = {"messages": dump_messages(record.messages)}
    if record.tools:
        chat["tools"] = [{"type": "function", "function": t.model_dump(exclude_none=True)} for t in record.tools]
    return chat


class TokenIds(Format):
    """The local trainer's own format: {"input_ids", "labels"} per line, through `model`'s chat template."""

    name: ClassVar[str] = "token_ids"
    description: ClassVar[str] = "token ids and labels via a model's chat template (assistant-only loss)"
    kinds: ClassVar[frozenset[str]] = frozenset({"sft"})

    def __init__(self, model: str, max_length: int):
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise DataError("writing token ids needs the local extra: pip install 'fto[local]'") from None
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(model)
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load a tokenizer from {model}: {exc}") from None
        if not self.tokenizer.chat_template:
            raise DataError(f"the tokenizer in {model} has no chat template")
        self.max_length = max_length

    def detect(self, obj: dict[str, Any]) -> bool:
        return False  # written for the trainer, never read back as examples

    def parse(self, obj: dict[str, Any], warn: Warn) -> Record:
        raise RecordError("unknown_format", None, "token ids are the trainer's input, not examples to read")

    def dump(self, record: Record) -> dict[str, Any]:
        encoded = encode(self.tokenizer, as_chat(record), self.max_length)
        if not encoded.trained_tokens:
            raise RecordError("no_trained_token", None, "no assistant token left to train on (cut by max_length?)")
        return {"input_ids": encoded.input_ids, "labels": encoded.labels}


@dataclass(frozen=True)
class Prompt:
    """One training prompt: its tokens (through the chat template, ready for an answer) and the row graders read."""

    input_ids: list[int]
    item: dict[str, Any]
    trained_tokens: int = 0  # nothing of the prompt is trained on


def prompt_of(tokenizer: Any, row: dict[str, Any], max_length: int) -> Prompt:
    """A training row (messages, and the fields graders read) as a prompt: its messages up to the answer, through
    the chat template; the item is what `{{ item.* }}` reads, as in evaluation."""
    from fto.orchestrator.data.formats import get_format
    from fto.orchestrator.data.formats.chat import dump_messages
    from fto.orchestrator.graders.run import item_of

    conversation: Any = get_format("chat").parse(row, lambda *_: None)
    messages = list(conversation.messages)
    while messages and messages[-1].role == "assistant":  # a reference answer is the grader's, not the prompt's
        messages.pop()
    text = tokenizer.apply_chat_template(
        dump_messages(messages), tools=row.get("tools"), tokenize=False, add_generation_prompt=True
    )
    ids = tokenizer(text, add_special_tokens=False, truncation=True, max_length=max_length)["input_ids"]
    return Prompt(list(ids), item_of(conversation))
