"""Canonical dataset records: every reader maps into these, every writer maps out of them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]


class ToolCall(BaseModel):
    """A call of a declared tool by the assistant."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    type: Literal["function"] = "function"
    name: str
    arguments: str = Field(description="JSON-encoded arguments, exactly as the model wrote them")


class Tool(BaseModel):
    """A tool (function) the assistant may call."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    content: str | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    reasoning: str | None = Field(default=None, description="the model's visible reasoning before its answer")
    weight: Literal[0, 1] | None = Field(
        default=None, description="1 trains on this assistant turn, 0 skips it; None means the default (1)"
    )


class Conversation(BaseModel):
    """One SFT example: a chat, optionally with the tools the assistant may call."""

    model_config = ConfigDict(extra="forbid")

    messages: list[Message]
    tools: list[Tool] | None = None
    parallel_tool_calls: bool | None = None
    label: bool | None = Field(default=None, description="KTO: whether the last assistant turn is desirable")
    metadata: dict[str, Any] | None = Field(default=None, description="what the source format needs to round-trip")
    source_line: int | None = Field(default=None, description="line of the input file this came from")

    def prompt_and_reference(self) -> tuple[list[Message], Message]:
        """Split off the last assistant turn: what a model is asked, and what it should answer."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "assistant":
                return self.messages[:i], self.messages[i]
        raise ValueError("conversation has no assistant turn")


class PreferencePair(BaseModel):
    """One DPO example: a prompt and a preferred and a rejected continuation."""

    model_config = ConfigDict(extra="forbid")

    prompt: list[Message]
    chosen: list[Message]
    rejected: list[Message]
    tools: list[Tool] | None = None
    metadata: dict[str, Any] | None = None
    source_line: int | None = None


Record = Conversation | PreferencePair
