"""Preference rows for DPO tests of any backend: the animal quickstart's right answer preferred to a wrong one, in
OpenAI's preference JSONL."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import ANIMALS


def write_preferences(path: Path, rows: int = 20) -> Path:
    """`rows` preference pairs written to `path`."""
    lines = []
    for line in ANIMALS.read_text().splitlines()[:rows]:
        messages = json.loads(line)["messages"]
        lines.append({"input": {"messages": messages[:-1]}, "preferred_output": [messages[-1]],
                      "non_preferred_output": [{"role": "assistant", "content": "a rock"}]})  # fmt: skip
    path.write_text("".join(json.dumps(row) + "\n" for row in lines))
    return path
