"""Every example in README.md and docs/usage.md runs, as shown, against the default offline index
(the survey's papers, titles only, in ./index) and succeeds: the commands of their bash blocks,
the HTTP requests the API section lists, and the Python API block.

The commands run in document order in one workspace, so an example may use what an earlier one
made (the labels exported before they are imported). What a reader would have beside them is
written here: the files the examples name, a local arXiv (tests/arxiv_stub.py), and the curated
list the `taxonomy add` example names, as a local file (this machine may be offline). Servers and
`watch --every` run in real processes, are asked a question, and are stopped.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from semsearch.cli import main
from tests.arxiv_stub import ArxivStub
from tests.conftest import SHARED, corpus_records
from tests.test_docs import DOCS, shown_commands

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = [(path.name, line) for path in DOCS for line in shown_commands(path)]
KV_LIST_URL = "https://github.com/October2001/Awesome-KV-Cache-Compression"
LONG_RUNNING = ("serve", "watch --every", "mcp")

# How a shown line becomes argv, where it names something a reader supplies. `[x]` is optional and
# is included; `a|b` takes the first; the rest of a line runs as shown.
FILLED = {
    "FILE|URL": "survey-list.md",
    "NAME": "survey",
    "N": "2",
    "T": "a-secret-token",
    "DATE": "2024-01-01",
}
PER_LINE = {  # a word of one example -> what the reader would have in its place
    "semsearch taxonomy refresh FILE --dry-run": {"FILE": "survey-list.md"},
    "semsearch taxonomy refresh FILE --taxonomy kv [--force]": {"FILE": "kv-list.md"},
    "semsearch taxonomy refresh [NAME] --undo": {"NAME": "kv"},
    "semsearch taxonomy add kv " + KV_LIST_URL: {KV_LIST_URL: "kv-list.md"},
}


def argv_of(line: str) -> list[str]:
    """The words of a shown command after `semsearch`, options in brackets included."""
    words = shlex.split(line.split("  #")[0])[1:]
    swaps = PER_LINE.get(line, {})
    out = []
    for word in words:
        bare = word.strip("[]")
        if bare in swaps:
            out.append(swaps[bare])
        elif bare in FILLED and (word.startswith("[") or bare.isupper() or "|" in bare):
            out.append(FILLED[bare])
        elif "|" in bare and not bare.startswith("-"):
            out.append(bare.split("|")[0])
        elif (ROOT / bare).is_file() and "/" in bare:
            out.append(str(ROOT / bare))  # a file of the repository, named from its root
        else:
            out.append(bare)
    return out


def survey_markdown() -> str:
    """The survey's list rebuilt from the packaged facts (headings and linked titles only)."""
    from semsearch.sources.survey import load_survey

    survey = load_survey()
    lines = ["# Efficient LLMs survey (rebuilt from facts)"]
    for node in survey.nodes:
        depth = node.count("/") + 2
        lines.append(f"{'#' * min(depth, 6)} {node.split('/')[-1]}")
        for paper in survey.papers:
            if node in paper.survey_categories:
                link = f"https://arxiv.org/abs/{paper.arxiv_id}" if paper.arxiv_id else (paper.url or "")
                lines.append(f"- **{paper.title}** [[Paper]({link})]" if link else f"- **{paper.title}**")
    return "\n".join(lines) + "\n"


def kv_list() -> str:
    """A KV-cache list written for these tests, two of the real list's headings: the survey's KV-cache
    papers under them (enough under each for `eval gaps --min-papers 8`), and a new paper the watch brings."""
    from semsearch.sources.survey import load_survey

    leaf = "Model-Centric Methods/Efficient Inference/KV-Cache Optimization"
    papers = [p for p in load_survey().papers if leaf in p.survey_categories and p.arxiv_id]
    half = len(papers) // 2
    item = lambda p: f"- **{p.title}** [[pdf](https://arxiv.org/abs/{p.arxiv_id})]"  # noqa: E731
    return "\n".join(
        ["# KV cache compression (a list written for these tests)", "## Pruning / Evicting / Sparse",
         *map(item, papers[:half]), "## Quantization", *map(item, papers[half:]),
         "- **Evicting tokens from the cache** [[pdf](https://arxiv.org/abs/2411.01234)]", ""]
    )  # fmt: skip


