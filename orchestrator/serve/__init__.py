"""`fto serve`: an OpenAI-compatible fine-tuning API over the local backend (see app.py)."""

from __future__ import annotations

from typing import Any

from fto.orchestrator.errors import ConfigError
from fto.orchestrator.network import is_loopback

__all__ = ["ServeConfig", "check_exposure", "create_app"]


def __getattr__(name: str) -> Any:
    """The app (starlette, the openai SDK's types) loads on first use, so `fto --help` stays quick."""
    if name in ("ServeConfig", "create_app"):
        from fto.orchestrator.serve import app

        return getattr(app, name)  # the app, not this package: `fto --help` must not import it
    raise AttributeError(name)


def check_exposure(host: str, api_key: str | None, key_env: str) -> None:
    """Anyone who can reach the port can train and run models: off loopback, a key is not optional."""
    if api_key is None and not is_loopback(host):
        raise ConfigError(
            f"fto serve on {host} would accept requests from other machines: set {key_env} to an API key "
            "(clients send it as a bearer token), or bind to 127.0.0.1",
            field="--host",
        )
