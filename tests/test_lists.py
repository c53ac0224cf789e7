"""Curated lists added as taxonomies: `semsearch taxonomy add|list|show|remove`, `--taxonomy`."""

from __future__ import annotations

import json

import pytest

from semsearch.index import Index
from tests.arxiv_stub import ArxivStub
from tests.test_cli import run

LIST = """# Awesome KV Cache

## Methods
### Eviction
- **Heavy hitters stay.** [[pdf](https://arxiv.org/abs/2501.00001)]
- **Recent tokens stay.** [[pdf](https://arxiv.org/abs/2501.00002v2)]
- **Attention sinks stay.** [[pdf](https://arxiv.org/pdf/2501.00003.pdf)]
### Quantization
- **Two-bit keys.** [[pdf](https://arxiv.org/abs/2501.00004)]
- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]
- **Mixed precision caches.** [[pdf](https://arxiv.org/abs/2501.00006)]
### Merging
- **Merge similar tokens.** [[pdf](https://arxiv.org/abs/2501.00007)]
"""
ABSTRACTS = {
    "2501.00001": (
        "Heavy hitters stay",
        "evict tokens from the kv cache keeping heavy hitter tokens with high attention",
    ),
    "2501.00002": ("Recent tokens stay", "evict old tokens from the kv cache keeping a window of recent tokens"),
    "2501.00003": ("Attention sinks stay", "evict tokens but keep attention sink tokens and a recent window in cache"),
    "2501.00004": ("Two-bit keys", "quantize kv cache keys to two bits per channel with small error"),
    "2501.00005": ("Four-bit values", "quantize kv cache values to four bits per token"),
    "2501.00006": (
        "Mixed precision caches",
        "quantize important kv cache tokens at high precision and others low bits",
    ),
    "2501.00007": ("Merge similar tokens", "merge similar tokens of the kv cache into one"),
}
NODES = ["Methods", "Methods/Eviction", "Methods/Quantization", "Methods/Merging"]


@pytest.fixture
def index_dir(corpus_index):
    return corpus_index


@pytest.fixture
def list_file(tmp_path):
    path = tmp_path / "README.md"
    path.write_text(LIST)
    return path


@pytest.fixture
def stub(monkeypatch):
    papers = {i: {"title": t, "abstract": a} for i, (t, a) in ABSTRACTS.items()}
    with ArxivStub(papers=papers) as running:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", running.url)
        yield running


def interrupted_at_publish(capsys, monkeypatch, *command) -> int:
    """`semsearch COMMAND` Ctrl-C'd as it publishes (its change staged, not published): its exit code."""
    from semsearch import index as index_module

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(index_module.IndexWriter, "publish", interrupted)
        return run(capsys, *command)[0]


def test_an_interrupted_add_is_gone_on_with_not_refused_as_already_there(
    index_dir, list_file, stub, capsys, monkeypatch
):
    """After a Ctrl-C'd `taxonomy add kv`, which no reader saw, the same command said the index
    "already has a taxonomy 'kv'" (exit 2), and published the interrupted add doing so; `taxonomy
    remove` then said it removed a list nobody had seen (a clumsy operator's pass)."""

    assert interrupted_at_publish(capsys, monkeypatch, "taxonomy", "add", "kv", list_file, "--index", index_dir) == 130
    assert [t["name"] for t in Index.open(index_dir).store.taxonomies()] == []  # no reader sees it
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)
    assert code == 0, err
    assert "this change also publishes what an interrupted run had staged" in err  # said, as a label says it
    assert [t["name"] for t in Index.open(index_dir).store.taxonomies()] == ["kv"]
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)  # now it is there
    assert code == 2 and "already has a taxonomy 'kv'" in err


@pytest.mark.parametrize(
    "command",
    [("taxonomy", "refresh", "kv", "--undo"), ("taxonomy", "remove", "kv")],
    ids=["refresh --undo", "remove"],
)
def test_every_change_that_prints_no_summary_says_it_publishes_an_interrupted_runs_work(
    index_dir, list_file, stub, capsys, monkeypatch, command
):
    """`taxonomy refresh --undo` after a Ctrl-C'd label published the label and said nothing of it
    (each command called the warning itself; undo did not): `Ingest` says it now, for every
    command that prints no summary."""

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--replace", "--index", index_dir)[0] == 0  # undoable
    assert (
        interrupted_at_publish(capsys, monkeypatch, "label", "2401.00001", "Quantization", "--index", index_dir) == 130
    )
    code, _, err = run(capsys, *command, "--index", index_dir)
    assert code == 0, err
    assert "this change also publishes what an interrupted run had staged" in err
    assert [row["id"] for row in Index.open(index_dir).store.labels()] == ["2401.00001"]


def test_a_refresh_interrupted_then_run_again_is_still_undone_to_the_list_as_it_was(
    index_dir, list_file, stub, capsys, monkeypatch, tmp_path
):
    """Ctrl-C'd, then run again, a refresh kept its own half-done labels as the ones it replaced:
    `--undo` gave back the refreshed list, every time (a week of use: 163 papers never came back).
    The README `taxonomy propose` writes against, and the record of the papers the list took out,
    follow the list as readers saw it, not the interrupted run's."""
    from semsearch.propose import README_META, REMOVED_META

    def kept() -> tuple[str | None, list[str]]:
        index = Index.open(index_dir)
        try:
            return index.store.get_meta(README_META + "kv"), json.loads(index.store.get_meta(REMOVED_META + "kv"))
        finally:
            index.close()

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    smaller = tmp_path / "smaller.md"
    smaller.write_text(LIST.replace("- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n", ""))
    refresh = ("taxonomy", "refresh", smaller, "--taxonomy", "kv", "--index", index_dir, "--json")
    assert interrupted_at_publish(capsys, monkeypatch, *refresh) == 130
    code, out, err = run(capsys, *refresh)
    assert code == 0 and json.loads(out)["papers"] == 6, err
    assert kept() == (smaller.read_text(), ["2501.00005"])
    code, out, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out)["papers"] == 7, err  # the list as it was before the refresh
    assert kept() == (LIST, [])
    code, out, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out)["papers"] == 6, err  # and undone again, the refresh
    assert kept() == (smaller.read_text(), ["2501.00005"])


def test_a_lists_refresh_names_the_undo_of_that_list_not_the_surveys(index_dir, list_file, stub, capsys, tmp_path):
    """After `taxonomy refresh FILE --taxonomy kv` the hint was `taxonomy refresh --undo`, which undoes
    the survey's refresh ("nothing to undo: the survey's list was never refreshed")."""

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    smaller = tmp_path / "smaller.md"
    smaller.write_text(LIST.replace("- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n", ""))
    code, _, err = run(capsys, "taxonomy", "refresh", smaller, "--taxonomy", "kv", "--index", index_dir)
    assert code == 0 and "kv now lists 6 papers (`taxonomy refresh kv --undo` goes back)" in err
    code, _, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--index", index_dir)
    assert code == 0 and "(`taxonomy refresh kv --undo` once more redoes)" in err
    smallest = tmp_path / "smallest.md"
    two_bit = "- **Two-bit keys.** [[pdf](https://arxiv.org/abs/2501.00004)]\n"
    smallest.write_text(smaller.read_text().replace(two_bit, ""))
    code, _, err = run(capsys, "taxonomy", "refresh", smallest, "--taxonomy", "kv", "--index", index_dir)
    assert code == 2 and "`taxonomy refresh kv --undo` restores the labels" in err


def test_a_refresh_that_changes_nothing_keeps_the_undo_of_the_last_one_that_did(
    index_dir, list_file, stub, capsys, tmp_path
):
    """A refresh run again (twice by mistake, or a daily cron of it) changed nothing, yet took the
    place of the one that had: `--undo` gave back the same list, and the labels the real refresh
    replaced were gone for good (a week of use: a heading and its two papers)."""
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    smaller = tmp_path / "smaller.md"
    smaller.write_text(LIST.replace("- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n", ""))
    refresh = ("taxonomy", "refresh", smaller, "--taxonomy", "kv", "--index", index_dir)
    assert run(capsys, *refresh)[0] == 0
    code, _, err = run(capsys, *refresh)  # again: nothing to change
    assert (
        code == 0 and "kv is unchanged: 6 papers (`taxonomy refresh kv --undo` goes back before the last change)" in err
    )
    code, out, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out)["papers"] == 7, err  # the list as it was before the change


