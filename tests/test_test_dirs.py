"""The suite cleans up after runs that were killed: their temporary directories live in memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from tests.conftest import FAILED_FILE, KEEP_FAILED_RUNS, KEEP_FAILED_SECONDS, sweep_stale_test_dirs


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_killed_runs_directory_goes_and_a_running_ones_stays(tmp_path):
    running = tmp_path / f"semsearch-tests-{os.getpid()}-abc"
    killed = tmp_path / f"semsearch-tests-{_dead_pid()}-def"
    unnamed = tmp_path / "semsearch-tests-ghi"  # made before runs put their pid in the name
    unrelated = tmp_path / "something-else"
    for directory in (running, killed, unnamed, unrelated):
        (directory / "idx").mkdir(parents=True)

    removed = sweep_stale_test_dirs(tmp_path)

    assert sorted(removed) == sorted([killed, unnamed])
    assert running.exists() and unrelated.exists()
    assert not killed.exists() and not unnamed.exists()


def test_a_failed_runs_directory_is_kept_for_a_day(tmp_path):
    failed = tmp_path / f"semsearch-tests-{_dead_pid()}-abc"
    failed.mkdir()
    (failed / FAILED_FILE).touch()

    assert sweep_stale_test_dirs(tmp_path) == []
    assert failed.exists()
    assert sweep_stale_test_dirs(tmp_path, now=time.time() + KEEP_FAILED_SECONDS + 60) == [failed]
    assert not failed.exists()


def test_only_the_newest_failed_runs_are_kept(tmp_path):
    """Hand mutations fail run after run: every failed run kept for a day filled /dev/shm (23 GB),
    and the OOM killer took servers and test runs."""
    dirs = []
    for age in range(KEEP_FAILED_RUNS + 2):
        directory = tmp_path / f"semsearch-tests-{_dead_pid()}-{age}"
        directory.mkdir()
        (directory / FAILED_FILE).touch()
        os.utime(directory / FAILED_FILE, (time.time() - 60 * age, time.time() - 60 * age))
        dirs.append(directory)
    removed = sweep_stale_test_dirs(tmp_path)
    assert sorted(removed) == sorted(dirs[KEEP_FAILED_RUNS:]) and all(d.exists() for d in dirs[:KEEP_FAILED_RUNS])
