"""The token limit a check flags long examples against, and the counter it counts with: a provider's model's
(through its backend), or `--max-tokens` with a cl100k estimate."""

from __future__ import annotations

from collections.abc import Callable

from fto.backends.tokenizers import ESTIMATE_ENCODING, tiktoken_counter


def token_limit(
    target: str | None, model: str | None, max_tokens: int | None
) -> tuple[int | None, Callable[[str], int]]:
    """(limit, count): `max_tokens` when given, else the target model's limit; counted as the target counts."""
    if target:
        from fto.backends import registry

        backend = registry.backend_class(target, field="--for")
        chosen, card = backend.describe().model(model)
        counter = backend.token_counter(chosen)
        return (max_tokens or (card.max_tokens_per_example if card else None)), counter.count
    return max_tokens, tiktoken_counter(ESTIMATE_ENCODING, False, "an estimate").count