def test_a_refresh_that_changes_nothing_and_follows_no_change_can_be_undone_as_before(
    index_dir, list_file, stub, capsys
):
    """With no earlier change to keep, a refresh that changes nothing keeps its own undo (which
    changes nothing): usage.md's `taxonomy refresh FILE --taxonomy kv` then `taxonomy refresh kv
    --undo` said "nothing to undo" once the change above kept the undo of the last real change."""
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    assert run(capsys, "taxonomy", "refresh", list_file, "--taxonomy", "kv", "--index", index_dir)[0] == 0
    code, out, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out)["papers"] == 7, err


def test_undo_of_a_list_the_index_does_not_hold_says_there_is_none(index_dir, capsys):
    code, _, err = run(capsys, "taxonomy", "refresh", "nosuch", "--undo", "--index", index_dir)
    assert code == 2 and "no taxonomy 'nosuch' in the index" in err  # as `taxonomy show` says it


def test_a_lists_readme_follows_its_refresh_and_undo_and_goes_with_the_list(
    index_dir, list_file, stub, capsys, tmp_path
):
    """The README `taxonomy propose` writes against: the one read last, the previous one back on
    --undo, none left behind by `taxonomy remove` (a list added again under the name starts anew),
    nor the record of papers its maintainers took out, nor its classifier."""
    from semsearch.lists import PREVIOUS_PREFIX, README_PREVIOUS, REMOVED_PREVIOUS, classifier_artifact
    from semsearch.propose import README_META, REMOVED_META

    def kept() -> dict[str, str | None]:
        index = Index.open(index_dir)
        try:
            keys = (README_META, README_PREVIOUS, PREVIOUS_PREFIX, REMOVED_META, REMOVED_PREVIOUS)
            return {key: index.store.get_meta(key + "kv") for key in keys}
        finally:
            index.close()

    def classifier() -> bytes | None:
        index = Index.open(index_dir)
        try:
            return index.store.get_artifact(classifier_artifact("kv"))
        finally:
            index.close()

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    code, _, err = run(capsys, "taxonomy", "refresh", "kv", "--undo", "--index", index_dir)
    assert code == 2 and "nothing to undo: 'kv' was not refreshed or replaced in this index" in err
    smaller = tmp_path / "smaller.md"
    smaller.write_text(LIST.replace("- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n", ""))
    assert run(capsys, "taxonomy", "refresh", smaller, "--taxonomy", "kv", "--index", index_dir)[0] == 0
    assert kept()[README_META] == smaller.read_text() and kept()[README_PREVIOUS] == LIST
    assert run(capsys, "taxonomy", "refresh", "kv", "--undo", "--index", index_dir)[0] == 0
    assert kept()[README_META] == LIST and kept()[README_PREVIOUS] == smaller.read_text()
    assert kept()[REMOVED_PREVIOUS] == '["2501.00005"]' and classifier() is not None
    assert run(capsys, "taxonomy", "remove", "kv", "--index", index_dir)[0] == 0
    assert set(kept().values()) == {None} and classifier() is None


def test_a_list_becomes_a_taxonomy_with_its_papers_fetched(index_dir, list_file, stub, capsys):
    code, out, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir, "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["nodes"] == NODES and summary["papers"] == 7 and summary["with_arxiv_id"] == 7
    assert "1 node of 'kv' has fewer than 3 papers" in err  # Merging: usable, but weak
    store = Index.open(index_dir).store
    assert store.get("2501.00002").abstract.startswith("evict old tokens")  # fetched from arXiv (the stub)
    assert "2501.00007" in ",".join(r.get("id_list", [""])[0] for r in stub.requests)  # asked by id

    code, out, _ = run(capsys, "taxonomy", "list", "--json", "--index", index_dir)
    listed = {row["name"]: row for row in json.loads(out)}
    assert set(listed) == {"survey", "kv"} and listed["kv"] == {
        "name": "kv",
        "nodes": NODES,
        "papers": 7,
        "source": "README.md",
    }

    code, out, _ = run(capsys, "taxonomy", "show", "kv", "--json", "--index", index_dir)
    tree = json.loads(out)
    assert tree[0]["name"] == "Methods" and tree[0]["papers"] == 7
    assert [(c["name"], c["papers"]) for c in tree[0]["children"]] == [
        ("Eviction", 3),
        ("Quantization", 3),
        ("Merging", 1),
    ]

    code, out, _ = run(capsys, "taxonomy", "--json", "--index", index_dir)  # alone: still the survey's tree
    assert json.loads(out)[0]["name"] == "Model-Centric Methods"


def test_classify_with_a_list_suggests_only_its_nodes(index_dir, list_file, stub, capsys):
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    code, out, err = run(
        capsys, "classify", "--taxonomy", "kv", "--json", "--index", index_dir,
        "--title", "Keep the sinks", "--abstract", "We evict kv cache tokens but keep attention sinks.",
    )  # fmt: skip
    assert code == 0, err
    result = json.loads(out)
    assert {s["category"] for s in result["suggestions"]} <= set(NODES)
    assert result["suggestions"][0]["category"] == "Methods/Eviction"
    code, _, err = run(
        capsys, "classify", "--taxonomy", "nope", "--title", "T", "--abstract", "A", "--index", index_dir
    )
    assert code == 2 and "no taxonomy 'nope'" in err


def test_names_replace_and_remove(index_dir, list_file, stub, capsys):
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)
    assert code == 2 and "--replace" in err
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir, "--replace")[0] == 0
    for bad in ("survey", "Bad Name", "kv\n", "../x", ""):  # a final newline once passed `$`
        code, _, err = run(capsys, "taxonomy", "add", bad, list_file, "--index", index_dir)
        assert code == 2 and "taxonomy name" in err
    assert run(capsys, "taxonomy", "remove", "kv", "--index", index_dir)[0] == 0
    _, out, _ = run(capsys, "taxonomy", "list", "--json", "--index", index_dir)
    assert [row["name"] for row in json.loads(out)] == ["survey"]
    assert Index.open(index_dir).store.get("2501.00001") is not None  # its papers stay
    code, _, err = run(capsys, "taxonomy", "remove", "kv", "--index", index_dir)
    assert code == 2 and "no taxonomy 'kv'" in err


@pytest.mark.parametrize(
    "text, message",
    [
        ("No headings and no links at all.", "no papers found"),
        ("# List\n## A\n- **A paper** [[Paper](https://aclanthology.org/x.pdf)]\n", "no arXiv links"),
    ],
)
def test_a_list_without_papers_changes_nothing(index_dir, tmp_path, capsys, text, message):
    bad = tmp_path / "bad.md"
    bad.write_text(text)
    published = (index_dir / "CURRENT").read_text()
    code, _, err = run(capsys, "taxonomy", "add", "bad", bad, "--index", index_dir)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (index_dir / "CURRENT").read_text() == published


