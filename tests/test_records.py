"""Records checked at the door: one schema for a JSON Lines record, only http(s) links on a paper,
and a reader whose cursor never passes a line it neither handed over nor reported."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semsearch.ingest import BATCH
from semsearch.paper import Paper, web_url
from semsearch.requests_models import NOT_UNICODE
from semsearch.sources.jsonl import Cursor, MalformedLine, paper_from_record, read_jsonl
from tests.cli_process import run_cli
from tests.conftest import examples

ROOT = Path(__file__).resolve().parents[1]

# A line as the arXiv metadata snapshot writes it (facts and shape; the abstract is ours).
SNAPSHOT_LINE = {
    "id": "0704.0001",
    "submitter": "Pavel Nadolsky",
    "authors": "C. Bal\\'azs, E. L. Berger, P. M. Nadolsky, C.-P. Yuan",
    "title": "Calculation of prompt diphoton production cross sections at Tevatron and\n  LHC energies",
    "comments": "37 pages, 15 figures; published version",
    "journal-ref": "Phys.Rev.D76:013009,2007",
    "doi": "10.1103/PhysRevD.76.013009",
    "report-no": "ANL-HEP-PR-07-12",
    "categories": "hep-ph",
    "license": None,
    "abstract": "  A short abstract written for this test.\n",
    "versions": [
        {"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"},
        {"version": "v2", "created": "Tue, 24 Jul 2007 20:10:27 GMT"},
    ],
    "update_date": "2008-11-13",
    "authors_parsed": [
        ["Balázs", "C.", ""],
        ["Berger", "E. L.", ""],
        ["Nadolsky", "P. M.", ""],
        ["Yuan", "C. -P.", ""],
    ],
}


def test_a_real_snapshot_line_still_reads_whole():
    paper = paper_from_record(SNAPSHOT_LINE)
    assert (paper.id, paper.year, paper.published, paper.updated) == ("0704.0001", 2007, "2007-04-02", "2008-11-13")
    assert paper.authors[:2] == ["C. Balázs", "E. L. Berger"] and paper.arxiv_categories == ["hep-ph"]
    assert paper.title.startswith("Calculation of prompt") and "\n" not in paper.title
    # Every shape accepted before stays accepted: numeric ids, author and category lists, nulls.
    other = paper_from_record(
        {"id": 7, "title": "T", "authors": ["A", "B"], "categories": ["cs.CL"], "update_date": None, "doi": None}
    )
    assert (other.id, other.authors, other.arxiv_categories) == ("7", ["A", "B"], ["cs.CL"])


@pytest.mark.parametrize(
    "field, value, named",
    [
        ("update_date", [1, 2], "update_date"),
        ("update_date", {"y": 2020}, "update_date"),
        ("update_date", ["2020"], "update_date"),
        ("update_date", "not-a-date", "update_date"),  # compared as a date by --since: it must be one
        ("update_date", "2020-13-45", "update_date"),
        ("update_date", "20240101", "update_date"),
        ("update_date", "2024-W01-1", "update_date"),
        ("update_date", "2024-01-01 nonsense", "update_date"),
        ("versions", [{"created": 5}], "versions[0].created"),
        ("versions", "v1", "versions"),
        ("title", 12, "title"),
        ("id", [1], "id"),
        ("id", True, "id"),
        ("authors", ["A", 3], "authors[1]"),
        ("authors_parsed", [["Last"], "First"], "authors_parsed[1]"),
        ("categories", {"cs": "CL"}, "categories"),
        ("abstract", ["text"], "abstract"),
        ("journal-ref", 2007, "journal-ref"),
        ("embedding", [0.1, "x"], "embedding[1]"),
        ("url", "javascript:alert(document.domain)", "url"),
    ],
)
def test_a_field_of_the_wrong_type_is_a_malformed_line_naming_line_and_field(tmp_path, field, value, named):
    path = tmp_path / "p.jsonl"
    good = {"id": "2401.00001", "title": "Fine"}
    path.write_text(json.dumps(good) + "\n" + json.dumps({"id": "x-2", "title": "Odd", field: value}) + "\n")
    with pytest.raises(MalformedLine) as raised:
        list(read_jsonl(path))
    message = str(raised.value)
    assert f"p.jsonl:2: field {named!r}" in message and "\n" not in message
    skipped: list[int] = []
    assert [p.id for p in read_jsonl(path, skip_malformed=True, skipped=skipped)] == ["2401.00001"]
    assert skipped == [2]


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(document.domain)",
        "JavaScript:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "//evil.example/x",
        "https:///no-host",
        "https://:8080/no-host",  # a port and no host
        "ftp://example.org/paper.pdf",
        "https://arxiv.org@evil.example/abs/2306.00978",  # shown as arXiv's, goes to evil.example
        "https://arxiv.org:x@evil.example/",
        # http(s) in form, with what no link may hold: white space (also Unicode's), controls, DEL.
        "https://example.org/a paper",
        "https://example.org/a\u00a0paper",
        "https://example.org/\u2028",
        "https://exa\tmple.org/",
        "https://example.org/\x00",
        "https://example.org/\x1f",
        "https://example.org/\x7f",
    ],
)
def test_only_http_and_https_links_reach_a_paper(url):
    assert web_url(url) is None
    with pytest.raises(ValueError, match="field 'url'"):
        paper_from_record({"id": "x-1", "title": "T", "url": url})
    # Every other source builds a Paper: whatever it was given, the paper carries no such link.
    assert Paper(id="x-1", title="T", url=url).url is None
    assert Paper(id="x-1", title="T", url="https://example.org/p").link() == "https://example.org/p"


def test_the_survey_and_list_sources_drop_links_that_are_not_web_links():
    from semsearch.sources.curated import parse_list
    from semsearch.sources.survey import survey_facts, survey_from_facts

    readme = (
        "## Methods\n"
        "- **A paper with a bad code link** [[Paper](javascript:alert(1))] [[Code](javascript:alert(2))] "
        "[[pdf](https://arxiv.org/abs/2401.00001)] [[Site](https://example.org/site)]\n"
    )
    listed = parse_list(readme)
    assert listed.papers[0].links == ["https://example.org/site"]
    facts = survey_facts(readme)  # what `taxonomy refresh` keeps in the index
    assert (facts["papers"][0]["url"], facts["papers"][0]["code"]) == (None, None)
    survey = survey_from_facts(facts)
    assert survey.papers[0].url is None and survey.papers[0].link() == "https://arxiv.org/abs/2401.00001"


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
FIELDS = [
    "id", "title", "abstract", "authors", "authors_parsed", "categories", "update_date", "versions", "doi",
    "journal-ref", "url", "embedding", "embedding_model", "other",
]  # fmt: skip


RECORDS = st.dictionaries(st.sampled_from(FIELDS), JSON_VALUES | st.sampled_from(["2401.00001", "A title", "x"]))


# A few dozen examples in the quick loop, the full search in the slow suite.
@pytest.mark.parametrize("examples", [40, pytest.param(400, marks=pytest.mark.slow)])
def test_any_record_is_a_paper_or_a_malformed_line_naming_its_field(examples):
    checked = settings(max_examples=examples, deadline=200, suppress_health_check=[HealthCheck.too_slow])
    checked(given(RECORDS)(_a_paper_or_a_malformed_line_naming_its_field))()


def _a_paper_or_a_malformed_line_naming_its_field(record: dict) -> None:
    try:
        paper = paper_from_record(record)
    except ValueError as err:
        message = str(err)
        assert "\n" not in message
        named = message.startswith("field '") and message.split("'")[1].split("[")[0].split(".")[0] in record
        assert named or message in ("missing 'id'", "missing 'title'"), message
        return
    assert isinstance(paper, Paper) and paper.id and paper.title
    assert paper.url is None or web_url(paper.url) == paper.url


@settings(max_examples=examples(150), deadline=500, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.sampled_from(["good", "bad", "blank", "junk", "deep"]), max_size=12))
def test_the_reader_never_passes_a_line_it_neither_handed_over_nor_reported(tmp_path_factory, kinds):
    """Read with a cursor until the first malformed line stops it, then again from the cursor: the
    second read stops on that same line (by number), or goes on past lines already handed over."""
    lines = {
        "good": json.dumps({"id": "2401.00001", "title": "Fine"}),
        "bad": json.dumps({"id": "2401.00002", "title": "Odd", "update_date": [1, 2]}),
        "blank": "",
        "junk": "{not json",
        "deep": "[" * 5000 + "]" * 5000,
    }
    path = tmp_path_factory.mktemp("reader") / "p.jsonl"
    path.write_text("".join(lines[k] + "\n" for k in kinds))
    first_bad = next((n for n, k in enumerate(kinds, start=1) if k in ("bad", "junk", "deep")), None)
    cursor = Cursor()
    handed = []
    try:
        for paper in read_jsonl(path, cursor=cursor):
            handed.append(paper)
        assert first_bad is None
    except MalformedLine as err:
        assert f"p.jsonl:{first_bad}:" in str(err)
        with pytest.raises(MalformedLine, match=rf"p.jsonl:{first_bad}:"):
            list(read_jsonl(path, cursor=cursor))  # the rerun stops on the same line
    assert len(handed) == (kinds.count("good") if first_bad is None else kinds[: first_bad - 1].count("good"))


# --- real processes ----------------------------------------------------------------------------
def semsearch(*args, cwd: Path, timeout: float = 120) -> tuple[int, str, str]:
    return run_cli(*args, cwd=cwd, timeout=timeout)


@pytest.mark.slow  # a real process
def test_ingest_a_bad_typed_line_in_a_real_process(tmp_path):
    source = tmp_path / "papers.jsonl"
    rows = [
        {"id": "2401.00001", "title": "Fine first"},
        {"id": "2401.00002", "title": "Odd date", "update_date": [1, 2]},
        {"id": "2401.00003", "title": "Odd version", "versions": [{"created": 5}]},
        {"id": "x-4", "title": "Script link", "url": "javascript:alert(document.domain)"},
        {"id": "2401.00005", "title": "Fine last"},
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = tmp_path / "idx"
    code, _, err = semsearch("ingest", "jsonl", source, "--index", index, cwd=tmp_path)
    assert code == 2 and err.strip().splitlines() == [err.strip()]
    assert "papers.jsonl:2: field 'update_date'" in err
    # The rerun does not resume past the line that stopped the first run: it stops there again.
    code, _, err = semsearch("ingest", "jsonl", source, "--index", index, cwd=tmp_path)
    assert code == 2 and "papers.jsonl:2: field 'update_date'" in err
    code, out, err = semsearch("ingest", "jsonl", source, "--skip-malformed", "--json", "--index", index, cwd=tmp_path)
    assert code == 0, err
    report = json.loads(out)
    assert report["skipped"] == 3 and report["skipped_lines"] == [f"{source}:{n}" for n in (2, 3, 4)]
    assert report["papers"] == 2
    assert f"skipped 3 malformed lines: {source}:2, {source}:3, {source}:4" in err
    code, out, _ = semsearch("search", "script link", "--json", "--index", index, cwd=tmp_path)
    assert code == 0 and "javascript" not in out


# a colour, the bell, NUL, CSI, a right-to-left override, a zero-width space, a line separator
CONTROLS = "\x1b[31m\x07\x00\x9b\u202e\u200b\u2028"
CONTROL_CHARACTERS = ("\x1b", "\x07", "\x00", "\x9b", "\u202e", "\u200b", "\u2028")


def test_no_control_character_reaches_a_papers_fields():
    """From a PDF's text or a hostile record, a title held escape sequences that coloured the
    terminal (and `\x03`, in 36 titles of the dev data): a paper's text never keeps them."""
    paper = Paper(id="2401.00001", title=f"Cache{CONTROLS}eviction", abstract="Tabs\tand\nlines stay.",
                  authors=[f"A{CONTROLS}B"], venue=f"Venue{CONTROLS}")  # fmt: skip
    for text in (paper.title, *paper.authors, paper.venue):
        assert not any(c in text for c in CONTROL_CHARACTERS), repr(text)
    assert paper.title == "Cache [31m eviction" and paper.authors == ["A [31m B"]
    assert paper.abstract == "Tabs\tand\nlines stay."  # white space is not a control here


