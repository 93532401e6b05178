"""`fto serve` against `transformers serve` (the OpenAI-compatible server that ships with transformers), side by
side on the same model, prompts and settings, streaming chat completions over HTTP.

    python bench/serve.py          # MODEL=embedded REQUESTS=128 CONCURRENCY=16 MAX_TOKENS=32 ROUNDS=3

MODEL: `embedded` (the tiny Llama, built on the spot), `smollm2` (SmolLM2-135M-Instruct: run
examples/smollm2/prepare.py first) or a model folder. Both servers are started once; each round runs, in turn,
CONCURRENCY streaming clients sharing REQUESTS requests on each server, then one client at a time (SINGLE requests)
on each. Tokens are counted by re-tokenising every reply with the model's tokenizer, the same way for both.
Prints completed tokens/s and time to first token (p50, p99), medians over the rounds, and the ratios.

    CASE=fairness python bench/serve.py   # MODEL=embedded ROUNDS=3 SHORT=40

Fairness: one `fto serve`; a 4-token chat request's latency (SHORT of them, one after another) with the server
idle, then with a non-streamed 50 prompts × n=16 × 400 tokens /v1/completions request in flight, in turn, ROUNDS
times. Prints p50 and p99 of each and the loaded/idle ratio (goal: p99 within 3× idle).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.serving import ServeProcess, free_port, wait_until_up  # noqa: E402

MODEL = os.environ.get("MODEL", "embedded")
REQUESTS = int(os.environ.get("REQUESTS", "128"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
SINGLE = int(os.environ.get("SINGLE", "16"))
MAX_TOKENS = int(os.environ.get("MAX_TOKENS", "32"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
ANIMALS = REPO / "examples" / "data" / "animals.jsonl"


def model_folder(scratch: Path) -> Path:
    if MODEL == "smollm2":
        folder = REPO / "examples" / "smollm2" / "model"
        if not (folder / "config.json").exists():
            sys.exit("prepare SmolLM2 first: python examples/smollm2/prepare.py")
        return folder
    if MODEL != "embedded":
        return Path(MODEL)
    from fto.backends.local import embedded

    rows = [json.loads(line) for line in ANIMALS.read_text().splitlines()]
    return embedded.build(rows, seed=0, out_dir=scratch / "tiny")


def start_peer(folder: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    transformers_cli = Path(sys.executable).with_name("transformers")
    process = subprocess.Popen(  # its log goes to a file: a pipe nobody reads would stall it once full
        [str(transformers_cli), "serve", str(folder), "--port", str(port), "--host", "127.0.0.1"],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    wait_until_up(f"{url}/models", process, seconds=120)
    return process, url


async def ask(client: httpx.AsyncClient, url: str, model: str, question: str) -> tuple[float, str]:
    """One streamed chat completion: seconds to the first text, and the whole text."""
    body = {"model": model, "messages": [{"role": "user", "content": question}], "max_tokens": MAX_TOKENS,
            "temperature": 0, "stream": True}  # fmt: skip
    started, first, text = time.perf_counter(), None, ""
    async with client.stream("POST", f"{url}/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            for choice in json.loads(line[6:]).get("choices", []):
                piece = (choice.get("delta") or {}).get("content") or ""
                if piece and first is None:
                    first = time.perf_counter() - started
                text += piece
    return (first if first is not None else time.perf_counter() - started), text


async def run(url: str, model: str, questions: list[str], concurrency: int) -> tuple[float, list[float], list[str]]:
    """All questions by `concurrency` clients: wall seconds, times to first token, replies."""
    queue = list(enumerate(questions))
    results: dict[int, tuple[float, str]] = {}
    async with httpx.AsyncClient(timeout=600) as client:

        async def worker() -> None:
            while queue:
                index, question = queue.pop(0)
                results[index] = await ask(client, url, model, question)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return wall, [results[i][0] for i in range(len(questions))], [results[i][1] for i in range(len(questions))]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


SHORT = int(os.environ.get("SHORT", "40"))


def short_latencies(url: str, model: str, count: int) -> list[float]:
    """`count` 4-token chat requests, one after another: each one's seconds."""
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "temperature": 0}
    seconds = []
    with httpx.Client(timeout=600) as client:
        for _ in range(count):
            started = time.perf_counter()
            client.post(f"{url}/chat/completions", json=body).raise_for_status()
            seconds.append(time.perf_counter() - started)
    return seconds


