"""The stdio plumbing of `semsearch mcp`, in this process: how lines that are not messages are
answered, how the end of input waits for the answers owed, how answers are written, and which
failures end the server quietly. tests/test_mcp.py drives the same through a real process (slow)."""

from __future__ import annotations

import os

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st


def _request(request_id, method: str = "tools/list"):
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCRequest

    return SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method=method))


def _answer(request_id, *, error: bool = False):
    from mcp.shared.message import SessionMessage
    from mcp_types import ErrorData, JSONRPCError, JSONRPCResponse

    if error:
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=-1, message="no")))
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result={}))


def _notification(method: str, params: dict | None = None):
    from mcp.shared.message import SessionMessage
    from mcp_types import JSONRPCNotification

    return SessionMessage(JSONRPCNotification(jsonrpc="2.0", method=method, params=params))


class Sent:
    """A write stream that keeps what is sent to it."""

    def __init__(self):
        self.items, self.closed = [], False

    async def send(self, item) -> None:
        self.items.append(item)

    def close(self) -> None:
        self.closed = True


def _owed(answers) -> bool:
    return not answers._none_waiting.is_set()  # noqa: SLF001


# --- Answers: the requests read that have no answer yet -----------------------------------------------
def test_a_request_is_owed_until_its_answer_or_error_is_sent_and_nothing_else_settles_it():
    from semsearch.mcp_server import Answers

    async def run() -> list:
        sent = Sent()
        answers = Answers(sent)
        seen = [_owed(answers)]  # nothing asked: nothing owed
        answers.asked(_request(1))
        answers.asked(_request("two"))
        seen.append(_owed(answers))
        await answers.send(_notification("notifications/progress"))  # not an answer
        await answers.send(_answer(3))  # an answer to a request never read
        seen.append(_owed(answers))
        await answers.send(_answer(1))
        seen.append(_owed(answers))  # "two" still owed
        await answers.send(_answer("two", error=True))  # an error answers too
        seen.append(_owed(answers))
        with anyio.fail_after(1):
            await answers.all_sent()  # returns at once: none owed
        answers.asked(_request(4))  # owed again after all were answered once
        seen.append(_owed(answers))
        seen.append(len(sent.items))  # each passed on to the stream
        return seen

    assert anyio.run(run) == [False, True, True, True, False, True, 4]


def test_requests_asked_under_one_id_are_each_owed_an_answer():
    from semsearch.mcp_server import Answers

    async def run() -> list:
        answers = Answers(Sent())
        for _ in range(3):
            answers.asked(_request(7))
        seen = []
        for _ in range(3):
            seen.append(_owed(answers))
            await answers.send(_answer(7))
        seen.append(_owed(answers))
        await answers.send(_answer(7))  # one answer too many owes nothing either
        seen.append(_owed(answers))
        return seen

    assert anyio.run(run) == [True, True, True, False, False]


def test_a_cancelled_request_is_not_waited_for_and_other_notifications_change_nothing():
    from semsearch.mcp_server import Answers

    async def run() -> list:
        answers = Answers(Sent())
        answers.asked(_request(1))
        answers.asked(_request(1))
        answers.asked(_notification("notifications/initialized"))
        answers.asked(_notification("notifications/progress", {"requestId": 1}))
        seen = [_owed(answers)]
        answers.asked(_notification("notifications/cancelled", {"requestId": 1}))
        seen.append(_owed(answers))  # one of the two under id 1 is still owed
        answers.asked(_notification("notifications/cancelled", {"requestId": 1}))
        seen.append(_owed(answers))
        answers.asked(_answer(9))  # a response from the client asks for nothing
        seen.append(_owed(answers))
        return seen

    assert anyio.run(run) == [True, True, False, False]


def test_the_end_of_input_waits_until_every_request_read_is_answered():
    from semsearch.mcp_server import Answers

    async def run() -> list:
        answers, order = Answers(Sent()), []
        answers.asked(_request(1))

        async def wait() -> None:
            await answers.all_sent()
            order.append("all sent")

        async with anyio.create_task_group() as group:
            group.start_soon(wait)
            await anyio.sleep(0.05)
            order.append("answering")
            await answers.send(_answer(1))
        return order

    assert anyio.run(run) == ["answering", "all sent"]


