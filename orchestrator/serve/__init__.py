"""`fto serve`: an OpenAI-compatible fine-tuning API over the local backend (see app.py)."""

from __future__ import annotations

from typing import Any

from fto.orchestrator.errors import ConfigError
from fto.orchestrator.network import is_loopback

__all__ = ["ServeConfig", "check_exposure", "create_app"]
MIN_KEY_LENGTH = 16


def __getattr__(name: str) -> Any:
    """The app (starlette, the openai SDK's types) loads on first use, so `fto --help` stays quick."""
    if name in ("ServeConfig", "create_app"):
        from fto.orchestrator.serve import app

        return getattr(app, name)  # the app, not this package: `fto --help` must not import it
    raise AttributeError(name)


def check_exposure(host: str, api_key: str | None, key_env: str, command: str = "fto serve") -> None:
    """Anyone who can reach the port can train and run models: off loopback, a key is not optional, and a key
    must be one (not blank, not short)."""
    if api_key is not None and (len(api_key.strip()) < MIN_KEY_LENGTH or api_key != api_key.strip()):
        raise ConfigError(
            f"{key_env} must hold a key of at least {MIN_KEY_LENGTH} characters, without surrounding spaces",
            field=key_env,
        )
    if api_key is None and not is_loopback(host):
        raise ConfigError(
            f"{command} on {host} would accept requests from other machines: set {key_env} to an API key "
            "(clients send it as a bearer token), or bind to 127.0.0.1",
            field="--host",
        )
