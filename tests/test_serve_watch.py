"""`semsearch serve --watch-every` and digest writing, in real processes against the arXiv stub.

Run as a module, this file is also the process under test: `python -m tests.test_serve_watch
[--pause-in-digest MARKER] -- semsearch args...` runs the real `semsearch` command with the hashing
model (patched at import, so `serve --workers N`'s spawned processes, which import this module
again, have it too). --pause-in-digest stops a watch while its digest is being written (written
and flushed to a temp file, not yet renamed), creates MARKER and waits to be killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from semsearch import embeddings
from tests.conftest import HashingModel

ROOT = Path(__file__).resolve().parents[1]
WAIT = 60.0  # seconds any one thing may take, generous for two shared cores


def _use_the_hashing_model() -> None:
    model = HashingModel()
    embeddings._load = lambda name: model


if __name__ in ("__main__", "__mp_main__"):  # the process under test, or one of its spawned workers
    _use_the_hashing_model()


# --- the process under test --------------------------------------------------------------------------
def _pause_in_digest(marker: Path) -> None:
    from semsearch import index, watch

    real_fsync, real_write = os.fsync, watch.write_atomically

    class PausingOs:  # `write_atomically`'s `os`: the digest's temp file is on disk, not yet renamed
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def fsync(fd):
            real_fsync(fd)
            marker.write_text(str(os.getpid()))
            while True:
                time.sleep(60)

    def pausing(target, data):  # the digest's write only, not the other files the watch writes
        index.os = PausingOs()
        real_write(target, data)

    watch.write_atomically = pausing


def _slow_digest(marker: Path) -> None:
    from semsearch import watch

    real_save = watch.save_digest

    def slow(*args, **kwargs):  # the watch's last page is in: it saves its digest, then publishes
        marker.write_text(str(os.getpid()))
        time.sleep(4)
        return real_save(*args, **kwargs)

    watch.save_digest = slow


def main(argv: list[str]) -> int:
    if argv[:1] == ["--slow-digest"]:
        _slow_digest(Path(argv[1]))
        argv = argv[2:]
    if argv[:1] == ["--pause-in-digest"]:
        _pause_in_digest(Path(argv[1]))
        argv = argv[2:]
    from semsearch.cli import main as semsearch

    return semsearch(argv[1:] if argv[:1] == ["--"] else argv)


# --- the tests ---------------------------------------------------------------------------------------
pytestmark = pytest.mark.slow  # real processes


def semsearch_process(
    *args, env: dict, log: Path, pause_in_digest: Path | None = None, slow_digest: Path | None = None
) -> subprocess.Popen:
    command = [sys.executable, "-m", "tests.test_serve_watch"]
    if slow_digest:
        command += ["--slow-digest", str(slow_digest)]
    if pause_in_digest:
        command += ["--pause-in-digest", str(pause_in_digest)]
    return subprocess.Popen(
        [*command, "--", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        start_new_session=True,  # its own process group: the workers it starts end with it
    )


def watching_server(stub, port: int, index: Path, every: str, *args, log: Path, env: dict | None = None, **options):
    """`semsearch serve --port PORT --index INDEX --watch-every EVERY ARGS` watching the arXiv stub,
    its stderr in `log`; `env` adds to the stub's address, `options` as `semsearch_process` takes them."""
    return semsearch_process(
        "serve", "--port", port, "--index", index, "--watch-every", every, *args,
        env={"SEMSEARCH_ARXIV_URL": stub.url, **(env or {})}, log=log, **options,
    )  # fmt: skip


def refused_at_start(*args, env: dict, log: Path) -> tuple[int | str, str]:
    """A `semsearch` process that should refuse its arguments at start: its exit code ("still
    running" if it went on instead) and what it wrote on stderr."""
    process = semsearch_process(*args, env=env, log=log)
    try:
        code = process.wait(WAIT)
    except subprocess.TimeoutExpired:
        code = "still running"
    finally:
        stop(process)
    return code, log.read_text()


