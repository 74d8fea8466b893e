"""Which session names tmux can take unchanged.

tmux silently rewrites ``:`` and ``.`` (they separate session, window and pane in targets) and
escapes control characters, so the API refuses such names instead of creating a session under a
name nobody asked for.

>>> check_session_name("claude-PROJ-123-1")
'claude-PROJ-123-1'
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 64


def session_name_problem(name: str) -> str | None:
    """Why tmux cannot take ``name``, or None when it can."""
    if not name or not name.strip():
        return "must not be empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}"
    for forbidden in (":", "."):
        if forbidden in name:
            return f"must not contain {forbidden!r} (tmux uses it to separate targets)"
    return control_character_problem(name)


def control_character_problem(text: str) -> str | None:
    """Why ``text`` cannot stand in one field of a tmux listing line, or None.

    >>> control_character_problem("PROJ-7\\tx")
    "must not contain control characters (found '\\\\t')"
    """
    for char in text:
        if unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp"):
            return f"must not contain control characters (found {char!r})"
    return None


def check_session_name(name: str) -> str:
    """Return ``name`` or raise ValueError with the reason."""
    problem = session_name_problem(name)
    if problem is not None:
        raise ValueError(f"session name {problem}")
    return name
