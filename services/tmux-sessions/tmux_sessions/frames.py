"""The client -> server WebSocket frames: JSON text, ``input`` or ``resize``.

>>> parse_frame('{"type": "resize", "cols": 120, "rows": 40}')
ResizeFrame(type='resize', cols=120, rows=40)
>>> parse_frame('{"type": "resize", "cols": 0, "rows": 40}')
FrameError('resize: cols must be between 1 and 1000')
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tmux_sessions.models import InputFrame, ResizeFrame


@dataclass(frozen=True)
class FrameError:
    """Why a frame was ignored; sent back as ``{"type": "error", "message": ...}``."""

    message: str

    def to_json(self) -> str:
        return json.dumps({"type": "error", "message": self.message})


Frame = InputFrame | ResizeFrame | FrameError


def _describe(kind: str, error: ValidationError) -> str:
    problems = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        if item["type"] in ("greater_than_equal", "less_than_equal"):
            problems.append(f"{field} must be between 1 and 1000")
        else:
            problems.append(f"{field}: {item['msg']}")
    return f"{kind}: " + "; ".join(problems)


def parse_frame(text: str) -> Frame:
    """Turn a text frame into an input or resize frame, or a FrameError saying what is wrong."""
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError as error:
        return FrameError(f'not JSON ({error.msg}); send {{"type": "input", "data": ...}}')
    if not isinstance(data, dict):
        return FrameError('a frame must be a JSON object with a "type"')
    kind = data.get("type")
    model: type[InputFrame] | type[ResizeFrame]
    if kind == "input":
        model = InputFrame
    elif kind == "resize":
        model = ResizeFrame
    else:
        return FrameError(f'unknown frame type {kind!r}; use "input" or "resize"')
    try:
        return model.model_validate(data)
    except ValidationError as error:
        return FrameError(_describe(kind, error))