def test_a_list_that_cannot_be_fetched_is_one_line(index_dir, capsys, tmp_path):
    """A host that does not answer exits 1, as an unreachable arXiv does (it exited 2, the code for
    bad input); a page the host does not have is a wrong URL: 2. A host asking to be asked later
    (429, GitHub's rate limit; 408) said nothing about the URL, and exited 2 all the same."""
    import functools
    import http.server
    import threading

    code, _, err = run(capsys, "taxonomy", "add", "kv", "http://127.0.0.1:9/README.md", "--index", index_dir)
    assert code == 1 and err.startswith("error: cannot fetch http://127.0.0.1:9/README.md") and err.count("\n") == 1

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):  # its request log would go to the stderr under test
            pass

        def do_GET(self):  # noqa: N802 - the handler's name
            if self.path.endswith("busy.md"):  # a host that is there but cannot answer now
                self.send_error(503)
            elif self.path.endswith("limited.md"):
                self.send_response(429)
                self.send_header("Retry-After", "60")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                super().do_GET()

    handler = functools.partial(Quiet, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/no-such-README.md"
        code, _, err = run(capsys, "taxonomy", "add", "kv", url, "--index", index_dir)
        busy = f"http://127.0.0.1:{server.server_address[1]}/busy.md"
        busy_code, _, busy_err = run(capsys, "taxonomy", "add", "kv", busy, "--index", index_dir)
        limited = f"http://127.0.0.1:{server.server_address[1]}/limited.md"
        limited_code, _, limited_err = run(capsys, "taxonomy", "add", "kv", limited, "--index", index_dir)
    finally:
        server.shutdown()
    assert code == 2 and err.startswith(f"error: cannot fetch {url}") and err.count("\n") == 1
    assert busy_code == 1 and busy_err.startswith(f"error: cannot fetch {busy}: 127.0.0.1 answered HTTP 503")
    assert limited_code == 1 and limited_err.startswith(f"error: cannot fetch {limited}: 127.0.0.1 answered HTTP 429")


def test_offline_a_list_is_indexed_on_its_titles(index_dir, list_file, capsys):
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--offline", "--index", index_dir)
    assert code == 0 and "offline: 7 papers are indexed on their titles" in err
    assert Index.open(index_dir).store.get("2501.00004").title == "Two-bit keys"


def test_offline_the_command_the_warning_names_brings_the_abstracts(index_dir, list_file, capsys, monkeypatch):
    """It said "run again online for abstracts": `taxonomy add` run again is refused (the name is
    taken). The warning names the command that brings them, and that command does."""
    import re
    import shlex

    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--offline", "--index", index_dir)
    assert code == 0 and "run again" not in err
    named = re.search(r"`semsearch ([^`]+)` online adds their abstracts", err)
    assert named, err
    papers = {i: {"title": t, "abstract": a} for i, (t, a) in ABSTRACTS.items()}
    with ArxivStub(papers=papers) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, _, err = run(capsys, *shlex.split(named[1]), "--index", index_dir)
    assert code == 0, err
    assert Index.open(index_dir).store.get("2501.00004").abstract == ABSTRACTS["2501.00004"][1]


def test_a_list_of_one_paper_is_counted_as_one_paper(index_dir, tmp_path, capsys):
    """It read "offline: 1 papers are indexed on their titles" and "1 nodes, 1 papers"."""
    one = tmp_path / "one.md"
    one.write_text("# One\n\n## Caches\n- **Two-bit keys.** [[pdf](https://arxiv.org/abs/2501.00004)]\n")
    code, _, err = run(capsys, "taxonomy", "add", "kv", one, "--offline", "--index", index_dir)
    assert code == 0 and "offline: 1 paper is indexed on its title (`semsearch taxonomy refresh" in err
    assert "online adds its abstract)" in err
    assert "taxonomy 'kv': 1 node, 1 paper (1 with an arXiv id)" in err


def test_offline_a_lists_papers_have_the_year_their_arxiv_id_says_so_year_filters_and_trends_count_them(
    index_dir, list_file, cli
):
    """Offline, a list's papers were stored with no year, though an arXiv id says it (2501.00004:
    2025), as `ingest jsonl` reads it: `--year-from` left them all out, a node's trends counted
    none of the papers its list shows, and their BibTeX had no year."""
    cli("taxonomy", "add", "kv", list_file, "--offline", "--index", index_dir, check=True)
    found = cli("search", "two-bit keys", "--taxonomy", "kv", "--year-from", "2025", "--json", "--index", index_dir)
    hits = {hit["id"]: hit["year"] for hit in json.loads(found.stdout)["results"]}
    assert hits.get("2501.00004") == 2025, found
    from semsearch.service import Service

    trends = Service(index_dir=index_dir).trends(["Quantization"], "kv")["trends"]
    assert trends == {"Methods/Quantization": {"2025": 3}}


def test_eval_classify_for_a_list(index_dir, list_file, stub, capsys):
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    code, out, err = run(capsys, "eval", "classify", "--taxonomy", "kv", "--json", "--index", index_dir)
    assert code == 2 and "too few labelled papers" in err  # seven papers: leave-one-out needs ten


SURVEY_V1 = """# Efficient Large Language Models: A Survey
## Model-Centric Methods
### Efficient Inference
#### Speculative Decoding
- Draft A, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2302.01318)]
- Draft B, <ins>ICML, 2023</ins> [[Paper](https://arxiv.org/abs/2211.17192)]
#### KV-Cache Optimization
- Cache C, <ins>NeurIPS, 2023</ins> [[Paper](https://arxiv.org/abs/2306.14048)]
"""
SURVEY_V2 = """# Efficient Large Language Models: A Survey
## Model-Centric Methods
### Efficient Inference
#### Speculative Decoding
- Draft A, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2302.01318)]
#### KV-Cache Optimization
- Draft B, <ins>ICML, 2023</ins> [[Paper](https://arxiv.org/abs/2211.17192)]
#### Early Exit
- Sinks D, <ins>ICLR, 2024</ins> [[Paper](https://arxiv.org/abs/2309.17453)]
"""


def test_a_survey_refresh_interrupted_then_run_again_is_still_undone_to_the_packaged_list(
    tmp_path, survey_only_index, capsys, monkeypatch
):

    (tmp_path / "v1.md").write_text(SURVEY_V1)
    refresh = ("taxonomy", "refresh", tmp_path / "v1.md", "--offline", "--force", "--index", survey_only_index)
    assert interrupted_at_publish(capsys, monkeypatch, *refresh) == 130
    assert run(capsys, *refresh)[0] == 0
    assert Index.open(survey_only_index).store.content_counts()["survey_labelled"] == 3
    code, _, err = run(capsys, "taxonomy", "refresh", "--undo", "--index", survey_only_index)
    assert code == 0, err
    assert Index.open(survey_only_index).store.content_counts()["survey_labelled"] == 424  # not v1's 3 again


def test_refresh_follows_the_survey_list_and_reports_the_diff(tmp_path, survey_only_index, capsys, monkeypatch):
    index_dir = survey_only_index  # the survey ingested offline (a copy of one built per session)
    (tmp_path / "v1.md").write_text(SURVEY_V1)
    (tmp_path / "v2.md").write_text(SURVEY_V2)
    # A three-paper file would take the survey's 424 papers away: forced here (test_list_safety
    # has the refusals).
    code, out, err = run(
        capsys, "taxonomy", "refresh", tmp_path / "v1.md", "--offline", "--force", "--json", "--index", index_dir
    )
    assert code == 0, err
    assert json.loads(out)["removed"] == 424 - 3 and json.loads(out)["papers"] == 3
    with ArxivStub(papers={"2309.17453": {"title": "Sinks D", "abstract": "attention sinks keep streaming"}}) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, out, err = run(
            capsys, "taxonomy", "refresh", tmp_path / "v2.md", "--force", "--json", "--index", index_dir
        )
    assert code == 0, err
    report = json.loads(out)
    assert {k: report[k] for k in ("added", "removed", "moved", "nodes_added", "nodes_removed")} == {
        "added": 1, "removed": 1, "moved": 1, "nodes_added": 1, "nodes_removed": 0,
    }  # fmt: skip
    assert report["changes"]["added"] == ["2309.17453"] and report["changes"]["moved"] == ["2211.17192"]
    store = Index.open(index_dir).store
    assert store.get("2309.17453").abstract == "attention sinks keep streaming"  # fetched from arXiv
    assert store.get("2211.17192").survey_categories == [
        "Model-Centric Methods/Efficient Inference/KV-Cache Optimization"
    ]
    assert store.get("2306.14048").survey_categories == []  # no longer listed
    # A later `ingest survey` keeps the refreshed list rather than the packaged one.
    assert run(capsys, "ingest", "survey", "--offline", "--index", index_dir)[0] == 0
    assert Index.open(index_dir).store.content_counts()["survey_labelled"] == 3


def test_a_survey_paper_listed_under_its_arxiv_id_instead_of_its_title_keeps_its_label_both_ways(
    tmp_path, survey_only_index, capsys
):
    """The list of 2024-07-25 gives REST its arXiv link, today's list only its title: a refresh to
    the older list took REST's label away (389 of 390 listed), and so did the undo (423 of 424)."""
    index_dir = survey_only_index
    rest = "REST: Retrieval-Based Speculative Decoding"
    (tmp_path / "older.md").write_text(
        SURVEY_V1.replace(
            "- Draft A,", f"- {rest}, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2311.08252)]\n- Draft A,"
        )
    )
    code, out, err = run(
        capsys, "taxonomy", "refresh", tmp_path / "older.md", "--offline", "--force", "--json", "--index", index_dir
    )
    assert code == 0 and json.loads(out)["papers"] == 4, err
    shown = json.loads(out)["titles"]
    assert rest not in shown["added"] + shown["removed"]  # one paper relinked: neither added nor removed
    store = Index.open(index_dir).store
    assert store.content_counts()["survey_labelled"] == 4
    [record] = store.papers_with_title(rest)
    assert record.id == "2311.08252" and record.survey_categories
    code, out, err = run(capsys, "taxonomy", "refresh", "--undo", "--json", "--index", index_dir)
    assert code == 0 and (json.loads(out)["added"], json.loads(out)["removed"]) == (424 - 4, 0), (
        err
    )  # REST is not added again
    store = Index.open(index_dir).store
    assert store.content_counts()["survey_labelled"] == 424
    assert [r.survey_categories for r in store.papers_with_title(rest)] == [
        ["Model-Centric Methods/Efficient Inference/Speculative Decoding"]
    ]


def test_search_and_related_under_a_list(index_dir, list_file, stub, capsys):
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    code, out, err = run(capsys, "taxonomy", "gaps", "kv", "--json", "--index", index_dir)  # the list's topic first
    assert code == 0 and json.loads(out)["taxonomy"] == "kv", err
    code, out, err = run(
        capsys,
        "search",
        "quantize the kv cache to few bits",
        "--taxonomy",
        "kv",
        "--json",
        "-k",
        "5",
        "--index",
        index_dir,
    )
    assert code == 0, err
    hits = json.loads(out)["results"]
    assert hits[0]["id"] in {"2501.00004", "2501.00005", "2501.00006"}
    listed = [h for h in hits if h["category_source"] == "list"]
    assert listed and all(set(h["categories"]) <= set(NODES) for h in hits)  # the list's categories, not the survey's
    code, out, _ = run(
        capsys, "search", "kv cache", "--taxonomy", "kv", "--category", "Merging", "--json", "--index", index_dir
    )
    assert [h["id"] for h in json.loads(out)["results"]] == ["2501.00007"]  # filtered by the list's node
    code, out, err = run(capsys, "related", "2501.00001", "--taxonomy", "kv", "--json", "-k", "2", "--index", index_dir)
    assert code == 0, err
    related = json.loads(out)["results"]
    assert {h["id"] for h in related} == {"2501.00002", "2501.00003"}  # its node's other papers first
    assert all(h["categories"] == ["Methods/Eviction"] and h["category_source"] == "list" for h in related)
    code, _, err = run(capsys, "search", "kv", "--taxonomy", "nope", "--index", index_dir)
    assert code == 2 and "no taxonomy 'nope'" in err


def test_the_api_and_the_watch_take_a_taxonomy(index_dir, list_file, stub, capsys):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from semsearch.watch import watch

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    client = TestClient(create_app(index_dir=index_dir, reload_seconds=None))
    assert [t["name"] for t in client.get("/api/taxonomies").json()] == ["survey", "kv"]
    code, out, _ = run(capsys, "taxonomy", "list", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out) == client.get("/api/taxonomies").json()  # the list's source too
    assert json.loads(out)[1]["source"]
    found = client.get("/api/search", params={"q": "evict kv cache tokens", "taxonomy": "kv", "k": 3}).json()
    # Searched under the list: the hits are the list's papers, each with the list's node (under the
    # survey they would carry the survey's categories or none, and the check below would hold vacuously).
    assert len(found["results"]) == 3
    assert all(h["category_source"] == "list" and h["categories"] == ["Methods/Eviction"] for h in found["results"])
    placed = client.post("/api/classify", json={"title": "T", "abstract": "merge kv cache tokens", "taxonomy": "kv"})
    suggested = [s["category"] for s in placed.json()["suggestions"]]
    assert suggested and set(suggested) <= set(NODES) and suggested[0] == "Methods/Merging"
    related = client.get("/api/related/2501.00004", params={"taxonomy": "kv", "k": 2}).json()["results"]
    assert {h["id"] for h in related} == {"2501.00005", "2501.00006"}  # its node's other papers
    assert all(h["categories"] == ["Methods/Quantization"] and h["category_source"] == "list" for h in related)
    assert client.get("/api/search", params={"q": "kv", "taxonomy": "nope"}).status_code == 404
    listed = client.get("/api/papers", params={"category": "Merging", "taxonomy": "kv"}).json()
    assert listed["category"] == "Methods/Merging" and [h["id"] for h in listed["results"]] == ["2501.00007"]

    stub.papers["2501.00042"] = {
        "title": "Evict by attention", "abstract": "evict kv cache tokens with low attention",
        "published": "2024-11-01T09:00:00Z",
    }  # fmt: skip
    report = watch(["cs.CL"], "2024-01-01", index_dir=index_dir, progress=False, taxonomy_name="kv")
    new = {e.id: e for e in report.entries}
    assert "2501.00042" in new and new["2501.00042"].category in NODES


def test_the_mcp_classify_tool_places_a_paper_under_the_taxonomy_it_is_given(index_dir, list_file, stub, capsys):
    """An assistant asking where a paper belongs in an added list gets the list's nodes, as the API
    answers: the tool read `taxonomy` and could have placed the paper in the survey regardless."""
    import anyio
    from fastapi.testclient import TestClient

    from semsearch.mcp_server import add_tools, tool_server
    from semsearch.server import create_app
    from semsearch.service import Service

    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    tools = tool_server("semsearch-test")
    add_tools(tools, Service(index_dir=index_dir))
    paper = {"title": "T", "abstract": "merge kv cache tokens", "taxonomy": "kv"}
    placed = json.loads(anyio.run(tools.call_tool, "classify", paper).content[0].text)
    assert placed["suggestions"][0]["category"] == "Methods/Merging"
    with TestClient(create_app(index_dir=index_dir, reload_seconds=None)) as client:
        assert placed == client.post("/api/classify", json=paper).json()


def test_a_refresh_keeps_the_readme_propose_writes_against_and_undo_puts_the_previous_back(
    cli, survey_corpus_index, tmp_path
):
    """The README a refresh read is kept in the index (for `taxonomy propose`); `--undo` swaps it
    back with the labels."""
    from semsearch.sources.survey import load_survey
    from tests.test_propose import survey_readme

    ids = sorted({p.arxiv_id for p in load_survey().papers if p.arxiv_id})
    first, second = tmp_path / "first.md", tmp_path / "second.md"
    first.write_text(survey_readme({ids[0]}), encoding="utf-8")
    second.write_text(survey_readme({ids[1]}), encoding="utf-8")
    propose = [
        "taxonomy",
        "propose",
        "survey",
        "--offline",
        "--json",
        "--min-confidence",
        "0",
        "--ids",
        f"{ids[0]},{ids[1]}",
    ]

    def semsearch(*args):
        return cli(*args, check=True)

    def proposed() -> set[str]:
        return {row["id"] for row in json.loads(semsearch(*propose, "--index", survey_corpus_index).stdout)}

    semsearch("taxonomy", "refresh", first, "--offline", "--force", "--index", survey_corpus_index)
    assert proposed() == {ids[0]}  # the kept README lacks only the first paper
    semsearch("taxonomy", "refresh", second, "--offline", "--force", "--index", survey_corpus_index)
    assert proposed() == {ids[1]}
    undone = semsearch("taxonomy", "refresh", "--undo", "--index", survey_corpus_index)
    assert proposed() == {ids[0]}
    from semsearch.sources.curated import parse_list

    listed = len(parse_list(first.read_text(encoding="utf-8")).papers)
    assert f"restored the previous labels of 'survey': it lists {listed} papers again" in undone.stderr


def test_an_item_without_an_arxiv_link_labels_the_indexed_paper_of_its_title(index_dir, tmp_path, capsys):
    """Such an item became a `list:` record of its own beside the index's record of the same title,
    and a search showed the paper twice (a maintainer's pass: Big Little Decoder)."""
    store = Index.open(index_dir).store
    vec_id = store.find("2401.00001")
    title = store.papers_by_vec_id([vec_id])[vec_id].title
    papers_before = Index.open(index_dir).manifest.count
    readme = tmp_path / "mine.md"
    readme.write_text(
        f"# Mine\n\n## Found\n\n- **{title.upper()}** [[code](https://github.com/someone/code)]\n"
        "- **A paper nobody indexed yet** [[code](https://github.com/someone/else)]\n"
        "- [Pruning attention heads](https://arxiv.org/abs/2401.00002)\n"
    )
    code, _, err = run(capsys, "taxonomy", "add", "mine", readme, "--offline", "--index", index_dir)
    assert code == 0, err
    index = Index.open(index_dir)
    assert vec_id in index.store.taxonomy_labels("mine") and index.store.vec_ids_with_title(title) == [vec_id]
    assert index.manifest.count == papers_before + 1  # only the paper the index did not hold
    code, out, _ = run(capsys, "taxonomy", "refresh", readme, "--taxonomy", "mine", "--offline", "--json",
                       "--index", index_dir)  # fmt: skip
    report = json.loads(out)
    assert code == 0 and (report["added"], report["removed"], report["moved"]) == (0, 0, 0)  # the same list


def test_a_listed_arxiv_paper_keeps_the_title_the_index_gave_it(index_dir, tmp_path, capsys):
    """A list naming a paper by another name (its benchmark's) renamed the stored record, and the
    list's item of the real title then labelled nothing (an attacker's pass: Spec-Bench)."""
    store = Index.open(index_dir).store
    vec_id = store.find("2401.00001")
    title = store.papers_by_vec_id([vec_id])[vec_id].title
    readme = tmp_path / "mine.md"
    readme.write_text(
        "# Mine\n\n## Benchmarks\n\n- [Bench-Mark: a benchmark](https://arxiv.org/abs/2401.00001)\n"
        f"## Surveys\n\n- **{title}** [[code](https://github.com/someone/code)]\n"
    )
    papers_before = Index.open(index_dir).manifest.count
    code, _, err = run(capsys, "taxonomy", "add", "mine", readme, "--offline", "--index", index_dir)
    assert code == 0, err
    index = Index.open(index_dir)
    assert index.store.papers_by_vec_id([vec_id])[vec_id].title == title
    assert index.manifest.count == papers_before
    assert sorted(index.store.taxonomy_labels("mine")[vec_id]) == ["Benchmarks", "Surveys"]
    code, out, _ = run(capsys, "taxonomy", "refresh", readme, "--taxonomy", "mine", "--offline", "--json",
                       "--index", index_dir)  # fmt: skip
    report = json.loads(out)  # the same list, read again: nothing moves (it moved on every refresh)
    assert code == 0 and (report["added"], report["removed"], report["moved"], report["papers"]) == (0, 0, 0, 1)


def test_a_listed_paper_the_index_holds_by_title_gets_its_abstract_from_arxiv(
    index_dir, list_file, stub, capsys, tmp_path
):
    """The index's record is kept (its title), and what arXiv adds to it is stored."""
    known = tmp_path / "known.jsonl"
    known.write_text(json.dumps({"id": "2501.00001", "title": "Heavy hitters stay"}) + "\n")
    assert run(capsys, "ingest", "jsonl", known, "--index", index_dir)[0] == 0
    assert Index.open(index_dir).store.get("2501.00001").abstract == ""
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)
    assert code == 0, err
    assert Index.open(index_dir).store.get("2501.00001").abstract == ABSTRACTS["2501.00001"][1]


