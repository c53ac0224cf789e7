"""The errors' own words and codes (semsearch/errors.py), in-process: each message is the one form
every door repeats, so it is pinned here whole, with the exit code and HTTP status it carries."""

from __future__ import annotations

import errno
import sqlite3

import pytest
import requests

from semsearch import errors
from semsearch.errors import (
    DiskFull,
    IndexBusy,
    IndexDamaged,
    IndexUnwritable,
    NotFound,
    OutOfResources,
    OutputUnwritable,
    PartialFailure,
    SemsearchError,
    Unreachable,
    network_reason,
    no_room,
    run_script,
)


def test_each_error_carries_its_exit_code_and_http_status():
    codes = {
        cls.__name__: (cls.exit_code, cls.http_status)
        for cls in (SemsearchError, PartialFailure, Unreachable, IndexBusy, OutOfResources, NotFound,
                    IndexDamaged, IndexUnwritable, DiskFull, OutputUnwritable)
    }  # fmt: skip
    assert codes == {
        "SemsearchError": (2, 400), "PartialFailure": (1, 400), "Unreachable": (1, 502), "IndexBusy": (1, 503),
        "OutOfResources": (1, 503), "NotFound": (2, 404), "IndexDamaged": (2, 503), "IndexUnwritable": (2, 503),
        "DiskFull": (2, 507), "OutputUnwritable": (2, 400),
    }  # fmt: skip


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
def test_too_many_open_files_is_said_as_such(code):
    said = OutOfResources.of(OSError(code, "Too many open files"))
    assert isinstance(said, OutOfResources)
    assert str(said) == "too many open files; raise the limit (`ulimit -n`) and run again"


@pytest.mark.parametrize("err", [OSError(errno.ENOENT, "No such file"), ValueError("EMFILE"), OSError("no errno")])
def test_another_error_is_not_out_of_resources(err):
    assert OutOfResources.of(err) is None


def test_damage_is_said_in_one_form_and_keeps_what_is_damaged_without_where():
    damaged = IndexDamaged.at("/data/idx", "papers.db is missing")
    assert str(damaged) == "index at /data/idx is damaged: papers.db is missing"
    assert damaged.damage == "papers.db is missing"
    alone = IndexDamaged("the vectors do not match the papers")
    assert alone.damage == "the vectors do not match the papers" == str(alone)
    assert IndexDamaged("long form", damage="").damage == ""  # given, even empty, it is kept


def test_an_unwritable_index_says_where_when_known_and_that_searching_still_works():
    assert str(IndexUnwritable.at("/ro/idx", "read-only file system")) == (
        "cannot write to the index at /ro/idx (read-only file system); it can still be searched"
    )
    assert str(IndexUnwritable.at(None, "permission denied")) == (
        "cannot write to the index (permission denied); it can still be searched"
    )


@pytest.mark.parametrize(
    "err, cause, remedy",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full", "free space and run again"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is used up",
         "free space within the quota and run again"),
        (sqlite3.OperationalError("database or disk is full"), "the disk is full", "free space and run again"),
        (OSError("145263 requested and 15328 written"), "the disk is full", "free space and run again"),
    ],
    ids=["ENOSPC", "EDQUOT", "sqlite-full", "numpy-short-write"],
)  # fmt: skip
def test_no_room_names_its_cause_and_what_to_do(monkeypatch, err, cause, remedy):
    monkeypatch.setattr(errors, "_file_size_limit", lambda: None)
    assert no_room(err) == (cause, remedy)
    assert errors.is_disk_full(err)


def test_a_file_too_large_without_a_known_limit_names_the_limit_in_words(monkeypatch):
    monkeypatch.setattr(errors, "_file_size_limit", lambda: None)
    assert no_room(OSError(errno.EFBIG, "File too large")) == (
        "a file reached the size limit for files (ulimit -f: its limit)",
        "raise the limit and run again",
    )


def test_with_a_size_limit_sqlite_s_full_disk_is_taken_for_the_limit(monkeypatch):
    monkeypatch.setattr(errors, "_file_size_limit", lambda: 1_048_576)
    assert no_room(sqlite3.OperationalError("database or disk is full")) == (
        "a file reached the size limit for files (ulimit -f: 1,048,576 bytes)",
        "raise the limit and run again",
    )
    # An error with an errno is not SQLite's: a plain I/O error stays what it is.
    assert no_room(OSError(errno.EIO, "disk I/O error")) is None


