"""A local server speaking the Anthropic Messages API, scripted per test.

Why: the real Claude Code binary is a native program we cannot patch, but it honours
``ANTHROPIC_BASE_URL``. Pointing it at this server lets a test run the real agent end to end
(tools, permissions, slash commands, files written on disk) with answers the test decides, no
network and no model. Every request is recorded so the test can also prove what the agent sent
(for instance that the API key it was given reached it).

The wire format follows the real API: ``POST /v1/messages`` (Claude Code adds ``?beta=true``)
answered with Server-Sent Events (``message_start``, ``ping``, per block ``content_block_start``
/ ``content_block_delta`` / ``content_block_stop``, then ``message_delta`` and ``message_stop``)
or, without ``"stream": true``, with the equivalent JSON message; ``POST
/v1/messages/count_tokens`` answers ``{"input_tokens": N}``; errors use the real shape
``{"type": "error", "error": {"type": ..., "message": ...}}``. Other GETs and HEADs get ``{}``.

Requests are sorted into kinds: a *main-loop* request is a ``/v1/messages`` call whose ``tools``
include ``Write`` (the agent's conversation; answered by the script); other ``/v1/messages``
calls are *side* requests (titles, quota probes, summaries; answered with a short text).

Example, from a test::

    script = complete_ticket_script("/work/out.txt", "hello", "Wrote out.txt")
    with MessagesApiServer(script, expected_api_key=key) as api:
        run_claude(env={"ANTHROPIC_BASE_URL": api.url, "ANTHROPIC_API_KEY": key})
        api.wait_for_main_requests(4, timeout=60)
        assert api.saw_api_key(key)

As a script, for benchmarks and manual runs::

    python tests/support/messages_api.py --host 0.0.0.0 --port 8765 --script complete
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import socket
import string
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType, TracebackType
from typing import Any, Literal, TypeAlias, cast
from urllib.parse import urlsplit

__all__ = [
    "DEFAULT_MODEL",
    "ApiError",
    "Block",
    "MessagesApiServer",
    "RecordedRequest",
    "Reply",
    "RequestKind",
    "Script",
    "TextBlock",
    "ToolUseBlock",
    "Turn",
    "complete_ticket_script",
    "find_completion_path",
    "is_main_loop",
    "main",
    "text",
    "tool_names",
    "tool_use",
    "turn_index",
    "user_texts",
]

DEFAULT_MODEL = "claude-sonnet-4-5"
"""Model echoed back when a request names none."""

SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
"""Header names whose values never appear in a ``repr`` or a log line."""

COMPLETION_PATH = re.compile(
    r"(?<![\w./-])((?:/[^\s/`'\"<>()\[\]{}]+)*/completion-[A-Za-z0-9][A-Za-z0-9_-]{0,127}\.txt)"
    r"(?![\w.-])"
)
"""An absolute path ending in ``completion-<ticket>.txt``, as ``/complete`` prints it."""

RequestKind: TypeAlias = Literal["main", "side", "count_tokens", "other"]

_ALPHABET = string.ascii_letters + string.digits


def _new_id(prefix: str) -> str:
    """An id shaped like the API's (``msg_01…``, ``toolu_01…``, ``req_01…``)."""
    return prefix + "01" + "".join(secrets.choice(_ALPHABET) for _ in range(22))