@dataclass
class Workspace:
    root: Path
    stub: ArxivStub


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, _survey_template):
    """A reader's directory: the default offline index in ./index, the files the examples name."""
    root = tmp_path_factory.mktemp("examples")
    shutil.copytree(_survey_template, root / "index")
    records = corpus_records()
    (root / "papers.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records[:5]))
    snapshot = [*records, {"id": "2412.00009", "title": "Ray-embedded paper", "abstract": "Written for the test."}]
    (root / "arxiv-snapshot.jsonl").write_text("".join(json.dumps(r) + "\n" for r in snapshot))
    with gzip.open(root / "more.jsonl.gz", "wt") as more:
        more.write("".join(json.dumps(r) + "\n" for r in records[5:]))
    (root / "questions.txt").write_text("speculative decoding with a draft model\nquantizing weights to 4 bits\n")
    (root / "ids.txt").write_text("2306.00978\n2309.17453\n")
    topics = [{"id": r["id"], "topics": ["decoding" if "decod" in r["abstract"] else "other"]} for r in records]
    (root / "topics.jsonl").write_text("".join(json.dumps(t) + "\n" for t in topics))
    (root / "survey-list.md").write_text(survey_markdown())
    (root / "kv-list.md").write_text(kv_list())
    for name in ("README.md", "OLD.md"):  # the survey's list as a reader keeps it, and an older copy
        (root / name).write_text(survey_markdown())
    (root / "NEW.md").write_text(
        survey_markdown().replace("## ", "## ", 1) + "- **A paper added later** "
        "[[Paper](https://arxiv.org/abs/2411.05678)]\n"
    )
    recent = (datetime.now(UTC) - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    with ArxivStub() as stub:
        stub.papers.update(
            {
                "2411.01234": {
                    "title": "Evicting tokens from the key-value cache",
                    "abstract": "We keep heavy-hitter tokens in the KV cache and evict the rest during decoding.",
                    "published": recent,
                },
                "2411.05678": {
                    "title": "Speculative decoding with tree drafts",
                    "abstract": "A small draft model proposes a tree of tokens the target model verifies at once.",
                    "published": recent,
                },
            }
        )
        yield Workspace(root, stub)


@pytest.fixture
def in_workspace(workspace, monkeypatch, fake_model):
    monkeypatch.chdir(workspace.root)
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", workspace.stub.url)
    return workspace


def run_in_process(capsys, argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_long(workspace: Workspace, argv: list[str]) -> str:
    """A command that runs until stopped, in a real process (the test model, the local arXiv):
    a server is asked for its health and its page; `watch --every` must finish its first turn.
    Returns what it printed on stderr."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env["SEMSEARCH_ARXIV_URL"] = workspace.stub.url
    env.pop("SEMSEARCH_INDEX", None)
    port = None
    if argv[0] == "serve":
        if "--port" in argv:
            port = _free_port()  # the shown 8000 may be taken on this machine
            argv = [port if a == "8000" else a for a in argv]
            argv = [str(a) for a in argv]
        else:
            port = _free_port()
            argv = [*argv, "--port", str(port)]
    log = workspace.root / f"{argv[0]}-{time.monotonic_ns()}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_process", "--", *argv],
        cwd=workspace.root, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        if port is not None:
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=2) as answer:
                        health = json.loads(answer.read())
                    break
                except OSError:
                    assert time.monotonic() < deadline, "the server did not answer"
                    time.sleep(0.2)
            assert health["status"] == "ok" and health["papers"] > 400
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as page:
                assert b"semsearch" in page.read()
            # A question that is an arXiv id gives that paper; a parameter the route does not take is
            # refused in the doors' one wording, by the server as a user runs it.
            with urllib.request.urlopen(
                f"http://127.0.0.1:{port}/api/search?q=arXiv:2306.00978v2", timeout=30
            ) as found:
                assert [hit["id"] for hit in json.loads(found.read())["results"]] == ["2306.00978"]
            for stray, said in (
                ("api/search?q=kv&mode=dense", ": is not a parameter"),
                ("api/taxonomies?taxonomy=kv", ": is not a parameter"),
                ("api/search?q=kv&q=quantization", "q: is given more than once (it takes one value)"),
            ):
                with pytest.raises(urllib.error.HTTPError) as refused:
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/{stray}", timeout=30)
                assert refused.value.code == 422 and json.loads(refused.value.read())["error"].endswith(said)
        else:  # watch --every: its first turn is done when it reports it
            while "watched " not in log.read_text():
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the first watch did not finish"
                time.sleep(0.2)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    err = log.read_text()
    assert "Traceback" not in err, err
    return err


def _long_running(line: str) -> bool:
    return any(" ".join(argv_of(line)).startswith(prefix) for prefix in LONG_RUNNING)


@pytest.mark.parametrize(
    "where, line",
    # README's are in the quick loop; usage.md's reference list (about 15 s) and servers are `slow`.
    [pytest.param(w, c, marks=[pytest.mark.slow] if _long_running(c) or w != "README.md" else []) for w, c in EXAMPLES],
    ids=[f"{w}: {c[:60]}" for w, c in EXAMPLES],
)
def test_every_example_command_succeeds(in_workspace, capsys, where, line):
    argv = argv_of(line)
    shown = " ".join(argv)
    if any(shown.startswith(prefix) for prefix in LONG_RUNNING):
        run_long(in_workspace, argv)
        return
    redirect = None
    if ">" in argv:
        argv, redirect = argv[: argv.index(">")], argv[argv.index(">") + 1]
    if "--ray" in argv:  # a cluster at ray://head:10001 is the reader's, not this machine's
        code, _, err = run_in_process(capsys, argv)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "ray" in err.lower(), err
        pytest.skip("no Ray cluster (nor the real model's export) here: refused in one line; tests of --ray run one")
    code, out, err = run_in_process(capsys, argv)
    assert code == 0, f"{where}: `{line}` exited {code}: {err.strip()}"
    assert "Traceback" not in err and "error:" not in err, err
    if redirect:
        (in_workspace.root / redirect).write_text(out)
    if argv[0] in ("search", "related", "recommend") and "--batch" not in argv:
        results = json.loads(out)["results"] if "--json" in argv else out.strip().splitlines()
        assert results, f"`{line}` answered nothing"
    if argv[0] == "export":
        assert out.count("@") == len([a for a in argv[1:] if not a.startswith("-")])


def test_the_examples_are_all_recognised():
    """Each shown line became argv with no placeholder left (a new example needs its filling here)."""
    for _, line in EXAMPLES:
        leftover = [w for w in argv_of(line) if w in FILLED or w in ("FILE", "URL", "NAME") or "|" in w]
        assert not leftover, (line, leftover)


# --- the HTTP requests the API section lists --------------------------------------------------------
DIGEST = "202411010000-202411020000"  # the name of the digest `with_a_digest` saves


def api_requests() -> list[tuple[str, str, dict | None]]:
    """(method, path with its query, body) for each `GET /api/...` and `POST /api/...` in usage.md,
    empty parameters filled with a value a reader would use."""
    text = (ROOT / "docs" / "usage.md").read_text()
    values = {
        "q": "quantizing weights to 4 bits", "k": "5", "year_from": "2023", "year_to": "2024",
        "category": "Model Compression", "explain": "true", "details": "true", "diverse": "true",
        "ids": "2306.00978,2309.17453", "taxonomy": "survey", "since": "2024-01-01", "min_confidence": "0.5",
        "limit": "20",
    }  # fmt: skip
    bodies = {
        "/api/classify": {"title": "Evicting tokens", "abstract": "We evict tokens from the KV cache."},
        "/api/recommend": {"likes": ["2306.00978"], "dislikes": ["2302.10866"], "k": 5, "since": "2023-01-01"},
        "/api/labels": {"id": "2306.00978", "category": "Weight-Only Quantization"},
    }
    found = []
    for method, target in re.findall(r"`(GET|POST) (/api/[^`\s]*)`", text):
        path = target.replace("{id}", "2306.00978").replace("[/{name}]", "").replace("[&category=...]", "")
        path = path.replace("{name}", DIGEST)
        path = path.replace("NODE", "Model Compression")
        if "?" in path:
            base, query = path.split("?", 1)
            pairs = [p.split("=", 1) for p in query.split("&")]
            path = base + "?" + "&".join(f"{k}={urllib.request.quote(v or values[k])}" for k, v in pairs)
        found.append((method, path, bodies.get(path) if method == "POST" else None))
    return found


def test_every_request_the_api_section_shows_is_answered(survey_only_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from tests.test_page import with_a_digest

    with_a_digest(survey_only_index)  # as a watch leaves one
    listed = survey_only_index.parent / "survey-list.md"  # as `taxonomy refresh` keeps the list's README
    listed.write_text(survey_markdown())
    assert main(["taxonomy", "refresh", str(listed), "--offline", "--force", "--index", str(survey_only_index)]) == 0
    client = TestClient(create_app(index_dir=survey_only_index, reload_seconds=None))
    assert [d["name"] for d in client.get("/api/digests").json()["digests"]] == [DIGEST]
    shown = api_requests()
    assert len(shown) >= 15
    for method, path, body in shown:
        answer = client.request(method, path, json=body)
        assert answer.status_code == 200, (method, path, answer.text)


# --- the Python API block -----------------------------------------------------------------------------
def test_the_python_api_example_runs(tmp_path, fake_model, capsys, monkeypatch):
    usage = (ROOT / "docs" / "usage.md").read_text()
    block = usage[usage.index("## The Python API") :].split("```python\n", 1)[1].split("```", 1)[0]
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "usage.md", "exec"), {})  # noqa: S102 - our own documentation's example
    printed = capsys.readouterr().out.strip().splitlines()
    assert len(printed) == 5 and all(line.split(" ", 1)[0].replace(".", "").isdigit() for line in printed)


def test_the_api_docs_are_the_pages_own_and_load_nothing_from_elsewhere(survey_only_index):
    """FastAPI's Swagger UI and ReDoc load from a CDN (blank offline); /docs is the page's API view."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    client = TestClient(create_app(index_dir=survey_only_index, reload_seconds=None))
    docs = client.get("/docs")
    assert docs.status_code == 200 and docs.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in docs.headers["content-security-policy"]
    assert all(ref.startswith("/") for ref in re.findall(r'(?:src|href)="([^"]+)"', docs.text))
    assert '<script src="/static/app.js">' in docs.text
    assert client.get("/redoc").status_code == 404
    assert "/api/search" in client.get("/openapi.json").json()["paths"]


@pytest.mark.skipif(not (SHARED / "data" / "lists").exists(), reason="../shared not present")
def test_the_label_example_works_against_the_real_list_it_adds(cli, survey_only_index):
    """The docs' `label ... --taxonomy kv` named a heading ("Eviction") that only the list written
    for these tests had: against the real KV-cache list it failed (a newcomer's pass)."""
    real = SHARED / "data" / "lists" / "October2001__Awesome-KV-Cache-Compression.md"
    cli("taxonomy", "add", "kv", real, "--offline", "--index", survey_only_index, check=True)
    code, _, err = cli("label", "2402.02750", "Quantization", "--taxonomy", "kv", "--index", survey_only_index)
    assert code == 0, err


# --- the JSON the text says a command prints ---------------------------------------------------------
def _names(fragment: str) -> set[str]:
    return set(re.findall(r'"(\w+)"', fragment))


def _described(text: str, opening: str) -> str:
    """The code span of usage.md that begins with `opening`: a JSON answer as the text describes it."""
    found = re.search(r"`(" + re.escape(opening) + r"[^`]*)`", text)
    assert found, f"usage.md no longer describes {opening}"
    return found.group(1)


def test_the_json_the_text_describes_is_the_json_printed(cli, survey_only_index):
    """usage.md spells out the fields of search's, related's and classify's `--json`; the tests
    that check those fields (test_cli, test_mcp) hold copies of their own, so the text could drift
    from the answers with every test passing."""
    usage = (ROOT / "docs" / "usage.md").read_text()
    index = ["--index", survey_only_index]

    search = _described(usage, '{"query": Q, "results": [{')
    answer = json.loads(cli("search", "quantizing weights to 4 bits", "--json", *index, check=True).stdout)
    assert set(answer) == _names(search.split("[", 1)[0]) | {"query"}
    assert all(set(hit) == _names(search.split("[", 1)[1]) for hit in answer["results"])

    related = _described(usage, '{"id": ..., "results": [hit, ...]}')
    answer = json.loads(cli("related", "2306.00978", "--json", *index, check=True).stdout)
    assert set(answer) == _names(related)
    assert all(set(hit) == _names(search.split("[", 1)[1]) for hit in answer["results"])  # "the same hit fields"

    classify = _described(usage, '{"id", "suggestions":')
    lists = dict(re.findall(r'"(\w+)":\s*\[\{([^}]*)\}', classify))
    answer = json.loads(
        cli("classify", "--title", "Evicting tokens", "--abstract", "We evict tokens from the KV cache.", "--json",
            *index, check=True).stdout
    )  # fmt: skip
    assert set(answer) == _names(re.sub(r"\[\{[^}]*\}[^\]]*\]", "", classify))
    for field, inner in lists.items():
        assert answer[field] and all(set(item) == _names(inner) for item in answer[field]), field
