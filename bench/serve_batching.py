"""`fto serve` answering an eval: concurrent chat requests batched on the device, against one at a time.

    python bench/serve_batching.py          # CALLS=128 CONCURRENCY=16

Starts `fto serve` on 127.0.0.1, fine-tunes the embedded tiny Llama through the openai backend (2 epochs), then
asks the fine-tuned model CALLS questions twice through the openai SDK: once a call at a time (the peer: what a
server that generates request by request gives any client), once CONCURRENCY at a time (the eval harness's way,
which the server batches). Prints wall times and the speed-up.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ["FTO_HOME"] = tempfile.mkdtemp(prefix="fto-bench-")

from fto.backends import registry  # noqa: E402
from fto.backends.base import GenerationParams  # noqa: E402
from fto.orchestrator.data.load import load_splits  # noqa: E402
from fto.schemas import BackendSection, JobSpec, Message  # noqa: E402
from tests.serving import ServeProcess  # noqa: E402

CALLS = int(os.environ.get("CALLS", "128"))
CONCURRENCY = int(os.environ.get("CONCURRENCY", "16"))
ANIMALS = REPO / "examples" / "data" / "animals.jsonl"


def main() -> None:
    server = ServeProcess(Path(os.environ["FTO_HOME"]) / "serve")
    try:
        spec = JobSpec.model_validate(
            {"name": "bench", "data": {"train": str(ANIMALS)}, "hyperparameters": {"epochs": 2}}
        )
        section = {"model": "embedded:tiny-llama", "base_url": server.url, "max_concurrency": CONCURRENCY}
        backend = registry.create("openai", BackendSection.model_validate(section))
        data = load_splits(spec)
        job = backend.submit(spec, backend.upload(backend.prepare(spec, data.train, [], Path(tempfile.mkdtemp()))), "b")
        while not (state := backend.get(job)).status.terminal:
            time.sleep(0.5)
        model = state.fine_tuned_model or ""
        rows = [json.loads(line)["messages"] for line in ANIMALS.read_text().splitlines()][:CALLS]
        prompts = [[Message(**m) for m in row[:2]] for row in rows]
        params = GenerationParams(max_new_tokens=8)
        backend.complete(model, prompts[0], params)  # load the model once, outside both timings

        started = time.perf_counter()
        one_by_one = [backend.complete(model, p, params).text for p in prompts]
        sequential = time.perf_counter() - started
        started = time.perf_counter()
        together = [c.text for c in backend.complete_many(model, prompts, params)]
        concurrent = time.perf_counter() - started
        same = sum(a == b for a, b in zip(one_by_one, together, strict=True))
        print(f"calls: {CALLS}, concurrency: {CONCURRENCY}, model: {model}")
        print(f"one at a time: {sequential:.2f} s ({CALLS / sequential:.1f} calls/s)")
        print(f"batched:       {concurrent:.2f} s ({CALLS / concurrent:.1f} calls/s)")
        print(f"speed-up:      {sequential / concurrent:.2f}x; identical answers: {same}/{CALLS}")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
