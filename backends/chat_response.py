"""A reply in OpenAI's chat-completion shape (what the openai, together and fireworks-ai SDKs return) as ours."""

from __future__ import annotations

from typing import Any

from fto.orchestrator.errors import BackendError
from fto.schemas import Completion


def completion(response: Any, backend: str) -> Completion:
    """The first choice's text, with the tokens the provider counted; no choice at all is worth a retry."""
    if not response.choices:
        raise BackendError("chat completion: the response has no choices", backend=backend, retryable=True)
    message = response.choices[0].message
    content = message.content if message else None
    usage = response.usage
    return Completion(
        text=content if isinstance(content, str) else "",  # some SDKs type content as text or a list of parts
        input_tokens=usage.prompt_tokens if usage else None,
        output_tokens=usage.completion_tokens if usage else None,
    )
