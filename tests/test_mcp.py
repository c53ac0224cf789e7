"""`semsearch mcp`, driven by the MCP SDK's own client over stdio, as an assistant would."""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real processes


@pytest.fixture
def index_dir(survey_corpus_index):
    return survey_corpus_index


@contextlib.asynccontextmanager
async def _sdk_session(index_dir: Path):
    """A session of the SDK's own client with a real `semsearch mcp` process, initialized."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],  # the CLI with the test model
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    # errlog as now: the SDK's default is the sys.stderr of when it was imported (a test's capsys, gone since)
    async with stdio_client(server, errlog=sys.stderr) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


async def session_calls(index_dir: Path) -> dict:
    async with _sdk_session(index_dir) as session:
        tools = await session.list_tools()
        found = await session.call_tool("search", {"question": "speculative decoding draft model", "k": 3})
        placed = await session.call_tool(
            "classify", {"title": "Pruning heads", "abstract": "We prune attention heads of large language models."}
        )
        trends = await session.call_tool("trends", {"category": ["Speculative Decoding"]})
        missing = await session.call_tool("paper", {"id": "nope"})
        digest = await session.call_tool("digest", {})
        explained = await session.call_tool(
            "search", {"question": "speculative decoding draft model", "k": 2, "explain": True, "details": True}
        )
        spread = await session.call_tool("related", {"id": "2302.00003", "k": 2, "diverse": True, "details": True})
        liked = await session.call_tool(
            "recommend", {"likes": ["2302.00003"], "dislikes": ["GPTQ"], "k": 3, "details": True}
        )
        return {
            "tools": tools, "search": found, "classify": placed, "trends": trends, "missing": missing, "digest": digest,
            "explained": explained, "spread": spread, "liked": liked,
        }  # fmt: skip


def payload(result) -> dict:
    if result.structured_content is not None:
        return result.structured_content.get("result", result.structured_content)
    return json.loads(result.content[0].text)


def test_an_assistant_lists_the_tools_and_calls_them(index_dir):
    from tests.test_page import with_a_digest

    with_a_digest(index_dir)
    calls = anyio.run(session_calls, index_dir)
    assert {t.name for t in calls["tools"].tools} == {
        "search",
        "classify",
        "related",
        "recommend",
        "paper",
        "taxonomy",
        "trends",
        "propose",
        "gaps",
        "digest",
    }
    found = payload(calls["search"])
    assert len(found["results"]) == 3 and found["results"][0]["id"] == "2302.00003"
    assert set(found["results"][0]) == {"id", "title", "score", "year", "categories", "category_source", "url"}
    placed = payload(calls["classify"])
    assert set(placed) >= {"suggestions", "confidence", "in_scope", "neighbours"}
    assert list(payload(calls["trends"])["trends"]) == [
        "Model-Centric Methods/Efficient Inference/Speculative Decoding"
    ]
    assert calls["missing"].is_error and "no paper 'nope'" in calls["missing"].content[0].text
    assert payload(calls["digest"])["names"] == ["202411010000-202411020000"]  # the one the fixture's watch kept
    explained = payload(calls["explained"])
    assert "explanation" in explained and {"explain", "abstract", "authors"} <= set(explained["results"][0])
    spread = payload(calls["spread"])["results"]
    assert len(spread) == 2 and all("abstract" in hit for hit in spread)
    liked = payload(calls["liked"])  # a paper disliked by its method's name, as related work takes it
    assert liked["dislikes"] == ["GPTQ"] and len(liked["results"]) == 3
    assert all(
        "abstract" in hit and hit["id"] != "2302.00003" and not hit["title"].startswith("GPTQ")
        for hit in liked["results"]
    )
    published = {t.name: t.input_schema for t in calls["tools"].tools}  # the rules reach the assistant
    assert published["search"]["properties"]["question"]["pattern"].startswith("^[\\s\\S]*?[^\\W_")
    assert published["classify"]["anyOf"][1]["required"] == ["id"]
    assert all(schema["additionalProperties"] is False for schema in published.values())


def test_requests_piped_in_are_all_answered_after_the_input_ends(index_dir):
    """`cat requests.jsonl | semsearch mcp`: stdin closes at once, while the calls are still running.
    Every request read gets its answer before the server exits (the SDK alone cancelled most)."""
    import subprocess

    opening = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cat", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]  # fmt: skip
    calls = [
        ("search", {"question": "speculative decoding draft model"}),
        ("related", {"id": "2302.00003"}),
        ("taxonomy", {}),
        ("classify", {"title": "Pruning heads", "abstract": "We prune attention heads."}),
        ("classify", {"title": "Evicting tokens from the KV cache"}),  # no abstract: refused
        ("paper", {"id": "nope"}),
        ("search", {"question": "quantization"}),
        ("classify", {"id": "2302.00003"}),  # a paper the library holds, named
    ]
    requests = opening + [
        {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": name, "arguments": arguments}}
        for n, (name, arguments) in enumerate(calls, start=1)
    ]
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    answers = {a["id"]: a for a in map(json.loads, done.stdout.splitlines())}
    assert done.returncode == 0 and sorted(answers) == list(range(len(calls) + 1)), done.stderr[-2000:]
    from importlib.metadata import version

    info = answers[0]["result"]["serverInfo"]
    assert info["name"] == "semsearch" and info["version"] == version("semsearch")  # it was ""
    errors = {n for n, a in answers.items() if n and a["result"].get("isError")}
    assert errors == {5, 6}  # only the paper without an abstract and the unknown one are refused
    assert answers[5]["result"]["content"][0]["text"] == "Error executing tool classify: abstract: Field required"
    assert json.loads(answers[8]["result"]["content"][0]["text"])["id"] == "2302.00003"
    # The taxonomy is one text block holding the API's array (it was one block per branch), and
    # the same array as structured content.
    tree = answers[3]["result"]
    assert len(tree["content"]) == 1 and json.loads(tree["content"][0]["text"]) == tree["structuredContent"]["result"]
    assert [node["name"] for node in tree["structuredContent"]["result"]][:1] == ["Model-Centric Methods"]


def test_piped_requests_under_one_id_are_each_answered_and_a_cancelled_one_is_not_waited_for(index_dir):
    """Two requests under one id get two answers; a request the client cancels gets none (the SDK
    sends none), and the server still exits at once when the input ends (it waited 300 s)."""
    import subprocess
    import time

    opening = [
        {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cat", "version": "1"}}},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
    ]  # fmt: skip
    call = {"name": "search", "arguments": {"question": "speculative decoding draft model"}}
    requests = opening + [
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call},
        {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": call},
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": call},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 8}},
    ]
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],
        input="".join(json.dumps(r) + "\n" for r in requests),
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    ids = [json.loads(line)["id"] for line in done.stdout.splitlines()]
    assert done.returncode == 0 and sorted(i for i in ids if i != 8) == [0, 7, 7], done.stderr[-2000:]
    assert time.monotonic() - started < 60


@pytest.mark.parametrize(
    "line, odd",
    [
        ('{"jsonrpc": "2.0", "id": true, "method": "tools/list"}', True),
        ('{"jsonrpc": "2.0", "id": null, "method": "tools/list"}', True),
        ('{"jsonrpc": "2.0", "id": 1.5, "method": "tools/list"}', True),
        ('{"jsonrpc": "2.0", "id": {"a": 1}, "method": "tools/list"}', True),
        ('{"jsonrpc": "2.0", "id": 7, "method": "tools/list"}', False),
        ('{"jsonrpc": "2.0", "id": "x", "method": "tools/list"}', False),
        ('{"jsonrpc": "2.0", "method": "ping"}', False),  # a notification: never answered
        ('{"jsonrpc": "2.0", "id": true, "result": {}}', False),  # a response: not a request
        ("not json", False),
        ("[1, 2]", False),
    ],
)
def test_a_request_with_an_id_json_rpc_does_not_allow_is_told_from_a_notification(line, odd):
    """The SDK reads `{"id": true, "method": ...}` as a notification, never answered."""
    from semsearch.mcp_server import NOT_A_MESSAGE, odd_id

    assert odd_id(line) is odd
    from mcp_types import jsonrpc_message_adapter
    from pydantic import ValidationError

    with pytest.raises(ValidationError):  # what is put in its place: refused by the SDK's reader, answered -32600
        jsonrpc_message_adapter.validate_json(NOT_A_MESSAGE, by_name=False)


def test_a_lone_surrogate_of_either_half_in_any_case_is_read_as_a_replacement_character():
    from semsearch.mcp_server import surrogates_replaced

    for escape in ("\\ud800", "\\uD800", "\\udfff", "\\uDC00"):
        assert surrogates_replaced('{"q": "a ' + escape + ' b"}') == '{"q": "a \ufffd b"}\n', escape
    paired = '{"q": "\\ud83d\\ude00"}\n'  # a pair is one character, left as sent
    assert surrogates_replaced(paired) == paired
    escaped = '{"q": "\\\\ud800"}\n'  # a backslash and the letters, not a surrogate
    assert surrogates_replaced(escaped) == escaped
    deep = "[" * 100_000 + '"\\ud800"' + "]" * 100_000  # the SDK's reader says what is wrong with it
    assert surrogates_replaced(deep) == deep


async def _list_calls(index_dir: Path) -> dict:
    async with _sdk_session(index_dir) as session:
        return {
            "tree": await session.call_tool("taxonomy", {"taxonomy": "mine"}),
            "trends": await session.call_tool("trends", {"category": ["Caches"], "taxonomy": "mine"}),
            "no tree": await session.call_tool("taxonomy", {"taxonomy": "nope"}),
            "no trends": await session.call_tool("trends", {"category": ["Caches"], "taxonomy": "nope"}),
        }


def test_a_lists_tree_and_trends_reach_a_real_server_and_a_real_mcp_process_as_the_cli_shows_them(index_dir, tmp_path):
    """`taxonomy=` on /api/taxonomy and /api/trends, and on the MCP tools `taxonomy` and `trends`,
    each in a process of its own as a user runs them: the CLI's tree and one set of trends; an
    unknown name a 404 or a tool error, in one line."""
    import urllib.error
    import urllib.request

    from tests.cli_process import run_cli
    from tests.test_server import NO_TAXONOMY, serving, with_a_list

    with_a_list(index_dir, tmp_path)
    shown = json.loads(run_cli("taxonomy", "show", "mine", "--json", "--index", index_dir, check=True).stdout)
    calls = anyio.run(_list_calls, index_dir)
    with serving(index_dir) as port:

        def get(path: str) -> tuple[int, object]:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as answer:
                    return answer.status, json.loads(answer.read())
            except urllib.error.HTTPError as refused:
                return refused.code, json.loads(refused.read())

        assert get("/api/taxonomy?taxonomy=mine") == (200, shown) and payload(calls["tree"]) == shown
        trends = get("/api/trends?category=Caches&taxonomy=mine")
        assert trends == (200, payload(calls["trends"])) and list(trends[1]["trends"]) == ["Caches"]
        assert get("/api/taxonomy?taxonomy=nope") == get("/api/trends?category=Caches&taxonomy=nope")
        assert get("/api/taxonomy?taxonomy=nope") == (404, {"error": NO_TAXONOMY})
    for call, tool in (("no tree", "taxonomy"), ("no trends", "trends")):
        assert calls[call].is_error and calls[call].content[0].text == f"Error executing tool {tool}: {NO_TAXONOMY}"


async def _trends_calls(index_dir: Path) -> dict:
    async with _sdk_session(index_dir) as session:
        tools = {t.name: t.input_schema for t in (await session.list_tools()).tools}
        return {
            "schema": tools["trends"]["properties"]["category"],
            "one": await session.call_tool("trends", {"category": "Speculative Decoding"}),
            "listed": await session.call_tool("trends", {"category": ["Speculative Decoding"]}),
            "blank": await session.call_tool("trends", {"category": " "}),
            "unknown": await session.call_tool("trends", {"category": "Nope"}),
        }


def test_trends_takes_one_category_as_a_string_as_the_api_takes_one_category_parameter(index_dir):
    """The issue names the tool `trends` (`category`), and `GET /api/trends?category=NODE` takes one
    node: `trends` with `{"category": "Speculative Decoding"}` was refused ("category: Input should
    be a valid list"), only a list of one was taken. A string is now one node, published as such;
    a list still compares up to three, and what a node cannot be is refused as before."""
    from jsonschema import Draft202012Validator

    calls = anyio.run(_trends_calls, index_dir)
    assert not calls["one"].is_error, calls["one"].content[0].text
    assert payload(calls["one"]) == payload(calls["listed"])
    assert list(payload(calls["one"])["trends"]) == ["Model-Centric Methods/Efficient Inference/Speculative Decoding"]
    assert calls["blank"].is_error and "unknown category ' '" in calls["blank"].content[0].text  # as [" "] is
    assert calls["unknown"].is_error and "unknown category 'Nope'" in calls["unknown"].content[0].text
    published = Draft202012Validator({"type": "object", "properties": {"category": calls["schema"]}})
    assert published.is_valid({"category": "Quantization"}) and published.is_valid({"category": ["Quantization"]})
    for refused in ([], ["a", "b", "c", "d"], "", "x" * 301, 5):
        assert not published.is_valid({"category": refused}), refused


def _serving(index_dir: Path, *, initialized: bool = True, pause_in_search: Path | None = None):
    """A real `semsearch mcp` past its handshake: (the process, a function that sends it a message).
    With `pause_in_search`, every search it runs creates that file and never ends."""
    import subprocess
    import threading

    pause = ["--pause-at", "search", "--marker", str(pause_in_search)] if pause_in_search else []
    server = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_process", *pause, "--", "mcp", "--index", str(index_dir)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=str(ROOT),
    )  # fmt: skip

    def send(message: dict) -> None:
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()

    hello = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
    send({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": hello})
    # A server that never answers is ended, so the test fails rather than hangs (answers written
    # anywhere but standard output, a hand mutation, hung this read for good).
    watchdog = threading.Timer(60, server.kill)
    watchdog.start()
    try:
        assert b'"id":1' in server.stdout.readline()
    finally:
        watchdog.cancel()
    if initialized:
        send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    return server, send


def test_a_client_that_stops_reading_ends_the_server_quietly(index_dir):
    """An assistant that closes its end of the answers (a crashed editor) left an 81-line traceback
    of a broken pipe and exit 1 (an attacker's pass): the server now ends at the next answer it
    cannot send, exit 0, nothing on stderr."""
    import time

    server, send = _serving(index_dir)
    server.stdout.close()  # the client stops reading
    asked = {"name": "search", "arguments": {"question": "speculative decoding", "k": 100, "details": True}}
    for n in range(40):
        try:
            send({"jsonrpc": "2.0", "id": 2 + n, "method": "tools/call", "params": asked})
        except BrokenPipeError:
            break  # the server is gone
        time.sleep(0.25)
    else:
        server.stdin.close()
    assert server.wait(timeout=60) == 0
    assert server.stderr.read() == b""


@pytest.mark.parametrize(("stop", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_or_sigterm_ends_the_server_while_the_client_is_quiet(index_dir, stop, code, said):
    """Standard input was read in a worker thread that the interpreter joins on the way out: Ctrl-C
    (and SIGTERM, taken as Ctrl-C since) said "interrupted" and left the server running until the
    client wrote another line or closed its end, which a quiet client never does."""
    import signal

    server, _ = _serving(index_dir, initialized=False)  # serving, and waiting for the client's next line
    server.send_signal(getattr(signal, stop))
    try:
        assert server.wait(timeout=20) == code
    finally:
        server.kill()
    assert server.stderr.read().decode().strip() == said


@pytest.mark.parametrize(("stop", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_or_sigterm_ends_the_server_while_a_client_that_stopped_reading_holds_its_answers(
    index_dir, stop, code, said
):
    """A client that stops reading but keeps its end open (a frozen editor): answers more than the
    pipe holds blocked the SDK's writer in a worker thread, which cannot be abandoned and which the
    interpreter joins on the way out, so Ctrl-C said "interrupted" and SIGTERM said nothing, and the
    server never ended (an attacker's pass; only SIGKILL did)."""
    import signal
    import time

    server, send = _serving(index_dir)
    asked = {"name": "search", "arguments": {"question": "speculative decoding", "k": 100, "details": True}}
    for n in range(12):  # far more than a pipe holds, and none of it read
        send({"jsonrpc": "2.0", "id": 2 + n, "method": "tools/call", "params": asked})
    time.sleep(5)  # answered, as far as the pipe takes them
    server.send_signal(getattr(signal, stop))
    try:
        assert server.wait(timeout=20) == code
    finally:
        server.kill()
    assert server.stderr.read().decode().strip() == said


@pytest.mark.parametrize(("stop", "code", "said"), [("SIGINT", 130, "interrupted"), ("SIGTERM", 143, "terminated")])
def test_ctrl_c_or_sigterm_ends_the_server_during_a_tool_call_that_has_not_ended(index_dir, tmp_path, stop, code, said):
    """A tool ran in the SDK's worker threads, which a cancellation waits for and the interpreter
    joins on the way out: Ctrl-C or SIGTERM during a long call (a `propose`, a search while the model
    loads) left the server running until the call ended, and for good with one that never does."""
    import signal
    import time

    marker = tmp_path / "searching"
    server, send = _serving(index_dir, pause_in_search=marker)
    asked = {"name": "search", "arguments": {"question": "speculative decoding"}}
    send({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": asked})
    deadline = time.monotonic() + 60
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert marker.exists(), "the search never began"
    server.send_signal(getattr(signal, stop))
    started = time.monotonic()
    try:
        assert server.wait(timeout=20) == code
    finally:
        server.kill()
    assert time.monotonic() - started < 3
    assert server.stderr.read().decode().strip() == said


def test_tool_calls_the_client_cancelled_still_count_toward_the_thread_limit_until_they_end(index_dir, tmp_path):
    """A tool call runs in a daemon thread of its own, at most anyio's thread limit (40) at once. A
    call the client cancelled let go of its place while its thread ran on: 80 searches, each
    cancelled as soon as sent, ran 80 threads, and a client could start any number of them."""
    import time

    import anyio
    import anyio.to_thread

    async def thread_limit() -> int:
        return int(anyio.to_thread.current_default_thread_limiter().total_tokens)

    limit = anyio.run(thread_limit)
    server, send = _serving(index_dir, pause_in_search=tmp_path / "searching")
    try:
        time.sleep(1)
        threads = len(os.listdir(f"/proc/{server.pid}/task"))
        asked = {"name": "search", "arguments": {"question": "speculative decoding"}}
        for request in range(100, 100 + 2 * limit):  # each search never ends
            send({"jsonrpc": "2.0", "id": request, "method": "tools/call", "params": asked})
            send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request}})
        deadline = time.monotonic() + 30
        while len(os.listdir(f"/proc/{server.pid}/task")) < threads + limit and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(2)  # time enough for more to start, were they let
        running = len(os.listdir(f"/proc/{server.pid}/task"))
        assert threads + limit <= running <= threads + limit + 4, running  # (a thread of the server's own aside)
    finally:
        server.kill()


@given(chunks=st.lists(st.binary(max_size=40), max_size=8), read_bytes=st.integers(1, 7))
@example(chunks=[b"\r\xc2"], read_bytes=1)  # a "\r" and a cut character at the end: one line, read as two
@settings(max_examples=200, deadline=2000)
def test_standard_input_is_read_into_lines_as_the_sdks_text_wrapper_reads_it(chunks, read_bytes):
    """The daemon reader (`DaemonLines`) splits and decodes lines exactly as io.TextIOWrapper, the
    SDK's own reading, does: a bad byte replaced, a character or "\\r\\n" cut between two reads
    joined, "\\r" and "\\r\\n" ending a line, a last line without its end kept."""
    import io

    from semsearch.mcp_server import DaemonLines

    class SmallReads(DaemonLines):
        READ_BYTES = read_bytes

    data = b"".join(chunks)
    readable, writable = os.pipe()
    with os.fdopen(writable, "wb") as pipe:  # the pipe holds 64 KiB; the data is at most 320 bytes
        pipe.write(data)

    async def lines() -> list[str]:
        return [line async for line in SmallReads(readable)]

    try:
        assert anyio.run(lines) == list(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8", errors="replace"))
    finally:
        os.close(readable)


def test_a_long_line_is_read_in_time_linear_in_its_length(tmp_path):
    """A line of 40 MB (a client's, or a question it relays) is read in well under a second: its
    start was joined and split again at every read of 64 KiB, 30 s for that line."""
    from semsearch.mcp_server import DaemonLines

    path = tmp_path / "stdin"
    path.write_text("[" * (40 << 20) + "\r\nnext")
    fd = os.open(path, os.O_RDONLY)

    async def lengths() -> list[int]:
        return [len(line) async for line in DaemonLines(fd)]

    started = time.monotonic()
    try:
        assert anyio.run(lengths) == [(40 << 20) + 1, 4]
    finally:
        os.close(fd)
    assert time.monotonic() - started < 5  # 0.3 s; 22 s before


def test_a_tool_call_gives_its_thread_place_back_when_it_ends_and_its_failure_to_the_caller():
    """Each call holds one of anyio's thread places while its thread runs: kept after it ended, the
    call after the 40th would wait for ever."""
    import anyio
    import anyio.to_thread

    from semsearch.mcp_server import in_daemon_thread

    def double(n: int) -> int:
        if n < 0:
            raise ValueError("no negatives")
        return 2 * n

    call = in_daemon_thread(double)

    async def many() -> tuple[list[int], int]:
        with anyio.fail_after(20):
            answers = [await call(n=n) for n in range(60)]
            with pytest.raises(ValueError, match="no negatives"):
                await call(n=-1)
        return answers, anyio.to_thread.current_default_thread_limiter().borrowed_tokens

    answers, held = anyio.run(many)
    assert answers == [2 * n for n in range(60)] and held == 0