def fairness() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="fto-bench-fairness-"))
    folder = model_folder(scratch)
    server = ServeProcess(scratch / "fto-home", "--model", str(folder), "--max-seqs-per-request", "800")
    large = {"model": str(folder), "prompt": ["tell me about animals"] * 50, "n": 16, "max_tokens": 400}
    idle: list[float] = []
    loaded: list[float] = []
    try:
        short_latencies(server.url, str(folder), 3)  # the model loaded, outside every timing
        for _ in range(ROUNDS):
            idle += short_latencies(server.url, str(folder), SHORT)
            connection = _send_raw(server.port, "/v1/completions", large)
            time.sleep(2)  # the large request is generating
            loaded += short_latencies(server.url, str(folder), SHORT)
            connection.close()  # its client leaves: fto serve cancels it
            time.sleep(2)
    finally:
        server.stop()
    print(f"model: {folder.name} ({MODEL}); {SHORT} 4-token chat requests a round, {ROUNDS} rounds; loaded: a "
          "non-streamed 50 × n=16 × 400-token /v1/completions request in flight")  # fmt: skip
    for name, values in (("idle", idle), ("loaded", loaded)):
        print(f"{name:7} p50 {percentile(values, 0.5) * 1000:7.1f} ms   p99 {percentile(values, 0.99) * 1000:7.1f} ms")
    print(f"loaded / idle: p50 {percentile(loaded, 0.5) / percentile(idle, 0.5):.2f}x, "
          f"p99 {percentile(loaded, 0.99) / percentile(idle, 0.99):.2f}x (goal: p99 within 3x)")  # fmt: skip


def _send_raw(port: int, path: str, body: dict[str, object]) -> socket.socket:
    """A request sent on a connection the caller closes when its client should go away."""
    raw = json.dumps(body).encode()
    connection = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    connection.sendall(head.encode() + f"Content-Length: {len(raw)}\r\n\r\n".encode() + raw)
    return connection


def main() -> None:
    if os.environ.get("CASE") == "fairness":
        fairness()
        return
    from transformers import AutoTokenizer

    scratch = Path(tempfile.mkdtemp(prefix="fto-bench-serve-"))
    folder = model_folder(scratch)
    tokenizer = AutoTokenizer.from_pretrained(folder)
    rows = [json.loads(line)["messages"] for line in ANIMALS.read_text().splitlines()]
    questions = [next(m["content"] for m in row if m["role"] == "user") for row in rows][:REQUESTS]
    fto = ServeProcess(scratch / "fto-home", "--model", str(folder))
    peer, peer_url = start_peer(folder, scratch / "transformers-serve.log")
    servers = {"fto serve": fto.url, "transformers serve": peer_url}
    figures: dict[tuple[str, str], list[tuple[float, float, float]]] = {}
    try:
        for url in servers.values():  # load the model, outside every timing
            asyncio.run(run(url, str(folder), questions[:2], 1))
        for _ in range(ROUNDS):
            for mode, concurrency, share in (("concurrent", CONCURRENCY, questions), ("single", 1, questions[:SINGLE])):
                for name, url in servers.items():
                    wall, ttft, replies = asyncio.run(run(url, str(folder), share, concurrency))
                    tokens = sum(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in replies)
                    figures.setdefault((mode, name), []).append(
                        (tokens / wall, percentile(ttft, 0.5), percentile(ttft, 0.99))
                    )
    finally:
        fto.stop()
        peer.kill()
        peer.wait(timeout=30)
    print(f"model: {folder.name} ({MODEL}); {REQUESTS} requests by {CONCURRENCY} streaming clients, {SINGLE} by one;")
    print(f"max_tokens {MAX_TOKENS}, temperature 0; medians of {ROUNDS} interleaved rounds")
    print(f"{'':12} {'server':20} {'tokens/s':>9} {'TTFT p50':>9} {'TTFT p99':>9}")
    medians = {}
    for (mode, name), runs in figures.items():
        rate, p50, p99 = (statistics.median(r[k] for r in runs) for k in range(3))
        medians[(mode, name)] = rate
        print(f"{mode:12} {name:20} {rate:9.1f} {p50 * 1000:7.0f}ms {p99 * 1000:7.0f}ms")
    for mode in ("concurrent", "single"):
        ratio = medians[(mode, "fto serve")] / medians[(mode, "transformers serve")]
        print(f"{mode}: fto serve / transformers serve = {ratio:.2f}x tokens/s")


if __name__ == "__main__":
    main()
