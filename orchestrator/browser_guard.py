"""What keeps a web page the user visits from using fto's servers (`fto ui`, `fto serve`) through their browser.

- The Host header must name an allowed host (loopback names by default), so DNS rebinding — a hostile name
  re-pointed at 127.0.0.1 — reaches nothing: MLflow's and Jupyter Server's defence.
- A request that changes state (any method but GET, HEAD, OPTIONS) from a browser must come from the page's own
  origin: a cross-site Origin (or `Sec-Fetch-Site: cross-site`) is refused before any route runs. Clients that are
  not browsers (the openai SDK, curl) send neither header and are not affected.
- A JSON API is not fed by forms: a body sent as text/plain or a form to a JSON route is refused (415), since a
  browser sends those cross-site without asking first.
- Every answer says: not in frames, no type sniffing, no referrer, and a Content-Security-Policy that lets pages
  load only the server's own scripts.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Message, Receive, Scope, Send

ENV = "FTO_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "*.localhost")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Inline styles stay (the report's stylesheet is inlined so report.html is one file); scripts only from the server.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
HEADERS = [
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CSP.encode()),
    (b"cross-origin-opener-policy", b"same-origin"),
]
FORM_TYPES = ("text/plain", "application/x-www-form-urlencoded")


def allowed_hosts(bind_host: str, given: str | None = None) -> tuple[str, ...]:
    """The Host names a server accepts: `given` (`--allowed-hosts`, else FTO_ALLOWED_HOSTS) as a comma list, or by
    default the loopback names, the address it listens on and, listening on every address, this machine's names
    and its private addresses (`private` stands for every private, link-local and loopback IP)."""
    given = given if given is not None else os.environ.get(ENV)
    if given:
        return tuple(h.strip().lower() for h in given.split(",") if h.strip())
    hosts = list(LOOPBACK_NAMES)
    wildcard = bind_host in ("0.0.0.0", "::", "")
    if not wildcard:
        hosts.append(bind_host.lower().strip("[]"))
    else:
        name = socket.gethostname().lower()
        hosts += [name, f"{name}.local", "private"]
    return tuple(dict.fromkeys(hosts))


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Whether a Host header's name (port dropped) is one of `allowed` (`*` allows every host)."""
    name = _hostname(host)
    if not name:
        return False
    for pattern in allowed:
        if pattern == "*" or fnmatch.fnmatchcase(name, pattern):
            return True
        if pattern == "private" and _private(name):
            return True
    return False


def _hostname(host: str) -> str:
    host = host.strip().lower()
    if host.startswith("["):  # [::1]:8000
        return host[1 : host.find("]")] if "]" in host else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _private(name: str) -> bool:
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    return address.is_private or address.is_loopback or address.is_link_local


class BrowserGuard:
    """ASGI middleware: Host allow-list, same-origin state changes, no form bodies to JSON, safe headers."""

    def __init__(self, app: ASGIApp, hosts: Sequence[str], takes_files: Callable[[str], bool] = lambda path: False):
        self.app, self.hosts = app, tuple(hosts)
        self.takes_files = takes_files  # which paths take file uploads (multipart forms)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self.refusal(scope["method"], scope["path"], headers)
        if refusal is not None:
            status, message = refusal
            await _answer(send, status, message)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in HEADERS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def refusal(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str] | None:
        """(status, reason) when the request must not reach the app, else None."""
        host = headers.get("host", "")
        if not host_allowed(host, self.hosts):
            return 400, (
                f"Host {host!r} is not allowed (DNS rebinding defence): start the server with --allowed-hosts "
                f"or {ENV} naming it"
            )
        if method in SAFE_METHODS:
            return None
        origin = headers.get("origin")
        if origin is not None and not _same_origin(origin, host):
            return 403, f"cross-origin request refused: Origin {origin!r} is not this server ({host})"
        if origin is None and headers.get("sec-fetch-site") == "cross-site":
            return 403, "cross-site request refused"
        media = headers.get("content-type", "").split(";")[0].strip().lower()
        if media in FORM_TYPES or (media.startswith("multipart/") and not self.takes_files(path)):
            return 415, f"Content-Type {media} is not accepted here: send application/json"
        return None


def _same_origin(origin: str, host: str) -> bool:
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.lower()


async def _answer(send: Send, status: int, message: str) -> None:
    body = json.dumps({"error": {"message": message, "type": "invalid_request_error", "param": None,
                                 "code": "forbidden" if status == 403 else None}}).encode()  # fmt: skip
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *HEADERS]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
