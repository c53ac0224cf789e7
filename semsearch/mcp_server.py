"""`semsearch mcp`: the library as Model Context Protocol tools over stdio, for assistants.

Each tool returns the JSON the HTTP API gives (both come from `semsearch.service`). Errors a user
can fix (an unknown paper or category, an empty question) come back as tool errors with the same
one-line message the CLI prints.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any

# The numbers' types, as the request models have them: the SDK checks a call against the signature
# first, and a plain `int` there took JSON's true for 1.
from semsearch.requests_models import K, Year

INSTRUCTIONS = (
    "A local library of research papers on efficient large language models, placed in the taxonomy of "
    "the survey 'Efficient Large Language Models'. Search it in plain words, place a new paper in the "
    "taxonomy, find related work, read a paper, and see how a topic grew by year."
)


def build_server(*, index_dir: str | Path | None = None):
    """The MCP server over the index at `index_dir` (loaded now, followed as it is published)."""
    from semsearch.service import Service

    service = Service(index_dir=index_dir)
    service.follow()
    from importlib.metadata import version

    server = tool_server("semsearch", instructions=INSTRUCTIONS, log_level="WARNING", version=version("semsearch"))
    add_tools(server, service)
    return server


def tool_server(name: str, **options):
    """An `MCPServer` whose argument errors read as the CLI's and the API's. The SDK checks a call's
    arguments against the tool's signature before our request models see them, and a missing or
    mistyped one ("classify" without an abstract, k "ten") came back as pydantic's multi-line
    report; now it is the same one line ("abstract: Field required")."""
    from mcp.server import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from pydantic import ValidationError

    from semsearch.requests_models import describe, not_a_parameter

    class ToolServer(MCPServer):
        async def call_tool(self, name, arguments, context=None):
            # An argument the tool does not take is refused, as the HTTP API refuses a parameter:
            # `related` with `diverse: true` answered the plain list without a word.
            tool = self._tool_manager.get_tool(name)
            taken = set(tool.parameters.get("properties", {})) if tool is not None else None
            if taken is not None and (unknown := [a for a in arguments or {} if a not in taken]):
                raise ToolError(f"Error executing tool {name}: {not_a_parameter(unknown[0])}")
            try:
                return await super().call_tool(name, arguments, context)
            except ToolError as err:
                cause = err.__cause__
                if isinstance(err, UnexpectedToolError) or not isinstance(cause, ValidationError):
                    raise
                raise ToolError(f"Error executing tool {name}: {describe(cause.errors())}") from cause

    return ToolServer(name, **options)


def add_tools(server, service) -> None:
    """The tools, each reading its arguments through the request model the CLI and the HTTP API
    use, so all three refuse the same input with the same one-line message."""
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch import requests_models as rm
    from semsearch.errors import SemsearchError
    from semsearch.propose import ProposeRequest

    def answer(call, *args, **kwargs) -> Any:
        try:
            return call(*args, **kwargs)
        except SemsearchError as err:
            raise ToolError(str(err)) from None

    def parse(model, **arguments):
        return answer(rm.parse, model, **arguments)

    def tool(model, **renamed: str):
        """`server.tool()`, the tool's published arguments ruled by `model` (`publish_rules`);
        `renamed`: an argument the model names otherwise (the question is the API's `q`)."""

        def register(function):
            server.tool()(in_daemon_thread(function))
            publish_rules(server._tool_manager.get_tool(function.__name__), model, renamed)  # noqa: SLF001
            return function

        return register

    @tool(rm.SearchRequest, question="q")
    def search(
        question: str,
        k: K = 10,
        year_from: Year | None = None,
        year_to: Year | None = None,
        category: str | None = None,
        taxonomy: str | None = None,
        explain: bool = False,
        details: bool = False,
    ) -> dict:
        """Papers for a question in plain words, best first (a topic, a problem, or one paper described).
        `category` keeps papers under a taxonomy node (its path or last part, e.g. "KV-Cache Optimization");
        `taxonomy` names one added from a curated list (default: the survey's). `k`: 1 to 100. `explain`:
        why each paper ranks where it does, and what the question was taken for; `details`: authors,
        venue and abstract of each."""
        r = parse(
            rm.SearchRequest, question=question, k=k, year_from=year_from, year_to=year_to, category=category,
            taxonomy=taxonomy, explain=explain, details=details,
        )  # fmt: skip
        return answer(
            service.search, r.question, r.k, year_from=r.year_from, year_to=r.year_to, category=r.category,
            explain=r.explain, details=r.details, taxonomy=r.taxonomy,
        )  # fmt: skip

    @tool(rm.ClassifyRequest)
    def classify(
        title: str | None = None, abstract: str | None = None, id: str | None = None, taxonomy: str | None = None
    ) -> dict:  # noqa: A002 - the argument name is part of the tool's contract, as for `related`
        """Where a paper belongs in the taxonomy (the survey's, or `taxonomy` added from a list): three
        suggestions, a confidence, whether it is in scope at all, and the closest labelled papers. Give
        the paper's title and abstract, or the `id` of a paper in the library (an arXiv id, or its method's name)."""
        r = parse(rm.ClassifyRequest, id=id, title=title, abstract=abstract, taxonomy=taxonomy)
        return answer(service.classify, r.title, r.abstract, r.taxonomy, paper_id=r.id)

    @tool(rm.RelatedRequest)
    def related(  # noqa: A002 - the tool's argument name is part of its contract
        id: str, k: K = 10, diverse: bool = False, details: bool = False, taxonomy: str | None = None
    ) -> dict:
        """Related work for a paper in the library (an arXiv id or URL, or its method's name: "GPTQ"). `k`: 1 to 100.
        `diverse`: spread over more kinds of work; `details`: authors, venue and abstract of each; `taxonomy`:
        one added from a curated list, whose categories are shown (default: the survey's)."""
        r = parse(rm.RelatedRequest, id=id, k=k, diverse=diverse, details=details, taxonomy=taxonomy)
        return answer(service.related, r.id, r.k, diverse=r.diverse, details=r.details, taxonomy=r.taxonomy)

    @tool(rm.RecommendRequest)
    def recommend(
        likes: list[str],
        dislikes: list[str] | None = None,
        k: K = 10,
        since: str | None = None,
        details: bool = False,
    ) -> dict:
        """What to read next, learned from papers the reader liked (`likes`) and did not (`dislikes`), each
        named as related work takes it (an arXiv id, or a method's name). `k`: 1 to 100. `since`: YYYY-MM-DD,
        only papers that appeared from then on; `details`: authors, venue and abstract of each."""
        r = parse(rm.RecommendRequest, likes=likes, dislikes=dislikes, k=k, since=since, details=details)
        return answer(service.recommend, r.likes, r.dislikes, r.k, r.since, details=r.details)

    @tool(rm.PaperRequest)
    def paper(id: str) -> dict:  # noqa: A002
        """One paper whole: title, authors, abstract, links, categories and BibTeX."""
        return answer(service.paper, parse(rm.PaperRequest, id=id).id)

    @tool(rm.TaxonomyRequest)
    def taxonomy(taxonomy: str | None = None) -> list[dict]:
        """The taxonomy as a tree, with how many papers sit under each node: the survey's, or
        `taxonomy`, one added from a curated list."""
        import json

        from mcp_types import CallToolResult, TextContent

        # One text block holding the API's JSON array, as every other tool gives its JSON: the SDK
        # makes a block of each item of a list, and a client reading the first had one branch.
        tree = answer(service.taxonomy, parse(rm.TaxonomyRequest, taxonomy=taxonomy).taxonomy)
        text = TextContent(type="text", text=json.dumps(tree, ensure_ascii=False))
        return CallToolResult(content=[text], structured_content={"result": tree})  # type: ignore[return-value]

    @tool(rm.TrendsRequest)
    def trends(category: list[str] | str, taxonomy: str | None = None) -> dict:
        """Papers per year under one to three taxonomy nodes (a list, or one node's name or path), to
        compare how topics grew; `taxonomy` names one added from a curated list (default: the survey's)."""
        # One node as a string, as GET /api/trends?category=NODE takes one: the argument's name is
        # singular, and a string was refused ("Input should be a valid list").
        r = parse(rm.TrendsRequest, category=[category] if isinstance(category, str) else category, taxonomy=taxonomy)
        return answer(service.trends, r.category, r.taxonomy)

    @tool(ProposeRequest)
    def propose(
        taxonomy: str = "survey",
        since: str | None = None,
        ids: list[str] | None = None,
        min_confidence: float | None = None,
    ) -> dict:
        """Papers the library holds that a curated list (`taxonomy`: the survey's, or one added) lacks, each
        placed under a heading of the list, as lines in the list's own format and a unified diff against
        its README (read only: nothing is written). Papers placed with less than `min_confidence` are
        marked unsure and left out of the diff. `since`: YYYY-MM-DD."""
        r = parse(ProposeRequest, taxonomy=taxonomy, since=since, ids=ids, min_confidence=min_confidence)
        return answer(service.propose, r)

    @tool(rm.DigestRequest)
    def digest(name: str | None = None, taxonomy: str | None = None) -> dict:
        """What a watch of arXiv found new: the newest digest (or the one `name`d, <since>-<until>),
        its in-scope papers grouped by taxonomy node with their placement; `taxonomy`: a curated
        list's watch (`watch --taxonomy NAME`). `names` in the answer: every digest kept, newest first."""
        r = parse(rm.DigestRequest, name=name, taxonomy=taxonomy)
        listed = answer(service.digests, r.taxonomy)["digests"]
        return answer(service.digest, r.name, r.taxonomy) | {"names": [d["name"] for d in listed]}

    @tool(ProposeRequest)
    def gaps(taxonomy: str = "survey", since: str | None = None) -> dict:
        """Topics a curated list has not named yet: groups of papers it lacks that fit none of its headings,
        each with a suggested name, the heading it would sit under, and its papers (read only)."""
        r = parse(ProposeRequest, taxonomy=taxonomy, since=since)
        return answer(service.gaps, r.taxonomy, r.since)


def in_daemon_thread(function):
    """`function` as an async tool whose call runs in a daemon thread of its own, awaited so that a
    cancellation ends the wait. The SDK ran a tool in anyio's worker threads, which a cancellation
    waits for and the interpreter joins on the way out: Ctrl-C or SIGTERM during a long call (a
    `propose`, a search while the model loads) left the server running until the call ended.
    At most anyio's thread limit of calls run at once, as before: a call the client cancelled
    holds its place until its thread ends (let go at the cancellation, 80 searches each cancelled
    at once ran 80 threads, and a client could start any number)."""
    import functools

    @functools.wraps(function)  # the SDK reads the arguments and the description through it
    async def call(**arguments):
        return await _in_daemon_thread(functools.partial(function, **arguments))

    return call


async def _in_daemon_thread(call):
    import asyncio
    import contextvars
    import threading

    import anyio.to_thread

    loop, context = asyncio.get_running_loop(), contextvars.copy_context()
    done = loop.create_future()
    limiter, place = anyio.to_thread.current_default_thread_limiter(), object()
    await limiter.acquire_on_behalf_of(place)

    def work() -> None:
        try:
            result, failed = context.run(call), None
        except Exception as err:  # noqa: BLE001 - handed to the awaiting call, as a worker thread hands it
            result, failed = None, err

        _settle_soon(loop, done, result, failed, first=lambda: limiter.release_on_behalf_of(place))

    try:
        threading.Thread(target=work, name="semsearch-mcp-tool", daemon=True).start()
    except BaseException:
        limiter.release_on_behalf_of(place)
        raise
    return await done


def _settle_soon(loop, future, result, failed: BaseException | None, first=None) -> None:
    """From another thread: `future` settled in its `loop` (after `first()`, if given) unless it was
    cancelled meanwhile; nothing when the loop is gone (nobody is waiting)."""

    def settle() -> None:
        if first is not None:
            first()
        if not future.done():
            future.set_exception(failed) if failed else future.set_result(result)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:
        pass


def publish_rules(tool, model, renamed: dict[str, str]) -> None:
    """Publish each of `tool`'s arguments with the rules `model` reads it by (a pattern, a length, a
    range, a date; title and abstract, or an id), as /openapi.json publishes them: the SDK publishes
    the signature's bare types, so an assistant learned of a rule only from a refusal. What is
    published changes, not what is read: the request model reads every call, as before."""
    ruled = model.model_json_schema()
    published = tool.parameters
    for name, field in published["properties"].items():
        rule = {k: v for k, v in ruled["properties"][renamed.get(name, name)].items() if k not in ("title", "default")}
        if branches := [branch for branch in rule.pop("anyOf", []) if branch != {"type": "null"}]:
            rule |= branches[0] if len(branches) == 1 else {"anyOf": branches}
        if rule.get("type") == "array" and {"type": "string"} in field.get("anyOf", []):  # one item, or a list
            rule = {"anyOf": [rule, rule["items"]]}
        if {"type": "null"} in field.get("anyOf", []):  # the tool takes null (its default) where the model may not
            rule = {"anyOf": [rule, {"type": "null"}]}
        published["properties"][name] = {k: field[k] for k in ("title", "default") if k in field} | rule
    published["additionalProperties"] = False  # refused by name (`tool_server`)
    if "anyOf" in ruled:  # the model's forms: classify's text or id
        published["anyOf"] = ruled["anyOf"]


DRAIN_SECONDS = 300.0  # after stdin closes, how long requests already read may take to be answered


class AnsweringParseErrors:
    """The stdio transport's read stream, minus the lines that are not JSON-RPC messages: the SDK's
    reader passes such a line on as an exception, which the server drops without a word; JSON-RPC
    asks for an answer with `"id": null` (-32700 for text that is not JSON, -32600 for JSON that is
    not a message), so the client learns its line was lost instead of waiting.

    It also holds the end of input back until every request already read is answered (`Answers`
    counts them): the SDK ends the session when stdin closes and cancels the requests still
    running, so `cat requests.jsonl | semsearch mcp` lost most of its answers."""

    def __init__(self, inner, write_stream, answers: Answers | None = None):
        self._inner, self._write = inner, write_stream
        self._answers = answers

    @property
    def last_context(self):  # the SDK restores the sender's context from it
        return getattr(self._inner, "last_context", None)

    async def receive(self):
        import anyio

        while True:
            try:
                item = await self._inner.receive()
            except anyio.EndOfStream:
                if self._answers is not None:
                    with anyio.move_on_after(DRAIN_SECONDS):
                        await self._answers.all_sent()
                raise
            if isinstance(item, Exception):
                await self._write.send(_refusal(item))
            else:
                if self._answers is not None:
                    self._answers.asked(item)
                return item

    def __aiter__(self):
        return self

    async def __anext__(self):
        import anyio

        try:
            return await self.receive()
        except anyio.EndOfStream:
            raise StopAsyncIteration from None

    def close(self) -> None:
        self._inner.close()

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()


class Answers:
    """The write stream, counting the requests read (`asked`) that have no answer sent yet: by id,
    as many as were asked under it; a request the client cancels gets no answer and is not waited for."""

    def __init__(self, inner):
        import anyio

        self._inner = inner
        self._waiting: Counter = Counter()
        self._none_waiting = anyio.Event()
        self._none_waiting.set()

    def asked(self, item) -> None:
        import anyio
        from mcp_types import JSONRPCNotification, JSONRPCRequest

        message = item.message
        if isinstance(message, JSONRPCRequest):
            self._waiting[message.id] += 1
            if self._none_waiting.is_set():
                self._none_waiting = anyio.Event()
        elif isinstance(message, JSONRPCNotification) and message.method == "notifications/cancelled":
            self._answered((message.params or {}).get("requestId"))

    def _answered(self, request_id) -> None:
        if self._waiting[request_id] > 1:
            self._waiting[request_id] -= 1
        else:
            self._waiting.pop(request_id, None)
        if not self._waiting:
            self._none_waiting.set()

    async def all_sent(self) -> None:
        await self._none_waiting.wait()

    async def send(self, item) -> None:
        from mcp_types import JSONRPCError, JSONRPCResponse

        await self._inner.send(item)
        if isinstance(item.message, JSONRPCResponse | JSONRPCError):
            self._answered(item.message.id)

    def __getattr__(self, name):  # close, aclose, clone and the rest: the stream's own
        return getattr(self._inner, name)

    async def __aenter__(self):
        await self._inner.__aenter__()
        return self

    async def __aexit__(self, *exc):
        return await self._inner.__aexit__(*exc)


NOT_A_MESSAGE = '{"jsonrpc": "2.0"}\n'  # what the SDK's reader refuses, for -32600 with id null


def odd_id(line: str) -> bool:
    """Whether a line is a request whose id is there but no id JSON-RPC allows (a string or an
    integer): the SDK reads `{"id": true, "method": "tools/list"}` as a notification, which is
    never answered, so the client waited for ever. A notification has no id at all."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError):
        return False  # the SDK's reader says what is wrong with it
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return False
    request_id = message["id"]
    return isinstance(request_id, bool) or not isinstance(request_id, str | int)


LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def surrogates_replaced(line: str) -> str:
    """The line with each lone surrogate its JSON holds (`"\\ud800"`) read as U+FFFD, as a byte
    that is not UTF-8 is: the SDK's reader refused such a line as "Parse error" with id null, and
    the client waited for the answer to its request for ever. Other lines are left as they are."""
    if "\\ud" not in line.lower():
        return line
    try:
        text = json.dumps(json.loads(line), ensure_ascii=False)
    except (ValueError, RecursionError):
        return line  # the SDK's reader says what is wrong with it
    if not LONE_SURROGATE.search(text):  # a pair decodes to one character: none is left alone
        return line
    return LONE_SURROGATE.sub("\ufffd", text) + "\n"


class OddIdsRefused:
    """Standard input's lines as the SDK reads them, a request with an odd id (`odd_id`) turned into
    a line the SDK's reader refuses, which `AnsweringParseErrors` answers; lone surrogates read as
    U+FFFD (`surrogates_replaced`)."""

    def __init__(self, lines):
        self._lines = lines

    async def __aiter__(self):
        async for line in self._lines:
            yield NOT_A_MESSAGE if odd_id(line) else surrogates_replaced(line)


def _refusal(err: Exception):
    """The answer to a line that is not a message, `err` saying why it was not read."""
    from mcp.shared.message import SessionMessage
    from mcp_types import INVALID_REQUEST, PARSE_ERROR, ErrorData, JSONRPCError
    from pydantic import ValidationError

    not_json = not isinstance(err, ValidationError) or any(e["type"] == "json_invalid" for e in err.errors())
    error = ErrorData(code=PARSE_ERROR, message="Parse error") if not_json else ErrorData(
        code=INVALID_REQUEST, message="Invalid Request"
    )  # fmt: skip
    return SessionMessage(JSONRPCError(jsonrpc="2.0", id=None, error=error))


class DaemonLines:
    """The lines of a file descriptor (UTF-8, a bad byte replaced) for the SDK's reader, read ahead
    (at most READ_AHEAD lines) by a daemon thread with `os.read`. anyio reads a file in its worker
    threads, which the interpreter joins on the way out: a Ctrl-C or SIGTERM said "interrupted" and
    left the server waiting on the client's next line, for good with a quiet client. A daemon thread
    is let go at exit (reading through no Python file object, whose lock it would hold then: the
    interpreter aborts on that). Its end, or a failed read, ends the lines as the client closing its
    end does."""

    READ_AHEAD = 16
    READ_BYTES = 65_536  # at most, a read: a pipe gives what it holds

    def __init__(self, fd: int):
        self._fd = fd

    async def __aiter__(self):
        import asyncio
        import codecs
        import io
        import threading

        loop, lines = asyncio.get_running_loop(), asyncio.Queue(maxsize=self.READ_AHEAD)

        def hand_over(line: str | None) -> None:
            put = lines.put(line)
            try:
                asyncio.run_coroutine_threadsafe(put, loop).result()  # waits while READ_AHEAD wait
            except RuntimeError:  # the loop is gone: the put is closed unawaited, not left to warn
                put.close()
                raise

        def pump() -> None:
            # As io.TextIOWrapper reads (what the SDK wraps standard input in): "\r\n" and "\r" end a line too.
            decoder = io.IncrementalNewlineDecoder(codecs.getincrementaldecoder("utf-8")(errors="replace"), True)

            # The start of a line not yet ended, in the pieces it came in: joined once, when its end
            # comes (joined and split again at each read, a line of 40 MB took 30 s to read).
            pending: list[str] = []

            def lines_of(text: str) -> None:  # hands over each line `text` ends; its rest is pending
                *complete, rest = text.split("\n")
                if complete:
                    complete[0] = "".join([*pending, complete[0]])
                    pending.clear()
                for line in complete:
                    hand_over(line + "\n")
                if rest:
                    pending.append(rest)

            try:
                while chunk := os.read(self._fd, self.READ_BYTES):
                    lines_of(decoder.decode(chunk))
                # The end can still end a line: a "\r" held back in case "\n" followed it.
                lines_of(decoder.decode(b"", final=True))
                if pending:
                    hand_over("".join(pending))
            except (OSError, RuntimeError):  # unreadable, or the loop is gone
                pass
            try:
                hand_over(None)
            except RuntimeError:  # the loop is gone: nobody is reading
                pass

        threading.Thread(target=pump, name="semsearch-mcp-stdin", daemon=True).start()
        while (line := await lines.get()) is not None:
            yield line


class DaemonWrites:
    """Standard output for the SDK's writer (`write`, then `flush`), written by a daemon thread with
    `os.write`. The SDK writes through anyio's worker threads, which a cancellation waits for and
    the interpreter joins on the way out: a client that stopped reading but kept its end open (a
    frozen editor) left one blocked on a full pipe, and Ctrl-C or SIGTERM never ended the server.
    A write awaited here can be cancelled, and the thread is let go at exit (as `DaemonLines`)."""

    def __init__(self, fd: int):
        import queue

        self._fd, self._pending, self._thread = fd, queue.SimpleQueue(), None

    async def write(self, text: str) -> None:
        import asyncio
        import threading

        if self._thread is None:
            self._thread = threading.Thread(target=self._pump, name="semsearch-mcp-stdout", daemon=True)
            self._thread.start()
        loop = asyncio.get_running_loop()
        written = loop.create_future()
        self._pending.put((text.encode("utf-8"), loop, written))
        await written

    async def flush(self) -> None:
        """Nothing is held back: each write is written whole before it returns."""

    def _pump(self) -> None:
        while True:
            data, loop, written = self._pending.get()
            failed = None
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as err:  # a broken pipe: said to the writer, as the SDK's file said it
                failed = err

            _settle_soon(loop, written, None, failed)


def _wire_claimed():
    """(the descriptor answers are written to, how to give fd 1 back): as the SDK's `stdio_server`
    claims standard output, fd 1 points at stderr while serving, so what a library prints misses
    the wire; None when standard output is no file descriptor (the SDK's own writer then)."""
    import sys

    try:
        if sys.stdout.fileno() != 1:
            return None
        sys.stdout.flush()
        wire = os.dup(1)
    except (AttributeError, OSError, ValueError):
        return None
    try:
        os.dup2(2, 1)
    except OSError:
        return wire, lambda: None  # not diverted: fd 1 is still the wire
    return wire, lambda: os.dup2(wire, 1)  # the wire itself is never closed: a thread may write to it still


async def _run_stdio(server) -> None:
    """`MCPServer.run_stdio_async`, with the read stream answering lines that are not messages."""
    import sys

    from mcp.server.stdio import stdio_server

    lowlevel = server._lowlevel_server  # noqa: SLF001 - the SDK's own run_stdio_async drives it so
    # Standard input read as the SDK reads it (UTF-8, a bad byte replaced), its lines checked first.
    stdin = DaemonLines(sys.stdin.fileno())
    claimed = _wire_claimed()
    stdout = DaemonWrites(claimed[0]) if claimed else None
    try:
        async with stdio_server(stdin=OddIdsRefused(stdin), stdout=stdout) as (read_stream, write_stream):
            answers = Answers(write_stream)
            await lowlevel.run(
                AnsweringParseErrors(read_stream, write_stream, answers),
                answers,
                lowlevel.create_initialization_options(),
            )
    finally:
        if claimed:
            claimed[1]()


def check_index_built(index_dir: str | Path | None = None) -> None:
    """An MCP server serves an index that is there; unlike `search`, it does not build the default
    one: its client waits on stdio for it to start, and a build takes half a minute to minutes. The
    directory is named in full, since a client starts the server wherever it likes, and so is the
    command that builds that one (in the user's shell, `ingest survey` built their own ./index)."""
    import shlex

    from semsearch.errors import SemsearchError
    from semsearch.index import current_generation, resolve_index_dir

    directory = resolve_index_dir(index_dir).absolute()
    if current_generation(directory) is None:
        raise SemsearchError(
            f"no index at {directory} for the MCP server: build it first with `semsearch ingest survey --index "
            f"{shlex.quote(str(directory))}` (it does not build one while its client waits)"
        )


def serve_stdio(*, index_dir: str | Path | None = None) -> None:
    """Serve until the client closes standard input, or stops reading what is answered: then there
    is no one to answer, and nothing to say (an 81-line traceback of a broken pipe, exit 1, was); or
    until Ctrl-C or SIGTERM, however quiet the client (`DaemonLines`)."""
    import signal
    import sys

    import anyio

    from semsearch.cli import Terminated, terminate

    check_index_built(index_dir)
    server, stopped = build_server(index_dir=index_dir), []

    async def serving() -> None:
        import asyncio

        if signal.getsignal(signal.SIGTERM) is terminate:  # the command's SIGTERM: taken as asyncio takes Ctrl-C
            # Raised wherever the loop stood, Terminated could end a task of the SDK's instead of
            # the server (exit 1 with asyncio's "unhandled exception during shutdown", now and then).
            task, loop = asyncio.current_task(), asyncio.get_running_loop()

            def cancel(signum, frame) -> None:
                signal.signal(signal.SIGTERM, signal.SIG_IGN)
                stopped.append(signum)
                loop.call_soon_threadsafe(task.cancel)

            signal.signal(signal.SIGTERM, cancel)
        await _run_stdio(server)

    try:
        anyio.run(serving)
    except BaseException as err:
        if stopped:  # cancelled by SIGTERM: said by the command as its stop
            raise Terminated from None
        if not isinstance(err, Exception) or not _broken_pipes(err):
            raise
        from semsearch.cli import drop_output

        drop_output(sys.stdout)  # the interpreter's flush at exit would fail again


def _broken_pipes(err: BaseException) -> bool:
    """Whether `err` is a broken pipe, or a group (anyio's task group) of nothing else."""
    if isinstance(err, BrokenPipeError):
        return True
    inner = getattr(err, "exceptions", None)
    return bool(inner) and all(_broken_pipes(e) for e in inner)