def _dumps(value: Any) -> str:
    """Compact JSON, as the real API writes it."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _estimate_tokens(value: Any) -> int:
    """A rough token count (4 characters a token): clients only need a plausible number."""
    return max(1, len(value if isinstance(value, str) else _dumps(value)) // 4)


# --------------------------------------------------------------------------- answers


@dataclass(frozen=True)
class TextBlock:
    """A ``text`` content block of an assistant answer. Build it with :func:`text`."""

    text: str


@dataclass(frozen=True)
class ToolUseBlock:
    """A ``tool_use`` content block. Build it with :func:`tool_use`.

    ``id`` is generated per answer when left ``None``, so a list script can be replayed.
    """

    name: str
    input: Mapping[str, Any]
    id: str | None = None


Block: TypeAlias = TextBlock | ToolUseBlock


def text(value: str) -> TextBlock:
    """A text block: what the assistant says.

    >>> Turn(text("All done.")).stop_reason
    'end_turn'
    """
    return TextBlock(value)


def tool_use(name: str, input: Mapping[str, Any], *, id: str | None = None) -> ToolUseBlock:
    """A tool call the agent will execute, e.g. ``tool_use("Write", {"file_path": p, ...})``.

    Claude Code checks ``input`` against the tool's schema, so use its real field names
    (``Write``: ``file_path``, ``content``; ``Bash``: ``command``; ``Skill``: ``skill``, ``args``).

    >>> Turn(tool_use("Bash", {"command": "true"})).stop_reason
    'tool_use'
    """
    return ToolUseBlock(name, dict(input), id)


class Turn:
    """One assistant answer: its content blocks and stop reason.

    Why a class and not a bare list: the stop reason is derived (``tool_use`` when any block
    calls a tool, else ``end_turn``) but can be forced, e.g. ``max_tokens``.

    >>> Turn(text("Listing."), tool_use("Bash", {"command": "ls"})).stop_reason
    'tool_use'
    >>> Turn(text("Hi"))
    Turn(TextBlock(text='Hi'), stop_reason='end_turn')
    >>> Turn(text("Cut short."), stop_reason="max_tokens").stop_reason
    'max_tokens'
    """

    __slots__ = ("blocks", "stop_reason")

    def __init__(self, *blocks: Block, stop_reason: str | None = None) -> None:
        self.blocks: tuple[Block, ...] = blocks
        uses_tool = any(isinstance(block, ToolUseBlock) for block in blocks)
        self.stop_reason: str = stop_reason or ("tool_use" if uses_tool else "end_turn")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Turn):
            return NotImplemented
        return (self.blocks, self.stop_reason) == (other.blocks, other.stop_reason)

    def __hash__(self) -> int:
        return hash((self.blocks, self.stop_reason))

    def __repr__(self) -> str:
        shown = "".join(f"{block!r}, " for block in self.blocks)
        return f"Turn({shown}stop_reason={self.stop_reason!r})"


@dataclass(frozen=True)
class ApiError:
    """An error answer in the real API's shape, e.g. to show how the agent copes with 529.

    >>> ApiError.overloaded().status
    529
    """

    status: int
    type: str
    message: str
    retry_after: float | None = None

    @classmethod
    def authentication(cls, message: str = "invalid x-api-key") -> ApiError:
        """401 ``authentication_error``: what a wrong key gets."""
        return cls(401, "authentication_error", message)

    @classmethod
    def overloaded(cls, message: str = "Overloaded") -> ApiError:
        """529 ``overloaded_error``: the API is busy; clients retry."""
        return cls(529, "overloaded_error", message)

    @classmethod
    def rate_limited(cls, retry_after: float = 1.0, message: str = "Rate limited") -> ApiError:
        """429 ``rate_limit_error`` with a ``retry-after`` header (seconds)."""
        return cls(429, "rate_limit_error", message, retry_after)

    @classmethod
    def invalid_request(cls, message: str) -> ApiError:
        """400 ``invalid_request_error``: the request itself is wrong."""
        return cls(400, "invalid_request_error", message)

    @classmethod
    def internal(cls, message: str = "Internal server error") -> ApiError:
        """500 ``api_error``; also what a script that raises produces."""
        return cls(500, "api_error", message)

    @property
    def should_retry(self) -> bool:
        """The real API's ``x-should-retry`` verdict: only 408, 409, 429 and 5xx are retried.

        Why it matters: without the header Claude Code retries even a 401 for minutes.
        """
        return self.status in (408, 409, 429) or self.status >= 500

    def headers(self) -> dict[str, str]:
        """The extra response headers the real API sends with this error."""
        headers = {"x-should-retry": "true" if self.should_retry else "false"}
        if self.retry_after is not None:
            headers["retry-after"] = f"{self.retry_after:g}"
        return headers

    def body(self, request_id: str) -> dict[str, Any]:
        """The JSON body the real API sends for this error."""
        return {
            "type": "error",
            "error": {"type": self.type, "message": self.message},
            "request_id": request_id,
        }


Reply: TypeAlias = Turn | TextBlock | ToolUseBlock | ApiError | str
"""What a script answers: a :class:`Turn`, one block, an :class:`ApiError` or plain text."""

Script: TypeAlias = "Callable[[RecordedRequest], Reply] | Sequence[Reply]"
"""A callable deciding from the request, or a list of replies indexed by :func:`turn_index`."""


def _as_turn(reply: Reply) -> Turn | ApiError:
    if isinstance(reply, Turn | ApiError):
        return reply
    if isinstance(reply, str):
        return Turn(TextBlock(reply))
    return Turn(reply)


# --------------------------------------------------------------------------- reading requests


def _messages(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, Mapping)]


def turn_index(body: Mapping[str, Any]) -> int:
    """Which assistant turn a request asks for: the number of assistant messages already sent.

    Why from the request: the agent resends the whole conversation each time, so the answer
    depends only on the request and parallel or retried requests need no server state.
    Consecutive assistant messages count once, in case a client splits one answer.

    >>> turn_index({"messages": [{"role": "user", "content": "hi"}]})
    0
    >>> turn_index({"messages": [{"role": "user", "content": "hi"},
    ...     {"role": "assistant", "content": "yes"}, {"role": "user", "content": "go"}]})
    1
    """
    count = 0
    previous = None
    for message in _messages(body):
        role = message.get("role")
        if role == "assistant" and previous != "assistant":
            count += 1
        previous = role
    return count


def _block_texts(content: Any) -> Iterator[str]:
    if isinstance(content, str):
        yield content
        return
    if not isinstance(content, list):
        return
    for block in content:
        if not isinstance(block, Mapping):
            continue
        if block.get("type") == "text" and isinstance(block.get("text"), str):
            yield block["text"]
        elif block.get("type") == "tool_result":
            yield from _block_texts(block.get("content"))


def user_texts(body: Mapping[str, Any]) -> list[str]:
    """Every text the agent sent on the user side, in order: prompts, tool results, expansions.

    Why only the user side: the script's own earlier tool inputs (the assistant side) would
    otherwise be found again, e.g. a path it wrote to.

    >>> user_texts({"messages": [{"role": "user", "content": [
    ...     {"type": "tool_result", "tool_use_id": "t", "content": "ok"},
    ...     {"type": "text", "text": "next"}]}]})
    ['ok', 'next']
    """
    texts: list[str] = []
    for message in _messages(body):
        if message.get("role") == "user":
            texts.extend(_block_texts(message.get("content")))
    return texts


def find_completion_path(body: Mapping[str, Any]) -> str | None:
    """The last absolute ``…/completion-<ticket>.txt`` path the agent was shown, if any.

    Why the last: ``/complete`` prints the path after the initial prompt, and the newest
    mention is the one the command just expanded.

    >>> find_completion_path({"messages": [{"role": "user",
    ...     "content": "The path is:\\n\\n/tmp/done/completion-WEB-12.txt\\n"}]})
    '/tmp/done/completion-WEB-12.txt'
    """
    found: str | None = None
    for chunk in user_texts(body):
        for match in COMPLETION_PATH.finditer(chunk):
            found = match.group(1)
    return found


def tool_names(body: Mapping[str, Any]) -> list[str]:
    """Names of the tools a request offers the model.

    >>> tool_names({"tools": [{"name": "Write"}, {"name": "Bash"}]})
    ['Write', 'Bash']
    """
    tools = body.get("tools")
    if not isinstance(tools, list):
        return []
    return [str(t["name"]) for t in tools if isinstance(t, Mapping) and "name" in t]


def is_main_loop(body: Mapping[str, Any]) -> bool:
    """Whether a ``/v1/messages`` body is the agent's conversation, not a side request.

    Why ``Write``: Claude Code's main loop always offers it, while titles, quota probes and
    read-only helpers do not; pass ``main_loop=`` to :class:`MessagesApiServer` to change it.

    >>> is_main_loop({"tools": [{"name": "Write"}]}), is_main_loop({"messages": []})
    (True, False)
    """
    return "Write" in tool_names(body)


# --------------------------------------------------------------------------- records


@dataclass
class RecordedRequest:
    """One request as received: what a test asserts on, and what a script decides from.

    ``headers`` keep their real values (lower-case names) so a test can check the key, but the
    ``repr`` redacts secrets; prefer :meth:`has_api_key` in asserts so a failure never prints
    the key.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str] = field(repr=False)
    body: Any
    received_at: float
    kind: RequestKind
    status: int | None = None

    @property
    def payload(self) -> dict[str, Any]:
        """The JSON body when it is an object, else ``{}``: scripts read fields off it."""
        return cast(dict[str, Any], self.body) if isinstance(self.body, dict) else {}

    @property
    def turn(self) -> int:
        """:func:`turn_index` of the body."""
        return turn_index(self.payload)

    @property
    def api_key(self) -> str | None:
        """The key sent in ``x-api-key``, else the ``Authorization: Bearer`` token."""
        key = self.headers.get("x-api-key")
        if key is not None:
            return key
        authorization = self.headers.get("authorization", "")
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" and token.strip() else None

    def has_api_key(self, key: str) -> bool:
        """Whether this request carried ``key`` (constant-time compare; prints nothing)."""
        sent = self.api_key
        return sent is not None and secrets.compare_digest(sent.encode(), key.encode())

    @property
    def redacted_headers(self) -> dict[str, str]:
        """The headers with secret values replaced, safe to print or log."""
        return {
            name: ("<redacted>" if name in SECRET_HEADERS else value)
            for name, value in self.headers.items()
        }

    def __repr__(self) -> str:
        return (
            f"RecordedRequest(method={self.method!r}, path={self.path!r}, kind={self.kind!r}, "
            f"status={self.status!r}, headers={self.redacted_headers!r}, "
            f"model={self.payload.get('model')!r}, turn={self.turn})"
        )


