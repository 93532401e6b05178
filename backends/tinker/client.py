"""The training-loop protocol (fto.loop) over the tinker SDK: the same steps on any Tinker-compatible service —
Tinker itself, Together's post-training sessions, or `fto serve`.

Requests go out as the SDK sends them (forward_backward and optim_step queued together, so the service never idles
between them); results are turned into fto.loop's plain types here, so recipes never see the SDK.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from fto.loop import Adam, Datum, Output, Sample, SamplingParams


class TinkerLoop:
    """A LoRA training client of a Tinker-compatible service."""

    def __init__(self, service: Any, client: Any):
        self.service, self.client = service, client
        self.tokenizer = client.get_tokenizer()
        self._sampler: Any = None  # the sampler of the latest weights; dropped after each optimizer step
        self.steps = 0

    @classmethod
    def open(cls, url: str, base_model: str, *, rank: int = 16, seed: int = 0, api_key: str | None = None,
             resume_from: str | None = None) -> TinkerLoop:  # fmt: skip
        """A training client on `base_model` at `url` (or resumed from a saved state's tinker:// path)."""
        try:
            import tinker
        except ImportError:
            raise ImportError("training loops on a Tinker-compatible service need the tinker SDK: "
                              "pip install 'fto[loop]'") from None  # fmt: skip
        service = tinker.ServiceClient(base_url=url, api_key=api_key or "tml-fto-loopback")
        if resume_from:
            client = service.create_training_client_from_state_with_optimizer(resume_from)
        else:
            client = service.create_lora_training_client(base_model=base_model, rank=rank, seed=seed)
        return cls(service, client.result())  # the SDK hands out a future of the client

    def forward_backward(self, data: Sequence[Datum], loss_fn: str = "cross_entropy",
                         config: Mapping[str, float] | None = None) -> Output:  # fmt: skip
        """The step's gradients on the service; its outputs and metrics."""
        out = self.client.forward_backward(_data(data), loss_fn, dict(config) if config else None).result()
        return _output(out)

    def forward(self, data: Sequence[Datum], loss_fn: str = "cross_entropy") -> Output:
        """The loss and log-probabilities, without gradients."""
        return _output(self.client.forward(_data(data), loss_fn).result())

    def optim_step(self, adam: Adam) -> dict[str, float]:
        """One Adam step on the service."""
        from tinker import types

        params = types.AdamParams(learning_rate=adam.learning_rate, beta1=adam.beta1, beta2=adam.beta2, eps=adam.eps,
                                  weight_decay=adam.weight_decay, grad_clip_norm=adam.grad_clip_norm)  # fmt: skip
        result = self.client.optim_step(params).result()
        self._sampler = None
        self.steps += 1
        return {k: float(v) for k, v in (result.metrics or {}).items()}

    def sample(self, prompt: Sequence[int], num_samples: int, params: SamplingParams) -> list[Sample]:
        """Samples from the weights as they are now (a sampler saved after each optimizer step)."""
        from tinker import types

        if self._sampler is None:
            self._sampler = self.client.save_weights_and_get_sampling_client().result()
        sampling = types.SamplingParams(
            max_tokens=params.max_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            stop=list(params.stop) or None,
        )
        reply = self._sampler.sample(types.ModelInput.from_ints(list(prompt)), num_samples, sampling).result()
        return [
            Sample(list(s.tokens), [float(x) for x in (s.logprobs or [0.0] * len(s.tokens))], s.stop_reason)
            for s in reply.sequences
        ]

    def save_state(self, name: str) -> str:
        """The state on the service; returns its tinker:// path."""
        return str(self.client.save_state(name).result().path)

    def load_state(self, path: str) -> None:
        """Weights and optimizer state from a tinker:// path."""
        self.client.load_state_with_optimizer(path).result()

    def save_weights_for_sampler(self, name: str) -> str:
        """The adapter for sampling; returns its tinker:// path."""
        return str(self.client.save_weights_for_sampler(name).result().path)

    def close(self) -> None:
        """Drop the sampler."""
        self._sampler = None


def offered_models(url: str, api_key: str) -> list[str]:
    """The base models the service trains, as it lists them (its first is the default of a job that names none)."""
    import tinker

    answer = tinker.RestClient(base_url=url, api_key=api_key).get_server_capabilities().result()
    found = [m.model_name for m in answer.supported_models if m.model_name and m.trainable is not False]
    if not found:
        raise ValueError(f"the service at {url} offers no model to train")
    return found


def _data(data: Sequence[Datum]) -> list[Any]:
    from tinker import types

    return [
        types.Datum(
            model_input=types.ModelInput.from_ints(list(d.tokens)),
            loss_fn_inputs={k: _tensor(v) for k, v in d.inputs.items()},
        )
        for d in data
    ]


def _tensor(values: np.ndarray) -> Any:
    from tinker import types

    dtype: Literal["int64", "float32"] = "int64" if np.issubdtype(values.dtype, np.integer) else "float32"
    return types.TensorData(data=values.astype(dtype).reshape(-1).tolist(), dtype=dtype, shape=list(values.shape))


def _output(out: Any) -> Output:
    outputs = [{k: np.asarray(v.to_numpy()) for k, v in item.items()} for item in out.loss_fn_outputs]
    return Output(outputs, {k: float(v) for k, v in out.metrics.items()})
