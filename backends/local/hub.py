"""Models named by a Hugging Face id: found in the local cache, never downloaded (no torch here: the CLI checks
names before it loads anything)."""

from __future__ import annotations

from pathlib import Path


def cached_model(model_id: str) -> str:
    """The folder of a model in the Hugging Face cache; FileNotFoundError naming the cache when it is not there."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.constants import HF_HUB_CACHE
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        return str(snapshot_download(model_id, local_files_only=True))
    except (LocalEntryNotFoundError, ValueError, OSError):
        raise FileNotFoundError(
            f"{model_id} is neither a model folder nor a model in the Hugging Face cache ({HF_HUB_CACHE})"
        ) from None


def servable(name: str) -> str | None:
    """Why `name` cannot be served (None when it can): a model or adapter folder, or a model in the cache."""
    folder = Path(name)
    if (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file():
        return None
    if folder.is_dir():
        return f"{name} is a folder without config.json or adapter_config.json: not a model"
    try:
        cached_model(name)
    except FileNotFoundError as exc:
        return str(exc)
    return None
