"""How fast the CLI answers with a large store: `fto --help` and `fto status` with 10,000 jobs.

    python bench/cli_speed.py            # JOBS=10000 (in 10 experiments) POINTS=20 (metrics a job) REPEAT=9
    CASE=data python bench/cli_speed.py  # the data commands as whole processes, beside minimal scripts (REPEAT=5)

CASE=data times `fto data validate` of a 64 MB chat file (one core, as `taskset -c 0`) and `fto data stats` of
GSM8K train (../shared/data), each a new process as users run it, interleaved with the minimal script doing the
same work — `json.loads` of every line; `json.loads` plus tiktoken's cl100k count of every message — and prints the
medians and fto's speed as a ratio of the script's.

Fills a SQLite store through the Store API (jobs of the sim provider, a third still running, none stale, so
`fto status` asks no provider), then runs each command as a user does — a new process each time — and prints
the median and the slowest wall time.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-cli-")

from fto.orchestrator.store import Store  # noqa: E402
from fto.schemas import JobSpec, JobStatus, Metric, ProviderJob  # noqa: E402

JOBS = int(os.environ.get("JOBS", "10000"))
POINTS = int(os.environ.get("POINTS", "20"))
REPEAT = int(os.environ.get("REPEAT", "5" if os.environ.get("CASE") == "data" else "9"))
FTO = [sys.executable, "-m", "fto.orchestrator"]


def fill() -> None:
    store = Store()
    for e in range(10):
        quiet = {"type": "sim", "url": "http://127.0.0.1:9", "min_poll_interval": 3600, "max_poll_interval": 3600}
        sections = {f"s{i}": quiet for i in range(JOBS // 10)}  # polled hourly: nothing is stale
        spec = JobSpec.model_validate({"name": f"load{e}", "data": {"train": "t.jsonl"}, "backends": sections})
        _, jobs = store.create_experiment(spec, None, list(sections))
        for k, job in enumerate(jobs):
            store.set_submitted(job.id, f"simjob-{e}-{k}")
            store.add_updates(
                job.id, [], [Metric(step=s, total_steps=POINTS, loss=1 / s) for s in range(1, POINTS + 1)], None
            )
            status = JobStatus.RUNNING if k % 3 == 0 else JobStatus.SUCCEEDED
            store.update_from_provider(job.id, ProviderJob(status=status))


def timed(args: list[str]) -> tuple[float, float]:
    times = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        subprocess.run(args, capture_output=True, timeout=120, env={**os.environ, "COLUMNS": "200"})
        times.append(time.perf_counter() - started)
    return statistics.median(times), max(times)


PEER_VALIDATE = "import json, sys\nfor line in open(sys.argv[1], 'rb'):\n    json.loads(line)\n"
PEER_STATS = """import json, sys, tiktoken
encoding = tiktoken.get_encoding("cl100k_base")
total = 0
for line in open(sys.argv[1], "rb"):
    row = json.loads(line)
    if "messages" in row:
        texts = [m.get("content") or "" for m in row["messages"]]
    else:
        texts = [v for v in row.values() if isinstance(v, str)]
    total += sum(len(encoding.encode(t)) for t in texts)
print(total)
"""


def data_case() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    from data_validate import WORK, generate  # the same generated chat file as the validation bench

    from fto.backends.tokenizers import offline_tiktoken

    WORK.mkdir(parents=True, exist_ok=True)
    chat = generate(WORK / "chat-64mb.jsonl", 64)
    gsm8k = REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"
    os.environ["TIKTOKEN_CACHE_DIR"] = str(offline_tiktoken("cl100k_base"))  # the script reads it offline too
    cases = [
        ("validate 64 MB chat", ["taskset", "-c", "0", *FTO, "data", "validate", str(chat)],
         ["taskset", "-c", "0", sys.executable, "-c", PEER_VALIDATE, str(chat)]),
        ("stats GSM8K train", [*FTO, "data", "stats", str(gsm8k)], [sys.executable, "-c", PEER_STATS, str(gsm8k)]),
    ]  # fmt: skip
    for label, fto, peer in cases:
        runs: dict[str, list[float]] = {"fto": [], "script": []}
        for _ in range(REPEAT):  # interleaved, so both see the same machine
            for name, args in (("fto", fto), ("script", peer)):
                started = time.perf_counter()
                subprocess.run(args, capture_output=True, timeout=600, check=name == "script")
                runs[name].append(time.perf_counter() - started)
        mine, theirs = statistics.median(runs["fto"]), statistics.median(runs["script"])
        print(f"{label:20} fto {mine:6.2f} s   minimal script {theirs:6.2f} s   fto = {theirs / mine:.2f}x the script")


def main() -> None:
    if os.environ.get("CASE") == "data":
        data_case()
        return
    started = time.perf_counter()
    fill()
    print(f"store: {JOBS} jobs in 10 experiments, filled in {time.perf_counter() - started:.1f} s")
    for label, args in (("fto --help", [*FTO, "--help"]), ("fto status", [*FTO, "status"]),
                        ("fto ls", [*FTO, "ls"])):  # fmt: skip
        median, slowest = timed(args)
        print(f"{label:14} median {median * 1000:6.0f} ms   slowest {slowest * 1000:6.0f} ms")


if __name__ == "__main__":
    main()