@given(
    st.lists(
        st.tuples(st.sampled_from(["ask", "answer", "cancel"]), st.sampled_from([1, 2, "a"])),
        max_size=30,
    )
)
@settings(max_examples=100, deadline=2000)
def test_an_answer_is_owed_exactly_while_some_request_read_is_neither_answered_nor_cancelled(steps):
    """For any order of requests, answers and cancellations: owed as long as, for some id, more
    requests were read than answered or cancelled (an answer beyond those asked owes nothing)."""
    from semsearch.mcp_server import Answers

    async def run() -> None:
        answers, open_by_id = Answers(Sent()), {}
        for step, request_id in steps:
            if step == "ask":
                answers.asked(_request(request_id))
                open_by_id[request_id] = open_by_id.get(request_id, 0) + 1
            elif step == "answer":
                await answers.send(_answer(request_id))
                open_by_id[request_id] = max(open_by_id.get(request_id, 0) - 1, 0)
            else:
                answers.asked(_notification("notifications/cancelled", {"requestId": request_id}))
                open_by_id[request_id] = max(open_by_id.get(request_id, 0) - 1, 0)
            assert _owed(answers) is any(open_by_id.values())

    anyio.run(run)


# --- AnsweringParseErrors: a line that is not a message is answered, not dropped --------------------
def _read_error(line: str) -> Exception:
    """What the SDK's stdio reader passes on for `line` (see mcp.server.stdio)."""
    from mcp_types import jsonrpc_message_adapter

    try:
        jsonrpc_message_adapter.validate_json(line, by_name=False)
    except Exception as err:  # noqa: BLE001 - as the SDK catches it
        return err
    raise AssertionError(f"{line!r} is a message")


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        ("not json", -32700, "Parse error"),
        ('{"jsonrpc": "2.0", "id": 1, "method": ', -32700, "Parse error"),
        ('{"jsonrpc": "2.0"}', -32600, "Invalid Request"),  # NOT_A_MESSAGE: an odd id's stand-in
        ("[1, 2]", -32600, "Invalid Request"),
    ],
)
def test_a_line_that_is_not_a_message_is_answered_with_id_null_and_the_next_message_is_read(line, code, message):
    from mcp_types import JSONRPCError

    from semsearch.mcp_server import AnsweringParseErrors, Answers

    async def run():
        inbox, outbox = anyio.create_memory_object_stream(10)
        sent = Sent()
        answers = Answers(sent)
        read = AnsweringParseErrors(outbox, sent, answers)
        await inbox.send(_read_error(line))
        await inbox.send(_request(5))
        received = await read.receive()
        return received, sent.items, _owed(answers)

    received, refusals, owed = anyio.run(run)
    assert received.message.id == 5 and owed  # passed on, and counted as owed an answer
    assert len(refusals) == 1 and isinstance(refusals[0].message, JSONRPCError)
    refusal = refusals[0].message
    assert (refusal.id, refusal.error.code, refusal.error.message) == (None, code, message)


def test_any_other_exception_from_the_reader_is_answered_as_a_parse_error():
    from semsearch.mcp_server import _refusal

    refusal = _refusal(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "invalid start byte")).message
    assert (refusal.id, refusal.error.code, refusal.error.message) == (None, -32700, "Parse error")


def test_the_end_of_input_is_held_back_until_the_requests_read_are_answered_and_then_ends_the_iteration():
    from semsearch.mcp_server import AnsweringParseErrors, Answers

    async def run() -> list:
        inbox, outbox = anyio.create_memory_object_stream(10)
        sent, order = Sent(), []
        answers = Answers(sent)
        read = AnsweringParseErrors(outbox, sent, answers)
        await inbox.send(_request(1))
        await inbox.aclose()  # the client closed its end

        async def serve() -> None:
            async for item in read:
                order.append(("read", item.message.id))
            order.append("ended")

        async with anyio.create_task_group() as group:
            group.start_soon(serve)
            await anyio.sleep(0.1)
            order.append("answered")
            await answers.send(_answer(1))
        return order

    assert anyio.run(run) == [("read", 1), "answered", "ended"]


