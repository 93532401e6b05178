"""The embedded default model: a tiny Llama built from a config, with a tokenizer trained on the job's data.

Nothing is downloaded, so the local backend works offline out of the box. The model starts from random
weights, which LoRA alone cannot steer far: its embeddings and output head are trained too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from fto.backends.local.sizes import SIZE, VOCAB_SIZE

SPECIAL_TOKENS = ["<unk>", "<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] or '' }}<|end|>{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
TRAINED_IN_FULL = ["embed_tokens", "lm_head"]  # peft modules_to_save


def build_tokenizer(texts: Iterable[str]) -> PreTrainedTokenizerFast:
    """A byte-level BPE tokenizer trained on `texts`, with a chat template."""
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(texts, trainer)
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok, unk_token="<unk>", pad_token="<pad>", bos_token="<s>", eos_token="<|end|>"
    )
    hf.chat_template = CHAT_TEMPLATE
    return hf


def build(conversations: Iterable[dict[str, Any]], seed: int, out_dir: Path) -> Path:
    """Train the tokenizer on the job's texts, build the model, save both to `out_dir`."""
    texts = [m.get("content") or "" for c in conversations for m in c["messages"]]
    tokenizer = build_tokenizer(texts)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False,
        **SIZE,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    staging = out_dir.with_name(out_dir.name + ".partial")
    model.save_pretrained(staging)
    tokenizer.save_pretrained(staging)
    os.replace(staging, out_dir)  # all at once: other processes wait for the folder, then find it complete
    return out_dir
