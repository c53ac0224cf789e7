"""The three doors (CLI, HTTP, MCP) read their arguments through the same request models: the same
bad input gets the same one-line refusal at each. The server answers only to its own names in the
Host header, sends the page under a Content-Security-Policy, and never hands out a link that is not
http(s); `semsearch mcp` answers a line that is not JSON with a JSON-RPC error."""

from __future__ import annotations

import html.parser
import http.client
import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semsearch.cli import main
from tests.conftest import examples

ROOT = Path(__file__).resolve().parents[1]
BLANK = "has no text (only white space or control characters)"
AT_LEAST_1 = "k: Input should be greater than or equal to 1"
NOT_AN_INTEGER = "Input should be a valid integer, unable to parse string as an integer"

# (tool, arguments as the MCP tool names them, the refusal every door gives)
BAD_INPUT = [
    ("search", {"question": "cache", "k": 0}, AT_LEAST_1),
    ("search", {"question": "cache", "k": -5}, AT_LEAST_1),
    ("search", {"question": "cache", "k": 100000}, "k: Input should be less than or equal to 100"),
    ("search", {"question": " \t  "}, f"question: {BLANK}"),
    ("search", {"question": "\x01\x1f\x7f"}, f"question: {BLANK}"),
    ("search", {"question": "x" * 2001}, "question: String should have at most 2000 characters"),
    ("search", {"question": "cache", "year_from": 1800}, "year_from: Input should be greater than or equal to 1900"),
    ("search", {"question": "cache", "taxonomy": "t" * 61}, "taxonomy: String should have at most 60 characters"),
    ("related", {"id": "2302.00003", "k": -1}, AT_LEAST_1),
    ("related", {"id": "2302.00003", "k": 101}, "k: Input should be less than or equal to 100"),
    ("recommend", {"likes": ["2302.00003"], "k": 0}, AT_LEAST_1),
    ("recommend", {"likes": ["2302.00003"], "since": "2024-13-01"}, "since: expected a date YYYY-MM-DD"),
    ("recommend", {"likes": ["2302.00003", "x" * 201]}, "likes.1: String should have at most 200 characters"),
    ("classify", {"title": "", "abstract": "We prune heads."}, f"title: {BLANK}"),
    ("classify", {"title": "   ", "abstract": "\x01 \x02"}, f"title: {BLANK}; abstract: {BLANK}"),
    ("classify", {"title": "t" * 1001, "abstract": "A"}, "title: String should have at most 1000 characters"),
    ("classify", {"title": "T", "abstract": "a" * 20001}, "abstract: String should have at most 20000 characters"),
    # Placed at random, with a confident-looking answer, as "???" was searched.
    (
        "classify",
        {"title": "...", "abstract": "— —"},
        "title: has no letter or digit; abstract: has no letter or digit",
    ),
    ("classify", {"title": "Pruning heads", "abstract": "🚀"}, "abstract: has no letter or digit"),
    ("search", {"question": "cache", "k": "ten"}, f"k: {NOT_AN_INTEGER}"),  # the CLI said "Invalid value for '-k'"
    ("search", {"question": "cache", "year_from": "x"}, f"year_from: {NOT_AN_INTEGER}"),
]
# The CLI has no trends command, an argument cannot hold NUL, and an option's absence is its
# default: these go through HTTP and MCP only. (An argument missing or of the wrong
# type is checked by the MCP SDK against the tool's signature first: still the same line.)
NOT_FOR_THE_CLI = [
    ("classify", {"abstract": "We prune heads."}, "title: Field required"),
    ("classify", {"title": "Pruning heads"}, "abstract: Field required"),
    ("classify", {}, "title: Field required; abstract: Field required"),
    ("classify", {"id": "2302.00003", "title": "Pruning heads"}, "abstract: Field required"),
    ("classify", {"id": ""}, "id: String should have at least 1 character"),
    ("search", {"question": "\x00\x00"}, f"question: {BLANK}"),
    # An option only the CLI has, or a misspelt one: refused, not ignored (it answered another question).
    ("search", {"question": "cache", "mode": "dense"}, "mode: is not a parameter"),
    (
        "classify",
        {"title": "Pruning heads", "abstract": "We prune heads.", "diverse": True},
        "diverse: is not a parameter",
    ),
    ("classify", {"title": "\x00", "abstract": "\x00 "}, f"title: {BLANK}; abstract: {BLANK}"),
    (
        "trends",
        {"category": ["Quantization"] * 4},
        "category: List should have at most 3 items after validation, not 4",
    ),
]
CASE_IDS = [f"{tool}-{n}" for n, (tool, _, _) in enumerate(BAD_INPUT + NOT_FOR_THE_CLI)]


@pytest.fixture
def index_dir(survey_corpus_index):
    return survey_corpus_index


@pytest.fixture
def client(index_dir):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=index_dir, reload_seconds=None)) as client:
        yield client


@pytest.fixture(scope="module")
def refusing_tools(unchanged_survey_corpus_index):
    """The MCP tools over the shared index, for the refusals (which read nothing and write nothing)."""
    from semsearch.mcp_server import add_tools, tool_server
    from semsearch.service import Service

    server = tool_server("semsearch-test")
    add_tools(server, Service(index_dir=unchanged_survey_corpus_index))
    return server


def cli_args(tool: str, args: dict) -> list[str]:
    flags = {"k": "-k", "year_from": "--year-from", "taxonomy": "--taxonomy", "title": "--title"}
    flags["abstract"] = "--abstract"
    first = {"search": "question", "related": "id"}.get(tool)
    argv = [tool] + ([args[first]] if first else [])
    for name, value in args.items():
        if name == "likes":
            argv += [arg for liked in value for arg in ("--like", liked)]
        elif name != first:
            argv += [flags.get(name, f"--{name}"), str(value)]
    return argv


