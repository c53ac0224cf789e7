"""The command in the environment a careless script or a cron job gives it: an output encoding that
is not UTF-8, a locale that is not UTF-8, a stdout on a full disk, stderr closed. Each case is a
real `semsearch` process (the hashing model in place of the real one), as the user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from semsearch.ingest import ingest_jsonl

ROOT = Path(__file__).resolve().parents[1]
TITLE = "Nyströmformer › PanGu-Σ: attention for 😀 caches"  # Latin-1, beyond it, beyond the BMP
PAPER = {"id": "2401.09999", "title": TITLE, "abstract": "Approximating self-attention with landmarks."}


def semsearch(*args, env: dict | None = None, **popen) -> subprocess.CompletedProcess:
    """`semsearch ARGS` in its own process, stdout and stderr as bytes (unless `popen` redirects
    them); `env` added to this process's environment (a value None removes the variable)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    for name, value in (env or {}).items():
        environment.pop(name, None) if value is None else environment.__setitem__(name, value)
    popen.setdefault("capture_output", "stdout" not in popen and "stderr" not in popen)
    return subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", *(a if isinstance(a, bytes) else str(a) for a in args)],
        cwd=ROOT,
        env=environment,
        timeout=300,
        **popen,
    )


@pytest.fixture
def unicode_index(survey_corpus_index, tmp_path, fake_model) -> Path:
    """The survey, the test corpus and one paper whose title no 8-bit encoding holds."""
    papers = tmp_path / "unicode.jsonl"
    papers.write_text(json.dumps(PAPER, ensure_ascii=False) + "\n", encoding="utf-8")
    ingest_jsonl([papers], index_dir=survey_corpus_index, progress=False)
    return survey_corpus_index


# --- output encodings ---------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_any_output_encoding_gets_every_answer_its_characters_escaped_never_a_traceback(unicode_index, encoding):
    """PYTHONIOENCODING=ascii (or a latin-1 locale) crashed `search` and `export` with a
    UnicodeEncodeError, exit 1. A character the output cannot hold is now written as an escape;
    JSON uses JSON's own escapes, so it still reads back as the same title."""
    env = {"PYTHONIOENCODING": encoding}
    table = semsearch("search", "2401.09999", "-k", 1, "--index", unicode_index, env=env)  # the paper, by its id
    assert table.returncode == 0 and b"Traceback" not in table.stderr, table.stderr
    assert b"2401.09999" in table.stdout and b"PanGu-\\u03a3" in table.stdout
    as_json = semsearch("search", "2401.09999", "-k", 1, "--json", "--index", unicode_index, env=env)
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.isascii() and json.loads(as_json.stdout)["results"][0]["title"] == TITLE
    bibtex = semsearch("export", "2401.09999", "--index", unicode_index, env=env)
    assert bibtex.returncode == 0 and b"2401.09999" in bibtex.stdout, bibtex.stderr


@pytest.mark.slow
def test_a_watch_whose_output_cannot_show_its_digest_still_shows_it_after_publishing(survey_only_index):
    """`watch` published, then died on the digest's own "›" under PYTHONIOENCODING=ascii: exit 1,
    no digest shown. Now it shows the digest (escaped) and exits 0."""
    from tests.arxiv_stub import ArxivStub
    from tests.test_watch import _recent

    with ArxivStub(papers=_recent("2612.00001")) as stub:
        ran = semsearch(
            "watch", "--index", survey_only_index, "--no-progress",
            env={"PYTHONIOENCODING": "ascii", "SEMSEARCH_ARXIV_URL": stub.url},
        )  # fmt: skip
    assert ran.returncode == 0 and b"Traceback" not in ran.stderr, ran.stderr
    assert b"2612.00001" in ran.stdout and b"\\u203a" in ran.stdout  # the digest, its "›" escaped
    from semsearch.index import Index

    assert Index.open(survey_only_index).store.get("2612.00001") is not None