def stop(process: subprocess.Popen) -> None:
    """End the process and the workers it started (its process group): politely, then for sure."""
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(15)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(port: int, path: str, **params) -> dict | None:
    """The JSON at `path`, or None while the server is not answering yet."""
    from urllib.parse import urlencode

    url = f"http://127.0.0.1:{port}{path}" + (f"?{urlencode(params)}" if params else "")
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return json.loads(answer.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def until(check, what: str, process: subprocess.Popen, log: Path, seconds: float = WAIT):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, f"the server ended: {log.read_text()[-2000:]}"
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {seconds} s; the server said: {log.read_text()[-2000:]}")


def watch_state(port: int) -> dict:
    health = get(port, "/api/health")
    return (health or {}).get("watch") or {}


def found(port: int, arxiv_id: str) -> bool:
    answer = get(port, "/api/search", q="evicting tokens key-value cache", k=20)
    return bool(answer) and arxiv_id in [r["id"] for r in answer["results"]]


@pytest.fixture
def stub():
    from tests.arxiv_stub import ArxivStub
    from tests.test_watch import _recent

    with ArxivStub(papers=_recent("2612.00001")) as running:
        yield running


def test_serve_watch_every_makes_a_new_arxiv_paper_searchable(survey_only_index, stub, tmp_path):
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "2s", log=log)
    try:
        until(lambda: found(port, "2612.00001"), "the stub's paper searchable", server, log)
        state = until(lambda: (w := watch_state(port)).get("last_success") and w, "a watch done", server, log)
        assert state["every"] == 2 and state["last_error"] is None and state["pid"] == server.pid
        assert any("cat:cs.CL" in r["search_query"][0] for r in stub.requests)
    finally:
        stop(server)
    assert "Traceback" not in log.read_text()


def test_serve_workers_report_a_failing_watch_and_its_recovery(survey_only_index, stub, tmp_path):
    from tests.arxiv_stub import Step

    stub.script = [Step(500)] * 100_000  # arXiv answers 500 until the script is cleared
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "2s", "--workers", 2, log=log)
    try:
        failing = until(lambda: (w := watch_state(port)).get("last_error") and w, "last_error in health", server, log)
        assert failing["state"] in ("failing", "running") and "did not answer" in failing["last_error"]
        assert failing["pid"] == server.pid  # the parent watches; a worker answered from its status file
        assert not found(port, "2612.00001")
        stub.script.clear()  # arXiv is back
        recovered = until(
            lambda: (w := watch_state(port)).get("last_success") and w["last_error"] is None and w,
            "a later turn succeeding", server, log,
        )  # fmt: skip
        assert recovered["failures"] >= 1
        until(lambda: found(port, "2612.00001"), "the stub's paper searchable in the workers", server, log)
    finally:
        stop(server)
    said = log.read_text()
    failures = [line for line in said.splitlines() if "the watch failed" in line]
    assert failures and all("did not answer" in line and "next try at" in line for line in failures)
    assert "Traceback" not in said


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize(
    "given",
    [["--token", ""], ["--token", "  "], ["--token=\t"], []],
    ids=["empty", "blank", "tab", "SEMSEARCH_TOKEN-empty"],
)
def test_serve_refuses_an_empty_token_at_start_for_one_worker_and_for_many(survey_only_index, tmp_path, workers, given):
    """`--token "$UNSET"` passes ''. It left writing open to anyone in `--workers N` (each worker
    read "no token") and closed with one worker, while the note said "closed" in both: now neither
    starts, and an empty SEMSEARCH_TOKEN (typer reads it as not set) is refused the same way."""
    env = {} if given else {"SEMSEARCH_TOKEN": ""}
    said = refused_at_start(
        "serve", "--host", "0.0.0.0", "--port", free_port(), "--workers", workers, *given,
        "--index", survey_only_index, env=env, log=tmp_path / "server.log",
    )  # fmt: skip
    assert said == (
        2,
        "error: --token is empty (is the variable you passed set?): give a token, or neither --token nor "
        "SEMSEARCH_TOKEN\n",
    )


@pytest.mark.parametrize(
    "command",
    [["serve", "--watch-every", "", "--port", str(free_port())], ["watch", "--every", ""]],
    ids=["serve", "watch"],
)
def test_an_empty_interval_is_refused_not_read_as_no_schedule(survey_only_index, tmp_path, command):
    """`--watch-every "$UNSET"` passes '': the server started and served with no watch at all, and
    `watch --every ''` watched once and ended, neither saying a word. Now one line, exit 2."""
    env = {"SEMSEARCH_ARXIV_URL": "http://127.0.0.1:9/api/query"}
    said = refused_at_start(*command, "--index", survey_only_index, env=env, log=tmp_path / "run.log")
    assert said == (2, "error: cannot read the interval '' (e.g. 30m, 24h, 1d)\n")


