"""Request and response bodies of the HTTP API and the WebSocket protocol."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tmux_sessions.naming import check_session_name, control_character_problem

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

    @field_validator("ticket_id")
    @classmethod
    def _ticket_on_one_line(cls, ticket_id: str | None) -> str | None:
        """The ticket goes into the tmux option @aiwf_ticket, which tmux lists verbatim: a tab
        or newline would split that listing's lines and fields."""
        if ticket_id is not None:
            problem = control_character_problem(ticket_id)
            if problem is not None:
                raise ValueError(f"ticket_id {problem}")
        return ticket_id

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
    """A session as the API shows it; ``alive`` is false once tmux no longer has it.

    A session whose command exited also tells how (``exit_status``, e.g. 127 when the command
    was not found, 128 + N when signal N ended it) and what it left on screen (``last_output``,
    its last lines, at most 4000 characters), so a failed agent can be diagnosed after the
    fact. Both are null for live sessions and for sessions that ended otherwise.
    """

    id: str
    name: str
    cwd: str | None = None
    created_at: datetime
    created_by: str | None = None
    alive: bool
    clients: int = 0
    exit_status: int | None = None
    last_output: str | None = None


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