@pytest.mark.slow
def test_a_utf8_question_under_a_locale_that_is_not_utf8_is_read_as_utf8(unicode_index):
    """Under `LC_ALL=C PYTHONUTF8=0` Python reads argv byte by byte ("Nystr\\udcc3\\udcb6m"): the
    question was refused as "not valid text". Its bytes are UTF-8, and it is read as such; bytes
    that are no UTF-8 are still refused."""
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": None}
    ran = semsearch("search", "Nyströmformer landmarks", "-k", 1, "--json", "--index", unicode_index, env=env)
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout)["query"] == "Nyströmformer landmarks"
    table = semsearch("search", "Nyströmformer", "--index", unicode_index, env=env)  # a table, in ASCII
    assert table.returncode == 0 and table.stdout.isascii() and b"2401.09999" in table.stdout, table.stderr
    refused = semsearch("search", b"Nystr\xffm", "--index", unicode_index, env=env)
    assert (refused.returncode, refused.stderr) == (
        2,
        b"error: question: is not valid text (a byte that is not UTF-8, or a lone surrogate)\n",
    )


@pytest.mark.slow
def test_a_paper_named_in_utf8_under_a_locale_that_is_not_utf8_is_found_by_related(unicode_index):
    """`related Nyströmformer` under `LC_ALL=C PYTHONUTF8=0` said "no paper 'Nystr\\udcc3\\udcb6mformer'",
    exit 2, while `search` and `export` read the same argument as the UTF-8 it is."""
    env = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": None}
    ran = semsearch("related", "Nyströmformer", "-k", 1, "--json", "--index", unicode_index, env=env)
    assert ran.returncode == 0, ran.stderr
    in_utf8 = semsearch("related", "Nyströmformer", "-k", 1, "--json", "--index", unicode_index)
    assert json.loads(ran.stdout) == json.loads(in_utf8.stdout)  # the same paper's related work


def test_a_command_line_argument_is_read_as_the_utf8_its_bytes_are():
    from semsearch.requests_models import as_utf8

    assert as_utf8("Nystr\udcc3\udcb6m") == "Nyström"
    assert as_utf8(["\udcce\udca3", "plain", 3]) == ["Σ", "plain", 3]
    assert as_utf8("Nystr\udcffm") == "Nystr\udcffm"  # no UTF-8: left to be refused
    assert as_utf8("\ud800") == "\ud800"  # JSON's lone surrogate: not bytes, left to be refused
    assert as_utf8(None) is None


# --- stdout on a full disk ------------------------------------------------------------------------------
FULL_OUTPUT = b"error: could not write the output: no space left on device\n"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full here")
def test_an_output_on_a_full_disk_is_said_as_such_and_what_was_published_stays(unicode_index, tmp_path):
    """`> file` on a full disk (/dev/full stands for one) was "the disk is full; nothing was
    published" after `ingest --json` and `watch` had published, and for `search`, which writes
    nothing. The error is now the output's, and says nothing of the index; its change stays."""
    from semsearch.index import Index
    from tests.arxiv_stub import ArxivStub
    from tests.test_watch import _recent

    papers = tmp_path / "more.jsonl"
    papers.write_text(json.dumps({**PAPER, "id": "2401.09998"}) + "\n", encoding="utf-8")
    with open("/dev/full", "wb") as full, ArxivStub(papers=_recent("2612.00001")) as stub:
        runs = {
            "search": semsearch("search", "landmarks", "--index", unicode_index, stdout=full, stderr=subprocess.PIPE),
            "ingest": semsearch(
                "ingest", "jsonl", papers, "--json", "--no-progress", "--index", unicode_index,
                stdout=full, stderr=subprocess.PIPE,
            ),
            "watch": semsearch(
                "watch", "--no-progress", "--index", unicode_index, env={"SEMSEARCH_ARXIV_URL": stub.url},
                stdout=full, stderr=subprocess.PIPE,
            ),
        }  # fmt: skip
    for command, ran in runs.items():
        assert (command, ran.returncode, ran.stderr.splitlines()[-1:]) == (command, 2, [FULL_OUTPUT.strip()])
        assert b"published" not in ran.stderr.splitlines()[-1] and b"Exception ignored" not in ran.stderr
    store = Index.open(unicode_index).store
    assert store.get("2401.09998") is not None and store.get("2612.00001") is not None  # both published


