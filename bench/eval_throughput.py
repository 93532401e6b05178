"""Eval throughput: fto's harness against one call at a time, on a server whose every answer takes 200 ms.

    python bench/eval_throughput.py        # CALLS=500 LATENCY=0.2 CONCURRENCY=16

The server is the sim provider on 127.0.0.1 (its own process). fto's side is the harness's generation path
(`fto.orchestrator.eval.harness.generate`: cache look-up, concurrent calls through the backend, results stored);
the peer is a plain loop calling the same backend's `complete` once per example. Prints wall time, the speed-up,
and fto's CPU time per call.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-")

from fto.backends import registry  # noqa: E402
from fto.backends.base import GenerationParams  # noqa: E402
from fto.orchestrator.eval.harness import Target, generate  # noqa: E402
from fto.orchestrator.store import Store  # noqa: E402
from fto.schemas import BackendSection, Message  # noqa: E402
from tests.backends.sim.conftest import SimServer  # noqa: E402

CALLS = int(os.environ.get("CALLS", "500"))
LATENCY = float(os.environ.get("LATENCY", "0.2"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    server = SimServer(latency=LATENCY)
    try:
        section = BackendSection.model_validate({"url": server.url, "max_concurrency": CONCURRENCY, "timeout": 30})
        backend = registry.create("sim", section)
        prompts = [[Message(role="user", content=f"question {i}")] for i in range(CALLS)]
        params = GenerationParams(max_new_tokens=16)

        cpu0, t0 = cpu(), time.perf_counter()
        outputs = generate(Store(), backend, Target("sim/base", "sim", "sim-base", None), prompts, params)
        fto_s, fto_cpu = time.perf_counter() - t0, cpu() - cpu0
        assert [o.text for o in outputs] == [f"echo: question {i}" for i in range(CALLS)]

        t0 = time.perf_counter()
        for p in prompts:
            backend.complete("sim-base", p, params)
        sequential_s = time.perf_counter() - t0
    finally:
        server.stop()
    print(
        json.dumps(
            {
                "calls": CALLS,
                "latency_s": LATENCY,
                "concurrency": CONCURRENCY,
                "fto_wall_s": round(fto_s, 2),
                "sequential_wall_s": round(sequential_s, 2),
                "speedup": round(sequential_s / fto_s, 1),
                "fto_cpu_ms_per_call": round(fto_cpu / CALLS * 1000, 2),
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