def http_call(client, tool: str, args: dict):
    if tool == "search":
        return client.get("/api/search", params={"q" if k == "question" else k: v for k, v in args.items()})
    if tool == "related":
        return client.get(f"/api/related/{args['id']}", params={"k": args["k"]})
    if tool in ("classify", "recommend"):
        return client.post(f"/api/{tool}", json=args)
    return client.get("/api/trends", params=[("category", c) for c in args["category"]])


# --- the same refusal at every door -----------------------------------------------------------------
@pytest.mark.parametrize("tool, args, refusal", BAD_INPUT + NOT_FOR_THE_CLI, ids=CASE_IDS)
def test_http_refuses_bad_input_with_the_models_words(unchanged_client, tool, args, refusal):
    answer = http_call(unchanged_client, tool, args)
    assert (answer.status_code, answer.json()) == (422, {"error": refusal})


@pytest.mark.parametrize("tool, args, refusal", BAD_INPUT, ids=CASE_IDS[: len(BAD_INPUT)])
def test_the_cli_refuses_the_same_input_in_the_same_words(unchanged_survey_corpus_index, capsys, tool, args, refusal):
    code = main([*cli_args(tool, args), "--index", str(unchanged_survey_corpus_index)])
    captured = capsys.readouterr()
    assert (code, captured.err, captured.out) == (2, f"error: {refusal}\n", "")


@pytest.fixture
def tools(index_dir):
    """The MCP server's tools over the index, called in this process."""
    from semsearch.mcp_server import add_tools, tool_server
    from semsearch.service import Service

    server = tool_server("semsearch-test")
    add_tools(server, Service(index_dir=index_dir))
    return server


@pytest.mark.parametrize("tool, args, refusal", BAD_INPUT + NOT_FOR_THE_CLI, ids=CASE_IDS)
def test_the_mcp_tools_refuse_the_same_input_in_the_same_words(refusing_tools, tool, args, refusal):
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

    with pytest.raises(ToolError) as refused:
        anyio.run(refusing_tools.call_tool, tool, args)
    assert not isinstance(refused.value, UnexpectedToolError)
    assert str(refused.value) == f"Error executing tool {tool}: {refusal}"


@pytest.mark.parametrize(("query", "cli_ids", "mcp_ids"), [("ids=", "", []), ("ids=,,", ",,", [])])
def test_a_proposal_asked_for_no_paper_is_refused_at_every_door_alike(
    unchanged_client, refusing_tools, unchanged_survey_corpus_index, capsys, query, cli_ids, mcp_ids
):
    """`ids` given with no paper in it: the CLI refused it ("--ids: give at least one paper id", its
    own words), while HTTP and MCP took it for no `ids` and proposed every paper. One rule, in the
    request model, refuses it at each door in the same words (as export's empty `ids`)."""
    from mcp.server.mcpserver.exceptions import ToolError

    refusal = "ids: List should have at least 1 item after validation, not 0"
    answer = unchanged_client.get(f"/api/propose?taxonomy=survey&{query}")
    assert (answer.status_code, answer.json()) == (422, {"error": refusal})
    code = main(["taxonomy", "propose", "survey", "--ids", cli_ids, "--index", str(unchanged_survey_corpus_index)])
    captured = capsys.readouterr()
    assert (code, captured.err, captured.out) == (2, f"error: {refusal}\n", "")
    with pytest.raises(ToolError) as refused:
        anyio.run(refusing_tools.call_tool, "propose", {"taxonomy": "survey", "ids": mcp_ids})
    assert str(refused.value) == f"Error executing tool propose: {refusal}"