@pytest.mark.slow  # a real process: what a terminal and a BibTeX file get
def test_escape_sequences_in_a_record_never_reach_the_terminal_or_bibtex(tmp_path):
    source = tmp_path / "papers.jsonl"
    record = {"id": "2401.00001", "title": f"Cache{CONTROLS}eviction", "abstract": f"Key value{CONTROLS} cache."}
    source.write_text(json.dumps(record) + "\n")
    index = tmp_path / "idx"
    assert semsearch("ingest", "jsonl", source, "--index", index, cwd=tmp_path)[0] == 0
    for args in (("search", "cache eviction"), ("export", "2401.00001"), ("search", "cache", "--json")):
        code, out, err = semsearch(*args, "--index", index, cwd=tmp_path)
        assert code == 0, err
        assert "eviction" in out and not any(c in out for c in CONTROL_CHARACTERS), (args, repr(out))
    source.write_text(json.dumps({"id": f"evil{CONTROLS}", "title": "Cache eviction", "abstract": "A cache."}) + "\n")
    code, out, err = semsearch("ingest", "jsonl", source, "--index", index, cwd=tmp_path)  # an id, as a title was
    assert (code, out) == (2, "") and "papers.jsonl:1: field 'id': holds a control" in err


def _killed_at_its_first_batch(given: list[str], cwd, **env: str) -> None:
    """`semsearch GIVEN...` in a process of its own, killed (SIGKILL) once it reaches its first batch."""
    marker = cwd / "paused"
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.cli_process", "--pause-at", "batch", "--marker", str(marker), "--", *given],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline and writer.poll() is None:
            time.sleep(0.05)
        assert marker.exists(), "the writer never reached its first batch"
    finally:
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()


