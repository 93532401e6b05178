"""`fto export` for local jobs: the adapter merged into its base (transformers layout), an Ollama Modelfile, the
files and command for vLLM, or GGUF through llama.cpp's converter. Each target writes into one folder."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

from fto.orchestrator.errors import FtoError

TARGETS = ("merged", "ollama", "vllm", "gguf")
SENTINEL = "\x00FTO{role}\x00"  # rendered in place of a message's content, to find what a template puts around it


def export(model: str, target: str, out: Path) -> list[str]:
    """Export a fine-tuned model folder (an adapter, or a full model) to `out` as `target`."""
    source = Path(model)
    if not source.is_dir():
        raise FtoError(f"the job's model is gone: {source} (was the job folder removed?)")
    out.mkdir(parents=True, exist_ok=True)
    with _quiet():
        return _export(source, target, out)


def _export(source: Path, target: str, out: Path) -> list[str]:
    if target == "merged":
        return merged(source, out)
    if target == "ollama":
        return ollama(source, out)
    if target == "vllm":
        return vllm(source, out)
    if target == "gguf":
        return gguf(source, out)
    raise FtoError(f"unknown export target {target!r} (one of {', '.join(TARGETS)})")


def _is_adapter(folder: Path) -> bool:
    return (folder / "adapter_config.json").is_file()


def _base_of(adapter: Path) -> Path:
    return Path(json.loads((adapter / "adapter_config.json").read_text())["base_model_name_or_path"])


def merged(source: Path, out: Path) -> list[str]:
    """Base + adapter as one model in the standard transformers layout (a full fine-tune is copied)."""
    if not _is_adapter(source):
        shutil.copytree(source, out, dirs_exist_ok=True)
        return [f"copied the fine-tuned model (full fine-tuning) to {out}"]
    from peft import AutoPeftModelForCausalLM
    from transformers import AutoTokenizer

    model = AutoPeftModelForCausalLM.from_pretrained(source).merge_and_unload()
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(source).save_pretrained(out)
    return [f"merged the adapter into its base: {out} (load it with AutoModelForCausalLM.from_pretrained)"]


def ollama(source: Path, out: Path) -> list[str]:
    """A Modelfile beside the adapter: FROM the base folder, ADAPTER, and the chat template as Ollama's TEMPLATE."""
    lines = []
    # Everything the Modelfile names lies beside it, named relative to it, so the folder moves to another machine.
    if _is_adapter(source):
        shutil.copytree(source, out / "adapter", dirs_exist_ok=True)
        shutil.copytree(_base_of(source), out / "base", dirs_exist_ok=True, copy_function=_link_or_copy)
        modelfile = ["FROM ./base", "ADAPTER ./adapter"]
    else:
        shutil.copytree(source, out / "model", dirs_exist_ok=True, copy_function=_link_or_copy)
        modelfile = ["FROM ./model"]
    template, stops = ollama_template(source)
    if template is None:
        lines.append("the chat template could not be translated: Ollama will use the one it detects (check it)")
    else:
        modelfile.append(f'TEMPLATE """{template}"""')
        modelfile += [f'PARAMETER stop "{stop}"' for stop in stops]
    (out / "Modelfile").write_text("\n".join(modelfile) + "\n")
    lines.append(f"wrote {out / 'Modelfile'}: ollama create NAME -f {out / 'Modelfile'} && ollama run NAME")
    return lines


def _link_or_copy(source: str, target: str) -> None:
    """A hard link where the file system allows it (a base model is gigabytes), else a copy."""
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """transformers' progress bars and FutureWarnings stay out of fto's output."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()


def ollama_template(source: Path) -> tuple[str | None, list[str]]:
    """The model's chat template as an Ollama (Go) template, when it is one that wraps each message in a fixed
    prefix and suffix by role: derived by rendering sentinel messages, then checked on a whole conversation."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source)
    if not tokenizer.chat_template:
        return None, []

    def render(messages: list[dict[str, str]], generation: bool) -> str:
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation))

    try:
        parts: dict[str, tuple[str, str]] = {}
        for role in ("system", "user", "assistant"):
            text = render([{"role": role, "content": SENTINEL.format(role=role)}], False)
            before, _, after = text.partition(SENTINEL.format(role=role))
            parts[role] = (before, after)
        probe = [{"role": "user", "content": SENTINEL.format(role="user")}]
        generation = render(probe, True).removeprefix(render(probe, False))
    except Exception:  # a template that cannot render lone messages is not a simple one
        return None, []

    def emulate(messages: list[dict[str, str]]) -> str:
        return "".join(parts[m["role"]][0] + m["content"] + parts[m["role"]][1] for m in messages) + generation

    sample = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
              {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "Bye"}]  # fmt: skip
    try:
        same = render(sample, True) == emulate(sample)
    except Exception:
        same = False
    if not same:
        return None, []
    branches = "".join(
        f'{"{{ if" if i == 0 else "{{ else if"} eq .Role "{role}" }}}}{pre}{{{{ .Content }}}}{post}'
        for i, (role, (pre, post)) in enumerate(parts.items())
    )
    stops = sorted({post.strip() for _, post in parts.values() if post.strip()})
    return f"{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{generation}", stops


def vllm(source: Path, out: Path) -> list[str]:
    """The adapter (or model) folder, and the exact `vllm serve` command in a README."""
    if _is_adapter(source):
        adapter = out / "adapter"
        shutil.copytree(source, adapter, dirs_exist_ok=True)
        command = f"vllm serve {_base_of(source)} --enable-lora --lora-modules fine-tuned={adapter}"
        call = "model: fine-tuned"
    else:
        model = out / "model"
        shutil.copytree(source, model, dirs_exist_ok=True)
        command, call = f"vllm serve {model}", f"model: {model}"
    (out / "README.md").write_text(
        f"# Serving with vLLM\n\n```bash\n{command}\n```\n\nThen call its OpenAI-compatible API at "
        f"http://127.0.0.1:8000/v1 with `{call}`.\n"
    )
    return [f"wrote {out / 'README.md'}: {command}"]


def gguf(source: Path, out: Path) -> list[str]:
    """A GGUF file through llama.cpp's converter (FTO_LLAMA_CPP: a llama.cpp checkout), from the merged model."""
    merged_dir = out / "merged"
    lines = merged(source, merged_dir)
    checkout = os.environ.get("FTO_LLAMA_CPP")
    script = Path(checkout) / "convert_hf_to_gguf.py" if checkout else None
    if script is None or not script.is_file():
        raise FtoError(
            "GGUF needs llama.cpp's converter, which is not on PyPI: git clone https://github.com/ggml-org/llama.cpp, "
            "pip install -r llama.cpp/requirements.txt, then set FTO_LLAMA_CPP=path/to/llama.cpp and run this again "
            f"(the merged model is ready in {merged_dir}: python llama.cpp/convert_hf_to_gguf.py {merged_dir} "
            f"--outfile {out / 'model.gguf'})"
        )
    target = out / "model.gguf"
    done = subprocess.run([sys.executable, str(script), str(merged_dir), "--outfile", str(target)], check=False,
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        raise FtoError(f"llama.cpp's converter failed: {done.stderr.strip()[-500:]}")
    return [*lines, f"wrote {target}"]
