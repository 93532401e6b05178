"""Validation and stats throughput: fto's streaming validator vs the cookbook's plain `json.loads` loop.

    python bench/data_validate.py                 # GSM8K train + a generated 1 GB chat JSONL
    SIZE_MB=256 python bench/data_validate.py     # a smaller generated file

Each measurement runs in its own process (validation pinned to one core, stats on all), so peak RSS is its own
(with the largest of its children's: fto's stats read a file of 1 MB and more in parts, a process per core).
Prints MB/s, peak RSS and the ratio fto/cookbook for: validation alone (no token counting), and validation + token
statistics.
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GSM8K = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
WORK = Path(os.environ.get("BENCH_DIR", "/tmp/fto-bench"))
WORDS = ("the model answers questions about travel food science history music sport code and weather").split()  # noqa: SIM905


def generate(path: Path, size_mb: int) -> Path:
    """Chat JSONL with variable-length system/user/assistant turns (about 1 KB a line), reused across runs."""
    if path.exists() and path.stat().st_size >= size_mb * 2**20:
        return path
    rng = random.Random(0)
    target = size_mb * 2**20
    written = 0
    with open(path, "w") as f:
        while written < target:

            def text(n: int) -> str:
                return " ".join(rng.choice(WORDS) for _ in range(n))

            line = (
                json.dumps(
                    {
                        "messages": [
                            {"role": "system", "content": "You are a helpful assistant."},
                            {"role": "user", "content": text(rng.randint(10, 120))},
                            {"role": "assistant", "content": text(rng.randint(20, 250))},
                        ]
                    }
                )
                + "\n"
            )
            f.write(line)
            written += len(line)
    return path


def fto_validate(path: str) -> None:
    from fto.orchestrator.data.validate import validate_file

    report = validate_file(path)
    print(json.dumps({"examples": report.examples, "errors": report.errors}))


def fto_stats(path: str) -> None:
    from fto.orchestrator.data.stats import dataset_stats

    stats = dataset_stats(path, "openai", "gpt-4o-mini-2024-07-18")
    print(json.dumps({"examples": stats["examples"], "billing_tokens": stats["billing_tokens"]}))


def cookbook_validate(path: str, count_tokens: bool = False) -> None:
    """The notebook's loop: load every line, then check formats (and count tokens)."""
    from collections import defaultdict

    with open(path) as f:
        dataset = [json.loads(line) for line in f]
    if dataset and "question" in dataset[0]:  # GSM8K: the chat shape the notebook expects
        dataset = [
            {"messages": [{"role": "user", "content": ex["question"]}, {"role": "assistant", "content": ex["answer"]}]}
            for ex in dataset
        ]
    errors: dict[str, int] = defaultdict(int)
    for ex in dataset:
        if not isinstance(ex, dict):
            errors["data_type"] += 1
            continue
        messages = ex.get("messages", None)
        if not messages:
            errors["missing_messages_list"] += 1
            continue
        for message in messages:
            if "role" not in message or "content" not in message:
                errors["message_missing_key"] += 1
            if any(k not in ("role", "content", "name", "function_call", "weight") for k in message):
                errors["message_unrecognized_key"] += 1
            if message.get("role", None) not in ("system", "user", "assistant", "function"):
                errors["unrecognized_role"] += 1
            content = message.get("content", None)
            function_call = message.get("function_call", None)
            if (not content and not function_call) or not isinstance(content, str):
                errors["missing_content"] += 1
        if not any(message.get("role", None) == "assistant" for message in messages):
            errors["example_missing_assistant_message"] += 1
    billing = 0
    if count_tokens:
        import tiktoken

        encoding = tiktoken.get_encoding("o200k_base")  # as the notebook loads it (child() put the file offline)
        for ex in dataset:
            n = 3
            for message in ex["messages"]:
                n += 3 + sum(len(encoding.encode(str(v))) for v in message.values())
            billing += min(65536, n)
    print(json.dumps({"examples": len(dataset), "errors": sum(errors.values()), "billing_tokens": billing}))


def cookbook_stats(path: str) -> None:
    cookbook_validate(path, count_tokens=True)


def measure(mode: str, path: Path) -> dict:
    """Run one mode in a fresh process: wall time and its peak RSS. Validation runs on one core; stats on the
    machine's cores (fto reads a part of the file on each; the cookbook loop is one thread)."""
    pin = ["taskset", "-c", "0"] if sys.platform == "linux" and mode.endswith("_validate") else []
    out = subprocess.run(
        [*pin, sys.executable, __file__, "--child", mode, str(path)],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    )
    child = json.loads(out.stdout.strip().splitlines()[-1])
    seconds = child["seconds"]
    mb = path.stat().st_size / 2**20
    return {
        "mode": mode,
        "file": path.name,
        "mb": round(mb, 1),
        "seconds": round(seconds, 2),
        "mb_per_s": round(mb / seconds, 1),
        "peak_rss_mb": child["peak_rss_mb"],
        **child["result"],
    }


def child(mode: str, path: str) -> None:
    import contextlib
    import io

    import fto.orchestrator.data.stats
    import fto.orchestrator.data.validate  # noqa: F401
    from fto.backends.tokenizers import offline_tiktoken
    from fto.orchestrator.data.formats import all_formats

    all_formats()  # the program loaded (the formats installed backends add), as imports are: not the work
    offline_tiktoken("o200k_base")  # the encoding's file in tiktoken's cache for both (no download offline)

    buffer = io.StringIO()
    started = time.perf_counter()  # the work itself, not the interpreter's start
    with contextlib.redirect_stdout(buffer):
        globals()[mode](path)
    seconds = time.perf_counter() - started
    # this process's peak, plus the largest of its children's (fto's stats read big files on every core)
    rss = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    ) / 1024
    result = json.loads(buffer.getvalue().strip().splitlines()[-1])
    print(json.dumps({"result": result, "peak_rss_mb": round(rss), "seconds": seconds}))


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    size = int(os.environ.get("SIZE_MB", "1024"))
    files = [GSM8K, generate(WORK / f"chat_{size}mb.jsonl", size)]
    if size >= 512:  # memory must stay flat as the file grows: also measure a quarter-size file
        files.insert(1, generate(WORK / f"chat_{size // 4}mb.jsonl", size // 4))
    rows = []
    for path in files:
        for fto_mode, peer_mode in (("fto_validate", "cookbook_validate"), ("fto_stats", "cookbook_stats")):
            if "stats" in fto_mode and path.stat().st_size > 300 * 2**20 and os.environ.get("FULL_STATS") != "1":
                continue  # tokenizing a GB takes minutes on one core; FULL_STATS=1 to include it
            fto = measure(fto_mode, path)
            rows.append(fto)
            print(json.dumps(fto), flush=True)
            if peer_mode:
                peer = measure(peer_mode, path)
                peer["ratio_fto_vs_cookbook"] = round(peer["seconds"] / fto["seconds"], 2)
                rows.append(peer)
                print(json.dumps(peer), flush=True)
    print("\n| file | MB | mode | MB/s | peak RSS MB | fto speed ÷ cookbook speed |\n|---|---:|---|---:|---:|---:|")
    for r in rows:
        ratio = r.get("ratio_fto_vs_cookbook")
        print(
            f"| {r['file']} | {r['mb']} | {r['mode']} | {r['mb_per_s']} | {r['peak_rss_mb']} | "
            f"{'' if ratio is None else f'{ratio}×'} |"
        )


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        sys.path.insert(0, str(REPO))
        child(sys.argv[2], sys.argv[3])
    else:
        main()
