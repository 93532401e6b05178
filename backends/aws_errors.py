"""Failures of boto3 calls (Bedrock, SageMaker, S3) turned into ours: retryable or not, with no secret in the text."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from fto.orchestrator.errors import BackendError, ConfigError
from fto.orchestrator.secrets import redact

T = TypeVar("T")
RETRYABLE = {"ThrottlingException", "ServiceUnavailableException", "InternalServerException", "TooManyRequests",
             "ServiceUnavailable", "InternalFailure"}  # fmt: skip


def call(backend: str, what: str, fn: Callable[[], T]) -> T:
    """Run one boto3 call; its failures become BackendErrors (a missing credential: a ConfigError)."""
    from boto3.exceptions import S3UploadFailedError
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

    try:
        return fn()
    except S3UploadFailedError as exc:  # boto3's transfer manager wraps the S3 error it gave up on
        raise BackendError(redact(f"{what}: {exc}"), backend=backend, retryable=True) from None
    except NoCredentialsError:
        raise ConfigError(
            "no AWS credentials: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE", field=backend
        ) from None
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code", "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        raise BackendError(
            redact(f"{what}: {code}: {error.get('Message', '')}"),
            backend=backend,
            status_code=status,
            retryable=code in RETRYABLE or (status or 0) >= 500,
        ) from None
    except BotoCoreError as exc:
        raise BackendError(redact(f"{what}: {exc}"), backend=backend, retryable=True) from None