def test_without_a_count_of_answers_the_end_of_input_ends_at_once(monkeypatch):
    from semsearch import mcp_server
    from semsearch.mcp_server import AnsweringParseErrors

    async def run() -> list:
        inbox, outbox = anyio.create_memory_object_stream(10)
        read = AnsweringParseErrors(outbox, Sent())
        await inbox.send(_request(1))
        await inbox.aclose()
        with anyio.fail_after(2):
            return [item.message.id async for item in read]

    assert anyio.run(run) == [1]

    async def drained_after_a_while() -> float:  # answers never sent: waited for DRAIN_SECONDS, no longer
        from semsearch.mcp_server import Answers

        inbox, outbox = anyio.create_memory_object_stream(10)
        sent = Sent()
        read = AnsweringParseErrors(outbox, sent, Answers(sent))
        await inbox.send(_request(1))
        await inbox.aclose()
        started = anyio.current_time()
        with anyio.fail_after(5):
            assert [item.message.id async for item in read] == [1]
        return anyio.current_time() - started

    monkeypatch.setattr(mcp_server, "DRAIN_SECONDS", 0.2)
    assert 0.15 <= anyio.run(drained_after_a_while) < 2


def test_the_read_stream_closes_its_inner_stream_and_passes_its_context_on():
    from semsearch.mcp_server import AnsweringParseErrors

    class Inner:
        last_context = "ctx"

        def __init__(self):
            self.closed = []

        def close(self):
            self.closed.append("close")

        async def aclose(self):
            self.closed.append("aclose")

    inner = Inner()
    read = AnsweringParseErrors(inner, Sent())
    assert read.last_context == "ctx"
    assert AnsweringParseErrors(object(), Sent()).last_context is None  # a stream without one
    read.close()

    async def run():
        async with read as entered:
            assert entered is read

    anyio.run(run)
    assert inner.closed == ["close", "aclose"]


# --- how answers are written, and which failure ends the server quietly ------------------------------
def test_each_answer_is_written_whole_to_the_descriptor_before_write_returns():
    from semsearch.mcp_server import DaemonWrites

    readable, writable = os.pipe()
    text = '{"jsonrpc": "2.0", "id": 1, "result": {"é": "' + "x" * 100_000 + '"}}\n'  # more than a pipe holds

    async def run() -> bytes:
        writes, got = DaemonWrites(writable), bytearray()

        async def drain() -> None:
            while len(got) < len(text.encode()) + 4:
                got.extend(await anyio.to_thread.run_sync(os.read, readable, 65_536))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as group:
                group.start_soon(drain)
                await writes.write(text)
                await writes.write("end\n")
                await writes.flush()
        assert writes._thread.daemon  # noqa: SLF001 - let go at exit, a write blocked or not
        return bytes(got)

    try:
        assert anyio.run(run) == (text + "end\n").encode("utf-8")
    finally:
        os.close(readable)
        os.close(writable)


def test_a_write_to_a_closed_pipe_fails_with_the_broken_pipe_as_the_sdks_file_did():
    from semsearch.mcp_server import DaemonWrites

    readable, writable = os.pipe()
    os.close(readable)

    async def run() -> None:
        await DaemonWrites(writable).write("answer\n")

    try:
        with pytest.raises(BrokenPipeError):
            anyio.run(run)
    finally:
        os.close(writable)


def test_only_broken_pipes_end_the_server_quietly():
    import builtins

    from semsearch.mcp_server import _broken_pipes

    ExceptionGroup = getattr(builtins, "ExceptionGroup", None) or __import__("exceptiongroup").ExceptionGroup  # noqa: N806
    assert _broken_pipes(BrokenPipeError())
    assert _broken_pipes(ExceptionGroup("tasks", [BrokenPipeError(), ExceptionGroup("inner", [BrokenPipeError()])]))
    assert not _broken_pipes(ExceptionGroup("tasks", [BrokenPipeError(), ValueError()]))
    assert not _broken_pipes(ConnectionResetError())
    assert not _broken_pipes(OSError())
    assert not _broken_pipes(RuntimeError())