# --- a file-size limit, a quota -----------------------------------------------------------------------
@pytest.mark.slow
def test_a_file_size_limit_during_ingest_is_said_as_such_and_leaves_no_part_copy(unicode_index, tmp_path):
    """Under `ulimit -f` the copy of the index into staging/ stopped at the limit: "index ... is
    damaged: ... disk I/O error" (it was intact), and the part copy stayed in staging/. The limit is
    now named, as a full disk is, the part copy removed, and the index unchanged."""
    import resource
    import signal

    from semsearch.index import Index
    from tests.conftest import _fingerprint

    database = next(unicode_index.glob("gen-*/papers.db"))
    limit = database.stat().st_size // 2  # the staging copy cannot be made whole

    def limited() -> None:  # as a shell's `ulimit -f` (Python ignores SIGXFSZ too; said for sure)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    papers = tmp_path / "more.jsonl"
    papers.write_text(json.dumps({**PAPER, "id": "2401.09998"}) + "\n", encoding="utf-8")
    before = _fingerprint(unicode_index)
    ran = semsearch("ingest", "jsonl", papers, "--no-progress", "--index", unicode_index, preexec_fn=limited)
    assert ran.returncode == 2 and ran.stderr.decode().splitlines()[-1] == (
        f"error: a file reached the size limit for files (ulimit -f: {limit:,} bytes): there is no room to copy "
        "the index into staging/ to change it (nothing was changed; raise the limit and run again)"
    )
    assert not (unicode_index / "staging").exists() and _fingerprint(unicode_index) == before
    assert Index.open(unicode_index).store.get("2401.09998") is None
    assert semsearch("ingest", "jsonl", papers, "--no-progress", "--index", unicode_index).returncode == 0


@pytest.mark.parametrize(
    ("err", "said"),
    [
        (OSError(28, "No space left on device"), "the disk is full; nothing was published (free space and run"),
        (OSError(27, "File too large"), "a file reached the size limit for files (ulimit -f: "),
        (OSError(122, "Disk quota exceeded"), "the disk quota is used up; nothing was published (free space within"),
    ],
    ids=["ENOSPC", "EFBIG", "EDQUOT"],
)
def test_no_room_to_write_is_one_error_that_names_its_cause(err, said):
    from semsearch.errors import DiskFull, is_disk_full

    assert is_disk_full(err) and str(DiskFull.of(err)).startswith(said)


def test_a_write_that_fails_under_a_file_size_limit_is_taken_for_the_limit(monkeypatch):
    """SQLite names no errno: a write past `ulimit -f` is its "disk I/O error" (or "disk is full")."""
    import sqlite3

    from semsearch import errors

    monkeypatch.setattr(errors, "_file_size_limit", lambda: 8_192_000)
    assert errors.no_room(sqlite3.OperationalError("disk I/O error"))[0] == (
        "a file reached the size limit for files (ulimit -f: 8,192,000 bytes)"
    )
    monkeypatch.setattr(errors, "_file_size_limit", lambda: None)
    assert errors.no_room(sqlite3.OperationalError("disk I/O error")) is None  # no limit: not a question of room


# --- SEMSEARCH_ARXIV_URL ------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("url", ["http://127.0.0.1:99999/api", "http://[::1", "http://127.0.0.1:8310/api/query#frag"])
def test_an_arxiv_url_that_cannot_be_requested_is_refused_at_once_by_each_command_that_asks_arxiv(
    survey_only_index, url
):
    """It was retried for 46 s and blamed on arXiv ("arXiv gave no usable answer after 5 tries"),
    exit 1; a fragment swallowed the query. Now it is the setting that is wrong: one line, exit 2."""
    import time

    for args in (("watch", "--no-progress"), ("ingest", "arxiv", "--id", "2612.20001", "--no-progress")):
        started = time.monotonic()
        ran = semsearch(*args, "--index", survey_only_index, env={"SEMSEARCH_ARXIV_URL": url})
        said = ran.stderr.decode()
        assert ran.returncode == 2 and said.startswith(f"error: SEMSEARCH_ARXIV_URL {url!r}: expected an http(s)")
        assert len(said.splitlines()) == 1 and time.monotonic() - started < 20, (args, said)


