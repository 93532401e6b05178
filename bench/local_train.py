"""Local training throughput: fto's trainer vs TRL's SFTTrainer + PEFT, side by side, on the same workload.

    pip install trl datasets            # the peer (not a dependency of fto)
    python bench/local_train.py         # N=512 examples; THREADS=2; REPEATS=3 (medians are reported)
    H=512 L=8 python bench/local_train.py   # the larger workload (hidden 512, 8 layers)
    COMPILE=1 python bench/local_train.py   # fto's decoder stack through torch.compile (inductor, dynamic shapes)
    PROFILE=1 N=128 python bench/local_train.py --child   # one fto run alone, its operator profile on stderr

The workload is TRL's as we measure it (../shared/bench/trl_sft_reference.py): a tiny Llama (hidden H=256, L=4
layers) from a config, a BPE tokenizer trained on the data, variable-length chat examples, LoRA r=16 on all linear
layers, batch 16, assistant-only loss, 1 epoch, lr 2e-4 with TRL's default linear schedule. Each run is its own
process (peak RSS is its own). Modes (MODES=a,b,…; see MODES below): fto as a job gets it on this machine
(packed rows, attention per example, frozen products in bf16 where the CPU has it), fto in fp32, fto as it was
before (fp32, SDPA's block-diagonal mask), length buckets, TRL with padding_free and gradient checkpointing off
(GC=0, the peer the goal names) in fp32 and in its own bf16 mode, TRL's default (padded, checkpointing on).
Prints non-padding tokens/s, peak RSS, the mean training loss, and the ratios.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRL_REFERENCE = REPO.parent / "shared" / "bench" / "trl_sft_reference.py"
PLAIN_REFERENCE = REPO.parent / "shared" / "bench" / "plain_torch_reference.py"
N = int(os.environ.get("N", "512"))
THREADS = os.environ.get("THREADS", "2")
REPEATS = int(os.environ.get("REPEATS", "3"))
HIDDEN, LAYERS = int(os.environ.get("H", "256")), int(os.environ.get("L", "4"))
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "epsilon",
    "zeta",
    "eta",
    "theta",
    "iota",
    "kappa",
    "lambda",
    "mu",
    "nu",
    "xi",
    "omicron",
    "pi",
    "rho",
    "sigma",
    "tau",
    "upsilon",
    "phi",
    "chi",
    "psi",
    "omega",
]


def example(rng: random.Random) -> dict:
    """The reference's examples: reverse a word list of 2 to 55 words."""
    n = rng.choice([2, 3, 5, 8, 13, 21, 34, 55])
    ws = [rng.choice(WORDS) for _ in range(n)]
    return {
        "messages": [
            {"role": "system", "content": "You reverse word lists."},
            {"role": "user", "content": "Reverse: " + " ".join(ws)},
            {"role": "assistant", "content": " ".join(reversed(ws))},
        ]
    }


def fto_run() -> dict:
    """fto's trainer on the reference's data, tokenizer, model and LoRA settings."""
    import torch
    from peft import LoraConfig, get_peft_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    sys.path.insert(0, str(REPO))
    from fto.backends.local.tokenized import encode
    from fto.backends.local.train import Trainer, TrainSettings

    random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(int(THREADS))
    rng = random.Random(0)
    data = [example(rng) for _ in range(N)]
    corpus = [m["content"] for ex in data for m in ex["messages"]]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    tok.train_from_iterator(
        [*corpus, "<|system|> <|user|> <|assistant|> <|end|>"],
        trainers.BpeTrainer(
            vocab_size=2048, special_tokens=special, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    hf_tok = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="<|end|>"
    )
    hf_tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
        "{% else %}{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    cfg = LlamaConfig(
        vocab_size=len(hf_tok),
        hidden_size=HIDDEN,
        intermediate_size=HIDDEN * 8 // 3,
        num_hidden_layers=LAYERS,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=hf_tok.pad_token_id,
        bos_token_id=hf_tok.bos_token_id,
        eos_token_id=hf_tok.eos_token_id,
    )
    from fto.backends.local import LocalOptions
    from fto.backends.local.worker import attention_implementation, batch_layout, frozen_bf16

    cfg._attn_implementation = attention_implementation(os.environ.get("ATTN", "auto"))
    model = get_peft_model(
        LlamaForCausalLM(cfg),
        LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules="all-linear", task_type="CAUSAL_LM"),
    )
    if os.environ.get("COMPILE") == "1":  # torch.compile's CPU backend (inductor) on the decoder stack, shapes dynamic
        model.base_model.model.model = torch.compile(model.base_model.model.model, dynamic=True)
    examples = [encode(hf_tok, ex, 512) for ex in data]
    cpu = torch.device("cpu")
    real_tokens = sum(len(e.input_ids) for e in examples)
    settings = TrainSettings(
        epochs=1,
        batch_size=16,
        learning_rate=2e-4,
        warmup_ratio=0.0,
        seed=0,
        pad_token_id=hf_tok.pad_token_id,
        batch_tokens=16 * 512,
        layout=os.environ.get("LAYOUT", "packed")
        if os.environ.get("LAYOUT") != "auto"  # auto: what a local job picks on this machine
        else batch_layout(LocalOptions(frozen_precision=os.environ.get("PRECISION", "auto")), cpu),
        schedule="linear",
        frozen_bf16=frozen_bf16(
            LocalOptions(frozen_precision=os.environ.get("PRECISION", "auto")), torch.device("cpu")
        ),
    )
    trainer = Trainer(model, examples, [], settings, cpu)
    profiler = torch.profiler.profile() if os.environ.get("PROFILE") == "1" else contextlib.nullcontext()
    t0 = time.perf_counter()
    with profiler:
        trainer.run(on_metric=lambda m: None, should_stop=lambda: False, on_checkpoint=lambda: None, on_event=print)
    seconds = time.perf_counter() - t0
    if isinstance(profiler, torch.profiler.profile):  # where the time went, by operator, on stderr
        print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=25), file=sys.stderr)
    losses = trainer.position.history
    return {
        "mode": os.environ.get("MODE_NAME", "fto"),
        "frozen_bf16": settings.frozen_bf16,
        "layout": settings.layout,
        "examples": N,
        "real_tokens": real_tokens,
        "train_s": round(seconds, 2),
        "tok_per_s": round(real_tokens / seconds, 1),
        "final_loss": round(sum(losses) / len(losses), 4),
    }