# --------------------------------------------------------------------------- scripts


def complete_ticket_script(
    work_file: str, work_content: str, summary: str
) -> Callable[[RecordedRequest], Reply]:
    """The common ticket run: do the work, run ``/complete``, write the summary where it says.

    Why: it exercises the whole completion path of the orchestrator with the real agent:
    turn 0 writes ``work_file`` with ``Write``; turn 1 calls the ``Skill`` tool with
    ``{"skill": "complete", "args": summary}``; turn 2 finds the completion file path that
    ``/complete`` expanded into the conversation and writes ``summary`` there; turn 3 and later
    end with a short text. Without a completion path at turn 2 it ends saying so, so the test
    fails on a visible reason instead of a hang.

    >>> script = complete_ticket_script("/w/out.txt", "hi", "did it")
    >>> script(RecordedRequest("POST", "/v1/messages", "", {}, {"messages": []}, 0.0, "main"))
    ToolUseBlock(name='Write', input={'file_path': '/w/out.txt', 'content': 'hi'}, id=None)
    """

    def answer(request: RecordedRequest) -> Reply:
        turn = request.turn
        if turn == 0:
            return tool_use("Write", {"file_path": work_file, "content": work_content})
        if turn == 1:
            return tool_use("Skill", {"skill": "complete", "args": summary})
        if turn == 2:
            path = find_completion_path(request.payload)
            if path is None:
                return text("I could not find the completion file path in the /complete output.")
            return tool_use("Write", {"file_path": path, "content": summary})
        return text("Done: the work is written and the ticket is marked complete.")

    return answer


