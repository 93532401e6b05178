"""The training-loop protocol (fto.loop) on the local trainer: a LoRA model in this process, driven step by step.

forward_backward lays the data out as the local trainer does (packing.py: examples end to end in one row, each
attending over itself alone; only the positions that are scored go through the output layer), so a loop step costs
what a step of a local job costs. Sampling goes through the continuous-batching engine over the live weights.
`fto serve` puts this class behind Tinker's API (orchestrator/serve/tinker).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from fto.backends.local.engine import Engine, Piece, Sampling
from fto.backends.local.packing import group, packed_row, token_logprobs
from fto.backends.local.precision import frozen_products_in_bf16
from fto.backends.local.shared_lock import SharedLock
from fto.backends.local.tokenized import Encoded
from fto.loop import LOSSES, Adam, Datum, Output, Sample, SamplingParams

EMBEDDED = "embedded:tiny-llama"
ROW_TOKENS = 8192  # tokens per packed row; a longer batch runs as several rows, gradients accumulated
INPUTS = {
    "cross_entropy": ("target_tokens", "weights"),
    "importance_sampling": ("target_tokens", "logprobs", "advantages"),
    "ppo": ("target_tokens", "logprobs", "advantages"),
}


class LoopError(ValueError):
    """A request the loop cannot run (bad shapes, unknown tokens, a loss it does not offer): the caller's fault."""


def base_folder(base_model: str, root: Path) -> tuple[Path, bool]:
    """Where `base_model` lives: the embedded tiny Llama (built under `root` once), a model folder, or a model in
    the Hugging Face cache (never downloaded). Returns (folder, whether it is the embedded model)."""
    from fto.backends.local.hub import cached_model

    if base_model == EMBEDDED:
        folder = root / "embedded-tiny-llama"
        if not (folder / "config.json").is_file():
            from fto.backends.local import embedded

            folder.parent.mkdir(parents=True, exist_ok=True)
            # No job data to train its tokenizer on: byte-level, so it still encodes any text.
            embedded.build([{"messages": [{"content": _CORPUS}]}], 0, folder)
        return folder, True
    path = Path(base_model).expanduser()
    if (path / "config.json").is_file():
        return path, False
    try:
        return Path(cached_model(base_model)), False
    except FileNotFoundError as exc:
        raise LoopError(f"unknown base model {base_model!r}: {exc}; or use {EMBEDDED}") from None


_CORPUS = "the a to of and in is it you that for on with as are be this was have not at or by from " * 4