def test_a_paper_is_relinked_only_when_its_old_key_is_gone_and_its_new_one_is_new():
    from semsearch.lists import _listed_under_another_key as relinked

    rest, by_title = ("REST", set()), ("REST", {"A"})
    assert relinked({"2311.08252": rest}, {"rest": by_title}) == {"rest": "2311.08252"}
    assert relinked({"2311.08252": rest}, {"2311.08252": rest, "rest": by_title}) == {}  # the old key still listed
    assert relinked({"2311.08252": rest, "rest": rest}, {"rest": by_title}) == {}  # the new key was listed already


# --- your labels in a curated list (`label --taxonomy NAME`) -----------------------------------------------
def test_a_label_in_a_list_is_learned_searched_and_proposed_under_its_heading(index_dir, list_file, stub, cli):
    """A user could confirm a category of the survey only; a list's maintainer had no way to say
    "this paper goes under Quantization" and have `taxonomy propose` write it there."""
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    store = Index.open(index_dir).store
    before = store.get_artifact("taxonomy_classifier:kv")
    done = cli("label", "2401.00001", "quantization", "--taxonomy", "kv", "--index", index_dir, check=True)
    assert done.stderr.strip().endswith("2401.00001: Methods/Quantization")
    store = Index.open(index_dir).store
    assert store.get_artifact("taxonomy_classifier:kv") != before  # the list's classifier learned it at once
    assert store.labels()[-1] | {"labelled_at": ""} == {
        "id": "2401.00001",
        "title": store.get("2401.00001").title,
        "category": "Methods/Quantization",
        "labelled_at": "",
        "taxonomy": "kv",
    }
    assert not [row for row in store.labels() if "taxonomy" not in row]  # the survey's labels are not touched

    found = cli("search", "kv cache", "--taxonomy", "kv", "--category", "Quantization", "--json", "-k", "10",
                "--index", index_dir, check=True)  # fmt: skip
    assert "2401.00001" in [h["id"] for h in json.loads(found.stdout)["results"]]

    proposed = json.loads(cli("taxonomy", "propose", "kv", "--json", "--index", index_dir, check=True).stdout)
    mine = [p for p in proposed if p["id"] == "2401.00001"]
    assert len(mine) == 1 and mine[0]["node"] == "Methods/Quantization" and mine[0]["confidence"] == 1.0
    assert not mine[0]["unsure"]
    patch = cli("taxonomy", "propose", "kv", "--index", index_dir, check=True).stdout
    added = [line for line in patch.splitlines() if line.startswith("+") and "2401.00001" in line]
    lines = patch.splitlines()
    section = [i for i, line in enumerate(lines) if "Mixed precision caches" in line or "### Merging" in line]
    assert len(added) == 1 and section[0] < lines.index(added[0]) < section[1], patch  # in its section

    # It outlives a refresh of the list; removing it, or the list, forgets it.
    cli("taxonomy", "refresh", list_file, "--taxonomy", "kv", "--index", index_dir, check=True)
    assert Index.open(index_dir).store.list_user_labels("kv") == {store.find("2401.00001"): "Methods/Quantization"}
    cli("label", "2401.00001", "--remove", "--taxonomy", "kv", "--index", index_dir, check=True)
    again = cli("label", "2401.00001", "--remove", "--taxonomy", "kv", "--index", index_dir)
    assert (again.returncode, again.stderr) == (2, "error: paper '2401.00001' has no label in 'kv' to remove\n")
    cli("label", "2401.00002", "Eviction", "--taxonomy", "kv", "--index", index_dir, check=True)
    cli("taxonomy", "remove", "kv", "--index", index_dir, check=True)
    assert Index.open(index_dir).store.list_user_labels("kv") == {}


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("2401.00001", "Quantization", "--taxonomy", "nope"), "error: no taxonomy 'nope' in the index"),
        (("2401.00001", "Pruning", "--taxonomy", "kv"), "error: unknown category 'Pruning'"),
        (("2499.99999", "Quantization", "--taxonomy", "kv"), "error: no paper '2499.99999' in the index"),
        (("2401.00001", "Quantization", "--taxonomy", "KV!"), "error: "),
    ],
)
def test_a_label_in_a_list_that_cannot_be_is_one_line_and_changes_nothing(index_dir, list_file, stub, cli, args, says):
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    generation = Index.open(index_dir).manifest.generation
    done = cli("label", *args, "--index", index_dir)
    assert (done.returncode, done.stdout) == (2, "") and done.stderr.startswith(says) and done.stderr.count("\n") == 1
    assert Index.open(index_dir).manifest.generation == generation


