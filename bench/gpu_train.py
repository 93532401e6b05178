"""The local trainer on a GPU: fto vs TRL (padding_free) on the same data, tokens/s, peak memory and MFU.

    python bench/gpu_train.py                 # on the device machine: one call, under 8 minutes
    SMOKE=1 python bench/gpu_train.py         # anywhere: a tiny config on CPU (CI runs this)

With CUDA: a Llama-shaped model of about 0.55B parameters (hidden 1536, 16 layers) built from a config — nothing
is downloaded — in bf16, LoRA r=16 on all linear layers, N variable-length chat examples (a BPE tokenizer trained
on them), batch 16, one epoch; fto's trainer (packed rows, its CUDA layout) and TRL's SFTTrainer with padding_free,
each in its own process. MFU counts 4 × parameters FLOPs a trained token (forward 2N, backward through the frozen
weights 2N; attention ignored) against the GPU's dense bf16 peak. Without CUDA the GPU row says "not lent".
Installs trl and datasets when missing (the device machine starts bare).
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMOKE = os.environ.get("SMOKE") == "1"
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()  # noqa: SIM905


def shape(cuda: bool) -> dict[str, int]:
    """The model and data: about 0.55B parameters on a GPU, a tiny one for the CPU smoke run."""
    if cuda and not SMOKE:
        return {"hidden": 1536, "layers": 16, "heads": 12, "examples": int(os.environ.get("N", "2048")), "vocab": 8192}
    return {"hidden": 64, "layers": 2, "heads": 4, "examples": int(os.environ.get("N", "48")), "vocab": 512}


def data(count: int) -> list[dict]:
    rng = random.Random(0)
    rows = []
    for _ in range(count):
        words = [rng.choice(WORDS) for _ in range(rng.choice([8, 21, 55, 144, 233]))]
        rows.append({"messages": [
            {"role": "system", "content": "You reverse word lists."},
            {"role": "user", "content": "Reverse: " + " ".join(words)},
            {"role": "assistant", "content": " ".join(reversed(words))},
        ]})  # fmt: skip
    return rows


def build(size: dict[str, int], cuda: bool) -> tuple[object, object, list[dict]]:
    """A tokenizer trained on the data and a randomly initialised Llama (bf16 on CUDA)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    torch.manual_seed(0)
    rows = data(size["examples"])
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    special = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]
    corpus = [m["content"] for r in rows for m in r["messages"]]
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=size["vocab"], special_tokens=special, initial_alphabet=alphabet)
    tok.train_from_iterator(corpus, trainer)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>",
                                     eos_token="<|end|>")  # fmt: skip
    hf_tok.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>"
        "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}"
        "{% else %}{{ m['content'] }}<|end|>{% endif %}{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    config = LlamaConfig(
        vocab_size=len(hf_tok), hidden_size=size["hidden"], intermediate_size=size["hidden"] * 8 // 3,
        num_hidden_layers=size["layers"], num_attention_heads=size["heads"], num_key_value_heads=size["heads"],
        max_position_embeddings=1024, pad_token_id=hf_tok.pad_token_id, eos_token_id=hf_tok.eos_token_id,
        torch_dtype="bfloat16" if cuda else "float32",
    )  # fmt: skip
    model = LlamaForCausalLM(config).to(dtype=torch.bfloat16 if cuda else torch.float32)
    return model, hf_tok, rows


def child(which: str) -> dict:
    """One measured run, in this process: `fto` or `trl`."""
    import torch

    cuda = torch.cuda.is_available()
    device = torch.device("cuda" if cuda else "cpu")
    size = shape(cuda)
    model, tokenizer, rows = build(size, cuda)
    params = sum(p.numel() for p in model.parameters())
    lora = {"r": 16, "lora_alpha": 32, "lora_dropout": 0.0, "target_modules": "all-linear", "task_type": "CAUSAL_LM"}
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    if which == "fto":
        from peft import LoraConfig, get_peft_model

        sys.path.insert(0, str(REPO))
        from fto.backends.local.tokenized import encode
        from fto.backends.local.train import Trainer, TrainSettings

        model = get_peft_model(model.to(device), LoraConfig(**lora))
        examples = [encode(tokenizer, r, 1024) for r in rows]
        tokens = sum(len(e.input_ids) for e in examples)
        settings = TrainSettings(epochs=1, batch_size=16, learning_rate=2e-4, warmup_ratio=0.0, seed=0,
                                 pad_token_id=tokenizer.pad_token_id, batch_tokens=16 * 1024,
                                 layout="packed" if cuda else "buckets", schedule="linear")  # fmt: skip
        trainer = Trainer(model, examples, [], settings, device)
        started = time.perf_counter()
        trainer.run(on_metric=lambda m: None, should_stop=lambda: False, on_checkpoint=lambda: None,
                    on_event=lambda *a, **k: None)  # fmt: skip
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        loss = sum(trainer.position.history) / len(trainer.position.history)
    else:
        from datasets import Dataset
        from peft import LoraConfig
        from trl import SFTConfig, SFTTrainer

        args = SFTConfig(output_dir=str(Path(os.environ.get("TMPDIR", "/tmp")) / "trl-gpu-bench"),
                         per_device_train_batch_size=16, num_train_epochs=1, learning_rate=2e-4, logging_steps=1000,
                         save_strategy="no", report_to=[], max_length=None, padding_free=True,
                         assistant_only_loss=True, use_cpu=not cuda, gradient_checkpointing=False,
                         bf16=cuda, dataloader_num_workers=0)  # fmt: skip
        trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                             peft_config=LoraConfig(**lora))  # fmt: skip
        tokens = sum(len(x) for x in trainer.train_dataset["input_ids"])
        started = time.perf_counter()
        loss = trainer.train().training_loss
        if cuda:
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
    peak = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    )
    return {"run": which, "device": torch.cuda.get_device_name() if cuda else "cpu", "params": params,
            "tokens": tokens, "seconds": round(seconds, 2), "tok_per_s": round(tokens / seconds, 1),
            "peak_mb": round(peak), "mean_loss": round(loss, 4)}  # fmt: skip


def mfu(row: dict) -> str:
    peak = next((flops for name, flops in PEAK_BF16.items() if name in row["device"]), None)
    if peak is None:
        return "n/a"
    return f"{4 * row['params'] * row['tok_per_s'] / peak:.1%}"


def main() -> None:
    for package in ("trl", "datasets"):
        if importlib.util.find_spec(package) is None:
            subprocess.run([sys.executable, "-m", "pip", "install", "-q", package], check=True, timeout=300)
    rows = []
    for which in ("fto", "trl"):
        out = subprocess.run([sys.executable, __file__, "--child", which], capture_output=True, text=True,
                             timeout=3600, cwd=REPO)  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"{which} failed:\n{out.stderr[-3000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    fto, trl = rows
    gpu = fto["device"] != "cpu"
    print(f"\n{fto['device']}: {fto['params'] / 1e6:.0f}M parameters, {fto['tokens']:,} tokens")
    print("| run | tokens/s | peak MB | MFU | mean loss |\n|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['run']} | {row['tok_per_s']:,} | {row['peak_mb']:,} | {mfu(row) if gpu else 'n/a'} | "
              f"{row['mean_loss']} |")  # fmt: skip
    print(f"\nfto ÷ TRL padding_free: {fto['tok_per_s'] / trl['tok_per_s']:.2f}× (goal ≥ 1.3×, MFU ≥ 40%)")
    if not gpu:
        print("GPU: not lent (this run: the CPU smoke configuration)")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(sys.argv[2])))
    else:
        main()
