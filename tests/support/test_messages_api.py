"""The scripted Messages API double, driven over real HTTP the way Claude Code drives it."""

from __future__ import annotations

import doctest
import importlib.util
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest

HERE = Path(__file__).parent


def _load(name: str) -> ModuleType:
    module_name = f"aiwf_tests_support_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


api = _load("messages_api")

KEY = "sk-ant-test-" + "k" * 20
TOOLS = [
    {"name": name, "description": name, "input_schema": {"type": "object"}}
    for name in ("Write", "Bash", "Skill", "Read", "Edit")
]
HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}


def body(messages: list[dict[str, Any]], *, stream: bool = True, tools: bool = True) -> Any:
    """A request body shaped like Claude Code's main loop (or a side request without tools)."""
    value: dict[str, Any] = {
        "model": "claude-test-1",
        "max_tokens": 32000,
        "system": [{"type": "text", "text": "You are Claude Code."}],
        "messages": messages,
        "stream": stream,
    }
    if tools:
        value["tools"] = TOOLS
    return value


def user(*content: Any) -> dict[str, Any]:
    return {"role": "user", "content": list(content)}


def assistant(*content: Any) -> dict[str, Any]:
    return {"role": "assistant", "content": list(content)}


def text_block(value: str) -> dict[str, Any]:
    return {"type": "text", "text": value}


