"""Tool calls read from a reply, in the two forms chat templates teach models: Hermes/Qwen's
`<tool_call>{"name": …, "arguments": {…}}</tool_call>` blocks, or (Llama 3.1's) a reply that is one JSON object
naming a function with its `arguments` or `parameters`."""

from __future__ import annotations

import json
import re
import secrets
from typing import Any

BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.DOTALL)


def tool_calls(text: str, names: set[str]) -> list[dict[str, Any]]:
    """The calls of known functions in `text`, in OpenAI's shape; none when the reply is plain text."""
    blocks = BLOCK.findall(text) or [text.strip()]
    calls = []
    for block in blocks:
        try:
            data = json.loads(block)
        except ValueError:
            continue
        if not isinstance(data, dict) or data.get("name") not in names:
            continue
        arguments = data.get("arguments", data.get("parameters", {}))
        if not isinstance(arguments, dict):
            continue
        calls.append(
            {
                "id": f"call_{secrets.token_hex(12)}",
                "type": "function",
                "function": {"name": data["name"], "arguments": json.dumps(arguments)},
            }
        )
    return calls
