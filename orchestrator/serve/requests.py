"""The JSON bodies `fto serve` accepts, as pydantic models with OpenAI's field names and strict types.

Strict: a boolean is not a number, a number is not a string; non-finite numbers are refused everywhere. A body
that does not fit is a 400 naming the field, never a 500 and never silently defaulted.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

from fto.orchestrator.serve.errors import Invalid

INT64 = 2**63 - 1
Number = StrictFloat  # an integer is a number too; a boolean or a string is not ("should be a valid number")
Auto = Literal["auto"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        """OpenAI's spec makes most optional fields nullable: an explicit null means the default."""
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class CreateUpload(_Body):
    """POST /uploads."""

    filename: StrictStr = Field(min_length=1, max_length=512)
    purpose: Literal["fine-tune"]
    bytes: StrictInt = Field(gt=0, le=8 * 1024**3)
    mime_type: StrictStr = ""


class CompleteUpload(_Body):
    """POST /uploads/{id}/complete."""

    part_ids: list[StrictStr] = Field(min_length=1)
    md5: StrictStr | None = None


class Hyperparameters(_Body):
    """Supervised (and DPO's beta) hyperparameters, with OpenAI's ranges."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    n_epochs: Auto | Annotated[StrictInt, Field(ge=1, le=50)] = "auto"
    batch_size: Auto | Annotated[StrictInt, Field(ge=1, le=256)] = "auto"
    learning_rate_multiplier: Auto | Annotated[Number, Field(gt=0)] = "auto"
    beta: Auto | Annotated[Number, Field(gt=0, le=2)] = "auto"


class MethodSection(_Body):
    """method.supervised or method.dpo."""

    hyperparameters: Hyperparameters = Field(default_factory=Hyperparameters)


class ReinforcementHyperparameters(Hyperparameters):
    """method.reinforcement's hyperparameters (OpenAI's names and ranges; beta is not one of them)."""

    beta: Literal["auto"] = "auto"
    reasoning_effort: Literal["default", "low", "medium", "high"] = "default"
    compute_multiplier: Auto | Annotated[Number, Field(gt=0, le=10)] = "auto"
    eval_interval: Auto | Annotated[StrictInt, Field(ge=1)] = "auto"
    eval_samples: Auto | Annotated[StrictInt, Field(ge=1)] = "auto"


class ReinforcementSection(_Body):
    """method.reinforcement: the grader (checked as fto's grader objects when the job is created) and settings."""

    grader: dict[str, Any]
    hyperparameters: ReinforcementHyperparameters = Field(default_factory=ReinforcementHyperparameters)


class Method(_Body):
    """How to fine-tune: supervised examples, preference pairs, or answers rewarded by a grader."""

    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: MethodSection | None = None
    dpo: MethodSection | None = None
    reinforcement: ReinforcementSection | None = None

    @model_validator(mode="after")
    def _grader_given(self) -> Method:
        if self.type == "reinforcement" and self.reinforcement is None:
            raise ValueError("method.reinforcement with its grader is required for type reinforcement")
        return self

    def section(self) -> MethodSection | ReinforcementSection:
        """The hyperparameters (and RFT's grader) of the chosen type."""
        if self.type == "reinforcement" and self.reinforcement is not None:
            return self.reinforcement
        return (self.dpo if self.type == "dpo" else self.supervised) or MethodSection()


class CreateFineTuningJob(_Body):
    """POST /fine_tuning/jobs."""

    model: StrictStr
    training_file: StrictStr
    validation_file: StrictStr | None = None
    suffix: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")] | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None = None
    metadata: dict[StrictStr, Annotated[StrictStr, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    method: Method | None = None
    hyperparameters: Hyperparameters | None = Field(default=None, description="the older, top-level form")

    def resolved_method(self) -> Method:
        """`method`, or the older top-level `hyperparameters` as a supervised method."""
        if self.method is not None:
            return self.method
        return Method(
            type="supervised", supervised=MethodSection(hyperparameters=self.hyperparameters or Hyperparameters())
        )


class ChatMessage(_Body):
    """One message of a chat request (parsed further by the chat format's reader)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)

    role: Literal["system", "developer", "user", "assistant", "tool"]


Stop = (
    Annotated[StrictStr, Field(min_length=1)]
    | Annotated[list[Annotated[StrictStr, Field(min_length=1)]], Field(max_length=4)]
)
MaxTokens = Annotated[StrictInt, Field(ge=1, le=4096)]


class StreamOptions(_Body):
    """stream_options: a last chunk carrying the usage."""

    include_usage: StrictBool = False


class ResponseFormat(_Body):
    """response_format: plain text, or a JSON object (generation is constrained to valid JSON)."""

    type: Literal["text", "json_object"]


class FunctionDefinition(_Body):
    """A tool's function, as the chat template renders it."""

    name: Annotated[StrictStr, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    description: StrictStr | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Body):
    """One tool the model may call."""

    type: Literal["function"]
    function: FunctionDefinition


class _Sampled(_Body):
    """The sampling fields chat and text completions share."""

    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    seed: Annotated[StrictInt, Field(ge=-(2**63), le=INT64)] | None = None
    n: Annotated[StrictInt, Field(ge=1, le=16)] = 1
    stop: Stop | None = None
    stream: StrictBool = False
    stream_options: StreamOptions | None = None

    def stops(self) -> tuple[str, ...]:
        """`stop` as a tuple (one string or up to four)."""
        return () if self.stop is None else (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)

    def usage_chunk(self) -> bool:
        """Whether a stream ends with a chunk carrying the usage."""
        return bool(self.stream_options and self.stream_options.include_usage)


class ChatCompletionRequest(_Sampled):
    """POST /chat/completions: the fields fto serve acts on (others OpenAI defines are accepted and ignored)."""

    model: StrictStr | None = None  # Azure names the deployment in the path instead
    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: MaxTokens | None = None
    max_completion_tokens: MaxTokens | None = None
    logprobs: StrictBool = False
    top_logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    response_format: ResponseFormat | None = None
    tools: list[Tool] | None = Field(default=None, max_length=128)
    tool_choice: Literal["none", "auto", "required"] | dict[str, Any] | None = None

    def raw_messages(self) -> list[dict[str, Any]]:
        """The messages as sent, `developer` read as the system prompt it replaces."""
        out = []
        for message in self.messages:
            raw = message.model_dump()
            if raw["role"] == "developer":
                raw["role"] = "system"
            out.append(raw)
        return out


class CompletionRequest(_Sampled):
    """POST /completions: a text prompt (or token ids, as lm-eval sends), continued or scored."""

    model: StrictStr | None = None  # Azure names the deployment in the path instead
    prompt: StrictStr | list[StrictStr] | list[StrictInt] | list[list[StrictInt]]
    max_tokens: Annotated[StrictInt, Field(ge=0, le=4096)] = 16  # 0 with echo: score the prompt only
    echo: StrictBool = False
    logprobs: Annotated[StrictInt, Field(ge=0, le=20)] | None = None
    suffix: StrictStr | None = None  # insertion: refused with a clear 400 rather than ignored


class InputText(_Body):
    """A text part of a Responses input message."""

    type: Literal["input_text", "output_text"]
    text: StrictStr


class InputMessage(_Body):
    """A message of a Responses input."""

    type: Literal["message"] = "message"
    role: Literal["system", "developer", "user", "assistant"]
    content: StrictStr | list[InputText]

    def text(self) -> str:
        """The message's text, its parts joined."""
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class ResponseRequest(_Body):
    """POST /responses: the core of OpenAI's Responses API (text or message input, streamed or not)."""

    model: StrictStr
    input: StrictStr | list[InputMessage] = Field(min_length=1)
    instructions: StrictStr | None = None
    max_output_tokens: Annotated[StrictInt, Field(ge=16, le=4096)] | None = None
    temperature: Annotated[Number, Field(ge=0, le=2)] = 1.0
    top_p: Annotated[Number, Field(gt=0, le=1)] = 1.0
    stream: StrictBool = False
    store: StrictBool = False
    metadata: dict[StrictStr, Annotated[StrictStr, Field(max_length=512)]] | None = Field(default=None, max_length=16)
    tools: list[Any] | None = None  # refused when given: no tools are offered here
    previous_response_id: StrictStr | None = None  # refused when given: responses are not stored

    def messages(self) -> list[dict[str, Any]]:
        """The conversation: instructions as the system message, then the input."""
        out = [{"role": "system", "content": self.instructions}] if self.instructions else []
        if isinstance(self.input, str):
            return [*out, {"role": "user", "content": self.input}]
        for item in self.input:
            out.append({"role": "system" if item.role == "developer" else item.role, "content": item.text()})
        return out


Body = TypeVar("Body", bound=BaseModel)


def parse_json(raw: bytes) -> Any:
    """A JSON document that is valid UTF-8 with finite numbers, integers of sane length and bounded nesting."""
    try:
        text = raw.decode("utf-8") if raw else "{}"
    except UnicodeDecodeError:
        raise Invalid("The request body is not valid UTF-8") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant, parse_int=_bounded_int)
    except json.JSONDecodeError as exc:
        raise Invalid(f"We could not parse the JSON body of your request: {exc.msg}") from None
    except ValueError as exc:
        raise Invalid(str(exc)) from None
    except RecursionError:
        raise Invalid("The JSON body nests too deeply") from None


def parse_body(model: type[Body], raw: bytes) -> Body:
    """`raw` as `model`, or a 400 naming the first field at fault."""
    data = parse_json(raw)
    if not isinstance(data, dict):
        raise Invalid("The request body must be a JSON object")
    _check_text(data, ())
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # A field that is there but wrong says more than one that is missing: report it first.
        errors = sorted(exc.errors(), key=lambda error: error["type"] == "missing")
        param = _param(errors[0]["loc"])
        raise Invalid(f"{param}: {errors[0]['msg']}", param or None) from None


def _check_text(value: Any, loc: tuple[int | str, ...]) -> None:
    """Every string must be real Unicode: JSON's escapes can spell a lone surrogate, which no model can encode."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Invalid(f"{_param(loc)}: not valid Unicode (a lone surrogate)", _param(loc) or None) from None
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, loc)
            _check_text(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_text(item, (*loc, index))


def _param(loc: tuple[int | str, ...]) -> str:
    """A pydantic location as OpenAI names params: `messages[0].role`, `method.dpo.hyperparameters.beta`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif not _is_type_tag(part):
            out += f".{part}" if out else part
    return out


def _is_type_tag(part: Any) -> bool:
    """pydantic names the union member it tried (`literal['auto']`, `int`); clients know only field names."""
    return isinstance(part, str) and (
        part in ("int", "float", "str", "bool") or part.startswith(("literal[", "constrained-"))
    )


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 20:
        raise ValueError("an integer in the body has more digits than any field allows")
    return int(text)