def tool_result(tool_use_id: str, content: str | list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": tool_use_id, "content": content}


def parse_sse(payload: str) -> list[tuple[str, dict[str, Any]]]:
    """Split an SSE body into (event, data) pairs, checking each event names its data type."""
    events: list[tuple[str, dict[str, Any]]] = []
    for frame in payload.split("\n\n"):
        if not frame.strip():
            continue
        fields = dict(line.split(": ", 1) for line in frame.split("\n"))
        data = json.loads(fields["data"])
        assert data["type"] == fields["event"]
        events.append((fields["event"], data))
    return events


def post_stream(
    client: httpx.Client, url: str, value: Any, headers: dict[str, str] | None = None
) -> tuple[httpx.Response, list[tuple[str, dict[str, Any]]]]:
    with client.stream(
        "POST", url + "/v1/messages?beta=true", json=value, headers=headers or HEADERS
    ) as response:
        raw = "".join(response.iter_text())
    return response, parse_sse(raw)


def assemble(events: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Rebuild the message from its events, as the SDK does, checking the order on the way."""
    names = [name for name, _ in events]
    assert names[0] == "message_start" and names[1] == "ping"
    assert names[-2:] == ["message_delta", "message_stop"]
    message = dict(events[0][1]["message"])
    assert message["content"] == [] and message["stop_reason"] is None
    content: list[dict[str, Any]] = []
    partial: dict[int, list[str]] = {}
    open_index: int | None = None
    for name, data in events[2:-2]:
        if name == "content_block_start":
            assert open_index is None and data["index"] == len(content)
            open_index = data["index"]
            content.append(dict(data["content_block"]))
            partial[data["index"]] = []
        elif name == "content_block_delta":
            assert data["index"] == open_index
            delta = data["delta"]
            if delta["type"] == "text_delta":
                content[data["index"]]["text"] += delta["text"]
            else:
                assert delta["type"] == "input_json_delta"
                partial[data["index"]].append(delta["partial_json"])
        else:
            assert name == "content_block_stop" and data["index"] == open_index
            block = content[data["index"]]
            if block["type"] == "tool_use":
                block["input"] = json.loads("".join(partial[data["index"]]))
            open_index = None
    assert open_index is None
    message["content"] = content
    message_delta = events[-2][1]
    assert message_delta["delta"]["stop_sequence"] is None
    assert message_delta["usage"]["output_tokens"] >= 1
    message["stop_reason"] = message_delta["delta"]["stop_reason"]
    message["_partial_json"] = partial
    return message


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=10) as http:
        yield http


def test_text_turn_streams_the_real_event_sequence(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("Hello from the scripted model.")]) as server:
        response, events = post_stream(client, server.url, body([user(text_block("hi"))]))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["request-id"].startswith("req_")
    names = [name for name, _ in events]
    assert names[:3] == ["message_start", "ping", "content_block_start"]
    assert names.count("content_block_delta") >= 2
    assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    start = events[0][1]["message"]
    assert start["id"].startswith("msg_") and start["type"] == "message"
    assert start["role"] == "assistant" and start["model"] == "claude-test-1"
    assert start["stop_sequence"] is None
    assert start["usage"]["input_tokens"] > 1 and start["usage"]["output_tokens"] == 1
    assert events[2][1]["content_block"] == {"type": "text", "text": ""}
    message = assemble(events)
    assert message["content"] == [{"type": "text", "text": "Hello from the scripted model."}]
    assert message["stop_reason"] == "end_turn"


def test_tool_use_turn_splits_the_input_json(client: httpx.Client) -> None:
    write = api.tool_use("Write", {"file_path": "/w/a.txt", "content": "line one\nline two ✓\n"})
    with api.MessagesApiServer([api.Turn(api.text("Writing."), write)]) as server:
        _, events = post_stream(client, server.url, body([user(text_block("go"))]))

    starts = [data for name, data in events if name == "content_block_start"]
    assert starts[1]["content_block"]["type"] == "tool_use"
    assert starts[1]["content_block"]["name"] == "Write"
    assert starts[1]["content_block"]["input"] == {}
    assert starts[1]["content_block"]["id"].startswith("toolu_")
    message = assemble(events)
    assert message["stop_reason"] == "tool_use"
    assert message["content"][0] == {"type": "text", "text": "Writing."}
    assert message["content"][1]["input"] == {
        "file_path": "/w/a.txt",
        "content": "line one\nline two ✓\n",
    }
    pieces = [piece for piece in message["_partial_json"][1] if piece]
    assert len(pieces) >= 3


def test_non_streaming_request_gets_the_json_message(client: httpx.Client) -> None:
    script = [api.tool_use("Bash", {"command": "ls"}, id="toolu_fixed")]
    with api.MessagesApiServer(script) as server:
        response = client.post(
            server.url + "/v1/messages",
            json=body([user(text_block("list"))], stream=False),
            headers=HEADERS,
        )

    assert response.status_code == 200
    message = response.json()
    assert message["type"] == "message" and message["id"].startswith("msg_")
    assert message["content"] == [
        {"type": "tool_use", "id": "toolu_fixed", "name": "Bash", "input": {"command": "ls"}}
    ]
    assert message["stop_reason"] == "tool_use" and message["stop_sequence"] is None
    assert message["usage"]["output_tokens"] >= 1


def test_wrong_or_missing_key_gets_the_authentication_error(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("ok")], expected_api_key=KEY) as server:
        wrong = client.post(
            server.url + "/v1/messages?beta=true",
            json=body([user(text_block("hi"))]),
            headers={"x-api-key": "sk-ant-wrong"},
        )
        missing = client.post(server.url + "/v1/messages/count_tokens", json=body([]))
        bearer, events = post_stream(
            client,
            server.url,
            body([user(text_block("hi"))]),
            headers={"authorization": f"Bearer {KEY}"},
        )
        keyed, _ = post_stream(client, server.url, body([user(text_block("hi"))]))
        records = server.requests()
        saw = server.saw_api_key(KEY)
        saw_other = server.saw_api_key("sk-ant-other")

    for response in (wrong, missing):
        assert response.status_code == 401
        assert response.headers["x-should-retry"] == "false"
        assert response.json()["type"] == "error"
        assert response.json()["error"] == {
            "type": "authentication_error",
            "message": "invalid x-api-key",
        }
    assert bearer.status_code == 200 and assemble(events)["content"][0]["text"] == "ok"
    assert keyed.status_code == 200
    assert [r.status for r in records] == [401, 401, 200, 200]
    assert [r.kind for r in records] == ["main", "count_tokens", "main", "main"]
    assert not records[0].has_api_key(KEY) and records[2].has_api_key(KEY)
    assert records[3].has_api_key(KEY) and records[3].headers["x-api-key"] == KEY
    assert saw and not saw_other
    assert KEY not in repr(records[3]) and "<redacted>" in repr(records[3])
    assert KEY not in repr(records[2])


def test_count_tokens_and_other_small_requests(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("ok")]) as server:
        counted = client.post(
            server.url + "/v1/messages/count_tokens?beta=true",
            json=body([user(text_block("count me " * 50))]),
            headers=HEADERS,
        )
        got = client.get(server.url + "/", headers=HEADERS)
        head = client.head(server.url + "/v1/messages", headers=HEADERS)
        models = client.get(server.url + "/v1/models", headers=HEADERS)
        records = server.requests()

    assert counted.status_code == 200
    assert set(counted.json()) == {"input_tokens"} and counted.json()["input_tokens"] > 50
    assert got.status_code == 200 and got.json() == {}
    assert head.status_code == 200 and head.content == b""
    assert models.json()["data"] == []
    assert [r.kind for r in records] == ["count_tokens", "other", "other", "other"]
    assert records[0].query == "beta=true" and records[0].path == "/v1/messages/count_tokens"
    assert server.main_requests() == []


def test_side_requests_get_a_short_text_and_do_not_count(client: httpx.Client) -> None:
    with api.MessagesApiServer(
        [api.tool_use("Bash", {"command": "false"})], side_reply="Fix the login page"
    ) as server:
        _, events = post_stream(client, server.url, body([user(text_block("title?"))], tools=False))
        assert server.main_requests() == []
        assert [r.kind for r in server.requests()] == ["side"]

    assert assemble(events)["content"] == [{"type": "text", "text": "Fix the login page"}]
    assert assemble(events)["stop_reason"] == "end_turn"


def test_complete_ticket_script_turns(client: httpx.Client, tmp_path: Path) -> None:
    work_file = str(tmp_path / "work" / "out.txt")
    completion = "/var/lib/aiwf/completions/completion-WEB-12.txt"
    summary = "Added out.txt; checked it by reading it back."
    script = api.complete_ticket_script(work_file, "the work\n", summary)
    prompt = user(text_block("Work on WEB-12. When done run /complete with a summary."))

    with api.MessagesApiServer(script, expected_api_key=KEY) as server:
        conversation = [prompt]
        message = assemble(post_stream(client, server.url, body(conversation))[1])
        assert message["stop_reason"] == "tool_use"
        (write,) = message["content"]
        assert write["name"] == "Write"
        assert write["input"] == {"file_path": work_file, "content": "the work\n"}

        conversation += [
            assistant(write),
            user(tool_result(write["id"], f"File created successfully at: {work_file}")),
        ]
        message = assemble(post_stream(client, server.url, body(conversation))[1])
        (skill,) = message["content"]
        assert skill["name"] == "Skill"
        assert skill["input"] == {"skill": "complete", "args": summary}

        expanded = (
            "The orchestrator waits for the completion file of this ticket. Its path is:\n\n"
            f"{completion}\n\nCreate that file with the Write tool.\n\nSummary:\n\n{summary}"
        )
        conversation += [
            assistant(skill),
            user(
                tool_result(skill["id"], "Launching skill: complete"),
                text_block(f"<command-name>/complete</command-name>\n{expanded}"),
            ),
        ]
        message = assemble(post_stream(client, server.url, body(conversation))[1])
        (final_write,) = message["content"]
        assert final_write["name"] == "Write"
        assert final_write["input"] == {"file_path": completion, "content": summary}

        conversation += [
            assistant(final_write),
            user(tool_result(final_write["id"], f"File created successfully at: {completion}")),
        ]
        message = assemble(post_stream(client, server.url, body(conversation))[1])
        assert message["stop_reason"] == "end_turn"
        assert message["content"][0]["type"] == "text"

        requests = server.wait_for_main_requests(4, timeout=5)
        assert [r.turn for r in requests] == [0, 1, 2, 3]
        assert all(r.has_api_key(KEY) for r in requests)
        assert server.script_errors == []


def test_complete_ticket_script_without_a_path_ends_saying_so() -> None:
    script = api.complete_ticket_script("/w/out.txt", "x", "summary")
    request = api.RecordedRequest(
        "POST",
        "/v1/messages",
        "",
        {},
        body(
            [
                user(text_block("go")),
                assistant({"type": "tool_use", "id": "a", "name": "Write", "input": {}}),
                user(tool_result("a", "ok")),
                assistant({"type": "tool_use", "id": "b", "name": "Skill", "input": {}}),
                user(tool_result("b", "Launching skill: complete"), text_block("path: (none)")),
            ]
        ),
        time.time(),
        "main",
    )
    reply = script(request)
    assert isinstance(reply, api.TextBlock) and "completion file path" in reply.text


def test_find_completion_path_takes_the_last_absolute_mention() -> None:
    value = body(
        [
            user(text_block("write /old/completion-T-1.txt later; not completion-X.txt")),
            assistant(text_block("/assistant/completion-T-9.txt")),
            user(
                tool_result("t", [text_block("See `/data/c/completion-T-2.txt`.")]),
                text_block("relative dir/completion-T-3.txt is not absolute"),
            ),
        ]
    )
    assert api.find_completion_path(value) == "/data/c/completion-T-2.txt"
    assert api.find_completion_path(body([user(text_block("nothing"))])) is None


def test_turn_index_counts_assistant_runs() -> None:
    split_answer = body(
        [
            user(text_block("hi")),
            assistant(text_block("a")),
            assistant({"type": "tool_use", "id": "t", "name": "Bash", "input": {}}),
            user(tool_result("t", "ok")),
        ]
    )
    assert api.turn_index(split_answer) == 1
    assert api.turn_index({}) == 0


def test_list_script_past_its_end_closes_the_turn(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.tool_use("Bash", {"command": "ls"})]) as server:
        conversation = [
            user(text_block("go")),
            assistant({"type": "tool_use", "id": "t", "name": "Bash", "input": {}}),
            user(tool_result("t", "ok")),
        ]
        message = assemble(post_stream(client, server.url, body(conversation))[1])
    assert message["stop_reason"] == "end_turn"
    assert message["content"] == [{"type": "text", "text": "Done."}]


def test_injected_failures_then_the_script(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("recovered")]) as server:
        server.fail_next(api.ApiError.overloaded())
        server.fail_next(api.ApiError.rate_limited(retry_after=2))
        first = client.post(server.url + "/v1/messages", json=body([]), headers=HEADERS)
        second = client.post(server.url + "/v1/messages", json=body([]), headers=HEADERS)
        _, events = post_stream(client, server.url, body([user(text_block("again"))]))

    assert first.status_code == 529
    assert first.json()["error"] == {"type": "overloaded_error", "message": "Overloaded"}
    assert first.json()["request_id"] == first.headers["request-id"]
    assert first.headers["x-should-retry"] == "true"
    assert second.status_code == 429 and second.headers["retry-after"] == "2"
    assert second.json()["error"]["type"] == "rate_limit_error"
    assert assemble(events)["content"][0]["text"] == "recovered"


def test_a_failing_script_answers_500_and_is_reported(client: httpx.Client) -> None:
    def script(request: Any) -> Any:
        raise ValueError("no answer for this turn")

    with api.MessagesApiServer(script) as server:
        response = client.post(server.url + "/v1/messages", json=body([]), headers=HEADERS)
        errors = server.script_errors

    assert response.status_code == 500
    assert response.json()["error"]["type"] == "api_error"
    assert "no answer for this turn" in response.json()["error"]["message"]
    assert [type(e) for e in errors] == [ValueError]


def test_invalid_json_is_a_400() -> None:
    with api.MessagesApiServer([api.text("ok")]) as server:
        response = httpx.post(
            server.url + "/v1/messages",
            content=b"{not json",
            headers={**HEADERS, "content-type": "application/json"},
        )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


def test_wait_for_main_requests_is_bounded_and_wakes_up(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("ok")], port=0) as server:
        assert server.port > 0 and server.url == f"http://127.0.0.1:{server.port}"
        with pytest.raises(TimeoutError, match="0 of 1 main-loop requests"):
            server.wait_for_main_requests(1, timeout=0.2)

        def later() -> None:
            time.sleep(0.2)
            httpx.post(server.url + "/v1/messages", json=body([], stream=False), headers=HEADERS)

        thread = threading.Thread(target=later)
        thread.start()
        started = time.monotonic()
        (request,) = server.wait_for_main_requests(1, timeout=10)
        thread.join()
    assert time.monotonic() - started < 5
    assert request.payload["model"] == "claude-test-1" and request.received_at > 0


def test_one_connection_serves_many_streams(client: httpx.Client) -> None:
    with api.MessagesApiServer([api.text("a b c d e f")], event_delay=0.001) as server:
        for _ in range(3):
            response, events = post_stream(client, server.url, body([user(text_block("x"))]))
            assert response.status_code == 200
            assert assemble(events)["content"][0]["text"] == "a b c d e f"


def test_module_docstring_examples() -> None:
    failures, tried = doctest.testmod(api, optionflags=doctest.ELLIPSIS)
    assert tried > 10 and failures == 0


def test_runs_as_a_script(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            str(HERE / "messages_api.py"),
            "--port",
            "0",
            "--script",
            "complete",
            "--work-file",
            str(tmp_path / "w.txt"),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        response = httpx.post(url + "/v1/messages", json=body([], stream=False), timeout=10)
        assert response.json()["content"][0]["input"]["file_path"] == str(tmp_path / "w.txt")
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