@pytest.mark.parametrize(
    ("line", "read"),
    [
        ('{"jsonrpc": "2.0", "id": true, "method": "tools/list"}\n', '{"jsonrpc": "2.0"}\n'),
        ('{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"q": "\\ud800"}}\n', None),
        ('{"jsonrpc": "2.0", "id": 1, "method": "tools/list"}\n', "as sent"),
    ],
)
def test_standard_inputs_lines_reach_the_sdk_with_odd_ids_refused_and_lone_surrogates_replaced(line, read):
    from semsearch.mcp_server import OddIdsRefused

    async def lines():
        yield line

    async def run() -> list[str]:
        return [each async for each in OddIdsRefused(lines())]

    got = anyio.run(run)
    if read == "as sent":
        assert got == [line]
    elif read is None:
        assert got == ['{"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"q": "\ufffd"}}\n']
    else:
        assert got == [read]


# --- the whole of `semsearch mcp`, in this process ---------------------------------------------------
OPENING = [
    {"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "cat", "version": "1"}}},
    {"jsonrpc": "2.0", "method": "notifications/initialized"},
]  # fmt: skip


class Descriptor:
    """A stand-in for sys.stdin or sys.stdout: only its file descriptor is read."""

    def __init__(self, fd: int):
        self.fd = fd

    def fileno(self) -> int:
        return self.fd

    def flush(self) -> None:
        pass


def _piped_in(monkeypatch, lines: list[str]) -> None:
    """Standard input: a pipe holding `lines`, closed (as `cat requests.jsonl |`); standard output: fd 1."""
    import sys

    readable, writable = os.pipe()
    os.write(writable, "".join(lines).encode())
    os.close(writable)
    monkeypatch.setattr(sys, "stdin", Descriptor(readable))
    monkeypatch.setattr(sys, "stdout", Descriptor(1))


def test_requests_piped_into_the_server_are_all_answered_on_standard_output_then_it_returns(
    unchanged_survey_corpus_index, monkeypatch, capfd
):
    import json

    from semsearch.mcp_server import serve_stdio

    calls = [
        ("search", {"question": "speculative decoding draft model", "k": 2}),
        ("paper", {"id": "nope"}),
        ("related", {"id": "2302.00003", "k": 2, "diverse": True}),
    ]
    lines = [json.dumps(r) + "\n" for r in OPENING] + [
        json.dumps({"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": name, "arguments": args}})
        + "\n"
        for n, (name, args) in enumerate(calls, start=1)
    ]
    lines += ["not json\n", '{"jsonrpc": "2.0", "id": true, "method": "tools/list"}\n']
    _piped_in(monkeypatch, lines)
    serve_stdio(index_dir=unchanged_survey_corpus_index)
    os.write(1, b"fd 1 given back\n")
    out, _ = capfd.readouterr()
    *answered, after = out.splitlines()
    assert after == "fd 1 given back"
    answers = [json.loads(line) for line in answered]
    by_id = {a["id"]: a for a in answers if a["id"] is not None}
    assert sorted(by_id) == [0, 1, 2, 3]
    assert sorted(a["error"]["code"] for a in answers if a["id"] is None) == [-32700, -32600]
    from importlib.metadata import version

    assert by_id[0]["result"]["serverInfo"] == {"name": "semsearch", "version": version("semsearch")}
    assert by_id[0]["result"]["instructions"].startswith("A local library of research papers")
    assert json.loads(by_id[1]["result"]["content"][0]["text"])["results"][0]["id"] == "2302.00003"
    assert (
        by_id[2]["result"]["isError"]
        and by_id[2]["result"]["content"][0]["text"] == "Error executing tool paper: no paper 'nope' in the index"
    )
    assert len(json.loads(by_id[3]["result"]["content"][0]["text"])["results"]) == 2