@pytest.mark.slow
def test_a_run_killed_part_way_resumes_and_still_stops_on_the_bad_line_by_its_number(tmp_path):
    """A writer killed after its first batch leaves its place in the file; the rerun resumes there
    and names the bad line further on by its line number (not a byte offset)."""
    source = tmp_path / "big.jsonl"
    bad_line = BATCH + 40
    with source.open("w") as out:
        for n in range(1, BATCH + 80):
            record = {"id": f"2402.{n:05d}", "title": f"Paper {n} on caches"}
            if n == bad_line:
                record["versions"] = [{"created": 5}]
            out.write(json.dumps(record) + "\n")
    _killed_at_its_first_batch(["ingest", "jsonl", str(source), "--index", str(tmp_path / "idx")], tmp_path)
    code, _, err = semsearch("ingest", "jsonl", source, "--index", tmp_path / "idx", cwd=tmp_path)
    assert "resuming" in err
    assert code == 2 and f"big.jsonl:{bad_line}: field 'versions[0].created'" in err


@pytest.mark.slow  # real processes
def test_an_ingest_filtered_by_two_categories_resumes_in_the_next_process(tmp_path):
    """The place an interrupted `ingest jsonl --categories cs.CL,cs.LG` left was keyed by the
    categories as a Python set prints them, in an order each process's string hashing chose: the
    rerun (another order) read the file again from its first line, the place left behind."""
    source = tmp_path / "big.jsonl"
    with source.open("w") as out:
        for n in range(1, BATCH + 80):
            out.write(
                json.dumps({"id": f"2402.{n:05d}", "title": f"Paper {n} on caches", "categories": "cs.CL"}) + "\n"
            )
    given = ["ingest", "jsonl", str(source), "--categories", "cs.CL,cs.LG", "--index", str(tmp_path / "idx")]
    _killed_at_its_first_batch(given, tmp_path, PYTHONHASHSEED="1")  # prints {'cs.LG', 'cs.CL'}
    rerun = subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", *given, "--no-progress"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "2"},  # prints {'cs.CL', 'cs.LG'}
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert rerun.returncode == 0 and "Traceback" not in rerun.stderr, rerun.stderr
    assert "resuming" in rerun.stderr and "read 591 papers" not in rerun.stderr, rerun.stderr


