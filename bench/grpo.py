"""Local GRPO: fto's RFT trainer vs TRL's GRPOTrainer + PEFT, side by side, on the same workload.

    pip install trl datasets           # the peer (not a dependency of fto)
    python bench/grpo.py               # N=64 prompts (8 steps of 8), REPEATS=3, medians; THREADS=2
    GPU=1 python bench/grpo.py         # on a CUDA machine: the same comparison on the GPU (bf16 off: the model is tiny)

The workload is examples/rft.yaml's: the embedded tiny Llama (built once per fto run from the job's data, seed 0;
TRL loads that very folder), LoRA r=16 on all linear layers with embeddings and head trained in full (what fto does
for the random-weight embedded model), 8 prompts a step, 8 answers a prompt (the group), at most 12 new tokens,
temperature 1, beta 0.04, lr 3e-3 with no warm-up, one epoch; the reward is the example's multi grader
(0.5 · short + 0.5 · the animal's class) computed by fto's own grader code in both. Each run is its own process
(peak RSS is its own). Throughput is measured between the first and the last optimizer step (start-up and model
building left out): prompts/s and generated tokens/s. The reward curve is each step's mean reward.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
N = int(os.environ.get("N", "64"))
REPEATS = int(os.environ.get("REPEATS", "3"))
THREADS = os.environ.get("THREADS", "2")
GPU = os.environ.get("GPU") == "1"
PROMPTS_PER_STEP, GROUP, NEW_TOKENS, LR, BETA = 8, 8, 12, 3e-3, 0.04


def job_file(folder: Path) -> Path:
    """examples/rft.yaml on the first N prompts, all of them trained on."""
    spec = yaml.safe_load((REPO / "examples" / "rft.yaml").read_text())
    lines = (REPO / "examples" / "data" / "animals.jsonl").read_text().splitlines()[:N]
    (folder / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    spec["data"] = {"train": str(folder / "prompts.jsonl")}
    spec["rft"] |= {"samples_per_prompt": GROUP, "max_new_tokens": NEW_TOKENS}
    spec["hyperparameters"] |= {
        "epochs": 1,
        "batch_size": PROMPTS_PER_STEP,
        "learning_rate": LR,
        "beta": BETA,
        "warmup_ratio": 0.0,
    }  # TRL's GRPOTrainer warms up for no steps
    spec.pop("eval", None)
    if GPU:
        spec["backends"]["local"]["device"] = "cuda"
    path = folder / "rft.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def run_fto(folder: Path) -> dict[str, Any]:
    """fto submit + wait; its worker's metrics. Returns the figures and the base model folder it built."""
    env = {**os.environ, "FTO_HOME": str(folder / "home"), "OMP_NUM_THREADS": THREADS}
    fto = [sys.executable, "-m", "fto.orchestrator"]
    done = subprocess.run([*fto, "submit", str(job_file(folder)), "--backend", "local"], env=env, capture_output=True,
                          text=True, timeout=600)  # fmt: skip
    if done.returncode:
        raise SystemExit(f"fto submit failed:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    (jobs,) = [p for p in (folder / "home" / "backends" / "local" / "jobs").iterdir() if p.is_dir()]
    waiting = subprocess.Popen([*fto, "wait"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    peak_kb = 0
    while waiting.poll() is None:  # the worker runs detached: its peak RSS is read from /proc while it lives
        pid = json.loads((jobs / "status.json").read_text()).get("pid") if (jobs / "status.json").exists() else None
        try:
            status = Path(f"/proc/{pid}/status").read_text() if pid else ""
        except OSError:
            status = ""
        peak_kb = max([peak_kb, *(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))])
        time.sleep(0.2)
    metrics = [json.loads(line) for line in (jobs / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in metrics if m.get("reward") is not None]
    times = [_seconds(m["created_at"]) for m in steps]
    return {
        "seconds": times[-1] - times[0],
        "steps": len(steps),
        "tokens": sum(m["completion_tokens"] * PROMPTS_PER_STEP * GROUP for m in steps[1:]),
        "rewards": [m["reward"] for m in steps],
        "peak_mb": peak_kb / 1024,
        "base": str(jobs / "base"),
    }


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def run_trl(base: str, folder: Path) -> dict[str, Any]:
    done = subprocess.run([sys.executable, __file__, "--trl", base, str(folder)], capture_output=True, text=True,
                          timeout=3600, env={**os.environ, "OMP_NUM_THREADS": THREADS})  # fmt: skip
    if done.returncode:
        raise SystemExit(f"TRL run failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def trl_child(base: str, folder: Path) -> None:
    """TRL's GRPOTrainer on the same model folder, prompts, reward and settings; prints its figures as JSON."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from fto.orchestrator.graders.run import grade_many, sample_of
    from fto.schemas.graders import MultiGrader

    torch.set_num_threads(int(THREADS))
    spec = yaml.safe_load((folder / "rft.yaml").read_text())
    grader = MultiGrader.model_validate(spec["graders"][0])
    rows = [json.loads(line) for line in (folder / "prompts.jsonl").read_text().splitlines()]
    data = Dataset.from_list([{"prompt": r["messages"][:-1], "reference": r["messages"][-1]["content"]} for r in rows])

    def reward(completions: list[Any], reference: list[str], **_: Any) -> list[float]:
        texts = [c[-1]["content"] if isinstance(c, list) else c for c in completions]
        items = [{"reference": ref} for ref in reference]
        return [g.value if g.value is not None else 0.0 for g in grade_many(grader, [sample_of(t) for t in texts],
                                                                             items)]  # fmt: skip

    stamps: list[float] = []

    class Steps(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            stamps.append(time.perf_counter())

    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = GRPOConfig(
        output_dir=str(folder / "trl"), per_device_train_batch_size=PROMPTS_PER_STEP * GROUP, num_generations=GROUP,
        max_completion_length=NEW_TOKENS, temperature=1.0, beta=BETA, learning_rate=LR, num_train_epochs=1,
        logging_steps=1, save_strategy="no", report_to=[], seed=0, use_cpu=not GPU, bf16=False,
        gradient_checkpointing=False, lr_scheduler_type="linear",
    )  # fmt: skip
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear",
                      modules_to_save=["embed_tokens", "lm_head"], task_type="CAUSAL_LM")  # fmt: skip
    trainer = GRPOTrainer(model=model, reward_funcs=reward, args=config, train_dataset=data,
                          processing_class=tokenizer, peft_config=lora, callbacks=[Steps()])  # fmt: skip
    trainer.train()
    logs = [h for h in trainer.state.log_history if "reward" in h]
    lengths = [h.get("completions/mean_length", 0.0) for h in logs]
    print(json.dumps({
        "seconds": stamps[-1] - stamps[0], "steps": len(stamps),
        "tokens": sum(length * PROMPTS_PER_STEP * GROUP for length in lengths[1:]),
        "rewards": [h["reward"] for h in logs],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }))  # fmt: skip


def main() -> None:
    runs: dict[str, list[dict[str, Any]]] = {"fto": [], "trl": []}
    for repeat in range(REPEATS):  # interleaved: drift on the machine hits both alike
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            mine = run_fto(folder)
            runs["fto"].append(mine)
            runs["trl"].append(run_trl(mine["base"], folder))
        print(f"repeat {repeat + 1}/{REPEATS} done", file=sys.stderr)
    rows = {}
    for name, found in runs.items():
        prompts = [(r["steps"] - 1) * PROMPTS_PER_STEP / r["seconds"] for r in found]
        tokens = [r["tokens"] / r["seconds"] for r in found]
        first = [statistics.fmean(r["rewards"][:2]) for r in found]
        last = [statistics.fmean(r["rewards"][-2:]) for r in found]
        rows[name] = (statistics.median(prompts), statistics.median(tokens), statistics.median(r["peak_mb"] for r in
                      found), statistics.median(first), statistics.median(last))  # fmt: skip
    device = "cuda" if GPU else f"CPU, {THREADS} threads"
    print(f"GRPO, {N} prompts × {GROUP} answers, ≤{NEW_TOKENS} new tokens, {device}, median of {REPEATS}")
    print(f"{'':6}{'prompts/s':>11}{'gen tok/s':>11}{'peak MB':>9}{'reward first 2':>16}{'last 2':>8}")
    for name, (p, t, mb, a, b) in rows.items():
        print(f"{name:6}{p:11.2f}{t:11.1f}{mb:9.0f}{a:16.3f}{b:8.3f}")
    print(f"fto / TRL: {rows['fto'][0] / rows['trl'][0]:.2f}× prompts/s, {rows['fto'][1] / rows['trl'][1]:.2f}× "
          "generated tokens/s")  # fmt: skip
    for name, found in runs.items():
        print(f"{name} reward curve (first run): " + " ".join(f"{r:.2f}" for r in found[0]["rewards"]))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--trl":
        trl_child(sys.argv[2], Path(sys.argv[3]))
    else:
        main()
