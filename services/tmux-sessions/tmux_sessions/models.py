"""Request and response bodies of the HTTP API and the WebSocket protocol."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tmux_sessions.naming import check_session_name

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_INPUT_BYTES = 64 * 1024
TerminalSize = Annotated[int, Field(ge=1, le=1000)]


class SessionBase(BaseModel):
    name: str | None = None
    command: str | None = Field(default=None, max_length=8192)
    cwd: str | None = None
    ticket_id: str | None = Field(default=None, max_length=200)


class SessionCreate(SessionBase):
    """``POST /api/sessions``: every field optional; ``{}`` starts the default shell."""

    model_config = ConfigDict(extra="forbid")

    env: dict[str, str] = Field(default_factory=dict)
    cols: TerminalSize = 80
    rows: TerminalSize = 24

    @field_validator("name")
    @classmethod
    def _name_tmux_can_take(cls, name: str | None) -> str | None:
        return None if name is None else check_session_name(name)

    @field_validator("command")
    @classmethod
    def _command_without_nul(cls, command: str | None) -> str | None:
        if command is not None and "\0" in command:
            raise ValueError("command must not contain NUL characters")
        return command

    @field_validator("env")
    @classmethod
    def _env_names(cls, env: dict[str, str]) -> dict[str, str]:
        for key, value in env.items():
            if not ENV_NAME.match(key):
                raise ValueError(f"environment name {key!r} must match [A-Za-z_][A-Za-z0-9_]*")
            if "\0" in value:
                raise ValueError(f"environment value of {key} must not contain NUL characters")
        return env


class SessionPublic(SessionBase):
    """A session as the API shows it; ``alive`` is false once tmux no longer has it."""

    id: str
    name: str
    cwd: str | None = None
    created_at: datetime
    created_by: str | None = None
    alive: bool
    clients: int = 0


class SessionInput(BaseModel):
    """``POST /api/sessions/{id}/input``: type ``data`` literally, then Enter when asked."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(max_length=MAX_INPUT_BYTES)
    enter: bool = False

    @field_validator("data")
    @classmethod
    def _bounded_bytes(cls, data: str) -> str:
        if len(data.encode()) > MAX_INPUT_BYTES:
            raise ValueError(f"data is over {MAX_INPUT_BYTES} bytes; send it in parts")
        return data


class LoginRequest(BaseModel):
    username: str = Field(max_length=64)
    password: str = Field(max_length=1024)


class Me(BaseModel):
    username: str


class InputFrame(BaseModel):
    type: Literal["input"]
    data: str


class ResizeFrame(BaseModel):
    type: Literal["resize"]
    cols: TerminalSize
    rows: TerminalSize