# Each mode: the environment its run gets. fto's default picks its attention and precision for the device.
MODES = {
    "fto": {"LAYOUT": "auto", "ATTN": "auto", "PRECISION": "auto"},  # what a local job picks on this machine
    "fto_fp32": {"LAYOUT": "auto", "ATTN": "auto", "PRECISION": "float32"},  # a CPU without native bf16 (proxy)
    "fto_fp32_packed": {"LAYOUT": "packed", "ATTN": "auto", "PRECISION": "float32"},
    "fto_fp32_sdpa": {"LAYOUT": "packed", "ATTN": "sdpa", "PRECISION": "float32"},  # fto before issue 17's 4th pass
    "fto_buckets": {"LAYOUT": "buckets", "ATTN": "auto", "PRECISION": "auto"},
    "trl_padfree_nogc": {"MODE": "trl_padfree", "GC": "0"},  # the peer the goal names
    "trl_padfree_nogc_bf16": {"MODE": "trl_padfree", "GC": "0", "BF16": "1"},  # the peer in its own bf16 (autocast)
    "trl": {"MODE": "trl", "GC": "1"},  # TRL's defaults: padded, checkpointing on
    "plain": {"PACK": "bucket", "GC": "0"},  # a plain PyTorch + PEFT loop, length buckets (../shared/bench)
}
DEFAULT_MODES = "fto,fto_fp32,fto_fp32_sdpa,trl_padfree_nogc,trl_padfree_nogc_bf16"


def trl_reference(bf16: bool) -> Path:
    """The TRL workload as shared, or a copy that differs only in `bf16=True` (TRL's CPU mixed precision)."""
    if not bf16:
        return TRL_REFERENCE
    source = TRL_REFERENCE.read_text()
    assert source.count("bf16=False") == 1, "the reference changed: check how it sets its precision"
    copy = Path(tempfile.gettempdir()) / "trl_sft_reference_bf16.py"
    copy.write_text(source.replace("bf16=False", "bf16=True"))
    return copy


def cpu_description() -> str:
    """The CPU's model and the flags that decide fto's CPU path (every table says which kind of CPU made it)."""
    model, flags = "unknown CPU", set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
                break
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return f"{model}; " + " ".join(f"{f}{'+' if f in flags else '-'}" for f in wanted)


def measure(mode: str) -> dict:
    env = {**os.environ, "N": str(N), "THREADS": THREADS, "H": str(HIDDEN), "L": str(LAYERS), **MODES[mode]}
    if mode.startswith("fto"):
        env["MODE_NAME"] = mode
        command = [sys.executable, __file__, "--child"]
    elif mode == "plain":
        command = [sys.executable, str(PLAIN_REFERENCE)]
    else:
        command = [sys.executable, str(trl_reference(env.pop("BF16", "0") == "1"))]
    out = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    if out.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    return result | {"mode": mode}


def main() -> None:
    modes = os.environ.get("MODES", DEFAULT_MODES).split(",")
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(REPEATS):  # interleaved, so a slow moment of the machine hits every mode alike
        for mode in modes:
            runs[mode].append(measure(mode))
            print(json.dumps(runs[mode][-1]), flush=True)
    rows = {mode: sorted(r, key=lambda x: x["tok_per_s"])[len(r) // 2] for mode, r in runs.items()}  # medians
    ours, peer = rows.get("fto"), rows.get("trl_padfree_nogc")
    print(f"\nH={HIDDEN} L={LAYERS} N={N} threads={THREADS}, medians of {REPEATS}; {cpu_description()}")
    print("| run | tokens/s | peak RSS MB | mean train loss | fto ÷ this |\n|---|---:|---:|---:|---:|")
    for mode, row in rows.items():
        ratio = "" if mode == "fto" or ours is None else f"{ours['tok_per_s'] / row['tok_per_s']:.2f}×"
        print(f"| {mode} | {row['tok_per_s']:,} | {row['peak_rss_mb']} | {row['final_loss']} | {ratio} |")
    if ours is None or peer is None:
        return
    print(
        f"\nfto vs TRL padding_free, checkpointing off: {ours['tok_per_s'] / peer['tok_per_s']:.2f}× "
        f"(goal ≥ 1.6×, ≥ 1.4× at H=512 L=8); peak RSS {ours['peak_rss_mb']} vs {peer['peak_rss_mb']} MB; "
        f"loss {ours['final_loss']} vs {peer['final_loss']} "
        f"({(ours['final_loss'] / peer['final_loss'] - 1) * 100:+.1f}%)"
    )


if __name__ == "__main__":
    if sys.argv[1:] == ["--child"]:
        result = fto_run()
        result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
        print(json.dumps(result))
    else:
        main()