def _list_script(replies: Sequence[Reply]) -> Callable[[RecordedRequest], Reply]:
    """Answer turn *i* with ``replies[i]``; past the end, a closing text (so it never loops)."""
    frozen = list(replies)

    def answer(request: RecordedRequest) -> Reply:
        turn = request.turn
        return frozen[turn] if turn < len(frozen) else text("Done.")

    return answer


# --------------------------------------------------------------------------- the server


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    api: MessagesApiServer


class _HttpServer6(_HttpServer):
    address_family = socket.AF_INET6


class MessagesApiServer:
    """The Messages API on a real socket, answering from a script, recording every request.

    Why a real server: the agent under test is a separate native process; only a socket it
    connects to through ``ANTHROPIC_BASE_URL`` reaches it. Use it as a context manager (or
    call :meth:`start` / :meth:`stop`)::

        with MessagesApiServer([tool_use("Bash", {"command": "ls"}), text("Listed.")]) as api:
            env["ANTHROPIC_BASE_URL"] = api.url
            ...
            requests = api.wait_for_main_requests(2)

    ``script`` answers main-loop requests (a callable given the :class:`RecordedRequest`, or a
    list indexed by :func:`turn_index`); ``side_reply`` answers side requests.
    ``expected_api_key``, when set, makes any ``/v1/`` request with another key (or none) get a
    401 ``authentication_error``. ``port=0`` picks a free port. ``event_delay`` paces SSE
    events (seconds) to look like a streaming model.
    """

    def __init__(
        self,
        script: Script,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        expected_api_key: str | None = None,
        side_reply: str | Callable[[RecordedRequest], Reply] = "OK",
        main_loop: Callable[[Mapping[str, Any]], bool] = is_main_loop,
        event_delay: float = 0.0,
        verbose: bool = False,
    ) -> None:
        if isinstance(script, str):
            raise TypeError("script must be a callable or a list of replies, not a string")
        self._script = script if callable(script) else _list_script(script)
        self._side_reply = side_reply
        self._main_loop = main_loop
        self.expected_api_key = expected_api_key
        self.event_delay = event_delay
        self.verbose = verbose
        self._bind = (host, port)
        self._condition = threading.Condition()
        self._records: list[RecordedRequest] = []
        self._script_errors: list[BaseException] = []
        self._failures: list[ApiError] = []
        self._httpd: _HttpServer | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> MessagesApiServer:
        """Bind and serve in a daemon thread; returns ``self``."""
        if self._httpd is not None:
            raise RuntimeError("already started")
        host, port = self._bind
        server_class = _HttpServer6 if ":" in host else _HttpServer
        httpd = server_class((host, port), _Handler)
        httpd.api = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket (idempotent)."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def serve_forever(self) -> None:
        """Block until :meth:`stop` (from a signal handler or another thread); starts if needed."""
        if self._httpd is None:
            self.start()
        thread = self._thread
        assert thread is not None
        while thread.is_alive():
            thread.join(timeout=0.5)

    def __enter__(self) -> MessagesApiServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses
    @property
    def host(self) -> str:
        """The bound host, as given."""
        return self._bind[0]

    @property
    def port(self) -> int:
        """The bound port (the real one when started with port 0)."""
        if self._httpd is None:
            raise RuntimeError("not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://host:port`` for ``ANTHROPIC_BASE_URL``; a wildcard bind maps to loopback."""
        host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    # ------------------------------------------------------------------ records
    def requests(self, kind: RequestKind | None = None) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, oldest first, optionally of one kind."""
        with self._condition:
            return [r for r in self._records if kind is None or r.kind == kind]

    def main_requests(self) -> list[RecordedRequest]:
        """The main-loop requests received so far."""
        return self.requests("main")

    def wait_for_main_requests(self, count: int, timeout: float = 30.0) -> list[RecordedRequest]:
        """Block until ``count`` main-loop requests arrived; raises ``TimeoutError`` after
        ``timeout`` seconds, naming what did arrive (never the key).

        Why: the agent runs in another process; this is the bounded way to wait for it.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                main = [r for r in self._records if r.kind == "main"]
                if len(main) >= count:
                    return main
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(r.method, r.path, r.kind, r.status) for r in self._records]
                    raise TimeoutError(
                        f"{len(main)} of {count} main-loop requests after {timeout}s; "
                        f"received: {seen}"
                    )
                self._condition.wait(remaining)

    def saw_api_key(self, key: str) -> bool:
        """Whether any ``/v1/`` request carried ``key``; a bool, so asserts never print it."""
        return any(r.has_api_key(key) for r in self.requests() if r.path.startswith("/v1/"))

    @property
    def script_errors(self) -> list[BaseException]:
        """Exceptions raised by the script (each answered with a 500 ``api_error``)."""
        with self._condition:
            return list(self._script_errors)

    def fail_next(self, error: ApiError, times: int = 1) -> None:
        """Answer the next ``times`` main-loop requests with ``error`` (then the script again).

        Why: a retried request has the same turn index, so a list script cannot express
        "529 once, then succeed"; this can::

            api.fail_next(ApiError.overloaded(), times=2)
        """
        with self._condition:
            self._failures.extend([error] * times)

    # ------------------------------------------------------------------ deciding answers
    def _record(self, record: RecordedRequest) -> None:
        with self._condition:
            self._records.append(record)
            self._condition.notify_all()
        if self.verbose:
            print(
                f"{record.method} {record.path} kind={record.kind} turn={record.turn} "
                f"status={record.status}",
                file=sys.stderr,
                flush=True,
            )

    def _key_ok(self, record: RecordedRequest) -> bool:
        return self.expected_api_key is None or record.has_api_key(self.expected_api_key)

    def _answer_messages(self, record: RecordedRequest) -> Turn | ApiError:
        if record.kind == "main":
            with self._condition:
                failure = self._failures.pop(0) if self._failures else None
            if failure is not None:
                return failure
            source: str | Callable[[RecordedRequest], Reply] = self._script
        else:
            source = self._side_reply
        try:
            reply = source(record) if callable(source) else source
            return _as_turn(reply)
        except Exception as exc:  # the test sees it in script_errors and the 500 answer
            with self._condition:
                self._script_errors.append(exc)
            return ApiError.internal(f"script failed: {type(exc).__name__}: {exc}")