@pytest.mark.parametrize("token", ["s3cret\n", " s3cret", "s3\x1bcret"], ids=["line-break", "space", "escape"])
def test_serve_refuses_a_token_no_authorization_header_can_carry(survey_only_index, tmp_path, token):
    """A token read with its file's line break started a server that answered every write 403: no
    client can send a line break (or another control character, or white space at an end) in a
    header. It is refused at start in one line, exit 2."""
    code, said = refused_at_start(
        "serve", "--port", free_port(), "--token", token, "--index", survey_only_index, env={},
        log=tmp_path / "server.log",
    )  # fmt: skip
    assert code == 2 and said.startswith("error: --token has white space at an end or a control character"), said
    assert len(said.splitlines()) == 1 and "s3" not in said  # the token is not repeated


def test_a_watch_killed_while_writing_its_digest_leaves_no_damaged_digest(survey_only_index, stub, tmp_path):
    marker, log = tmp_path / "paused", tmp_path / "watch.log"
    env = {"SEMSEARCH_ARXIV_URL": stub.url}
    watcher = semsearch_process(
        "watch", "--index", survey_only_index, "--no-progress", env=env, log=log, pause_in_digest=marker
    )
    try:
        until(marker.exists, "the watch writing its digest", watcher, log)
        os.killpg(watcher.pid, signal.SIGKILL)
        watcher.wait(WAIT)
    finally:
        stop(watcher)
    from semsearch.watch import scan_digests

    assert scan_digests(index_dir=survey_only_index) == ([], [])  # nothing under a digest's name
    rerun = semsearch_process("watch", "--index", survey_only_index, "--no-progress", env=env, log=log)
    try:
        assert rerun.wait(WAIT) == 0, log.read_text()
    finally:
        stop(rerun)
    listed, skipped = scan_digests(index_dir=survey_only_index)
    assert [d["papers"] for d in listed] == [1] and skipped == []


def test_ctrl_c_stops_the_servers_watch_at_its_next_page_and_the_next_watch_resumes(survey_only_index, stub, tmp_path):
    """Ctrl-C while the watch worked ended in an abort ("terminate called without an active
    exception", exit 134: the interpreter left its thread inside the encoder) and a status file still
    saying it was running (a week of use). The server now stops its watch at the next page first."""
    from tests.arxiv_stub import Step

    stub.script = [Step(stall=4)]  # the first page comes slowly: Ctrl-C lands while the watch runs
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "1h", log=log)
    try:
        until(lambda: watch_state(port).get("running"), "the watch running", server, log)
        os.killpg(server.pid, signal.SIGINT)
        code = server.wait(WAIT)
    finally:
        stop(server)
    said = log.read_text()
    assert code in (0, 130) and "terminate called" not in said and "Traceback" not in said, said
    assert "the watch failed" not in said  # stopped, not failed
    assert "the watch was stopped mid-run; the next watch resumes its window" in said  # and said so
    said_stopped_and_the_next_watch_resumes(survey_only_index, stub, log)


def said_stopped_and_the_next_watch_resumes(index_dir, stub, log) -> None:
    """A watch stopped mid-run: its status says so, and the next watch reads its window (the stub's
    paper 2612.00001 lands)."""
    from semsearch.index import Index

    status = json.loads((index_dir / "watch-status.json").read_text())
    assert status["alive"] is False and status["running"] is False and status["stopped"] is True
    rerun = semsearch_process(
        "watch", "--index", index_dir, "--no-progress", env={"SEMSEARCH_ARXIV_URL": stub.url}, log=log
    )
    try:
        assert rerun.wait(WAIT) == 0, log.read_text()
    finally:
        stop(rerun)
    assert Index.open(index_dir).store.get("2612.00001") is not None


