"""The training-loop protocol's cost: the same SFT steps through fto.loop in this process, over loopback HTTP to
`fto serve`'s Tinker API (the unmodified tinker SDK), and as a local job's own trainer, side by side.

    python bench/loop.py                 # N=512 examples, batch 16, 1 epoch; THREADS=2; REPEATS=3 (medians)
    H=512 L=8 python bench/loop.py       # the larger model

The workload is bench/local_train.py's (a tiny Llama H=256 L=4 from a config, a BPE tokenizer trained on the data,
word-list reversal chats, LoRA r=16 on every linear layer, lr 2e-4). Each run is its own process; runs are
interleaved. Prints non-padding tokens/s, the loop's overhead per step over loopback against in process, and the
loop in process against the local trainer (the goal: the protocol costs local training at most 5%).
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
N = int(os.environ.get("N", "512"))
THREADS = os.environ.get("THREADS", "2")
REPEATS = int(os.environ.get("REPEATS", "3"))
BATCH = 16
MODES = ("trainer", "loop", "loop_http")


def build(folder: Path) -> list[dict]:
    """local_train.py's model and tokenizer saved to `folder` (a base model any fto part loads); returns the data."""
    import torch
    from local_train import HIDDEN, LAYERS, example
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    rng = random.Random(0)
    data = [example(rng) for _ in range(N)]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    corpus = [m["content"] for ex in data for m in ex["messages"]]
    tok.train_from_iterator([*corpus, " ".join(special)], trainers.BpeTrainer(
        vocab_size=2048, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))  # fmt: skip
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                 eos_token="<|end|>")  # fmt: skip
    hf.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    config = LlamaConfig(vocab_size=len(hf), hidden_size=HIDDEN, intermediate_size=HIDDEN * 8 // 3,
                         num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=512, pad_token_id=hf.pad_token_id, bos_token_id=hf.bos_token_id,
                         eos_token_id=hf.eos_token_id)  # fmt: skip
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(folder)
    hf.save_pretrained(folder)
    return data


def run_loop(folder: Path, data: list[dict], url: str | None) -> dict:
    """1 epoch of loop.sft_step in batches of 16, in process or at `url`."""
    import torch

    from fto import loop

    torch.set_num_threads(int(THREADS))
    trainer = loop.connect(str(folder), url, rank=16, seed=0)
    examples = [loop.chat_datum(trainer.tokenizer, ex["messages"]) for ex in data]
    tokens = sum(len(d.tokens) + 1 for d in examples)
    losses, started = [], time.perf_counter()
    for first in range(0, len(examples), BATCH):
        losses.append(loop.sft_step(trainer, examples[first : first + BATCH], 2e-4).loss)
    seconds = time.perf_counter() - started
    steps = -(-len(examples) // BATCH)
    return {"tok_per_s": round(tokens / seconds, 1), "step_ms": round(seconds / steps * 1000, 1),
            "mean_loss": round(sum(losses) / len(losses), 4)}  # fmt: skip


def child(mode: str, folder: Path) -> dict:
    data = build(folder) if not (folder / "config.json").exists() else _data()
    if mode == "loop":
        return run_loop(folder, data, None)
    sys.path.insert(0, str(REPO))
    from tests.serving import ServeProcess

    server = ServeProcess(Path(tempfile.mkdtemp()), "--model", str(folder), env={"OMP_NUM_THREADS": THREADS})
    try:
        return run_loop(folder, data, server.url.removesuffix("/v1"))
    finally:
        server.stop()


def _data() -> list[dict]:
    from local_train import example

    rng = random.Random(0)
    return [example(rng) for _ in range(N)]


def measure(mode: str, folder: Path) -> dict:
    env = {**os.environ, "N": str(N), "THREADS": THREADS}
    if mode == "trainer":  # the local job's trainer: local_train.py's fto mode, as a job gets it on this machine
        env |= {"LAYOUT": "packed", "ATTN": "auto", "PRECISION": "auto", "MODE_NAME": "trainer"}
        command = [sys.executable, str(REPO / "bench" / "local_train.py"), "--child"]
    else:
        command = [sys.executable, __file__, "--child", mode, str(folder)]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    row = json.loads(out.stdout.strip().splitlines()[-1])
    if mode == "trainer":
        row["step_ms"] = round(row["train_s"] / -(-N // BATCH) * 1000, 1)
        row["mean_loss"] = row["final_loss"]
    return {"mode": mode, **{k: row[k] for k in ("tok_per_s", "step_ms", "mean_loss")}}


def main() -> None:
    import platform

    folder = Path(tempfile.mkdtemp()) / "base"
    subprocess.run([sys.executable, __file__, "--build", str(folder)], check=True, env={**os.environ, "N": str(N)})
    runs: dict[str, list[dict]] = {m: [] for m in MODES}
    for _ in range(REPEATS):
        for mode in MODES:
            runs[mode].append(measure(mode, folder))
            print(json.dumps(runs[mode][-1]), flush=True)
    rows = {m: sorted(r, key=lambda x: x["tok_per_s"])[len(r) // 2] for m, r in runs.items()}
    print(f"\nN={N} batch={BATCH} threads={THREADS} on {platform.processor() or platform.machine()}, "
          f"medians of {REPEATS}")  # fmt: skip
    print("| run | tokens/s | ms per step | mean loss |\n|---|---:|---:|---:|")
    for mode, row in rows.items():
        print(f"| {mode} | {row['tok_per_s']:,} | {row['step_ms']} | {row['mean_loss']} |")
    local, http, trainer = rows["loop"], rows["loop_http"], rows["trainer"]
    print(f"\nloop over loopback HTTP: +{http['step_ms'] - local['step_ms']:.1f} ms per step "
          f"({local['tok_per_s'] / http['tok_per_s']:.2f}× slower than in process)")  # fmt: skip
    print(f"loop in process vs the local trainer: {local['tok_per_s'] / trainer['tok_per_s']:.2f}× its tokens/s")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2], Path(sys.argv[3]))))
    elif sys.argv[1:2] == ["--build"]:
        build(Path(sys.argv[2]))
    else:
        main()
