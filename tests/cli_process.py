"""`python -m tests.cli_process [--pause-at POINT --marker FILE] -- semsearch args...`

Runs the real `semsearch` command in its own process, with the hashing model in place of the
sentence-transformers one (so it starts in a second, not ten). `run_here` runs it in the test's own
process instead (no second spent starting and importing): the `cli` fixture in conftest uses one in
the quick loop and the other in the full suite. With --pause-at it stops at a
point of the write, creates FILE and waits there forever, for the test to kill it with SIGKILL:

- batch:   after the first batch of papers has been embedded and committed to staging;
- publish: after staging was renamed to its generation, before CURRENT names it;
- search:  inside a search (the `search` MCP tool's call, say), as a long one would be;
- export:  holding the writer's lock, before the encoder's export is made; this one goes on once
           the test removes FILE.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

from semsearch import embeddings
from tests.conftest import HashingModel

ROOT = Path(__file__).resolve().parents[1]


class Ran(NamedTuple):
    """What a run of the command gave: `code, out, err = ran`, or `ran.returncode` etc."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, cwd: Path = ROOT, timeout: float = 300, check: bool = False) -> Ran:
    """`semsearch ARGS` in a process of its own, as a user runs it (the hashing model in place of the
    real one): (exit code, stdout, stderr), exit code 0 required with `check`. Whatever it answers,
    it never prints a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", *map(str, args)],
        cwd=cwd,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=timeout,
    )
    # Decoded as written: text mode would turn a patch's CRLF line ends into LF.
    stdout, stderr = done.stdout.decode("utf-8"), done.stderr.decode("utf-8")
    assert "Traceback" not in stderr, stderr
    if check:
        assert done.returncode == 0, stderr
    return Ran(done.returncode, stdout, stderr)


def run_here(*args, cwd: Path | None = None, check: bool = False) -> Ran:
    """`semsearch ARGS` called in this process, as `run_cli` runs it in another (`check` as there):
    the caller has put the hashing model in place (the `fake_model` fixture). The library writes to
    whatever sys.stdout and sys.stderr are at the time, so both are taken here."""
    from semsearch.cli import main as semsearch

    out, err = io.StringIO(), io.StringIO()
    before = Path.cwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = semsearch([str(a) for a in args])
    finally:
        os.chdir(before)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    if check:
        assert code == 0, err.getvalue()
    return Ran(code, out.getvalue(), err.getvalue())


def python_prints(code: str) -> str:
    """What a fresh Python process running `code` prints (stripped): for checks of what a
    process imports or builds, which the test's own process, having imported everything, cannot
    tell. A crash fails the test with its stderr."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def pause_here(marker: Path) -> None:
    marker.write_text(str(os.getpid()))
    while True:
        time.sleep(60)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pause-at", choices=["batch", "publish", "search", "export"])
    parser.add_argument("--marker", type=Path)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    model = HashingModel()
    embeddings._load = lambda name: model

    if options.pause_at == "batch":
        from semsearch.store import Store

        put_embeddings = Store.put_embeddings

        def put_then_pause(self, pending, vectors):
            put_embeddings(self, pending, vectors)
            self.commit()
            pause_here(options.marker)

        Store.put_embeddings = put_then_pause
    elif options.pause_at == "publish":
        from semsearch import index

        real_replace = os.replace

        class PausingOs:  # the index module's `os`, pausing right after the generation's rename
            def __getattr__(self, name):
                return getattr(os, name)

            @staticmethod
            def replace(source, target):
                real_replace(source, target)
                if Path(source).name == "staging":
                    pause_here(options.marker)

        index.os = PausingOs()
    elif options.pause_at == "search":
        from semsearch.service import Service

        Service.search = lambda self, *args, **kwargs: pause_here(options.marker)
    elif options.pause_at == "export":
        from semsearch.ingest import Ingest

        export_encoder = Ingest.export_encoder

        def pause_then_export(self):
            options.marker.write_text(str(os.getpid()))
            while options.marker.exists():
                time.sleep(0.05)
            export_encoder(self)

        Ingest.export_encoder = pause_then_export

    from semsearch.cli import run as semsearch  # the command's own entry, as `semsearch` runs it

    args = options.args[1:] if options.args[:1] == ["--"] else options.args
    semsearch(args)  # exits
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