def test_watch_every_watches_again_says_when_and_stops_on_ctrl_c(survey_only_index, stub, tmp_path):
    """`semsearch watch --every 2s` as a user runs it: a watch, the time of the next (it said
    nothing, so a terminal left watching could not tell when it would run again), another watch
    there, and Ctrl-C ends it in one line, exit 130, the index as the watches left it."""
    log = tmp_path / "watch.log"
    watcher = semsearch_process(
        "watch", "--every", "2s", "--index", survey_only_index, "--no-progress",
        env={"SEMSEARCH_ARXIV_URL": stub.url}, log=log,
    )  # fmt: skip
    try:
        said = until(lambda: log.read_text().count("next watch at") >= 2 and log.read_text(), "two turns", watcher, log)
        os.killpg(watcher.pid, signal.SIGINT)
        code = watcher.wait(WAIT)
    finally:
        stop(watcher)
    assert re.search(r"next watch at \d+ \w{3} \d{4} \d\d:\d\d:\d\d UTC \(in 2s; Ctrl-C stops\)", said), said
    assert code == 130 and "Traceback" not in log.read_text(), log.read_text()
    assert log.read_text().strip().splitlines()[-1].startswith("interrupted"), log.read_text()
    from semsearch.index import Index

    assert Index.open(survey_only_index).store.get("2612.00001") is not None


def test_stopping_the_server_while_its_watch_finishes_does_not_say_it_was_cut_short(survey_only_index, stub, tmp_path):
    """Stopped once the watch's last page was in (saving its digest, publishing), the watch ran to its
    end and was published as done, yet the server said "the watch was stopped mid-run; the next
    watch resumes its window": there was nothing to resume."""
    marker, port, log = tmp_path / "saving", free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "1h", log=log, slow_digest=marker)
    try:
        until(marker.exists, "the watch saving its digest", server, log)
        os.killpg(server.pid, signal.SIGINT)
        code = server.wait(WAIT)
    finally:
        stop(server)
    said = log.read_text()
    status = json.loads((survey_only_index / "watch-status.json").read_text())
    assert code in (0, 130) and "Traceback" not in said, said
    assert status["runs"] == 1 and status["last_success"] and status["stopped"] is True  # the watch was done
    assert "stopped mid-run" not in said, said


def test_stopping_the_server_while_arxiv_fails_does_not_wait_out_the_retries(survey_only_index, stub, tmp_path):
    """Ctrl-C while arXiv answered 503: the server sat out its watch's retries (3, 6, 12, 24 s of
    backoff: 40 s) before it exited, then logged "the watch failed ...; next try at ...", a try that
    never came. The waits end when the server stops."""
    from tests.arxiv_stub import Step

    stub.script = [Step(503)] * 100
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "1h", log=log, env={"SEMSEARCH_ARXIV_DELAY": "3"})
    try:
        until(lambda: len(stub.requests) >= 2, "the watch retrying", server, log)
        os.killpg(server.pid, signal.SIGINT)
        started = time.monotonic()
        code = server.wait(WAIT)
        took = time.monotonic() - started
    finally:
        stop(server)
    said = log.read_text()
    assert code in (0, 130) and took < 10 and "Traceback" not in said, (took, said)
    assert "the watch failed" not in said and "the watch was stopped mid-run" in said, said
    assert len(stub.requests) == 2  # not asked again once stopped


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_stopping_the_server_while_arxiv_stalls_ends_it_at_once(survey_only_index, stub, tmp_path, signum):
    """Ctrl-C or SIGTERM while the watch waited on an arXiv answer that did not come: the server
    sat out the request's timeout (30 s by default) before it exited. The wait is cut when the
    server stops; it exits as it does unwatched (0), and the next watch resumes the window."""
    from tests.arxiv_stub import Step

    stub.script = [Step(stall=20)]
    port, log = free_port(), tmp_path / "server.log"
    server = subprocess.Popen(  # the command itself (its SIGTERM handled as `semsearch` handles it)
        [sys.executable, "-m", "tests.cli_process", "--", "serve", "--port", str(port), "--index",
         str(survey_only_index), "--watch-every", "1h"],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log.open("w"), start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "SEMSEARCH_ARXIV_URL": stub.url, "SEMSEARCH_ARXIV_TIMEOUT": "20"},
    )  # fmt: skip
    try:
        until(lambda: stub.requests and watch_state(port).get("running"), "the watch asking arXiv", server, log)
        os.killpg(server.pid, signum)
        started = time.monotonic()
        code = server.wait(WAIT)
        took = time.monotonic() - started
    finally:
        stop(server)
    said = log.read_text()
    assert code == 0 and took < 5 and "Traceback" not in said, (code, took, said)
    assert "the watch failed" not in said and "the watch was stopped mid-run" in said, said
    assert not (survey_only_index / "digests").exists() or not list((survey_only_index / "digests").iterdir())
    stub.script = []
    said_stopped_and_the_next_watch_resumes(survey_only_index, stub, log)