def test_a_label_on_a_paper_the_list_files_otherwise_is_kept_and_said_not_to_count(index_dir, list_file, stub, cli):
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    done = cli("label", "2501.00001", "Merging", "--taxonomy", "kv", "--index", index_dir, check=True)
    assert "listed in 'kv' (Methods/Eviction), which stands" in done.stderr
    from semsearch.lists import effective_labels

    store = Index.open(index_dir).store
    assert effective_labels(store, "kv")[store.find("2501.00001")] == ["Methods/Eviction"]


def test_labels_in_a_list_are_exported_and_imported_with_their_list(index_dir, list_file, stub, cli, tmp_path):
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    cli("label", "2401.00001", "Quantization", "--taxonomy", "kv", "--index", index_dir, check=True)
    exported = tmp_path / "labels.jsonl"
    exported.write_text(cli("labels", "--index", index_dir, check=True).stdout)
    cli("label", "2401.00001", "--remove", "--taxonomy", "kv", "--index", index_dir, check=True)
    cli("labels", "import", exported, "--index", index_dir, check=True)
    store = Index.open(index_dir).store
    assert store.list_user_labels("kv") == {store.find("2401.00001"): "Methods/Quantization"}
    # Into an index without the list: refused whole, naming the list; a heading it lacks, the same.
    cli("taxonomy", "remove", "kv", "--index", index_dir, check=True)
    done = cli("labels", "import", exported, "--index", index_dir)
    assert done.returncode == 2 and "a label in 'kv', a list the index does not hold" in done.stderr
    # A heading the list does not have now (a refresh renamed it, or a typo): kept, waiting, and said.
    waiting = tmp_path / "waiting.jsonl"
    waiting.write_text(
        json.dumps({"id": "2401.00001", "category": " Methods/Pruning/", "taxonomy": "kv"}) + "\n"  # kept as named
        + json.dumps({"id": "2401.00002", "category": "Eviction", "taxonomy": "kv"}) + "\n"
    )  # fmt: skip
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    done = cli("labels", "import", waiting, "--index", index_dir, check=True)
    assert "1 of the imported labels name a heading their list does not have now: kept, waiting" in done.stderr
    store = Index.open(index_dir).store
    assert store.list_user_labels("kv") == {
        store.find("2401.00001"): "Methods/Pruning",
        store.find("2401.00002"): "Methods/Eviction",
    }
    from semsearch.lists import user_labels

    assert user_labels(store, "kv") == {store.find("2401.00002"): "Methods/Eviction"}  # the waiting one counts not


