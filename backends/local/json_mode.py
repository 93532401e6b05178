"""JSON mode (`response_format: json_object`): at each step only the tokens that keep the reply valid JSON.

lm-format-enforcer does the parsing; its own transformers glue predates transformers 5, so the vocabulary table it
needs is built here, the way that glue builds it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from lmformatenforcer import JsonSchemaParser, TokenEnforcer, TokenEnforcerTokenizerData


def vocabulary(tokenizer: Any, end_ids: Sequence[int]) -> TokenEnforcerTokenizerData:
    """The enforcer's table of a tokenizer's tokens (built once per model: it decodes every token)."""
    zero = tokenizer.encode("0", add_special_tokens=False)[-1]
    special = set(tokenizer.all_special_ids)
    regular = []
    for token in range(len(tokenizer)):
        if token in special:
            continue
        after_zero = tokenizer.decode([zero, token])[1:]  # keeps the leading space a word-start token carries
        regular.append((token, after_zero, len(after_zero) > len(tokenizer.decode([token]))))

    def decode(tokens: list[int]) -> str:
        return str(tokenizer.decode(tokens)).rstrip("\ufffd")

    return TokenEnforcerTokenizerData(regular, decode, list(end_ids), False, len(tokenizer))


def json_object(table: TokenEnforcerTokenizerData) -> Callable[[list[int]], Sequence[int]]:
    """For one reply: the tokens allowed after a token sequence (prompt and reply so far) for JSON to follow."""
    enforcer = TokenEnforcer(table, JsonSchemaParser({"type": "object"}))
    return lambda tokens: enforcer.get_allowed_tokens(tokens).allowed_tokens