# --------------------------------------------------------------------------- wire format


def _split(value: str, pieces: int) -> list[str]:
    """``value`` cut into up to ``pieces`` non-empty parts (at least one part)."""
    if not value:
        return [""]
    size = max(1, -(-len(value) // pieces))
    return [value[i : i + size] for i in range(0, len(value), size)]


def _content_json(turn: Turn) -> list[dict[str, Any]]:
    content: list[dict[str, Any]] = []
    for block in turn.blocks:
        if isinstance(block, TextBlock):
            content.append({"type": "text", "text": block.text})
        else:
            content.append(
                {
                    "type": "tool_use",
                    "id": block.id or _new_id("toolu_"),
                    "name": block.name,
                    "input": dict(block.input),
                }
            )
    return content


def _usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    return {
        "input_tokens": input_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "output_tokens": output_tokens,
    }


def _stream_events(
    turn: Turn, model: str, input_tokens: int
) -> Iterator[tuple[str, dict[str, Any]]]:
    """The SSE events of one answer, as the real API orders them."""
    content = _content_json(turn)
    yield (
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": _new_id("msg_"),
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": _usage(input_tokens, 1),
            },
        },
    )
    yield "ping", {"type": "ping"}
    for index, block in enumerate(content):
        if block["type"] == "text":
            start: dict[str, Any] = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": piece} for piece in _split(block["text"], 3)]
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            deltas = [{"type": "input_json_delta", "partial_json": ""}] + [
                {"type": "input_json_delta", "partial_json": piece}
                for piece in _split(_dumps(block["input"]), 3)
            ]
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield "content_block_stop", {"type": "content_block_stop", "index": index}
    yield (
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": turn.stop_reason, "stop_sequence": None},
            "usage": {"output_tokens": _estimate_tokens(content)},
        },
    )
    yield "message_stop", {"type": "message_stop"}