def test_the_api_labels_in_a_list_too(index_dir, list_file, stub, cli):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    client = TestClient(create_app(index_dir=index_dir, reload_seconds=None))
    answer = client.post("/api/labels", json={"id": "2401.00001", "category": "Quantization", "taxonomy": "kv"})
    assert answer.status_code == 200 and answer.json() == {
        "id": "2401.00001",
        "category": "Methods/Quantization",
        "in_effect": True,
        "taxonomy": "kv",
    }
    assert (
        client.post(
            "/api/labels", json={"id": "2401.00001", "category": "Quantization", "taxonomy": "nope"}
        ).status_code
        == 404
    )
    assert client.post(
        "/api/labels", json={"id": "2401.00001", "category": "Pruning", "taxonomy": "kv"}
    ).status_code in (400, 404, 422)
    listed_otherwise = client.post("/api/labels", json={"id": "2501.00001", "category": "Merging", "taxonomy": "kv"})
    assert listed_otherwise.json()["in_effect"] is False  # the list files it under Eviction, which stands


def test_an_index_written_before_labels_in_lists_reads_as_holding_none(index_dir, list_file, stub, cli):
    """Published generations never change: one written before the table existed must still export
    labels and search by a list, with no label in any list."""
    import sqlite3

    from semsearch.index import current_generation, reseal

    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    generation = index_dir / current_generation(index_dir)
    with sqlite3.connect(generation / "papers.db") as db:
        db.execute("DROP TABLE list_labels")
    db.close()
    reseal(generation)
    assert cli("labels", "--index", index_dir, check=True).stdout == ""
    found = cli("search", "kv cache", "--taxonomy", "kv", "--json", "--index", index_dir, check=True)
    assert json.loads(found.stdout)["results"]
    cli("label", "2401.00001", "Quantization", "--taxonomy", "kv", "--index", index_dir, check=True)  # a writer adds it
    exported = cli("labels", "--index", index_dir, check=True).stdout.splitlines()
    assert [json.loads(line)["taxonomy"] for line in exported] == ["kv"]


def test_a_label_in_a_list_is_shown_as_yours_and_told_when_propose_cannot_write_it(index_dir, list_file, stub, cli):
    """Search by the list showed a user's label as the list's own ("list"); a labelled paper with no
    arXiv id was left out of `taxonomy propose` without a word (an attacker's pass)."""
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    cli("label", "2401.00001", "Quantization", "--taxonomy", "kv", "--index", index_dir, check=True)
    found = cli("search", "weight-only quantization to four bits", "--taxonomy", "kv", "--json", "-k", "10",
                "--index", index_dir, check=True)  # fmt: skip
    sources = {h["id"]: h["category_source"] for h in json.loads(found.stdout)["results"]}
    assert sources["2401.00001"] == "user" and "list" in sources.values()
    local = index_dir.parent / "local.jsonl"
    local.write_text(
        json.dumps({"id": "note-1", "title": "Our own notes on caches", "abstract": "Evict tokens."}) + "\n"
    )
    cli("ingest", "jsonl", local, "--index", index_dir, check=True)
    done = cli("label", "note-1", "Eviction", "--taxonomy", "kv", "--index", index_dir, check=True)
    assert "note-1 has no arXiv id" in done.stderr and "cannot write a line for it" in done.stderr


def test_a_heading_is_found_as_written_first_and_a_long_one_is_refused_as_the_api_refuses_it(
    index_dir, tmp_path, stub, cli
):
    """Two headings differing only in case: the other one was taken without a word; a heading of
    5,000 characters was echoed whole, and one of 450 labelled but then refused by `labels import`."""
    readme = tmp_path / "odd.md"
    readme.write_text(
        "# Odd\n\n## Quantization\n- **Two-bit keys.** [[pdf](https://arxiv.org/abs/2501.00004)]\n"
        "## quantization\n- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n"
    )
    cli("taxonomy", "add", "odd", readme, "--index", index_dir, check=True)
    done = cli("label", "2401.00001", "quantization", "--taxonomy", "odd", "--index", index_dir, check=True)
    assert done.stderr.strip().endswith("2401.00001: quantization")
    done = cli("label", "2401.00001", "QUANTIZATION", "--taxonomy", "odd", "--index", index_dir)
    assert done.returncode == 2 and "is ambiguous: Quantization; quantization" in done.stderr
    done = cli("label", "2401.00001", "x" * 5000, "--taxonomy", "odd", "--index", index_dir)
    assert done.returncode == 2 and done.stderr.startswith("error: category:") and len(done.stderr) < 300
    done = cli("label", "2401.00001", "Pruning", "--taxonomy", "odd", "--index", index_dir)
    assert done.returncode == 2 and "`semsearch taxonomy show odd`" in done.stderr  # its headings, not the survey's


def test_a_label_under_a_heading_the_readme_lacks_is_held_back_saying_so(index_dir, list_file, stub, cli, tmp_path):
    """It was held back as "at the edge of the list's topic", at confidence 1."""
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    cli("label", "2401.00001", "Quantization", "--taxonomy", "kv", "--index", index_dir, check=True)
    other = tmp_path / "other.md"
    other.write_text(LIST.split("### Quantization")[0])
    done = cli("taxonomy", "propose", "kv", "--list", other, "--index", index_dir, check=True)
    assert "unsure (1.00, no such heading in the README): 2401.00001" in done.stderr
    assert "2401.00001" not in done.stdout


def test_a_leaf_named_as_written_wins_over_one_that_differs_in_case():
    from semsearch.taxonomy import resolve_node

    assert resolve_node("Foo", ("A", "A/Foo", "B", "B/foo")) == "A/Foo"
    assert resolve_node("foo", ("A", "A/Foo", "B", "B/foo")) == "B/foo"