# --- stderr closed ------------------------------------------------------------------------------------
def closed_stderr(*args) -> subprocess.CompletedProcess:
    """`semsearch ARGS 2>&-`, as a cron job or a daemon may start it: sys.stderr is None."""
    import shlex

    command = shlex.join([sys.executable, "-m", "tests.cli_process", "--", *map(str, args)])
    return subprocess.run(
        ["sh", "-c", f"exec {command} 2>&-"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_with_stderr_closed_a_writer_works_and_an_error_never_goes_to_stdout(unicode_index, tmp_path):
    """With fd 2 closed every writer stopped at once (`None.isatty()` in the progress check), exit 1,
    nothing stored; and an error line went to stdout. Now it is as with 2>/dev/null."""
    from semsearch.index import Index

    papers = tmp_path / "more.jsonl"
    papers.write_text(json.dumps({**PAPER, "id": "2401.09998"}) + "\n", encoding="utf-8")
    ingested = closed_stderr("ingest", "jsonl", papers, "--index", unicode_index)  # progress: "when on a terminal"
    assert (ingested.returncode, ingested.stdout) == (0, b"")
    assert Index.open(unicode_index).store.get("2401.09998") is not None
    found = closed_stderr("search", "2401.09998", "-k", 1, "--index", unicode_index)
    assert found.returncode == 0 and b"2401.09998" in found.stdout
    refused = closed_stderr("search", "", "--json", "--index", unicode_index)
    assert (refused.returncode, refused.stdout) == (2, b"")  # "error: question: has no text" was on stdout


@pytest.mark.slow
def test_with_stdout_closed_a_command_works_as_with_dev_null_and_no_file_of_the_index_takes_fd_1(
    unicode_index, tmp_path
):
    """`semsearch ... >&-` ended every command in a traceback, exit 1 (the final flush of a None
    stdout), after an ingest had published; and the first file opened took the free fd 1: the
    index's .lock, where anything written to stdout would have gone. Now it is as with >/dev/null."""
    import shlex

    papers = tmp_path / "more.jsonl"
    papers.write_text(json.dumps({**PAPER, "id": "2401.09998"}) + "\n", encoding="utf-8")
    probe = tmp_path / "probe.py"  # the command, then what fd 1 is at its end
    probe.write_text(
        "import os, sys\n"
        "from tests.cli_process import main\n"
        "try:\n    main()\nexcept SystemExit as done:\n    code = done.code\n"
        "print(os.readlink('/proc/self/fd/1'), code, file=sys.stderr)\n",
        encoding="utf-8",
    )
    for args in (("ingest", "jsonl", papers), ("search", "2401.09998"), ("info",)):
        command = shlex.join([sys.executable, str(probe), "--", *map(str, args), "--index", str(unicode_index)])
        ran = subprocess.run(
            ["sh", "-c", f"exec {command} >&-"], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
            stderr=subprocess.PIPE, timeout=300,
        )  # fmt: skip
        said = ran.stderr.decode().splitlines()
        assert b"Traceback" not in ran.stderr and said[-1] == f"{os.devnull} 0", (args, said)


# --- a reader that stops reading ----------------------------------------------------------------------
@pytest.mark.slow
def test_output_cut_short_by_its_reader_exits_0_however_long_it_was(unicode_index, tmp_path):
    """`search --batch … --json | head -c 1000` exited 1 (click took the broken pipe first) while a
    short output cut by `head -1` exited 0: under `set -o pipefail` a script failed on `| head`."""
    questions = tmp_path / "questions.txt"
    questions.write_text("".join(f"caches and decoding {n}\n" for n in range(60)), encoding="utf-8")
    for args in (("search", "--batch", questions, "-k", 100, "--json"), ("search", "caches")):
        reader = subprocess.Popen(
            [sys.executable, "-m", "tests.cli_process", "--", *map(str, args), "--index", str(unicode_index)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        reader.stdout.read(100)
        reader.stdout.close()  # as `head -c 100` does
        stderr = reader.stderr.read()
        assert (reader.wait(300), stderr) == (0, b""), args