class LocalLoop:
    """A LoRA adapter on a base model, trained one forward_backward / optim_step at a time (one caller at a time)."""

    def __init__(self, folder: Path, *, embedded: bool, rank: int, seed: int, state_root: Path,
                 train_attn: bool = True, train_mlp: bool = True, train_unembed: bool = True):  # fmt: skip
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from fto.backends.local import LocalOptions
        from fto.backends.local import embedded as embedded_model
        from fto.backends.local.worker import attention_implementation, frozen_bf16

        self.base = folder
        self.state_root = state_root
        self.tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(
            folder, local_files_only=True, attn_implementation=attention_implementation("auto")
        )
        targets = _targets(model, train_attn, train_mlp, train_unembed and not embedded)
        if not targets:
            raise LoopError("LoRA needs at least one of train_attn, train_mlp, train_unembed")
        torch.manual_seed(seed)
        config = LoraConfig(
            r=rank,
            lora_alpha=rank,
            target_modules=targets,
            modules_to_save=embedded_model.TRAINED_IN_FULL if embedded else None,  # a random model needs them
            task_type="CAUSAL_LM",
        )
        self.model = get_peft_model(model, config)
        self.model.train()
        self.vocab = int(self.model.get_input_embeddings().weight.shape[0])
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(self.params, lr=1e-4, betas=(0.9, 0.95), eps=1e-12, weight_decay=0.0)
        self.steps = 0
        # As a local job: frozen weights multiply in bf16 where the CPU does that natively (precision.py).
        self.frozen_bf16 = frozen_bf16(LocalOptions(), self.model.device)
        self.lock = threading.Lock()  # one step at a time; the engine samples under it too
        self._engine: Engine | None = None

    @classmethod
    def open(cls, base_model: str, *, rank: int = 16, seed: int = 0, root: Path | None = None) -> LocalLoop:
        """A fresh adapter on `base_model`; states are saved under `root` (FTO_HOME/loops by default)."""
        from fto.orchestrator.paths import fto_home

        home = root or fto_home() / "loops"
        folder, embedded = base_folder(base_model, home / "base")
        return cls(folder, embedded=embedded, rank=rank, seed=seed, state_root=home / "states")

    # training --------------------------------------------------------------------------------------------

    def forward_backward(self, data: Sequence[Datum], loss_fn: str = "cross_entropy",
                         config: Mapping[str, float] | None = None) -> Output:  # fmt: skip
        """The loss and its gradients, added to those since the last optim_step."""
        return self._run(data, loss_fn, dict(config or {}), backward=True)

    def forward(self, data: Sequence[Datum], loss_fn: str = "cross_entropy") -> Output:
        """The loss and the log-probabilities, without gradients."""
        return self._run(data, loss_fn, {}, backward=False)

    def check(self, data: Sequence[Datum], loss_fn: str) -> None:
        """Every datum fits the loss and the model, before any work (LoopError naming the datum and input)."""
        if loss_fn not in INPUTS:
            raise LoopError(f"loss {loss_fn!r} is not offered here; offered: {', '.join(LOSSES)}")
        if not data:
            raise LoopError("no data")
        for k, datum in enumerate(data):
            n = len(datum.tokens)
            if n == 0:
                raise LoopError(f"datum {k}: no input tokens")
            for name in INPUTS[loss_fn]:
                if name not in datum.inputs:
                    raise LoopError(f"datum {k}: loss {loss_fn} needs the input {name!r}")
                if datum.inputs[name].shape != (n,):
                    raise LoopError(
                        f"datum {k}: input {name!r} has shape {list(datum.inputs[name].shape)}; the datum has {n} "
                        "tokens, so it must have shape [" + str(n) + "]"
                    )
            for name, ids in (("model input", np.asarray(datum.tokens)), ("target_tokens", datum.inputs[
                    "target_tokens"])):  # fmt: skip
                bad = ids[(ids < 0) | (ids >= self.vocab)]
                if bad.size:
                    raise LoopError(
                        f"datum {k}: {name} has token {int(bad[0])}, outside the vocabulary (0–{self.vocab - 1})"
                    )

    def _run(self, data: Sequence[Datum], loss_fn: str, config: dict[str, float], backward: bool) -> Output:
        self.check(data, loss_fn)
        outputs: list[dict[str, np.ndarray]] = []
        total = 0.0
        device = next(self.model.parameters()).device
        lengths = [len(d.tokens) + 1 for d in data]
        products = frozen_products_in_bf16(self.model) if self.frozen_bf16 else contextlib.nullcontext()
        with self.lock, products, contextlib.nullcontext() if backward else torch.no_grad():
            for chunk in group(lengths, ROW_TOKENS):
                part = [data[i] for i in chunk]
                # Position i reads tokens[i] and is scored on target_tokens[i]: an example whose labels are the
                # targets one place later, the last target appended as an input nothing reads.
                encoded = [
                    Encoded(
                        input_ids=[*d.tokens, int(d.inputs["target_tokens"][-1])],
                        labels=[d.tokens[0], *d.inputs["target_tokens"].tolist()],
                    )
                    for d in part
                ]
                logp, _, _ = token_logprobs(self.model, packed_row(encoded, device))  # datum by datum, in order
                inputs = {k: np.concatenate([d.inputs[k] for d in part]) for k in INPUTS[loss_fn]}
                loss_sum, extra = _loss(loss_fn, logp, inputs, config, device)
                sizes = [len(d.tokens) for d in part]
                found = {"logprobs": logp.detach().float().cpu().numpy(), **extra}
                for k, at in enumerate(np.cumsum([0, *sizes[:-1]])):
                    outputs.append({name: values[at : at + sizes[k]] for name, values in found.items()})
                if backward:
                    loss_sum.backward()
                total += float(loss_sum.detach())
        return Output(outputs, {"loss:sum": total})

    def optim_step(self, adam: Adam) -> dict[str, float]:
        """One Adam step with `adam`'s settings on the gradients accumulated since the last step."""
        with self.lock:
            for group_ in self.optimizer.param_groups:
                group_.update(lr=adam.learning_rate, betas=(adam.beta1, adam.beta2), eps=adam.eps,
                              weight_decay=adam.weight_decay)  # fmt: skip
            limit = adam.grad_clip_norm if adam.grad_clip_norm > 0 else float("inf")
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, limit))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
            self.steps += 1
        return {"grad_norm": norm, "learning_rate": adam.learning_rate, "step": float(self.steps)}

    # sampling --------------------------------------------------------------------------------------------

    def sample(self, prompt: Sequence[int], num_samples: int, params: SamplingParams) -> list[Sample]:
        """`num_samples` continuations of `prompt` from the weights as they are now, through the engine."""
        if not prompt or min(prompt) < 0 or max(prompt) >= self.vocab:
            raise LoopError(f"the prompt must be token ids within the vocabulary (0–{self.vocab - 1})")
        if self._engine is None:
            self._engine = Engine(lambda _name: (self.model, self.tokenizer), SharedLock(), self.model.device)
        with self.lock:
            was_training = self.model.training
            self.model.eval()
            try:
                return collect(self._engine, "policy", prompt, num_samples, params)
            finally:
                self.model.train(was_training)

    # states ----------------------------------------------------------------------------------------------

    def save_state(self, name: str) -> str:
        """The adapter's weights, the optimizer's state and the step count under `name`; returns the folder."""
        folder = _fresh(self.state_root / "state" / name)
        with self.lock:
            trained = {k: v.detach().cpu() for k, v in self.model.named_parameters() if v.requires_grad}
            torch.save({"weights": trained, "optimizer": self.optimizer.state_dict(), "steps": self.steps},
                       folder / "state.pt")  # fmt: skip
        return str(folder)

    def load_state(self, path: str, optimizer: bool = True) -> None:
        """Weights (and, with `optimizer`, Adam's moments and the step count) from a folder save_state wrote."""
        file = Path(path) / "state.pt"
        if not file.is_file():
            raise LoopError(f"no saved state at {path}")
        saved = torch.load(file, map_location="cpu", weights_only=True)
        with self.lock:
            params = dict(self.model.named_parameters())
            unknown = sorted(set(saved["weights"]) - set(params))
            if unknown:
                raise LoopError(f"the state at {path} belongs to another model (it has {unknown[0]})")
            with torch.no_grad():
                for key, value in saved["weights"].items():
                    params[key].copy_(value)
            if optimizer:
                self.optimizer.load_state_dict(saved["optimizer"])
                self.steps = int(saved["steps"])

    def save_weights_for_sampler(self, name: str) -> str:
        """The adapter as a folder the engine (and `fto serve`, and peft) loads; returns the folder."""
        folder = _fresh(self.state_root / "sampler" / name)
        with self.lock:
            self.model.save_pretrained(str(folder))
            self.tokenizer.save_pretrained(folder)
        return str(folder)

    def close(self) -> None:
        """Let the engine go."""
        self._engine = None