def test_a_path_as_semsearch_shows_it_names_that_node():
    """`classify`, digests and `taxonomy gaps` show a path as "A › B": copied into --category it was an
    unknown category."""
    from semsearch.taxonomy import resolve_node

    assert resolve_node("Model-Centric Methods › Model Compression") == "Model-Centric Methods/Model Compression"
    quantization = "Model-Centric Methods/Model Compression/Quantization"
    assert resolve_node("model-centric methods›model compression › quantization") == quantization
    # A separator at either end, as "A/B/" is read: a path copied with one too many.
    assert resolve_node("Model-Centric Methods › Model Compression › ") == "Model-Centric Methods/Model Compression"
    assert resolve_node(" › Model-Centric Methods › Model Compression") == "Model-Centric Methods/Model Compression"


def test_the_last_label_in_a_list_stands_each_list_keeps_its_own_and_ids_limit_what_is_proposed(
    index_dir, list_file, stub, cli
):
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    cli("taxonomy", "add", "kv2", list_file, "--index", index_dir, check=True)
    for paper_id, heading, name in [
        ("2401.00001", "Quantization", "kv"),
        ("2401.00001", "Eviction", "kv"),  # changed my mind: the last word stands
        ("2401.00002", "Merging", "kv"),
        ("2401.00001", "Merging", "kv2"),
    ]:
        cli("label", paper_id, heading, "--taxonomy", name, "--index", index_dir, check=True)
    cli("taxonomy", "remove", "kv2", "--index", index_dir, check=True)
    store = Index.open(index_dir).store
    assert store.list_user_labels("kv") == {
        store.find("2401.00001"): "Methods/Eviction",
        store.find("2401.00002"): "Methods/Merging",
    }
    asked = cli("taxonomy", "propose", "kv", "--ids", "2401.00002", "--json", "--index", index_dir, check=True)
    assert [(p["id"], p["node"]) for p in json.loads(asked.stdout)] == [("2401.00002", "Methods/Merging")]


def test_labels_import_retrains_the_list_and_counts_what_waits_or_does_not_count(
    index_dir, list_file, stub, cli, tmp_path
):
    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    before = Index.open(index_dir).store.get_artifact("taxonomy_classifier:kv")
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        json.dumps({"id": "2401.00001", "category": "Quantization", "taxonomy": "kv"}) + "\n"
        + json.dumps({"id": "2501.00001", "category": "Merging", "taxonomy": "kv"}) + "\n"  # filed otherwise by it
        + json.dumps({"id": "2499.99999", "category": "Pruning", "taxonomy": "kv"}) + "\n"  # a paper the index lacks
        + json.dumps({"id": "2401.00002", "category": "Structured Pruning", "taxonomy": "survey"}) + "\n"
    )  # fmt: skip
    done = cli("labels", "import", labels, "--index", index_dir, check=True)
    assert (
        "1 of the imported labels are on papers their list lists otherwise, which stands: they are kept, and count "
        "if the list stops listing them there\n"
    ) in done.stderr
    assert "name a heading their list does not have now" not in done.stderr  # not for a paper it lacks
    store = Index.open(index_dir).store
    assert store.get_artifact("taxonomy_classifier:kv") != before  # the list learned its labels at once
    assert sorted((row["id"], row.get("taxonomy")) for row in store.labels() if row.get("taxonomy")) == [
        ("2401.00001", "kv"),
        ("2501.00001", "kv"),
    ]
    assert [row["id"] for row in store.labels() if not row.get("taxonomy")] == ["2401.00002"]  # the survey's
    odd = tmp_path / "odd.md"
    odd.write_text("# Odd\n\n## Keys\n- **Two-bit keys.** [[pdf](https://arxiv.org/abs/2501.00004)]\n"
                   "## keys\n- **Four-bit values.** [[pdf](https://arxiv.org/abs/2501.00005)]\n")  # fmt: skip
    cli("taxonomy", "add", "odd", odd, "--index", index_dir, check=True)
    ambiguous = tmp_path / "ambiguous.jsonl"
    ambiguous.write_text(json.dumps({"id": "2401.00001", "category": "KEYS", "taxonomy": "odd"}) + "\n")
    done = cli("labels", "import", ambiguous, "--index", index_dir)
    assert done.returncode == 2 and f"{ambiguous}: a label in 'odd': category 'KEYS' is ambiguous" in done.stderr
    assert "(nothing stored)" in done.stderr


def test_the_survey_by_name_is_the_survey_for_labels(index_dir, cli, tmp_path):
    done = cli("label", "2401.00001", "--remove", "--taxonomy", "survey", "--index", index_dir)
    assert (done.returncode, done.stderr) == (2, "error: paper '2401.00001' has no label to remove\n")
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"id": "2401.00001", "category": "Structured Pruning", "taxonomy": "survey"}) + "\n")
    cli("labels", "import", labels, "--index", index_dir, check=True)
    assert [row.get("taxonomy") for row in Index.open(index_dir).store.labels()] == [None]


def test_an_unknown_heading_of_a_list_points_at_the_lists_headings_at_every_door(index_dir, list_file, stub, cli):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    done = cli("search", "kv cache", "--taxonomy", "kv", "--category", "Zebra", "--index", index_dir)
    assert done.returncode == 2 and "(see `semsearch taxonomy show kv`)" in done.stderr
    client = TestClient(create_app(index_dir=index_dir, reload_seconds=None))
    answer = client.get("/api/search", params={"q": "kv cache", "taxonomy": "kv", "category": "Zebra"})
    assert "(see `semsearch taxonomy show kv`)" in answer.json()["error"]

    # A list's heading asked of the survey (the list not named): said where it is, at every door.
    done = cli("search", "kv cache", "--category", "eviction", "--index", index_dir)
    said = "unknown category 'eviction' in the survey: a heading of the list kv (add --taxonomy kv)"
    assert done.returncode == 2 and done.stderr == f"error: {said}\n", done.stderr
    for path, params in [("/api/search", {"q": "kv cache"}), ("/api/papers", {}), ("/api/trends", {})]:
        answer = client.get(path, params={**params, "category": "eviction"})
        assert answer.status_code in (400, 404) and answer.json()["error"] == said, (path, answer.text)
    assert client.get("/feeds/survey/eviction.atom").json()["error"] == said  # a 404: the address names nothing
    # And a survey node asked of a list, or one list's heading of another.
    done = cli("search", "kv cache", "--taxonomy", "kv", "--category", "Weight-Only Quantization", "--index", index_dir)
    said = "unknown category 'Weight-Only Quantization' in the list kv: a survey node (leave out --taxonomy)"
    assert done.stderr == f"error: {said}\n"
    other = list_file.with_name("other.md")
    other.write_text("# Other\n\n## Zebras\n\n- [Z](https://arxiv.org/abs/2501.00001)\n")
    cli("taxonomy", "add", "zoo", other, "--offline", "--index", index_dir, check=True)
    done = cli("search", "kv cache", "--taxonomy", "kv", "--category", "zebras", "--index", index_dir)
    said = "unknown category 'zebras' in the list kv: a heading of the list zoo (add --taxonomy zoo)"
    assert done.stderr == f"error: {said}\n"


@pytest.mark.slow
def test_a_real_server_files_a_paper_under_a_lists_heading(index_dir, list_file, stub, cli):
    """POST /api/labels with a "taxonomy", as a page or a script sends it to `semsearch serve`."""
    import urllib.request

    from tests.test_server import serving

    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    with serving(index_dir, "--token", "t0ken") as port:
        body = json.dumps({"id": "2401.00001", "category": "Quantization", "taxonomy": "kv"}).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/labels", data=body, method="POST",
            headers={"Content-Type": "application/json", "Authorization": "Bearer t0ken"},
        )  # fmt: skip
        with urllib.request.urlopen(request, timeout=60) as answer:
            assert json.loads(answer.read())["taxonomy"] == "kv"
        query = "q=weight-only+quantization&taxonomy=kv&category=Quantization&k=10"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?{query}", timeout=60) as answer:
            hits = {h["id"]: h["category_source"] for h in json.loads(answer.read())["results"]}
    assert hits["2401.00001"] == "user"