def test_ctrl_c_as_the_server_starts_stops_its_watch_as_it_stops_it_later(survey_only_index, stub, tmp_path):
    """The watch began before the server took Ctrl-C as its own (uvicorn's handlers): Ctrl-C in the
    server's first second, its watch already asking arXiv, said "interrupted" (exit 130) and ended the
    watch's thread where it stood, its status left saying it was alive and running (a flaky test
    showed it). The watch now begins once the server has started, and stops as at any later time."""
    from tests.arxiv_stub import Step

    stub.script = [Step(stall=20)]
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "1h", log=log)
    try:
        deadline = time.monotonic() + WAIT
        while not stub.requests and time.monotonic() < deadline and server.poll() is None:
            time.sleep(0.01)
        server.send_signal(signal.SIGINT)  # at once: the server may still be starting
        code = server.wait(WAIT)
    finally:
        stop(server)
    said = log.read_text()
    assert code == 0 and "Traceback" not in said and "interrupted" not in said, (code, said)
    assert "the watch was stopped mid-run; the next watch resumes its window" in said, said
    status = json.loads((survey_only_index / "watch-status.json").read_text())
    assert status["alive"] is False and status["running"] is False and status["stopped"] is True


def test_serve_watch_every_prints_no_third_party_warning(survey_only_index, stub, tmp_path):
    """Most `serve --watch-every` starts printed urllib3's "DependencyWarning: SOCKS support in
    urllib3 requires the installation of optional dependencies: specifically, PySocks" (two lines
    on stderr, as if something had to be installed): `requests`, first imported in the watch's
    thread, lost the filter that silences it to the server's imports running meanwhile."""
    port, log = free_port(), tmp_path / "server.log"
    server = watching_server(stub, port, survey_only_index, "1h", log=log)
    try:
        until(lambda: watch_state(port).get("last_success"), "a watch done", server, log)
    finally:
        stop(server)
    said = log.read_text()
    assert "Warning" not in said and "Traceback" not in said, said


def test_serve_workers_never_report_another_servers_watch_as_their_own(survey_only_index, stub, tmp_path):
    """Two servers watching one index (a new one started before the old one is stopped) write the
    same status file: the workers of the first reported the second's watch as their own, and once
    the second stopped, "stopped" (its pid) for as long as the first's turn (a day with 24h)."""
    port, log = free_port(), tmp_path / "first.log"
    first = watching_server(stub, port, survey_only_index, "1h", "--workers", 2, log=log)
    second = None
    try:
        until(lambda: watch_state(port).get("last_success"), "the first server's watch done", first, log)
        other, other_log = free_port(), tmp_path / "second.log"
        second = watching_server(stub, other, survey_only_index, "1h", log=other_log)
        until(lambda: watch_state(other).get("last_success"), "the second server's watch done", second, other_log)
        stop(second)
        seen = watch_state(port)
        assert seen["state"] == "unknown" and f"another server's watch (pid {second.pid})" in seen["last_error"]
        assert seen.get("pid") != second.pid
    finally:
        stop(first)
        if second is not None:
            stop(second)


def test_the_workers_of_a_server_killed_outright_end_with_it(survey_only_index, tmp_path):
    """`kill -9` of `serve --workers 2` (the OOM killer does the same) left its workers serving the
    port: a new server could not start ("address already in use") until they were found and killed
    by hand. They now end within seconds of it, and the port is free for the next server."""
    port, log = free_port(), tmp_path / "server.log"
    server = semsearch_process("serve", "--port", port, "--workers", 2, "--index", survey_only_index, env={}, log=log)
    try:
        until(lambda: get(port, "/api/health"), "the workers answering", server, log)
        server.kill()  # the server alone, not its process group: its workers are left as they were
        server.wait(WAIT)

        def workers_gone() -> bool:
            try:
                os.killpg(server.pid, 0)  # any process left in the server's group
            except ProcessLookupError:
                return True
            return False

        deadline = time.monotonic() + WAIT
        while not workers_gone() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert workers_gone(), f"a worker still serves port {port}"
        from semsearch.server import check_port_free

        check_port_free("127.0.0.1", port)  # a new server can start (else: refused, "address already in use")
    finally:
        stop(server)
        with contextlib.suppress(ProcessLookupError):  # workers the test found still serving
            os.killpg(server.pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
