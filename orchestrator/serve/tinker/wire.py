"""Tinker's protobuf bodies: forward_backward requests in, forward_backward outputs and samples out.

The messages are the tinker SDK's own (tinker/proto/tinker_public_pb2.py); this module only moves numbers between
them and fto.loop's plain types. Tokens travel as int32 bytes, tensors as raw little-endian arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fto.loop import Datum, Output, Sample

_DTYPES = {1: np.float32, 2: np.int64, 3: np.int32}  # the proto's DType values the SDK writes (bf16 it never sends)


class WireError(ValueError):
    """A body that does not decode as the message it claims to be."""


@dataclass(frozen=True)
class ForwardBackward:
    model_id: str
    seq_id: int
    loss_fn: str
    config: dict[str, float]
    forward_only: bool
    data: list[Datum]


def _pb() -> Any:
    from tinker.proto import tinker_public_pb2

    return tinker_public_pb2


def forward_backward_request(body: bytes) -> ForwardBackward:
    """A forward_backward body (already decompressed) as plain data; WireError when it cannot be read."""
    from google.protobuf.message import DecodeError

    message = _pb().ForwardBackwardRequest()
    try:
        message.ParseFromString(body)
    except DecodeError as exc:
        raise WireError(f"the body is not a ForwardBackwardRequest: {exc}") from None
    data = []
    for k, item in enumerate(message.data):
        tokens: list[int] = []
        for chunk in item.model_input:
            if chunk.WhichOneof("chunk") != "encoded_text":
                raise WireError(f"datum {k}: only token chunks are supported (got {chunk.WhichOneof('chunk')})")
            tokens += np.frombuffer(chunk.encoded_text.tokens, dtype=np.int32).tolist()
        inputs = {name: _tensor(tensor, f"datum {k}, input {name!r}") for name, tensor in item.loss_fn_inputs.items()}
        data.append(Datum(tokens, inputs))
    config = {k: float(v) for k, v in message.loss_fn_config.items()}
    config |= {k: v.number for k, v in message.loss_fn_config_v2.items() if v.WhichOneof("value") == "number"}
    return ForwardBackward(message.model_id, message.seq_id, message.loss_fn, config, message.forward_only, data)


def _tensor(tensor: Any, where: str) -> np.ndarray:
    dtype = _DTYPES.get(tensor.dtype)
    if dtype is None:
        raise WireError(f"{where}: unsupported dtype {tensor.dtype}")
    if tensor.HasField("sparse_csr"):
        raise WireError(f"{where}: sparse tensors are not supported")
    values = np.frombuffer(tensor.dense, dtype=dtype).copy()  # writable: torch takes it as is
    shape = list(tensor.shape)
    if shape and int(np.prod(shape)) != values.size:
        raise WireError(f"{where}: shape {shape} does not match its {values.size} values")
    return values.reshape(shape) if shape else values


def forward_backward_output(output: Output) -> bytes:
    """An Output as the SDK reads it: one ArrayRecord, each field's per-datum arrays end to end with offsets."""
    pb = _pb()
    message = pb.ForwardBackwardOutput(loss_fn_output_type="ArrayRecord")
    for key, value in output.metrics.items():
        message.metrics[key] = float(value)
    if not output.outputs:
        return bytes(message.SerializeToString())
    record = message.loss_fn_outputs.add(type_tag="ArrayRecord", num_datums=len(output.outputs))
    for name in output.outputs[0]:
        arrays = [np.ascontiguousarray(o[name], dtype=np.float32).reshape(-1) for o in output.outputs]
        offsets = np.cumsum([0, *(a.nbytes for a in arrays)]).astype(np.int64)
        field = record.fields[name]
        field.data = b"".join(a.tobytes() for a in arrays)
        field.offsets = offsets.tobytes()
        field.dtype = pb.DTYPE_FLOAT32
    return bytes(message.SerializeToString())


def sample_response(samples: list[Sample]) -> bytes:
    """Samples as the SDK's SampleResponse message."""
    pb = _pb()
    message = pb.SampleResponse()
    for sample in samples:
        sequence = message.sequences.add()
        sequence.stop_reason = pb.STOP_REASON_LENGTH if sample.stop_reason == "length" else pb.STOP_REASON_STOP
        sequence.tokens = np.asarray(sample.tokens, dtype=np.int32).tobytes()
        sequence.logprobs = np.asarray(sample.logprobs, dtype=np.float32).tobytes()
    return bytes(message.SerializeToString())