def _nested(depth: int) -> str:
    return "[" * depth + "\n"


@pytest.mark.parametrize(
    "command, refusal",
    [
        (["classify", "--batch"], 'deep.jsonl:1: expected a JSON object with "title" and "abstract"'),
        (["labels", "import"], 'deep.jsonl:1: expected a JSON object with "id" and "category"'),
        (["eval", "search", "--queries"], "deep.jsonl:1: expected"),
    ],
)
def test_json_nested_past_any_parser_is_a_malformed_line_not_a_traceback(tmp_path, capsys, command, refusal):
    from semsearch.cli import main

    deep = tmp_path / "deep.jsonl"
    deep.write_text(_nested(100_000))
    code = main([*map(str, command), str(deep), "--index", str(tmp_path / "none")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and refusal in err and err.count("\n") == 1


def test_ingest_of_json_nested_past_any_parser_stops_on_the_line_or_skips_it(tmp_path, capsys):
    from semsearch.cli import main

    source = tmp_path / "papers.jsonl"
    source.write_text(_nested(100_000) + json.dumps({"id": "2401.00001", "title": "Fine"}) + "\n")
    code = main(["ingest", "jsonl", str(source), "--index", str(tmp_path / "idx"), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"{source}:1: maximum recursion depth exceeded" in err and err.count("\n") == 1


@pytest.mark.parametrize("reader", ["ingest", "classify"])
def test_a_compressed_file_cut_short_is_a_file_that_cannot_be_read(tmp_path, capsys, reader, fake_model):
    """gzip raises EOFError at the cut, which the CLI took for Ctrl-D: "interrupted", exit 130."""
    import gzip

    from semsearch.cli import main

    lines = "".join(
        json.dumps({"id": f"2401.{n:05d}", "title": f"Paper {n}", "abstract": "a " * 40}) + "\n" for n in range(2000)
    )
    whole = gzip.compress(lines.encode())
    cut = tmp_path / "papers.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    index = tmp_path / "idx"
    command = (
        ["ingest", "jsonl", str(cut), "--no-progress"] if reader == "ingest" else ["classify", "--batch", str(cut)]
    )
    code = main([*command, "--index", str(index)])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"error: cannot read {cut}: the compressed file is damaged or ends early")
    if reader == "ingest":  # as before a malformed line: the papers read before the cut are kept
        from semsearch.index import Index

        assert 0 < Index.open(index).manifest.count < 2000


def test_a_byte_order_mark_before_the_first_line_is_not_part_of_the_record(tmp_path, capsys):
    from semsearch.cli import main
    from semsearch.sources.jsonl import first_record

    papers = tmp_path / "papers.jsonl"
    papers.write_text("\ufeff" + json.dumps({"id": "2401.00001", "title": "Fine", "update_date": "2024-01-15"}) + "\n")
    assert [p.id for p in read_jsonl(papers)] == ["2401.00001"] and first_record(papers)["id"] == "2401.00001"
    batch = tmp_path / "batch.jsonl"
    batch.write_text("\ufeff" + json.dumps({"id": "a", "title": "Pruning heads", "abstract": "We prune heads."}) + "\n")
    code = main(["classify", "--batch", str(batch), "--index", str(tmp_path / "none")])
    assert "expected a JSON object" not in capsys.readouterr().err and code == 2  # read; then: no index here


@pytest.mark.parametrize("paper_id, shown", [(["a"], "list"), ({"$x": 1}, "dict"), (7, "int")])
def test_a_batch_line_whose_id_is_not_a_string_is_refused_not_echoed(tmp_path, capsys, paper_id, shown):
    from semsearch.cli import main

    batch = tmp_path / "batch.jsonl"
    batch.write_text(json.dumps({"id": paper_id, "title": "T", "abstract": "A"}) + "\n")
    code = main(["classify", "--batch", str(batch), "--index", str(tmp_path / "none")])
    assert (code, capsys.readouterr().err) == (2, f"error: {batch}:1: id: expected a string, got {shown}\n")


def test_a_title_that_reads_as_rich_markup_is_printed_as_text(tmp_path, capsys, fake_model):
    """The tables are drawn by rich, which read "[/dim]" in a title as a closing tag and failed
    (a MarkupError traceback, exit 1): titles are data, printed as they are."""
    from tests.test_cli import run

    hostile = "Quantization [/dim] closes [bold]early[/bold] [link=javascript:alert(1)]x"
    source = tmp_path / "papers.jsonl"
    source.write_text(
        json.dumps({"id": "2401.00001", "title": hostile, "abstract": "weights in four bits"}) + "\n"
        + json.dumps({"id": "2401.00002", "title": "Other [/red] paper", "abstract": "weights in four bits too"}) + "\n"
    )  # fmt: skip
    index = tmp_path / "idx"
    assert run(capsys, "ingest", "jsonl", source, "--index", index)[0] == 0
    for args in (("search", "quantization weights", "--explain"), ("related", "2401.00002")):
        code, out, _ = run(capsys, *args, "--index", index)
        assert code == 0 and "[/dim] closes [bold]early[/bold]" in " ".join(out.split()), out


@pytest.mark.parametrize(
    "paper_id", ["evil\x1b[2J\x1b[Hfake", "two\nlines", "back\rover", "zero\u200bwidth", "bidi\u202eevil", "tab\tid"]
)
def test_an_id_that_would_move_a_terminal_or_hide_is_a_malformed_line(tmp_path, capsys, paper_id):
    """Titles were made printable, ids kept as given: an id cleared the screen of whoever searched,
    or faked a line of the table (an attacker's pass)."""
    from tests.test_cli import run

    source = tmp_path / "papers.jsonl"
    source.write_text(json.dumps({"id": paper_id, "title": "Evicting cached tokens", "abstract": "A cache."}) + "\n")
    code, out, err = run(capsys, "ingest", "jsonl", source, "--index", tmp_path / "idx")
    assert (code, out) == (2, "") and f"{source}:1: field 'id': holds a control, line-break or invisible" in err
    assert len(err.splitlines()) == 1


def test_an_arxiv_id_in_full_width_digits_is_that_arxiv_id_and_an_overlong_title_is_refused():
    paper = paper_from_record({"id": "\uff12\uff13\uff10\uff16.\uff10\uff10\uff19\uff17\uff18", "title": "AWQ"})
    assert (paper.id, paper.url) == ("2306.00978", "https://arxiv.org/abs/2306.00978")
    assert paper_from_record({"id": "x", "title": "t" * 1000}).title == "t" * 1000
    with pytest.raises(ValueError, match="field 'title': longer than 1,000 characters"):
        paper_from_record({"id": "x", "title": "t" * 1001})


def test_a_title_ending_in_a_backslash_is_printed_once(tmp_path, capsys, fake_model):
    from tests.test_cli import run

    source = tmp_path / "papers.jsonl"
    source.write_text(json.dumps({"id": "2401.00001", "title": "Caches\\", "abstract": "Caches."}) + "\n")
    assert run(capsys, "ingest", "jsonl", source, "--index", tmp_path / "idx")[0] == 0
    code, out, _ = run(capsys, "search", "caches", "--index", tmp_path / "idx")
    assert code == 0 and "Caches\\ " in out and "Caches\\\\" not in out, out


def test_a_lone_surrogate_in_a_record_is_text_that_cannot_be_shown_not_a_traceback(tmp_path, capsys, fake_model):
    """JSON may spell a lone surrogate ("\\ud800"), which no UTF-8 text holds: storing the paper and
    looking up the id were UnicodeEncodeError tracebacks (exit 1, nothing kept)."""
    from tests.test_cli import run

    source = tmp_path / "papers.jsonl"
    source.write_text(
        '{"id": "2501.00010", "title": "Before", "abstract": "x"}\n'
        '{"id": "2501.00009", "title": "Lone \\ud800 surrogate", "abstract": "Distillation \\udfff."}\n'
        '{"id": "2501.00011", "title": "After", "abstract": "y"}\n'
    )
    index = tmp_path / "idx"
    code, _, err = run(capsys, "ingest", "jsonl", source, "--index", index)
    assert code == 0, err
    code, out, _ = run(capsys, "search", "lone surrogate distillation", "--json", "--index", index)
    assert code == 0 and "Lone surrogate" in [hit["title"] for hit in json.loads(out)["results"]]
    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "2501.00010\\ud800", "category": "Speculative Decoding"}\n')
    code, _, err = run(capsys, "labels", "import", labels, "--index", index)
    assert code == 2 and err == f"error: {labels}:1: id: {NOT_UNICODE}\n"
    assert err.count("\n") == 1
    code, _, err = run(capsys, "related", "2501.00010\ud800", "--index", index)
    assert code == 2 and err.startswith("error: id: ") and len(err.splitlines()) == 1


@pytest.mark.parametrize(
    "args",
    [
        ("labels", "import", "LABELS"),
        ("label", "2306.00978", "Weight-Only Quantization"),
        ("taxonomy", "--json"),  # it showed the survey's bare tree, exit 0
    ],
    ids=["labels import", "label", "taxonomy"],
)
def test_a_label_for_an_index_that_is_not_there_is_refused_and_makes_nothing(tmp_path, capsys, args):
    """A mistyped --index met an empty new index: 'imported 0 labels', exit 0, and a directory made."""
    from tests.test_cli import run

    labels = tmp_path / "labels.jsonl"
    labels.write_text('{"id": "2306.00978", "category": "Weight-Only Quantization"}\n')
    missing = tmp_path / "typo"
    code, out, err = run(capsys, *(str(labels) if a == "LABELS" else a for a in args), "--index", missing)
    assert (
        code == 2
        and err
        == f"error: no index at {missing} (build one with `semsearch ingest survey --index {missing}`, "
        "or pass --index DIR)\n"
    )
    assert not missing.exists() and out == ""


def test_the_taxonomy_without_an_index_named_or_built_is_the_surveys_own(tmp_path, capsys, monkeypatch):
    from tests.test_cli import run

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SEMSEARCH_INDEX", raising=False)
    code, out, _ = run(capsys, "taxonomy", "--json")
    assert code == 0 and [node["name"] for node in json.loads(out)][:1] == ["Model-Centric Methods"]
    assert not (tmp_path / "index").exists()


def test_a_line_ends_only_at_a_line_feed_whatever_separators_its_text_holds(tmp_path, cli, corpus_index):
    """JSON allows U+2028, U+0085 and form feeds raw inside a string, and a question may hold them;
    Python's `splitlines` broke lines there: a valid record was refused, and a file of two questions
    got four answers, matched to the wrong lines."""
    from semsearch.sources.jsonl import read_records

    odd = "\u2028\u2029\x85\x0c\x0b\x1c\x1d\x1e"
    records = tmp_path / "records.jsonl"
    lines = [json.dumps({"id": "a", "title": f"Pruning{odd} heads"}, ensure_ascii=False), json.dumps({"id": "b"})]
    records.write_text("\r\n".join(lines) + "\r\n", encoding="utf-8")
    assert [r["id"] for r in read_records(records, lambda r: r, "a record")] == ["a", "b"]

    questions = tmp_path / "questions.txt"
    questions.write_text("kv cache\u2028eviction\nquantization\x1cfour bits\n", encoding="utf-8")
    answers = cli("search", "--batch", questions, "-k", "1", "--index", corpus_index, check=True).stdout
    assert len(answers.splitlines()) == 2


@pytest.mark.parametrize(
    "text, lines, kept",
    [
        ("", [], []),
        ("a\n\n", ["a", ""], ["a\n", "\n"]),
        ("a\r\nb\r\n", ["a", "b"], ["a\r\n", "b\r\n"]),
        ("a\r\nb", ["a", "b"], ["a\r\n", "b"]),
        ("a\rb\u2028c\x0c", ["a\rb\u2028c\x0c"], ["a\rb\u2028c\x0c"]),  # a lone CR is no line end to git
    ],
)
def test_split_lines_counts_lines_as_git_does(text, lines, kept):
    from semsearch.paper import split_lines

    assert split_lines(text) == lines and split_lines(text, keepends=True) == kept
    assert "".join(kept) == text


def test_an_at_sign_after_a_links_host_is_part_of_the_link():
    """Only a user name before the host is refused ("https://arxiv.org@evil.example"): an "@" in a
    path, a query or a fragment is a link as any other (a Medium author's page, a mail in a query)."""
    for url in ("https://medium.com/@user/post", "https://example.org?from=a@b.example", "https://example.org#me@here"):
        assert web_url(url) == url
        assert paper_from_record({"id": "x-1", "title": "T", "url": url}).url == url


@pytest.mark.parametrize(
    "character", ["\u061c", "\u200b", "\u200e", "\u200f", "\u2028", "\u2029", "\u202e", "\u2066", "\ufeff"]
)
def test_each_invisible_or_line_breaking_character_alone_is_a_space_in_a_title(character):
    """A title holding only one of them, and no other control, kept it (`printable` looks once for
    any; str.split takes Unicode's line separators for white space and hid the gap)."""
    assert Paper(id="2401.00001", title=f"Cache{character}eviction").title == "Cache eviction"


# --- what a malformed line says, in-process (a mutation pass: only the field's name was checked) ---
@pytest.mark.parametrize(
    "record, message",
    [
        ([1], "expected a JSON object, got a list"),
        ("text", "expected a JSON object, got a string"),
        (None, "expected a JSON object, got null"),
        ({"id": "x", "title": 1.5}, "field 'title': expected a string, got a number"),
        ({"id": True, "title": "T"}, "field 'id': expected a string, got a boolean"),
        ({"id": "x", "title": "T", "authors": ["A", None]},
         "field 'authors[1]': expected a string or a list of strings, got null"),
        ({"id": "x", "title": "T", "authors_parsed": "Last, First"},
         "field 'authors_parsed': expected a list of [last, first, suffix] string lists, got a string"),
        ({"id": "x", "title": "T", "categories": {"cs": "CL"}},
         "field 'categories': expected a space-separated string or a list of strings, got an object"),
        ({"id": "x", "title": "T", "update_date": "20240101"},
         "field 'update_date': expected a date string (YYYY-MM-DD), got '20240101'"),
        ({"id": "x", "title": "T", "url": "ftp://example.org/p"},
         "field 'url': only http and https links to a host (no user name) are stored, got 'ftp://example.org/p'"),
    ],
)  # fmt: skip
def test_a_malformed_record_is_named_by_its_field_what_it_should_hold_and_what_it_holds(record, message):
    from semsearch.sources.jsonl import check_record

    with pytest.raises(ValueError) as raised:
        check_record(record)
    assert str(raised.value) == message


def test_a_malformed_line_that_stops_a_run_says_how_to_go_past_it(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "2401.00001", "title": "Fine"}\n{"id": "2401.00002"}\n')
    with pytest.raises(MalformedLine) as raised:
        list(read_jsonl(path))
    assert str(raised.value) == f"{path}:2: missing 'title' (use --skip-malformed to continue past such lines)"


def test_since_keeps_the_papers_of_that_day_and_after(tmp_path):
    path = tmp_path / "p.jsonl"
    days = {"2401.00001": "2024-02-29", "2401.00002": "2024-03-01", "2401.00003": "2024-03-02"}
    path.write_text("".join(json.dumps({"id": i, "title": i, "update_date": d}) + "\n" for i, d in days.items()))
    assert [p.id for p in read_jsonl(path, since="2024-03-01")] == ["2401.00002", "2401.00003"]


def test_the_reading_bar_counts_the_files_bytes_from_where_a_resumed_run_starts(tmp_path, capsys):
    """On stderr, on the line below the ingest's own bar; a .gz file's size is not what is read
    (the text is larger), so its bar counts bytes without a total."""
    import gzip

    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"id": f"2401.{n:05d}", "title": f"Paper {n}"}) + "\n" for n in range(1, 21)))
    size = path.stat().st_size
    assert len(list(read_jsonl(path, progress=True))) == 20
    drawn = capsys.readouterr()
    assert not drawn.out and "reading p.jsonl: 100%" in drawn.err and f"{size}/{size}" in drawn.err
    assert drawn.err.startswith("\n") and "\x1b[A" in drawn.err  # position 1: below the ingest's bar
    cursor = Cursor()
    records = read_jsonl(path, cursor=cursor)
    next(records), next(records)
    records.close()
    assert len(list(read_jsonl(path, progress=True, cursor=Cursor(cursor.offset)))) == 18
    drawn = capsys.readouterr().err
    assert "reading p.jsonl:  10%" in drawn and f"{size}/{size}" in drawn and "B/s" in drawn
    packed = tmp_path / "p.jsonl.gz"
    packed.write_bytes(gzip.compress(path.read_bytes()))
    assert len(list(read_jsonl(packed, progress=True))) == 20
    drawn = capsys.readouterr().err
    assert f"reading p.jsonl.gz: {size}B" in drawn and "%" not in drawn


def test_a_records_year_is_its_arxiv_ids_then_its_first_versions_then_its_last_update_and_its_source_is_jsonl():
    def year(**fields):
        return paper_from_record({"title": "T", **fields}).year

    assert year(id="2305.00001", update_date="2024-06-01") == 2023  # submitted in 2023, updated since
    first = [{"created": "Mon, 2 Apr 2007 19:18:42 GMT"}]
    assert year(id="x-1", versions=first, update_date="2009-01-01") == 2007
    assert year(id="x-1", versions=first) == 2007
    assert year(id="x-1", update_date="2009-01-01") == 2009
    assert year(id="x-1") is None
    assert paper_from_record({"id": "x-1", "title": "T"}).sources == ["jsonl"]
