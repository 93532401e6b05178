"""Azure credentials, from the environment only: a key, an Entra ID token in a variable, or azure-identity.

The data plane (files, fine-tuning, inference) takes a key (`api-key` header) or an Entra ID token for
COGNITIVE_SERVICES; the management plane (deployments) takes only an Entra ID token, for MANAGEMENT.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING

from fto.orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from azure.identity import DefaultAzureCredential

COGNITIVE_SERVICES = "https://cognitiveservices.azure.com/.default"
MANAGEMENT = "https://management.azure.com/.default"


def token_provider(scope: str, variable: str | None, backend: str) -> Callable[[], str]:
    """A function giving a current Entra ID token for `scope`: the variable's value when it is set (a token from
    `az account get-access-token`, say), else azure-identity's DefaultAzureCredential (refreshed as it expires)."""
    if variable and os.environ.get(variable):
        return lambda: os.environ[variable]
    try:
        from azure.identity import get_bearer_token_provider
    except ImportError:
        raise ConfigError(
            f"no Azure credential: set {variable} to an Entra ID token for {scope} "
            "(az account get-access-token), or install azure-identity (pip install 'fto[azure]') to use "
            "DefaultAzureCredential",
            field=f"backends.{backend}",
        ) from None
    return get_bearer_token_provider(_default_credential(), scope)


@cache
def _default_credential() -> DefaultAzureCredential:
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()