def _message_json(turn: Turn, model: str, input_tokens: int) -> dict[str, Any]:
    content = _content_json(turn)
    return {
        "id": _new_id("msg_"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": turn.stop_reason,
        "stop_sequence": None,
        "usage": _usage(input_tokens, _estimate_tokens(content)),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "messages-api-double/1"

    @property
    def api(self) -> MessagesApiServer:
        return cast(_HttpServer, self.server).api

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the default access log is noise in test output (``verbose`` logs instead)."""

    # ------------------------------------------------------------------ routing
    def do_GET(self) -> None:
        self._handle(with_body=True)

    def do_HEAD(self) -> None:
        self._handle(with_body=False)

    def do_POST(self) -> None:
        self._handle(with_body=True)

    def do_PUT(self) -> None:
        self._handle(with_body=True)

    def do_DELETE(self) -> None:
        self._handle(with_body=True)

    def do_OPTIONS(self) -> None:
        self._handle(with_body=True)

    def _handle(self, *, with_body: bool) -> None:
        try:
            self._route(with_body)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _route(self, with_body: bool) -> None:
        received_at = time.time()
        split = urlsplit(self.path)
        path = split.path.rstrip("/") or "/"
        headers = {name.lower(): value for name, value in self.headers.items()}
        raw = self._read_body()
        body: Any = None
        bad_json = False
        if raw:
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        payload = cast(dict[str, Any], body) if isinstance(body, dict) else {}
        kind: RequestKind = "other"
        if self.command == "POST" and path == "/v1/messages":
            kind = "main" if self.api._main_loop(payload) else "side"
        elif self.command == "POST" and path == "/v1/messages/count_tokens":
            kind = "count_tokens"
        record = RecordedRequest(self.command, path, split.query, headers, body, received_at, kind)
        request_id = _new_id("req_")
        model = str(payload.get("model") or DEFAULT_MODEL)

        answer: Turn | ApiError | dict[str, Any]
        if path.startswith("/v1/") and not self.api._key_ok(record):
            answer = ApiError.authentication()
        elif bad_json and kind != "other":
            answer = ApiError.invalid_request("the request body is not valid JSON")
        elif kind in ("main", "side"):
            answer = self.api._answer_messages(record)
        elif kind == "count_tokens":
            answer = {"input_tokens": _estimate_tokens(_prompt_of(payload))}
        elif self.command == "POST" and path.startswith("/v1/messages"):
            answer = ApiError(404, "not_found_error", f"no route for {path}")
        elif path == "/v1/models":
            answer = {"data": [], "has_more": False, "first_id": None, "last_id": None}
        else:
            answer = {}

        record.status = answer.status if isinstance(answer, ApiError) else 200
        self.api._record(record)

        if isinstance(answer, ApiError):
            body_json = answer.body(request_id)
            self._send_json(answer.status, body_json, request_id, answer.headers(), with_body)
        elif isinstance(answer, Turn):
            input_tokens = _estimate_tokens(_prompt_of(payload))
            if payload.get("stream") is True:
                self._send_stream(_stream_events(answer, model, input_tokens), request_id)
            else:
                message = _message_json(answer, model, input_tokens)
                self._send_json(200, message, request_id, {}, with_body)
        else:
            self._send_json(200, answer, request_id, {}, with_body)

    # ------------------------------------------------------------------ I/O
    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length > 0 else b""

    def _send_json(
        self,
        status: int,
        value: Any,
        request_id: str,
        extra: Mapping[str, str],
        with_body: bool,
    ) -> None:
        data = _dumps(value).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", request_id)
        for name, header_value in extra.items():
            self.send_header(name, header_value)
        self.end_headers()
        if with_body:
            self.wfile.write(data)
        self.wfile.flush()

    def _send_stream(self, events: Iterator[tuple[str, dict[str, Any]]], request_id: str) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream; charset=utf-8")
        self.send_header("cache-control", "no-cache")
        self.send_header("transfer-encoding", "chunked")
        self.send_header("request-id", request_id)
        self.end_headers()
        for number, (name, data) in enumerate(events):
            if number and self.api.event_delay > 0:
                time.sleep(self.api.event_delay)
            chunk = f"event: {name}\ndata: {_dumps(data)}\n\n".encode()
            self.wfile.write(f"{len(chunk):X}\r\n".encode() + chunk + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def _prompt_of(payload: Mapping[str, Any]) -> Any:
    return [payload.get("system"), payload.get("messages"), payload.get("tools")]


# --------------------------------------------------------------------------- command line


def main(argv: Sequence[str] | None = None) -> int:
    """Run the server until interrupted, e.g. for a benchmark against the real agent.

    ``--script complete`` runs :func:`complete_ticket_script`; ``--script text`` answers every
    main-loop request with ``--text``. The URL is printed on stdout once listening.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    parser.add_argument("--script", choices=("complete", "text"), default="complete")
    parser.add_argument("--work-file", default="/tmp/messages-api-work.txt")
    parser.add_argument("--work-content", default="work done by the scripted agent\n")
    parser.add_argument("--summary", default="Scripted run: wrote the work file.")
    parser.add_argument("--text", default="Done.", help="the answer of --script text")
    parser.add_argument(
        "--api-key-env",
        metavar="VAR",
        help="environment variable holding the expected key (others get 401)",
    )
    parser.add_argument("--event-delay", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--verbose", action="store_true", help="one stderr line per request")
    options = parser.parse_args(argv)

    expected = os.environ.get(options.api_key_env) if options.api_key_env else None
    script: Script
    if options.script == "complete":
        script = complete_ticket_script(options.work_file, options.work_content, options.summary)
    else:
        answer_text: str = options.text

        def script(request: RecordedRequest) -> Reply:
            return answer_text

    server = MessagesApiServer(
        script,
        host=options.host,
        port=options.port,
        expected_api_key=expected,
        event_delay=options.event_delay,
        verbose=options.verbose,
    )

    def on_signal(signum: int, frame: FrameType | None) -> None:
        threading.Thread(target=server.stop, daemon=True).start()

    signal.signal(signal.SIGTERM, on_signal)
    server.start()
    print(server.url, flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
