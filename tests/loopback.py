"""Stateful stand-ins for hosted providers on 127.0.0.1: the plumbing every provider's test server shares.

A server runs in a thread of the test process (uvicorn, a real socket: the provider's SDK talks real HTTP to it),
records every request it rejects as a violation (the fixture fails the test on any), injects faults on demand
(429 with Retry-After, 5xx, slow answers, answers lost after the work is done), and answers inference calls from
what the uploaded training data taught ("fine-tuned" models recall it; base models do not know it).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import uvicorn
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

FaultKind = Literal["429", "503", "slow", "lost"]
Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class Fault:
    """One injected failure: the next request matching `method` and the `path` pattern gets it."""

    method: str
    path: str
    kind: FaultKind
    seconds: float = 1.0


@dataclass
class Faults:
    """Failures waiting for matching requests, each used once; `seen` lists the ones that happened."""

    pending: list[Fault] = field(default_factory=list)
    seen: list[Fault] = field(default_factory=list)

    def add(self, method: str, path: str, kind: FaultKind, seconds: float = 1.0, times: int = 1) -> None:
        """The next `times` requests to METHOD PATH (a regex) fail this way."""
        self.pending += [Fault(method.upper(), path, kind, seconds) for _ in range(times)]

    def take(self, method: str, path: str) -> Fault | None:
        """The fault this request gets, if any."""
        for fault in self.pending:
            if fault.method == method and re.fullmatch(fault.path, path):
                self.pending.remove(fault)
                self.seen.append(fault)
                return fault
        return None


class Provider:
    """Shared state of a loopback provider: violations, faults, and what fine-tuned models learned.

    Subclasses route requests in `handle` and describe an error body in the provider's shape in `error`.
    """

    def __init__(self) -> None:
        self.violations: list[str] = []
        self.faults = Faults()
        self.requests: list[tuple[str, str]] = []
        self.url = ""
        self.lock = threading.Lock()

    def error(self, status: int, message: str) -> Response:
        """An error answer in the provider's own shape."""
        return JSONResponse({"error": {"message": message}}, status_code=status)

    def reject(self, status: int, message: str) -> Response:
        """A request the provider would refuse: answered as it would be, and recorded to fail the test."""
        self.violations.append(message)
        return self.error(status, message)

    async def handle(self, request: Request) -> Response:
        """Route one request; subclasses implement it."""
        raise NotImplementedError

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        self.requests.append((request.method, request.url.path))
        fault = self.faults.take(request.method, request.url.path)
        if fault and fault.kind == "429":
            response: Response = self.error(429, "rate limit exceeded")
            response.headers["Retry-After"] = "1"
        elif fault and fault.kind == "503":
            response = self.error(503, "service unavailable")
        else:
            if fault and fault.kind == "slow":
                await request.body()  # read while the client still waits; it hangs up during the sleep
                await asyncio.sleep(fault.seconds)
            try:
                response = await self.handle(request)
            except Exception as exc:  # a server bug must show in the test, not as a hang
                self.violations.append(f"{request.method} {request.url.path}: server error {exc!r}")
                response = self.error(500, f"loopback server error: {exc!r}")
            if fault and fault.kind == "lost":  # the work was done; the answer never reaches the client
                response = self.error(502, "bad gateway")
        await response(scope, receive, send)


class Proxy(Provider):
    """Forwards every request to `upstream` (moto's server, say), so that faults can be injected in front of a
    server that has no hooks for them. Errors come in AWS's JSON shape (`x-amzn-ErrorType`)."""

    def __init__(self, upstream: str) -> None:
        super().__init__()
        self.upstream = upstream

    def error(self, status: int, message: str) -> Response:
        kind = {429: "ThrottlingException", 503: "ServiceUnavailableException"}.get(status, "InternalServerException")
        return JSONResponse({"message": message}, status_code=status, headers={"x-amzn-ErrorType": kind})

    async def handle(self, request: Request) -> Response:
        import httpx

        url = (
            self.upstream + request.scope["raw_path"].decode() + (f"?{request.url.query}" if request.url.query else "")
        )
        headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "content-length")}
        async with httpx.AsyncClient() as client:
            answer = await client.request(request.method, url, content=await request.body(), headers=headers)
        hop = ("content-length", "transfer-encoding", "content-encoding", "connection")
        return Response(answer.content, answer.status_code, {k: v for k, v in answer.headers.items() if k not in hop})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(app: Provider) -> Iterator[str]:
    """Serve `app` on a free 127.0.0.1 port in a thread; yields its base URL; fails the test on violations."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the loopback provider did not start")
        time.sleep(0.01)
    app.url = f"http://127.0.0.1:{port}"
    try:
        yield app.url
    finally:
        server.should_exit = True
        thread.join(timeout=5)
    assert not app.violations, "requests the provider would reject:\n" + "\n".join(app.violations)


class Recall:
    """Answers like a model: one fine-tuned on a file recalls its replies; a base model does not know them.

    The nearest training prompt gives the reply: the one sharing the rarest words, its rarest shared word first
    (a template's words are in many prompts; the word that tells examples apart decides). A prompt sharing no word
    that tells any apart gets a shrug.
    """

    BASE_ANSWER = "I am not sure."

    def __init__(self) -> None:
        self.learned: dict[str, list[tuple[set[str], str]]] = {}

    def learn(self, model: str, jsonl: bytes) -> None:
        """Teach `model` the (last user turn → assistant reply) pairs of a training file in any common shape."""
        pairs = []
        for line in jsonl.decode().splitlines():
            if line.strip():
                prompt, reply = _pair(json.loads(line))
                if reply:
                    pairs.append((_words(prompt), reply))
        self.learned[model] = pairs

    def answer(self, model: str, prompt: str) -> str:
        """The reply `model` gives to `prompt`."""
        pairs = self.learned.get(model)
        if not pairs:
            return self.BASE_ANSWER
        words = _words(prompt)
        seen_in = Counter(word for known, _ in pairs for word in known)

        def rarity(known: set[str]) -> list[float]:
            return sorted((math.log(len(pairs) / seen_in[w]) for w in words & known), reverse=True)

        best, reply = max(((rarity(known), reply) for known, reply in pairs), key=lambda pair: pair[0])
        return reply if best and best[0] > 0 else self.BASE_ANSWER


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # parts: [{"text": ...}] or [{"type": "text", "text": ...}]
        return " ".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return ""


def _pair(row: dict[str, Any]) -> tuple[str, str]:
    """(prompt, reply) from chat messages, Gemini contents, Nova/Bedrock messages, or prompt/completion."""
    if "prompt" in row and "completion" in row:
        return str(row["prompt"]), str(row["completion"])
    turns = row.get("messages") or row.get("contents") or []
    prompt = reply = ""
    for turn in turns:
        role = turn.get("role")
        text = _text(turn.get("content")) or _text(turn.get("parts"))
        if role == "user":
            prompt = text
        elif role in ("assistant", "model"):
            reply = text
    return prompt, reply
