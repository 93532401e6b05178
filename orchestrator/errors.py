"""One error hierarchy: the CLI turns any FtoError into one clear line and a non-zero exit."""

from __future__ import annotations


class FtoError(Exception):
    """A problem the user can act on; its message is complete without a traceback."""

    exit_code = 1


class InputError(FtoError):
    """Bad input in a file: names the file, the line and the field."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        code: str | None = None,
    ):
        self.message = message
        self.file = file
        self.line = line
        self.field = field
        self.code = code  # a short name for the kind of problem, as validation reports list them
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file or ""
        if self.line is not None:
            where += f":{self.line}"
        head = ": ".join(part for part in (where, self.field) if part)
        return f"{head}: {self.message}" if head else self.message


class ConfigError(InputError):
    """The job file or a CLI choice is wrong."""


class DataError(InputError):
    """A dataset file is wrong."""


class NotFoundError(FtoError):
    """An experiment or job id that the store does not know."""


class BackendError(FtoError):
    """A provider or worker refused or failed; `retryable` says whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        backend: str,
        status_code: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
    ):
        self.backend = backend
        self.status_code = status_code
        self.retryable = retryable
        self.retry_after = retry_after  # seconds the provider asked us to wait (Retry-After)
        super().__init__(f"{backend}: {message}")


class UnsupportedError(BackendError):
    """The backend cannot do what the job asks (a method, a hyperparameter); raised before any upload."""