def collect(engine: Engine, model: str, prompt: Sequence[int], count: int, params: SamplingParams) -> list[Sample]:
    """`count` samples of `prompt` from `model` on `engine`, with each token's log-probability."""
    done = threading.Semaphore(0)
    found: list[Sample | str | None] = [None] * count
    logprobs: list[list[float]] = [[] for _ in range(count)]

    def collector(index: int) -> Callable[[Piece], None]:
        def emit(piece: Piece) -> None:
            logprobs[index] += [t.logprob or 0.0 for t in piece.tokens]
            if piece.error is not None:
                found[index] = piece.error
                done.release()
            elif piece.finish_reason is not None:
                tokens = list(piece.token_ids)
                found[index] = Sample(tokens, logprobs[index][: len(tokens)],
                                      "length" if piece.finish_reason == "length" else "stop")  # fmt: skip
                done.release()

        return emit

    seed = params.seed
    requests = [
        (list(prompt), _sampling(params, None if seed is None else seed + k), collector(k)) for k in range(count)
    ]
    engine.submit_many(model, requests, group=object(), sequences=count)
    for _ in range(count):
        done.acquire()
    out = []
    for item in found:
        if not isinstance(item, Sample):
            raise LoopError(f"sampling failed: {item}")
        out.append(item)
    return out


def _sampling(params: SamplingParams, seed: int | None) -> Sampling:
    return Sampling(max_new_tokens=params.max_tokens, temperature=params.temperature, top_p=params.top_p, seed=seed,
                    stop=params.stop, logprobs=0, end_token_logprob=True)  # fmt: skip


def _loss(
    name: str, logp: torch.Tensor, inputs: dict[str, np.ndarray], config: dict[str, float], device: torch.device
) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """Tinker's losses, summed over the tokens: cross_entropy −Σ w·log p; importance_sampling −Σ (p/q)·A; ppo
    −Σ min((p/q)·A, clip(p/q)·A). `inputs` hold every datum's values end to end, as `logp` does."""
    tensor = lambda key: torch.as_tensor(inputs[key], dtype=torch.float32, device=device)  # noqa: E731
    if name == "cross_entropy":
        elementwise = -tensor("weights") * logp
        return elementwise.sum(), {"elementwise_loss": elementwise.detach().cpu().numpy()}
    ratio = torch.exp(logp - tensor("logprobs"))
    advantages = tensor("advantages")
    if name == "importance_sampling":
        return -(ratio * advantages).sum(), {}
    low, high = config.get("clip_low_threshold", 0.8), config.get("clip_high_threshold", 1.2)
    clipped = torch.clamp(ratio, low, high)
    return -torch.minimum(ratio * advantages, clipped * advantages).sum(), {}


def _targets(model: torch.nn.Module, attn: bool, mlp: bool, unembed: bool) -> list[str]:
    """The leaf names of the linear layers LoRA goes on: attention's, the MLP's, the output head."""
    names: set[str] = set()
    for qualified, module in model.named_modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        leaf = qualified.rsplit(".", 1)[-1]
        if (attn and ".self_attn." in qualified) or (mlp and ".mlp." in qualified) or (unembed and leaf == "lm_head"):
            names.add(leaf)
    return sorted(names)


def _fresh(folder: Path) -> Path:
    if folder.exists():
        raise LoopError(f"a state named {folder.name!r} already exists; choose another name")
    folder.mkdir(parents=True)
    return folder
