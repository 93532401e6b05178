"""`fto serve`'s errors, answered in OpenAI's error shape: {"error": {"message", "type", "param", "code"}}."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response


class ApiError(Exception):
    """A request refused with an HTTP status; the message is safe to show to the client."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
    ):
        super().__init__(message)
        self.status, self.kind, self.param, self.code = status, kind, param, code

    def body(self) -> dict[str, str | None]:
        """The error's fields in OpenAI's shape (the value of its "error" key)."""
        return {"message": str(self), "type": self.kind, "param": self.param, "code": self.code}


class NotFound(ApiError):
    """No such file, upload, job or model."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(404, message, param=param)


class Invalid(ApiError):
    """A request the server refuses as invalid (400); `param` names the field."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(400, message, param=param)


def error_response(
    status: int,
    message: str,
    kind: str,
    param: str | None = None,
    code: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """An error in OpenAI's shape."""
    body = {"error": ApiError(status, message, kind, param, code).body()}
    return JSONResponse(body, status_code=status, headers=headers)


async def api_error(request: Request, exc: Exception) -> Response:
    """Our refusals, as they were raised."""
    assert isinstance(exc, ApiError)
    return error_response(exc.status, str(exc), exc.kind, exc.param, exc.code)


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own (unknown path, wrong method, bad form) in OpenAI's shape."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    if status == 404:
        detail = f"Invalid URL ({request.method} {request.url.path})"
    return error_response(status, str(detail), "invalid_request_error", headers=getattr(exc, "headers", None))


async def server_error(request: Request, exc: Exception) -> Response:
    """Anything else: a 500 that names the kind of failure, never a traceback or a server path."""
    return error_response(
        500, f"The server had an error processing your request ({type(exc).__name__})", "server_error"
    )


HANDLERS = {ApiError: api_error, HTTPException: http_error, Exception: server_error}