def test_what_a_tool_prints_while_serving_goes_to_standard_error_not_onto_the_wire(monkeypatch, capfd):
    import json

    from semsearch.mcp_server import _run_stdio, tool_server

    server = tool_server("printing")

    @server.tool()
    def chatty() -> str:
        """Prints, as a library might."""
        os.write(1, b"stray output\n")
        return "said"

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "chatty", "arguments": {}}}
    _piped_in(monkeypatch, [json.dumps(r) + "\n" for r in [*OPENING, call]])
    anyio.run(_run_stdio, server)
    out, err = capfd.readouterr()
    answers = {a["id"]: a for a in map(json.loads, out.splitlines())}
    assert answers[1]["result"]["content"][0]["text"] == "said"
    assert "stray output" in err and "stray output" not in out


def test_standard_output_that_is_no_descriptor_is_left_to_the_sdk(monkeypatch):
    import io
    import sys

    from semsearch.mcp_server import _wire_claimed

    monkeypatch.setattr(sys, "stdout", io.StringIO())  # no fileno: the SDK's own writer then
    assert _wire_claimed() is None
    monkeypatch.setattr(sys, "stdout", Descriptor(7))  # not fd 1: not claimed either
    assert _wire_claimed() is None


def test_sigterm_to_the_command_ends_a_server_whose_client_is_quiet_as_its_stop(
    unchanged_survey_corpus_index, monkeypatch
):
    """The command's SIGTERM handler (`cli.terminate`) is taken as asyncio takes Ctrl-C: the
    serving task is cancelled and the command is told it was stopped (`Terminated`, exit 143)."""
    import signal
    import sys
    import threading

    from semsearch.cli import Terminated, terminate
    from semsearch.mcp_server import serve_stdio

    readable, writable = os.pipe()  # kept open, nothing sent: a quiet client
    monkeypatch.setattr(sys, "stdin", Descriptor(readable))
    monkeypatch.setattr(sys, "stdout", Descriptor(1))
    previous = signal.signal(signal.SIGTERM, terminate)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGTERM))
    try:
        timer.start()
        with pytest.raises(Terminated):
            serve_stdio(index_dir=unchanged_survey_corpus_index)
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN  # a second SIGTERM is not taken again
    finally:
        timer.cancel()
        signal.signal(signal.SIGTERM, previous)
        os.close(writable)  # the reading thread sees the end
        os.close(readable)


def test_a_client_that_closed_its_end_of_standard_output_ends_the_server_quietly(
    unchanged_survey_corpus_index, monkeypatch
):
    """Nobody to answer: no traceback, and fd 1 pointed at the null device so the interpreter's
    flush at exit does not fail again."""
    import json

    from semsearch.mcp_server import serve_stdio

    saved = os.dup(1)
    wire_read, wire_write = os.pipe()
    os.close(wire_read)  # the client stopped reading
    os.dup2(wire_write, 1)
    os.close(wire_write)
    try:
        _piped_in(monkeypatch, [json.dumps(r) + "\n" for r in OPENING])
        serve_stdio(index_dir=unchanged_survey_corpus_index)  # returns, raising nothing
        assert os.write(1, b"x") == 1  # the null device now: no broken pipe
        assert os.path.samestat(os.fstat(1), os.stat(os.devnull))
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def test_an_argument_a_tool_does_not_take_is_refused_by_name_before_the_tool_runs():
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch.mcp_server import add_tools, tool_server

    server = tool_server("semsearch-test")
    add_tools(server, None)  # the tools never run: a refusal reads no index
    for tool, arguments, said in [
        ("related", {"id": "2302.00003", "colour": "red"}, "colour: is not a parameter"),
        ("search", {"question": "kv cache", "k": "ten"}, "k: Input should be a valid integer"),
        ("classify", {"title": "Pruning heads"}, "abstract: Field required"),
    ]:
        with pytest.raises(ToolError) as refused:
            anyio.run(server.call_tool, tool, arguments)
        assert str(refused.value).startswith(f"Error executing tool {tool}: {said}"), str(refused.value)
