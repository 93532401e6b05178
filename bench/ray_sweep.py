"""A 6-point sweep through Ray (a head on this machine, 2 CPUs, one worker per point) vs `local` one at a time.

    .venv/bin/python bench/ray_sweep.py [ROUNDS]

Each round runs the same sweep (3 learning rates x 2 LoRA ranks of the embedded tiny Llama, 96 examples, 2 epochs,
no eval) once per backend, the two interleaved; the figures are medians over rounds. Wall time runs from
`fto submit` to the last job's end (`fto wait`); a job's start overhead is the time from its submission to its
first trainer event (for Ray: the runtime env upload, the driver, the worker group; for local: a process and
its imports); the submit time is the `fto submit` call per job.
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
BIN = Path(sys.executable).parent
FTO = [sys.executable, "-m", "fto.orchestrator"]


def start_head(temp: Path) -> str:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}"}
    command = [str(BIN / "ray"), "start", "--head", "--num-cpus=2", "--num-gpus=0", "--port=6391",
               "--node-ip-address=127.0.0.1", "--dashboard-host=127.0.0.1", "--dashboard-port=8266",
               "--disable-usage-stats", f"--temp-dir={temp}"]  # fmt: skip
    subprocess.run(command, env=env, check=True, capture_output=True)
    time.sleep(3)
    return "http://127.0.0.1:8266"


def job_file(folder: Path, address: str) -> Path:
    rows = (REPO / "examples" / "data" / "animals.jsonl").read_text().splitlines(keepends=True)[:96]
    (folder / "train.jsonl").write_text("".join(rows))
    text = f"""name: sweep-bench
data: {{train: train.jsonl, validation: 0.25}}
hyperparameters: {{epochs: 2, batch_size: 8, learning_rate: [0.001, 0.003, 0.01], lora: {{r: [8, 16]}}}}
backends:
  ray: {{address: "{address}", storage_path: {folder / "storage"}, num_workers: 1}}
  local: {{}}
eval: null
check: {{enabled: false}}
"""
    path = folder / "job.yaml"
    path.write_text(text)
    return path


def run_sweep(job: Path, backend: str, home: Path) -> dict[str, float]:
    env = {**os.environ, "FTO_HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}"}
    started = time.perf_counter()
    submitted = subprocess.run([*FTO, "submit", str(job), "--backend", backend], env=env, capture_output=True,
                               text=True, check=True)  # fmt: skip
    submit_seconds = time.perf_counter() - started
    experiment = submitted.stdout.split()[1]
    subprocess.run([*FTO, "wait", experiment], env=env, capture_output=True, check=True)
    wall = time.perf_counter() - started
    os.environ["FTO_HOME"] = str(home)
    from fto.orchestrator.store import Store

    store = Store()
    overheads = []
    for job in store.jobs(experiment):
        assert job.status.value == "succeeded", (job.id, job.error)
        first = next(e.created_at for e in store.events(job.id) if e.message.startswith("building the embedded"))
        overheads.append((first - job.created_at).total_seconds())
    return {"wall": wall, "submit_per_job": submit_seconds / 6, "start_overhead": statistics.median(overheads)}


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 2
    temp = Path(tempfile.mkdtemp(prefix="ray-bench-", dir="/tmp"))
    address = start_head(temp)
    results: dict[str, list[dict[str, float]]] = {"ray": [], "local": []}
    try:
        for round_ in range(rounds):
            for backend in ("ray", "local") if round_ % 2 == 0 else ("local", "ray"):
                folder = Path(tempfile.mkdtemp())
                figures = run_sweep(job_file(folder, address), backend, folder / "home")
                results[backend].append(figures)
                print(f"round {round_ + 1} {backend}: " + ", ".join(f"{k} {v:.1f} s" for k, v in figures.items()))
    finally:
        subprocess.run([str(BIN / "ray"), "stop", "--force"], capture_output=True)
    print("\nmedians over", rounds, "rounds (6 sweep points each)")
    print("| backend | wall s | submit s/job | start overhead s/job (median) |")
    print("|---|---:|---:|---:|")
    for backend, runs in results.items():
        med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"| {backend} | {med['wall']:.1f} | {med['submit_per_job']:.2f} | {med['start_overhead']:.1f} |")
    ray_wall = statistics.median(r["wall"] for r in results["ray"])
    local_wall = statistics.median(r["wall"] for r in results["local"])
    print(f"\nray wall time / local wall time: {ray_wall / local_wall:.2f}")


if __name__ == "__main__":
    main()
