"""`fto data check` speed: near-duplicate detection and every other check on GSM8K train + test (8,792 rows), and
on a generated chat JSONL (the same generator as bench/data_validate.py).

    python bench/data_check.py                   # GSM8K (from ../shared/data) + a 256 MB chat file
    SIZE_MB=64 python bench/data_check.py        # a smaller generated file

Each measurement runs in its own process pinned to one core; prints seconds, MB/s and peak RSS. The issue's
targets: GSM8K under 10 s on one core; the 256 MB file at 20 MB/s or more with memory flat.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_validate import WORK, generate

REPO = Path(__file__).resolve().parents[1]
GSM8K = [REPO.parent / "shared" / "data" / "gsm8k" / name for name in ("train.jsonl", "test.jsonl")]


def child(paths: list[str]) -> None:
    """Check the file (train, and a second one as its eval set) as `fto data check` does, and print one JSON line
    of figures."""
    from fto.orchestrator.data.check import check_file

    started = time.perf_counter()
    report = check_file(paths[0], paths[1] if len(paths) > 1 else None)
    seconds = time.perf_counter() - started
    size = sum(Path(p).stat().st_size for p in paths)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"rows": report.examples, "seconds": round(seconds, 2), "mb_per_s": round(size / 2**20 / seconds,
                      2), "peak_rss_mb": round(peak_mb), "findings": report.counts}))  # fmt: skip


def measure(paths: list[Path]) -> dict:
    command = ["taskset", "-c", "0", sys.executable, __file__, "--child", *map(str, paths)]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
        return
    WORK.mkdir(parents=True, exist_ok=True)
    chat = generate(WORK / "chat.jsonl", int(os.environ.get("SIZE_MB", "256")))
    both = WORK / "gsm8k_train_test.jsonl"  # one dataset of both files, as the issue measures it
    both.write_bytes(b"".join(path.read_bytes() for path in GSM8K))
    runs = {"gsm8k train+test": [measure([both]) for _ in range(3)], "generated chat": [measure([chat])]}
    for name, results in runs.items():
        best = sorted(results, key=lambda r: r["seconds"])[len(results) // 2]  # the median run
        print(f"{name}: {best['rows']} rows in {best['seconds']} s ({best['mb_per_s']} MB/s), "
              f"peak RSS {best['peak_rss_mb']} MB; findings {best['findings']}")  # fmt: skip


if __name__ == "__main__":
    main()