@pytest.mark.parametrize(
    "err",
    [OSError(errno.EIO, "Input/output error"), ValueError("1 requested and 2 writtenx"), RuntimeError("disk error")],
)
def test_other_failures_are_not_a_lack_of_room(monkeypatch, err):
    monkeypatch.setattr(errors, "_file_size_limit", lambda: 4096)
    assert no_room(err) is None and not errors.is_disk_full(err)


def test_the_file_size_limit_is_the_soft_limit_or_none_without_one(monkeypatch):
    import resource

    asked = []

    def limits(which):
        asked.append(which)
        return soft, 10**12

    monkeypatch.setattr(resource, "getrlimit", limits)
    soft = 65_536
    assert errors._file_size_limit() == 65_536
    soft = resource.RLIM_INFINITY
    assert errors._file_size_limit() is None
    assert asked == [resource.RLIMIT_FSIZE, resource.RLIMIT_FSIZE]


def test_disk_full_says_nothing_was_published_and_how_to_resume_or_drop_the_staged_work(monkeypatch):
    said = (
        "the disk is full; nothing was published (free space and run again: it resumes any work already "
        "staged; delete the index's staging/ to drop that)"
    )
    assert str(DiskFull()) == said
    assert str(DiskFull("as given")) == "as given"
    monkeypatch.setattr(errors, "_file_size_limit", lambda: None)
    assert str(DiskFull.of(RuntimeError("not about room"))) == said  # called for one: said as a full disk
    assert str(DiskFull.of(OSError(errno.EDQUOT, "quota"))) == (
        "the disk quota is used up; nothing was published (free space within the quota and run again: it "
        "resumes any work already staged; delete the index's staging/ to drop that)"
    )


def test_output_that_cannot_be_written_is_said_in_the_system_s_words_lowercased():
    assert str(OutputUnwritable(OSError(errno.ENOSPC, "No space left on device"))) == (
        "could not write the output: no space left on device"
    )
    assert str(OutputUnwritable(OSError("Broken Pipe"))) == "could not write the output: broken pipe"


def _connection_error(text: str, url: str | None = "https://export.arxiv.org/api/query?x=1"):
    request = requests.Request("GET", url).prepare() if url else None
    return requests.ConnectionError(text, request=request)


@pytest.mark.parametrize(
    "text, phrase",
    [
        ("Failed to resolve: [Errno -2] Name or service not known", "cannot resolve export.arxiv.org"),
        ("socket.gaierror: getaddrinfo failed", "cannot resolve export.arxiv.org"),
        ("NameResolutionError", "cannot resolve export.arxiv.org"),
        ("[Errno 111] Connection Refused", "export.arxiv.org refused the connection"),
    ],
)
def test_a_connection_failure_says_which_kind(text, phrase):
    said = network_reason(_connection_error(text))
    assert said.startswith(phrase)
    if phrase.startswith("cannot resolve"):
        assert said == "cannot resolve export.arxiv.org (no network, or DNS is down)"


def test_a_failure_without_a_request_names_the_server_in_general():
    assert network_reason(_connection_error("reset", url=None)) == (
        "cannot connect to the server (the connection failed or was dropped)"
    )
    assert network_reason(requests.Timeout("slow")) == "the server did not answer in time"


def test_an_http_error_without_an_answer_is_said_in_its_own_words():
    assert network_reason(requests.HTTPError("500 Server Error: for url")) == "500 Server Error: for url"


def test_any_other_failure_is_its_text_on_one_line_cut_at_a_word_within_200_characters():
    assert network_reason(OSError("a\n  b\tc")) == "a b c"
    assert network_reason(RuntimeError()) == "RuntimeError"
    exactly = "x" * 200
    assert network_reason(RuntimeError(exactly)) == exactly
    assert network_reason(RuntimeError(exactly + "y")) == exactly + " …"  # one over: cut (no space: at 200)
    long = " ".join(["word"] * 60)  # 299 characters
    said = network_reason(RuntimeError(long))
    assert said == " ".join(["word"] * 40) + " …" and len(said) == 201


def test_a_script_s_refusal_ends_as_one_line_and_its_exit_code(capsys):
    def refused():
        raise Unreachable("no network\n  at all")

    with pytest.raises(SystemExit) as ended:
        run_script(refused)
    assert ended.value.code == 1 and ended.value.__suppress_context__
    assert capsys.readouterr() == ("", "error: no network at all\n")
    with pytest.raises(SystemExit) as ended:
        run_script(lambda: (_ for _ in ()).throw(SemsearchError("no index at /x")))
    assert ended.value.code == 2
    assert capsys.readouterr().err == "error: no index at /x\n"
    ran = []
    run_script(lambda: ran.append(1))  # a script that succeeds just ends
    assert ran == [1] and capsys.readouterr() == ("", "")
