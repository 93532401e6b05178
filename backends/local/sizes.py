"""The embedded tiny Llama's sizes and the trainer's default batch, apart from the code that needs torch:
`fto plan` reads them."""

from __future__ import annotations

from typing import Any

# Small enough to train in seconds on 2 CPU cores, big enough to learn a simple task.
SIZE: dict[str, Any] = {
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 4,
    "max_position_embeddings": 512,
}
VOCAB_SIZE = 1024
AUTO_BATCH_SIZE = 8  # examples per step when the job file says auto
