"""Conversations → token ids and labels, through the model's own chat template, with assistant-only loss."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

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


def encode(tokenizer: Any, conversation: dict[str, Any], max_length: int) -> Encoded:
    """Tokenize a conversation; labels cover the assistant turns with weight 1, nothing else.

    The mask is built from character spans (rendering each prefix of the chat), because many stock templates
    lack `{% generation %}` markers and cannot produce one themselves.
    """
    messages, tools = conversation["messages"], conversation.get("tools")
    text = _render(tokenizer, messages, tools, generation_prompt=False)
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or message.get("weight", 1) == 0:
            continue
        start = len(_render(tokenizer, messages[:i], tools, generation_prompt=True))
        end = len(_render(tokenizer, messages[: i + 1], tools, generation_prompt=False))
        spans.append((start, end))
    batch = tokenizer(
        text, add_special_tokens=False, return_offsets_mapping=True, truncation=True, max_length=max_length
    )
    ids, offsets = batch["input_ids"], batch["offset_mapping"]
    labels = [
        token if any(s <= begin < e for s, e in spans) else IGNORE
        for token, (begin, _) in zip(ids, offsets, strict=True)
    ]
    return Encoded(input_ids=ids, labels=labels)
