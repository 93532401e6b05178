"""The data layer: read datasets into canonical records, split them, write them for backends."""

from orchestrator.data.load import DatasetSplits, load_splits
from orchestrator.data.openai_chat import read_openai_chat, write_openai_chat

__all__ = ["DatasetSplits", "load_splits", "read_openai_chat", "write_openai_chat"]