def test_headings_are_named_in_one_unicode_form_and_no_longer_than_a_door_takes(index_dir, cli, tmp_path):
    """An attacker's pass: "Café" typed on a Mac (e + a combining accent) beside "Café" made two
    nodes that look alike, search by the typed name finding one node's papers; full-width
    "Ｐruning" stayed apart from "Pruning"; a 400-character heading became a node that `search
    --category`, `label` and the feeds refused ("at most 300 characters")."""
    long_heading = "Long " * 80
    listed = tmp_path / "hostile.md"
    listed.write_text(
        "# Hostile\n## Café Methods\n- [Paper A](https://arxiv.org/abs/2501.00001)\n"
        "## Cafe\u0301 Methods\n- [Paper B](https://arxiv.org/abs/2501.00002)\n"
        "## Ｐruning\n- [Paper C](https://arxiv.org/abs/2501.00003)\n"
        "## Pruning\n- [Paper D](https://arxiv.org/abs/2501.00004)\n"
        f"## {long_heading}\n- [Paper E](https://arxiv.org/abs/2501.00005)\n"
    )
    cli("taxonomy", "add", "hl", listed, "--offline", "--index", index_dir, check=True)
    nodes = json.loads(cli("taxonomy", "list", "--json", "--index", index_dir, check=True).stdout)
    [hostile] = [row["nodes"] for row in nodes if row["name"] == "hl"]
    assert hostile[:2] == ["Café Methods", "Pruning"] and len(hostile) == 3 and len(hostile[2]) <= 300

    def found(category: str) -> set[str]:
        done = cli("search", "paper", "--taxonomy", "hl", "--category", category, "--json", "--index", index_dir)
        assert done.returncode == 0, done.stderr
        return {hit["id"] for hit in json.loads(done.stdout)["results"]}

    assert found("Cafe\u0301 methods") == found("Café Methods") == {"2501.00001", "2501.00002"}
    assert found("Ｐruning") == {"2501.00003", "2501.00004"}
    assert found(hostile[2]) == {"2501.00005"}


def test_a_list_added_before_headings_were_read_in_one_form_is_still_named_and_refreshed(
    index_dir, tmp_path, capsys, monkeypatch
):
    """A list added by the earlier parser keeps its headings as typed ("Cafe\\u0301"): the typed
    names, read in compatibility form, found none of them, not even the name `taxonomy show`
    printed, and a refresh with the same file was refused ("shares 0 of the 2 headings")."""
    from semsearch.sources import curated

    listed = tmp_path / "cafe.md"
    listed.write_text(
        "# Cafe\n## Methods\n### Café Methods\n- [Paper A](https://arxiv.org/abs/2501.00001)\n"
        "### Ｐruning\n- [Paper C](https://arxiv.org/abs/2501.00003)\n"
    )
    real = curated.clean_name
    monkeypatch.setattr(curated, "clean_name", lambda text: text.strip("# ").replace("é", "e\u0301"))
    assert run(capsys, "taxonomy", "add", "old", listed, "--offline", "--index", index_dir)[0] == 0
    monkeypatch.setattr(curated, "clean_name", real)
    for typed in ("Café Methods", "Cafe\u0301 Methods", "Ｐruning", "Pruning"):
        code, out, err = run(capsys, "search", "paper", "--taxonomy", "old", "--category", typed, "--json",
                             "--index", index_dir)  # fmt: skip
        assert code == 0 and json.loads(out)["results"], (typed, err)
    code, _, err = run(capsys, "taxonomy", "refresh", listed, "--taxonomy", "old", "--offline", "--index", index_dir)
    assert code == 0, err


def test_taxonomy_add_says_how_many_items_it_could_not_read_as_papers(index_dir, tmp_path, stub, capsys):
    """An item that links a paper elsewhere than arXiv, with a plain title (not bold), was left out of
    the list without a word: its maintainer saw 7 papers and never learnt which line was lost."""
    listed = tmp_path / "README.md"
    listed.write_text(
        LIST.replace(
            "### Merging\n",
            "### Merging\n- [Tokens merged by a learned rule](https://example.org/paper.pdf)\n"
            "- Notes on merging (no link: prose, not a paper)\n",
        )
    )
    code, out, err = run(capsys, "taxonomy", "add", "kv", listed, "--index", index_dir, "--json")
    assert code == 0, err  # the list is added all the same
    assert json.loads(out)["papers"] == 7
    said = [line for line in err.splitlines() if "not read as" in line]
    assert said == [
        "warning: 1 item of 'kv' not read as a paper (a link, but no arXiv link and no bold title), "
        "e.g. 'Tokens merged by a learned rule'"
    ]


def test_taxonomy_add_of_a_list_it_reads_whole_says_nothing_of_unread_items(index_dir, list_file, stub, capsys):
    code, _, err = run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)
    assert code == 0 and "not read as" not in err


# --- options as a user runs them (conftest's `cli`: a process of its own in the full suite) ------------
def test_taxonomy_add_and_refresh_json_and_progress_as_a_user_runs_them(cli, index_dir, list_file, stub):
    added = cli("taxonomy", "add", "kv", list_file, "--json", "--progress", "--index", index_dir, check=True)
    assert json.loads(added.stdout)["nodes"] == NODES and "embedding" in added.stderr  # the bar, asked for
    quiet = cli("taxonomy", "refresh", list_file, "--taxonomy", "kv", "--no-progress", "--index", index_dir)
    assert quiet.returncode == 0 and "embedding" not in quiet.stderr
    shown = cli("taxonomy", "refresh", list_file, "--taxonomy", "kv", "--progress", "--json", "--index", index_dir)
    assert shown.returncode == 0 and json.loads(shown.stdout)["papers"] == 7


def test_taxonomy_alone_prints_the_indexs_tree_as_json(cli, index_dir, tmp_path):
    tree = json.loads(cli("taxonomy", "--json", "--index", index_dir, check=True).stdout)
    assert [node["name"] for node in tree] and all({"name", "papers", "children"} <= set(node) for node in tree)
    missing = cli("taxonomy", "--json", "--index", tmp_path / "none")
    assert (missing.returncode, missing.stdout) == (2, "") and missing.stderr.startswith("error: no index at ")


def test_the_library_refuses_a_label_in_a_list_for_a_paper_the_index_lacks(index_dir, list_file, stub, cli):
    """`label_paper` itself, not only the command (which looks the paper up first), names the paper."""
    from semsearch.errors import NotFound
    from semsearch.ingest import label_paper

    cli("taxonomy", "add", "kv", list_file, "--index", index_dir, check=True)
    with pytest.raises(NotFound) as refused:
        label_paper("2499.99999", "Quantization", taxonomy="kv", index_dir=index_dir)
    assert str(refused.value) == "no paper '2499.99999' in the index"


def test_taxonomy_remove_takes_json(index_dir, list_file, stub, capsys):
    """`taxonomy remove` took no --json. With it, it prints what it removed, as `taxonomy list --json`
    listed it, and how many of your labels in it went with it (its papers stay in the index)."""
    assert run(capsys, "taxonomy", "add", "kv", list_file, "--index", index_dir)[0] == 0
    assert run(capsys, "label", "2401.00002", "Eviction", "--taxonomy", "kv", "--index", index_dir)[0] == 0
    listed = next(t for t in json.loads(run(capsys, "taxonomy", "list", "--json", "--index", index_dir)[1])
                  if t["name"] == "kv")  # fmt: skip
    code, out, err = run(capsys, "taxonomy", "remove", "kv", "--json", "--index", index_dir)
    assert code == 0 and json.loads(out) == {**listed, "labels_removed": 1} and err == "taxonomy 'kv' removed\n"


def test_taxonomy_remove_json_by_the_command(index_dir, list_file, stub):
    from tests.cli_process import run_cli

    run_cli("taxonomy", "add", "kv", list_file, "--offline", "--index", index_dir, check=True)
    removed = json.loads(run_cli("taxonomy", "remove", "kv", "--json", "--index", index_dir, check=True).stdout)
    assert removed["name"] == "kv" and removed["papers"] > 0 and removed["labels_removed"] == 0