def test_a_paper_named_by_its_methods_name_is_labelled_at_each_door_as_related_work_takes_it(client, index_dir, cli):
    """`related GPTQ` and `{"id": "GPTQ"}` took a paper by its method's name, but a label refused it
    ("no paper 'GPTQ' in the index", 404 and exit 2), though the server had just found the paper to
    check it. Both doors now label the paper the name gives, and say its own id, as related does."""
    gptq = "survey:gptq-accurate-quantization-for-generative-pre-trained-transformers"
    answer = client.post("/api/labels", json={"id": "GPTQ", "category": "Structured Pruning"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["id"] == gptq
    done = cli("label", "GPTQ", "Weight-Only Quantization", "--index", index_dir)
    assert done.returncode == 0 and done.stderr.startswith(f"{gptq}: "), done.stderr
    exported = json.loads(cli("labels", "--index", index_dir, check=True).stdout)
    assert (exported["id"], exported["category"].rsplit("/", 1)[-1]) == (gptq, "Weight-Only Quantization")


def test_each_door_echoes_the_question_as_it_was_read(client, tools, index_dir, capsys):
    """The CLI echoed "ＧＰＴＱ" as typed; the API and MCP echo the compatibility form they search
    with, "GPTQ" (a newcomer's pass)."""
    typed = "ＧＰＴＱ  weights"
    assert client.get("/api/search", params={"q": typed, "k": 1}).json()["query"] == "GPTQ weights"
    found = anyio.run(tools.call_tool, "search", {"question": typed, "k": 1})
    assert json.loads(found.content[0].text)["query"] == "GPTQ weights"
    assert main(["search", typed, "-k", "1", "--json", "--index", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["query"] == "GPTQ weights"


def test_a_question_with_nothing_to_search_by_is_refused_at_every_door(client, tools, index_dir, capsys):
    """ "🚀" or "???" answered ten papers at random, explained as a question about a kind of work
    (a researcher's pass): now one refusal at every door."""
    from mcp.server.mcpserver.exceptions import ToolError

    said = "the question has no letter or digit to search by"
    answer = client.get("/api/search", params={"q": "🚀 ???"})
    assert (answer.status_code, answer.json()) == (400, {"error": said})
    with pytest.raises(ToolError, match=f"^Error executing tool search: {said}$"):
        anyio.run(tools.call_tool, "search", {"question": "🚀 ???"})
    assert main(["search", "🚀 ???", "--index", str(index_dir)]) == 2
    assert capsys.readouterr().err == f"error: {said}\n"


def test_each_door_gives_one_classify_answer(client, tools, index_dir, capsys):
    """The CLI's --json left out `path` and `neighbours`, which the API and MCP gave (a newcomer's pass)."""
    paper = {"title": "Evicting tokens from the cache", "abstract": "We keep heavy hitters and evict the rest."}
    over_http = client.post("/api/classify", json=paper).json()
    over_mcp = json.loads(anyio.run(tools.call_tool, "classify", paper).content[0].text)
    assert main(["classify", "--title", paper["title"], "--abstract", paper["abstract"], "--json",
                 "--index", str(index_dir)]) == 0  # fmt: skip
    assert json.loads(capsys.readouterr().out) == over_http == over_mcp and over_http["neighbours"]


def test_each_door_classifies_a_paper_of_the_index_named_by_its_id(client, tools, index_dir, capsys, tmp_path):
    """The mission's "title + abstract, or an arXiv id" held at the CLI only: HTTP and MCP took a
    text alone. Now `id` names a paper the index holds (any name related work takes), with one
    answer at every door, and one refusal for a paper it does not hold."""
    from mcp.server.mcpserver.exceptions import ToolError

    over_http = client.post("/api/classify", json={"id": "arXiv:2302.00003v1"}).json()
    over_mcp = json.loads(anyio.run(tools.call_tool, "classify", {"id": "2302.00003"}).content[0].text)
    batch = tmp_path / "one.jsonl"
    batch.write_text('{"id": "2302.00003"}\n')
    assert main(["classify", "--batch", str(batch), "--index", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out) == over_http == over_mcp and over_http["id"] == "2302.00003"
    assert "2302.00003" not in [n["id"] for n in over_http["neighbours"]]
    refused = client.post("/api/classify", json={"id": "2499.99999"})
    assert (refused.status_code, refused.json()) == (404, {"error": "no paper '2499.99999' in the index"})
    with pytest.raises(ToolError, match="^Error executing tool classify: no paper '2499.99999' in the index$"):
        anyio.run(tools.call_tool, "classify", {"id": "2499.99999"})
    # With a text, an id is only echoed: the text is what is placed.
    paper = {"title": "Evicting tokens from the cache", "abstract": "We keep heavy hitters and evict the rest."}
    echoed = client.post("/api/classify", json=paper | {"id": "2302.00003"}).json()
    assert echoed["suggestions"] == client.post("/api/classify", json=paper).json()["suggestions"]
    # And echoed it is, at each door, as a --batch line's id: a caller matches answers to its papers by it.
    over_mcp = json.loads(anyio.run(tools.call_tool, "classify", paper | {"id": "mine"}).content[0].text)
    assert (echoed["id"], over_mcp["id"]) == ("2302.00003", "mine")


def test_an_assistant_asks_what_is_new(tools, index_dir):
    """Staying current was the one job of the mission no MCP tool did: `digest` gives what a watch
    kept, the newest by default or a named one, or one line saying why not."""
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport, save_digest
    from tests.test_page import with_a_digest

    def call(**arguments):
        return anyio.run(tools.call_tool, "digest", arguments)

    def refusal(**arguments) -> str:
        with pytest.raises(ToolError) as refused:
            call(**arguments)
        return str(refused.value)

    assert refusal().endswith("no digest yet: run `semsearch watch`, or serve with --watch-every 24h")
    with_a_digest(index_dir)
    newer = DigestEntry("2411.00002", "Drafts that verify themselves", None, "Speculative Decoding", 0.9, True)
    save_digest(WatchReport("202411020000", "202411030000", 1, [newer], IngestReport()), index_dir=index_dir)
    latest = json.loads(call().content[0].text)
    assert latest["names"] == ["202411020000-202411030000", "202411010000-202411020000"]
    assert [p["title"] for group in latest["groups"].values() for p in group] == ["Drafts that verify themselves"]
    older = json.loads(call(name="202411010000-202411020000").content[0].text)
    assert [p["title"] for group in older["groups"].values() for p in group] == ["Evicting <tokens> & more"]
    for arguments, said in [
        ({"name": "../../etc/passwd"}, "no digest '../../etc/passwd'"),
        ({"taxonomy": "nope"}, "no taxonomy 'nope' in the index"),
        ({"name": "x" * 26}, "name: String should have at most 25 characters"),
    ]:
        assert refusal(**arguments) == f"Error executing tool digest: {said}"


def test_good_input_still_answers_at_each_door(client, tools, index_dir, capsys):
    """The bounds are bounds: k=100 and k=1, a question of exactly 2000 characters, three trend nodes."""
    assert len(client.get("/api/search", params={"q": "cache", "k": 100}).json()["results"]) == 100
    assert client.get("/api/search", params={"q": "c" * 2000, "k": 1}).status_code == 200
    three = client.get("/api/trends", params=[("category", "Quantization")] * 3)
    assert three.status_code == 200
    found = anyio.run(tools.call_tool, "search", {"question": "speculative decoding", "k": 1})
    assert len(json.loads(found.content[0].text)["results"]) == 1
    assert main(["search", "kv\x07cache", "-k", "1", "--json", "--index", str(index_dir)]) == 0
    assert json.loads(capsys.readouterr().out)["query"] == "kv cache"  # control characters are spaces


@pytest.mark.slow
def test_a_real_cli_process_refuses_in_the_same_words(index_dir):
    """The installed command, not just `main`: the same line on stderr, exit 2, no traceback."""
    for tool, args, refusal in [BAD_INPUT[0], BAD_INPUT[3], BAD_INPUT[8], BAD_INPUT[11]]:
        done = subprocess.run(
            [sys.executable, "-m", "tests.cli_process", "--", *cli_args(tool, args), "--index", str(index_dir)],
            capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
        )  # fmt: skip
        assert (done.returncode, done.stderr, done.stdout) == (2, f"error: {refusal}\n", "")


@pytest.mark.slow
def test_a_real_server_and_a_real_cli_classify_a_paper_named_by_its_id_alike(unchanged_survey_corpus_index, tmp_path):
    """The id route of `POST /api/classify` and a `classify --batch` line {"id"}, each in a process
    of its own (`semsearch serve`, `semsearch classify`): one answer."""
    import urllib.request

    from tests.cli_process import run_cli
    from tests.test_server import serving

    batch = tmp_path / "ids.jsonl"
    batch.write_text('{"id": "2302.00003"}\n')
    ran = run_cli("classify", "--batch", batch, "--index", unchanged_survey_corpus_index, check=True)
    with serving(unchanged_survey_corpus_index) as port:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/classify", data=json.dumps({"id": "2302.00003"}).encode(),
            headers={"Content-Type": "application/json"}, method="POST",
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=30) as answer:
            over_http = json.loads(answer.read())
    assert json.loads(ran.stdout) == over_http and over_http["id"] == "2302.00003"


async def _mcp_refusals(index_dir: Path) -> list[tuple[bool, str]]:
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    answers = []
    # errlog as now: the SDK's default is the sys.stderr of when it was imported (a test's capsys, gone since)
    async with stdio_client(server, errlog=sys.stderr) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        for tool, args, _ in BAD_INPUT + NOT_FOR_THE_CLI:
            result = await session.call_tool(tool, args)
            answers.append((result.is_error, result.content[0].text))
    return answers


@pytest.mark.slow
def test_a_real_mcp_process_refuses_in_the_same_words(index_dir):
    answers = anyio.run(_mcp_refusals, index_dir)
    expected = [(True, f"Error executing tool {tool}: {refusal}") for tool, _, refusal in BAD_INPUT + NOT_FOR_THE_CLI]
    assert answers == expected


async def _mcp_recommendations(index_dir: Path, asked: list[dict]) -> tuple[list, dict]:
    """What a real `semsearch mcp` answers `recommend` with each of `asked`, and the schema it publishes."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=str(ROOT),
    )
    async with stdio_client(server, errlog=sys.stderr) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        listed = {tool.name: tool.input_schema for tool in (await session.list_tools()).tools}
        answers = []
        for args in asked:
            result = await session.call_tool("recommend", args)
            answers.append(result.content[0].text if result.is_error else json.loads(result.content[0].text))
    return answers, listed["recommend"]


@pytest.mark.slow
def test_dislikes_null_is_no_dislikes_at_both_doors_and_both_publish_it(unchanged_survey_corpus_index):
    """`"dislikes": null`, as a client writes an argument it has no value for, was taken by the MCP
    tool `recommend` and refused by `POST /api/recommend` ("dislikes: Input should be a valid list");
    the request model now decides for both: null is none, as leaving it out is, and both publish it."""
    import urllib.error
    import urllib.request

    from jsonschema import Draft202012Validator

    from tests.test_server import serving

    asked = [{"likes": ["2302.00003"], "dislikes": dislikes, "k": 5} for dislikes in (None, [])]
    over_http = []
    with serving(unchanged_survey_corpus_index) as port:
        for body in asked:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/recommend", data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"}, method="POST",
            )  # fmt: skip
            try:
                with urllib.request.urlopen(request, timeout=30) as answer:
                    over_http.append(json.loads(answer.read()))
            except urllib.error.HTTPError as err:
                over_http.append(json.loads(err.read())["error"])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/openapi.json", timeout=30) as answer:
            openapi = json.loads(answer.read())
    over_mcp, tool_schema = anyio.run(_mcp_recommendations, unchanged_survey_corpus_index, asked)
    assert over_http[0] == over_http[1] and over_http[0]["dislikes"] == [], over_http
    assert over_mcp[0] == over_mcp[1] and over_mcp[0]["dislikes"] == [], over_mcp
    assert over_http[0]["results"] == over_mcp[0]["results"]
    api_schema = openapi["components"]["schemas"]["RecommendRequest"]
    for schema in (api_schema, tool_schema):
        assert Draft202012Validator(schema).is_valid(asked[0]), schema["properties"]["dislikes"]
        assert not Draft202012Validator(schema).is_valid({"likes": ["2302.00003"], "dislikes": ["x" * 201]})


# --- links: only http(s) leaves the server ----------------------------------------------------------
def _set_url(index_dir: Path, paper_id: str, url: str) -> None:
    """What an index written before ingest refused other schemes may hold."""
    from semsearch.index import current_generation, reseal

    generation = index_dir / current_generation(index_dir)
    with sqlite3.connect(generation / "papers.db") as db:
        assert db.execute("UPDATE papers SET url = ? WHERE id = ?", (url, paper_id)).rowcount == 1
    reseal(generation)  # published files carry checksums: the rewrite is on purpose


@pytest.mark.parametrize(
    "url, shown",
    [
        ("javascript:alert(document.domain)", None),
        ("JavaScript:alert(1)", None),
        (" javascript:alert(1)", None),
        ("data:text/html,<script>alert(1)</script>", None),
        ("//evil.example/x", None),
        ("https://example.org/paper", "https://example.org/paper"),
        ("http://example.org/p?a=1", "http://example.org/p?a=1"),
    ],
)
def test_an_old_index_never_gives_out_a_link_that_is_not_http(tmp_path, fake_model, url, shown):
    from fastapi.testclient import TestClient

    from semsearch.ingest import Ingest
    from semsearch.paper import Paper
    from semsearch.server import create_app

    index_dir = tmp_path / "old"
    with Ingest(index_dir=index_dir, progress=False) as job:  # no arXiv id: its own URL is its page link
        job.add([Paper(id="local-1", title="Zebra caches", abstract="Zebra caches.", url="https://example.org/")])
    _set_url(index_dir, "local-1", url)
    client = TestClient(create_app(index_dir=index_dir, reload_seconds=None))
    assert client.get("/api/papers/local-1").json()["links"] == ({"page": shown} if shown else {})
    hits = client.get("/api/search", params={"q": "zebra caches"}).json()["results"]
    assert [h["url"] for h in hits] == [shown]


@pytest.mark.parametrize(
    "url, kind",
    [
        ("https://github.com/mit-han-lab/streaming-llm", "code"),
        ("https://www.github.com/x/y", "code"),
        ("https://evil.example/github.com/x", "page"),  # shown as the paper's "Code" on GitHub
        ("https://evil.example/?from=github.com", "page"),
        ("https://notgithub.com/x", "page"),
        ("https://github.com.evil.example/x", "page"),
    ],
)
def test_a_link_is_called_code_only_when_it_is_on_github(tmp_path, fake_model, url, kind):
    from fastapi.testclient import TestClient

    from semsearch.ingest import Ingest
    from semsearch.paper import Paper
    from semsearch.server import create_app

    index_dir = tmp_path / "links"
    with Ingest(index_dir=index_dir, progress=False) as job:
        job.add([Paper(id="local-1", title="Zebra caches", abstract="Zebra caches.", url=url)])
    client = TestClient(create_app(index_dir=index_dir, reload_seconds=None))
    assert client.get("/api/papers/local-1").json()["links"] == {kind: url}


@settings(max_examples=examples(200), deadline=None)
@given(st.text(max_size=60))
def test_web_url_passes_only_absolute_http_urls(url):
    from urllib.parse import urlsplit

    from semsearch.service import web_url

    kept = web_url(url)
    assert kept in (None, url)
    if kept is not None:
        assert urlsplit(kept).scheme.lower() in ("http", "https") and urlsplit(kept).netloc


# --- the page: its own script only ---------------------------------------------------------------------
class _Inline(html.parser.HTMLParser):
    """What a CSP without 'unsafe-inline' would block: inline script, style attributes, on* handlers."""

    def __init__(self):
        super().__init__()
        self.blocked: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = {name for name, _ in attrs}
        if tag == "script" and "src" not in names or tag == "style":
            self.blocked.append(tag)
        self.blocked += [f"{tag}[{n}]" for n in names if n == "style" or n.startswith("on")]


def test_the_page_is_served_under_a_policy_it_keeps(client):
    page = client.get("/")
    policy = page.headers["content-security-policy"]
    for directive in ("script-src 'self'", "object-src 'none'", "base-uri 'none'", "frame-ancestors 'none'"):
        assert directive in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    parser = _Inline()
    parser.feed(page.text)
    assert parser.blocked == []
    script = client.get("/static/app.js").text
    assert "innerHTML" not in script and 'setAttribute("style"' not in script and "eval(" not in script
    for path in ("/", "/paper/2302.00003", "/static/app.js", "/api/health", "/api/nope"):
        assert client.get(path).headers["x-content-type-options"] == "nosniff"


# --- the Host header ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "header, name",
    [("localhost:8000", "localhost"), ("[::1]:8000", "::1"), ("::1", "::1"), ("LocalHost.", "localhost"),
     ("127.0.0.1", "127.0.0.1"), ("evil.example:80", "evil.example"), ("", ""), ("[::1", "[::1")],
)  # fmt: skip
def test_host_name_drops_the_port_and_brackets(header, name):
    from semsearch.server import host_name

    assert host_name(header) == name


def _app(index_dir, **kwargs):
    from semsearch.server import create_app

    return create_app(index_dir=index_dir, reload_seconds=None, **kwargs)


def test_a_request_naming_another_host_is_refused(index_dir):
    from fastapi.testclient import TestClient

    app = _app(index_dir, hosts=["127.0.0.1", "localhost", "::1", "papers.lab"])
    for base in ("http://127.0.0.1:8000", "http://localhost", "http://[::1]:9", "http://papers.lab:8000"):
        assert TestClient(app, base_url=base).get("/api/health").status_code == 200
    for base in ("http://evil.example", "http://127.0.0.1.evil.example", "http://localhost.evil:8000"):
        refused = TestClient(app, base_url=base).post("/api/labels", json={"id": "x", "category": "y"})
        assert refused.status_code == 421 and "--allow-host" in refused.json()["error"]


def test_every_worker_checks_the_host(index_dir, monkeypatch):
    """`serve --workers N`: each worker builds its app from the environment `serve` sets."""
    import uvicorn
    from fastapi.testclient import TestClient

    from semsearch import server

    started = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: started.append(app))
    for name in ("SEMSEARCH_SERVE_INDEX", "SEMSEARCH_SERVE_WRITES", "SEMSEARCH_SERVE_HOSTS", "SEMSEARCH_SERVE_WATCHED"):
        monkeypatch.setenv(name, "")  # `serve` sets them for its workers: removed after the test (delenv alone
        monkeypatch.delenv(name)  # records nothing for a name that is not set, and the next test would inherit it)
    server.serve("127.0.0.1", 8123, index_dir=index_dir, workers=2, allow_hosts=["papers.lab"])
    assert started == ["semsearch.server:app_from_environment"]
    app = server.app_from_environment()
    assert TestClient(app, base_url="http://papers.lab").get("/api/health").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/api/health").status_code == 421


def test_allow_host_takes_a_name_not_a_list(index_dir, capsys):
    assert main(["serve", "--allow-host", "a.example,b.example", "--index", str(index_dir)]) == 2
    assert capsys.readouterr().err.startswith("error: --allow-host 'a.example,b.example': expected a host name")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(port: int, host_header: str, path: str = "/api/health") -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.putrequest("GET", path, skip_host=True)
    conn.putheader("Host", host_header)
    conn.endheaders()
    response = conn.getresponse()
    return response.status, json.loads(response.read())


def _serving(index_dir: Path, *extra: str):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_process", "--", "serve", "--port", str(port), "--index", index_dir, *extra],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            _get(port, "127.0.0.1")
            return port, process
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            time.sleep(0.2)
    process.kill()
    raise AssertionError("semsearch serve did not start")


@pytest.mark.slow
def test_a_real_server_answers_only_to_its_names(index_dir):
    port, process = _serving(index_dir)
    try:
        assert _get(port, f"localhost:{port}")[0] == 200
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("HEAD", "/")  # the page answers HEAD, headers only
        head = connection.getresponse()
        assert head.status == 200 and head.getheader("content-type").startswith("text/html") and head.read() == b""
        connection.close()
        status, body = _get(port, "evil.example")
        assert status == 421 and body["error"].startswith("the Host header 'evil.example' is not this server's name")
    finally:
        process.terminate()
        process.wait(timeout=20)
    port, process = _serving(index_dir, "--allow-host", "evil.example")
    try:
        assert _get(port, f"evil.example:{port}") == _get(port, "127.0.0.1")
        assert _get(port, "other.example")[0] == 421
    finally:
        process.terminate()
        process.wait(timeout=20)


# --- MCP: a line that is not a message gets an answer ---------------------------------------------------
@pytest.mark.slow
def test_mcp_answers_a_line_that_is_not_json_and_keeps_serving(index_dir):
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_process", "--", "mcp", "--index", str(index_dir)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    watchdog = threading.Timer(90, process.kill)
    watchdog.start()

    def ask(raw: bytes) -> dict:
        process.stdin.write(raw + b"\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    try:
        parse_error = {"jsonrpc": "2.0", "id": None, "error": {"code": -32700, "message": "Parse error"}}
        assert ask(b"this is not json") == parse_error
        assert ask(b'{"jsonrpc": "2.0", "id": 1, "method"') == parse_error  # cut short
        assert ask(b"\xff\xfe{") == parse_error  # not UTF-8
        not_a_message = ask(b'{"hello": "world"}')
        assert not_a_message["id"] is None and not_a_message["error"]["code"] == -32600
        for odd_id in (b"true", b'{"a": 1}', b"null", b"[1]"):  # the SDK took these for notifications: no answer
            refused = ask(b'{"jsonrpc": "2.0", "id": ' + odd_id + b', "method": "tools/list"}')
            assert refused["id"] is None and refused["error"]["code"] == -32600, odd_id
        for notification in (
            b'{"jsonrpc": "2.0", "method": "ping"}',
            b'{"jsonrpc": "2.0", "method": "$/cancelRequest"}',
        ):
            process.stdin.write(notification + b"\n")  # no id: a notification, and never answered
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}
        answer = ask(json.dumps({"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": init}).encode())
        assert answer["id"] == 7 and answer["result"]["serverInfo"]["name"] == "semsearch"
        process.stdin.write(b'{"jsonrpc": "2.0", "method": "notifications/initialized"}\n')
        # A lone surrogate is valid JSON: the SDK's reader refused it as "Parse error" with id null,
        # and the client waited for ever; now it is read as U+FFFD, as a byte that is not UTF-8 is.
        call = b'{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "search", '
        answer = ask(call + b'"arguments": {"question": "kv cache \\ud800 eviction", "k": 1}}}')
        assert answer["id"] == 8 and "result" in answer and "\ufffd" in answer["result"]["content"][0]["text"]
    finally:
        watchdog.cancel()
        process.kill()
        process.wait()


# --- property-based: any input, never a 5xx, never a crash ----------------------------------------------
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=80)
VALUE = st.one_of(TEXT, st.integers(-(10**12), 10**12).map(str), st.sampled_from(["", "true", "0", "2023", "nan"]))
PARAM = st.sampled_from(["q", "k", "year_from", "year_to", "category", "explain", "details", "taxonomy", "limit",
                         "diverse", "question", "zzz"])  # fmt: skip
ROUTE = st.sampled_from(["/api/search", "/api/related/2302.00003", "/api/trends", "/api/papers", "/api/export"])
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=10,
)
CLASSIFY_BODY = st.one_of(
    st.fixed_dictionaries({}, optional={"title": JSON, "abstract": JSON, "taxonomy": JSON}),
    st.dictionaries(st.sampled_from(["title", "abstract", "taxonomy", "x"]), TEXT),
    JSON,
)
SLOW_ANSWER = 5.0  # seconds; the toy index answers in milliseconds


def _answered(response, started: float) -> None:
    assert time.monotonic() - started < SLOW_ANSWER
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        body = response.json()
        assert list(body) == ["error"] and isinstance(body["error"], str) and "\n" not in body["error"]


FAST = settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(route=ROUTE, params=st.lists(st.tuples(PARAM, VALUE), max_size=6))
def test_any_query_string_is_answered_or_refused_as_json(client, route, params):
    started = time.monotonic()
    _answered(client.get(route, params=params), started)


@FAST
@given(paper_id=TEXT, route=st.sampled_from(["/api/papers/", "/api/related/"]))
def test_any_paper_id_is_answered_or_refused_as_json(client, paper_id, route):
    started = time.monotonic()
    _answered(client.get(route + quote(paper_id, safe="")), started)


@FAST
@given(body=CLASSIFY_BODY)
def test_any_classify_body_is_answered_or_refused_as_json(client, body):
    started = time.monotonic()
    _answered(client.post("/api/classify", json=body), started)


@FAST
@given(raw=st.binary(max_size=200))
def test_any_bytes_posted_are_refused_as_json(client, raw):
    started = time.monotonic()
    _answered(client.post("/api/classify", content=raw, headers={"content-type": "application/json"}), started)


TOOL_ARGS = {
    "search": ["question", "k", "year_from", "year_to", "category", "taxonomy"],
    "classify": ["title", "abstract", "taxonomy"],
    "related": ["id", "k"],
    "recommend": ["likes", "dislikes", "k", "since"],
    "paper": ["id"],
    "trends": ["category"],
    "taxonomy": [],
}


@st.composite
def tool_calls(draw):
    tool = draw(st.sampled_from(sorted(TOOL_ARGS)))
    names = draw(st.lists(st.sampled_from([*TOOL_ARGS[tool], "extra"]), unique=True, max_size=6))
    value = st.one_of(JSON, st.integers(), st.lists(TEXT, max_size=5))
    return tool, {name: draw(value) for name in names}


@FAST
@given(call=tool_calls())
def test_any_mcp_arguments_are_answered_or_refused_as_a_tool_error(tools, call):
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

    tool, args = call
    started = time.monotonic()
    try:
        anyio.run(tools.call_tool, tool, args)
    except ToolError as err:
        assert not isinstance(err, UnexpectedToolError), repr(err.__cause__)
    assert time.monotonic() - started < SLOW_ANSWER


@pytest.mark.slow
@settings(max_examples=examples(400), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=ROUTE, params=st.lists(st.tuples(PARAM, VALUE), max_size=6), body=CLASSIFY_BODY, call=tool_calls())
def test_many_more_random_requests_at_every_door(client, tools, route, params, body, call):
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError

    started = time.monotonic()
    _answered(client.get(route, params=params), started)
    started = time.monotonic()
    _answered(client.post("/api/classify", json=body), started)
    try:
        anyio.run(tools.call_tool, *call)
    except ToolError as err:
        assert not isinstance(err, UnexpectedToolError), repr(err.__cause__)


@pytest.mark.parametrize("k", [True, False])
def test_the_mcp_tools_take_json_true_for_a_boolean_not_the_number_1(refusing_tools, k):
    from mcp.server.mcpserver.exceptions import ToolError

    with pytest.raises(ToolError, match="k: Input should be a valid integer, not a boolean"):
        anyio.run(refusing_tools.call_tool, "search", {"question": "cache", "k": k})


# Calls of the tools that their request models refuse by form alone, beside BAD_INPUT and NOT_FOR_THE_CLI.
MCP_REFUSED_BY_FORM = [
    ("search", {"question": "???"}), ("search", {"question": "🚀"}), ("search", {}),
    ("classify", {"id": "2302.00003", "title": "T"}), ("classify", {"title": "T", "abstract": None}),
    ("related", {"id": ""}), ("paper", {"id": "x" * 201}), ("taxonomy", {"taxonomy": ""}),
    ("recommend", {"likes": []}), ("recommend", {"likes": ["2302.00003"], "dislikes": [""]}),
    ("trends", {"category": []}), ("trends", {"category": ["x" * 301]}),
    ("propose", {"since": "2024-13-01"}), ("propose", {"min_confidence": 2}), ("propose", {"ids": [""]}),
    ("propose", {"taxonomy": "x" * 61}), ("gaps", {"since": "soon"}), ("digest", {"name": "nope"}),
]  # fmt: skip
MCP_TAKEN = [
    ("search", {"question": "量子化"}), ("search", {"question": "4?", "k": 5, "year_from": 2023, "year_to": None}),
    ("search", {"question": "ｶﾞ", "category": "Quantization", "explain": True, "details": True}),
    ("classify", {"title": "Ω?", "abstract": "é"}), ("classify", {"id": "2302.00003"}),
    ("classify", {"id": "2302.00003", "title": None, "abstract": None}),
    ("classify", {"title": "T", "abstract": "A", "id": "mine", "taxonomy": "kv"}),
    ("related", {"id": "https://arxiv.org/abs/2306.00978v2", "diverse": True}), ("paper", {"id": "GPTQ"}),
    ("recommend", {"likes": ["GPTQ"], "dislikes": None, "k": 3, "since": "2024-02-29", "details": True}),
    ("taxonomy", {}), ("trends", {"category": ["Quantization", "Pruning"]}), ("propose", {}),
    ("propose", {"taxonomy": "kv", "since": "2024-02-29", "min_confidence": 0, "ids": ["2302.00003"]}),
    ("propose", {"min_confidence": None, "ids": None}), ("gaps", {"since": "2024-01-01"}),
    ("digest", {"name": "202411010000-202411050000", "taxonomy": None}),
]  # fmt: skip


def test_what_a_tool_refuses_by_its_form_its_published_arguments_refuse_too(refusing_tools):
    """tools/list published the signatures' bare types: a question of no letter, a title of
    spaces, a `since` of any text, a classify with neither text nor id were valid to an assistant
    that checks a call against the schema, and refused once sent. Now each tool publishes the
    rules its request model reads by, and each call a model takes, the schema takes."""
    from jsonschema import Draft202012Validator
    from mcp.server.mcpserver.exceptions import ToolError

    from semsearch import requests_models as rm
    from semsearch.propose import ProposeRequest

    models = {"search": rm.SearchRequest, "classify": rm.ClassifyRequest, "related": rm.RelatedRequest,
              "recommend": rm.RecommendRequest,
              "paper": rm.PaperRequest, "taxonomy": rm.TaxonomyRequest, "trends": rm.TrendsRequest,
              "propose": ProposeRequest, "gaps": ProposeRequest, "digest": rm.DigestRequest}  # fmt: skip
    checker = Draft202012Validator.FORMAT_CHECKER
    published = {t.name: Draft202012Validator(t.input_schema, format_checker=checker)
                 for t in anyio.run(refusing_tools.list_tools)}  # fmt: skip
    assert set(published) == set(models)
    for tool, args, _ in [*BAD_INPUT, *NOT_FOR_THE_CLI]:
        assert not published[tool].is_valid(args), (tool, args)

    def read(tool: str, args: dict):
        """The call as the tool reads it: through its model, with the tool's own defaults (the tools
        are not called: a taxonomy or a digest of these may not exist)."""
        defaults = {"taxonomy": "survey"} if tool in ("propose", "gaps") else {}
        given = {"q" if k == "question" else k: v for k, v in args.items() if v is not None or tool == "classify"}
        return rm.parse(models[tool], **defaults | given)

    for tool, args in MCP_REFUSED_BY_FORM:
        assert not published[tool].is_valid(args), (tool, args)
        with pytest.raises(ToolError):
            anyio.run(refusing_tools.call_tool, tool, args)
    for tool, args in MCP_TAKEN:
        errors = [e.message for e in published[tool].iter_errors(args)]
        assert errors == [], (tool, args, errors)
        read(tool, args)


def test_the_published_schemas_state_the_limits_in_json_schema_words():
    """`k` 1-100 and years 1900-2100 reach an assistant (MCP tools/list) and an API client
    (/openapi.json) as JSON Schema's `minimum`/`maximum`: written `ge`/`le`, which JSON Schema has
    no word for, every client read k as any integer."""
    from pydantic import create_model

    from semsearch.requests_models import K, SearchRequest, Year

    tool = create_model("search", k=(K, 10), year_from=(Year | None, None)).model_json_schema()["properties"]
    api = SearchRequest.model_json_schema()["properties"]
    for k, year in ((tool["k"], tool["year_from"]["anyOf"][0]), (api["k"], api["year_from"]["anyOf"][0])):
        assert (k["minimum"], k["maximum"], year["minimum"], year["maximum"]) == (1, 100, 1900, 2100)
        assert not {"ge", "le"} & (set(k) | set(year))


def test_a_parameter_no_model_names_is_named_as_sent_up_to_40_characters_and_quoted_beyond():
    """The refusal shows a plain name as it is; a longer one, or one that is no identifier (it may
    hold anything), quoted and cut, so the one line stays one short line."""
    from semsearch.requests_models import not_a_parameter

    forty = "m" * 40
    assert not_a_parameter(forty) == f"{forty}: is not a parameter"
    assert not_a_parameter(forty + "m") == f"'{forty}': is not a parameter"
    assert not_a_parameter("a b\n", "is unknown") == "'a b\\n': is unknown"


def test_a_refusal_names_every_problem_of_a_request_in_one_line():
    """Every problem is said, whichever comes first: a field's own, a parameter no model names, one
    of the body as a whole; a model's whole refusal names its fields itself."""
    from semsearch.requests_models import BadRequest, ClassifyRequest, SearchRequest, describe, parse

    with pytest.raises(BadRequest) as refused:
        parse(SearchRequest, q="kv", mode="dense", colour="red", k=0)
    assert str(refused.value) == (
        "k: Input should be greater than or equal to 1; mode: is not a parameter; colour: is not a parameter"
    )
    with pytest.raises(BadRequest) as refused:
        parse(ClassifyRequest, title="A title")
    assert str(refused.value) == "abstract: Field required"  # the model's own words, as pydantic's
    # FastAPI's: the body as a whole is no object (its loc names "body" only); a problem said without
    # a place or words, as no library gives one, is still one part of the line.
    body = {"type": "model_attributes_type", "loc": ("body",), "msg": "Input should be a valid dictionary"}
    assert describe([body, {"type": "odd"}]) == "body: Input should be a valid dictionary; body: invalid"
    path = {"type": "string_too_long", "loc": ("path", "id"), "msg": "String should have at most 200 characters"}
    assert describe([path]) == "id: String should have at most 200 characters"  # a route's path parameter
    assert describe([{"type": "json_invalid", "loc": ("body", 3), "msg": "JSON decode error"}, body]) == (
        "body: is not valid JSON; body: Input should be a valid dictionary"
    )


def test_each_tool_argument_is_published_with_its_models_rules_under_the_tools_own_title_and_default():
    """tools/list: an argument carries the rules its request model reads it by (one form, or null
    where the tool's default is null), the tool's own title and default (the model's field may be
    named otherwise, `q`, or default otherwise, dislikes []), and no argument beside those."""
    from semsearch.mcp_server import add_tools, tool_server

    server = tool_server("semsearch-test")
    add_tools(server, None)  # publishing reads no index
    published = {t.name: t.input_schema for t in anyio.run(server.list_tools)}
    search = published["search"]["properties"]
    assert search["question"]["title"] == "Question" and search["question"]["maxLength"] == 2000
    assert "default" not in search["question"]
    assert search["k"] == {
        "title": "K", "default": 10, "description": "How many papers.", "maximum": 100, "minimum": 1, "type": "integer",
    }  # fmt: skip
    assert search["year_from"] == {
        "title": "Year From", "default": None,
        "anyOf": [{"maximum": 2100, "minimum": 1900, "type": "integer"}, {"type": "null"}],
    }  # fmt: skip
    dislikes = published["recommend"]["properties"]["dislikes"]
    assert dislikes["default"] is None and dislikes["anyOf"][1] == {"type": "null"}
    assert dislikes["anyOf"][0]["items"]["maxLength"] == 200
    assert published["propose"]["properties"]["taxonomy"]["default"] == "survey"
    one_or_more = published["trends"]["properties"]["category"]["anyOf"]  # a list of nodes, or one node
    assert [form["type"] for form in one_or_more] == ["array", "string"] and one_or_more[1] == one_or_more[0]["items"]
    assert published["trends"]["required"] == ["category"]
    assert published["classify"]["anyOf"][0]["required"] == ["title", "abstract"]
    assert published["classify"]["anyOf"][1]["required"] == ["id"]
    assert all("anyOf" not in published[name] for name in published if name != "classify")
    assert all(schema["additionalProperties"] is False for schema in published.values())
