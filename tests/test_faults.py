"""Faults with real processes: writers killed with SIGKILL at the worst moments, two writers at once,
a broken generation, a full disk, while a server keeps answering."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from semsearch.index import Index, current_generation
from semsearch.ingest import BATCH, ingest_jsonl

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # real processes


def write_papers(path: Path, prefix: str, n: int) -> Path:
    with path.open("w") as out:
        for i in range(n):
            title = f"Paper {prefix} {i} on caches and decoding"
            out.write(
                json.dumps({"id": f"{prefix}.{i:05d}", "title": title, "abstract": f"{title}, in detail."}) + "\n"
            )
    return path


def writer(
    *args, pause_at: str | None = None, marker: Path | None = None, stderr: Path | None = None
) -> subprocess.Popen:
    """`semsearch ARGS` in a process of its own; its stderr into the file `stderr` if given (to be
    read while it runs), else a pipe."""
    command = [sys.executable, "-m", "tests.cli_process"]
    if pause_at:
        command += ["--pause-at", pause_at, "--marker", str(marker)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    errors = stderr.open("w") if stderr else subprocess.PIPE
    try:
        return subprocess.Popen(
            [*command, "--", *map(str, args)], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=errors, text=True
        )
    finally:
        if stderr:
            errors.close()  # the process has its own copy


def wait_for(marker: Path, process: subprocess.Popen, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not marker.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "the writer never reached its pause point"
        time.sleep(0.05)


def health_once(client, done, seconds: float = 30) -> dict:
    """/api/health as soon as `done(health)` holds (the server looks every 50 ms; a loaded machine
    may take longer than a fixed sleep allows)."""
    deadline = time.monotonic() + seconds
    while True:
        health = client.get("/api/health").json()
        if done(health) or time.monotonic() > deadline:
            return health
        time.sleep(0.05)


def generations(index_dir: Path) -> list[str]:
    return sorted(p.name for p in index_dir.glob("gen-*"))


@pytest.fixture
def served(tmp_path, fake_model):
    """An index of 20 papers and a server following it."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    index_dir = tmp_path / "idx"
    ingest_jsonl([write_papers(tmp_path / "first.jsonl", "2401", 20)], index_dir=index_dir, progress=False)
    with TestClient(create_app(index_dir=index_dir, reload_seconds=0.05)) as client:
        yield index_dir, client


def answers(client) -> None:
    response = client.get("/api/search", params={"q": "caches decoding", "k": 5})
    assert response.status_code == 200 and len(response.json()["results"]) == 5


@pytest.mark.parametrize(
    ("stop", "code", "said"), [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")]
)
def test_ctrl_c_or_sigterm_mid_ingest_says_the_work_is_kept_and_a_second_run_resumes_it(tmp_path, stop, code, said):
    """SIGTERM (`kill`, `timeout`, a service manager stopping a `watch --every`) ended a writer without a
    word (exit -15, the batch it was embedding dropped): it stops as Ctrl-C does, and says so."""
    new = write_papers(tmp_path / "new.jsonl", "2402", BATCH + 30)  # two batches
    marker, index_dir = tmp_path / "paused", tmp_path / "idx"
    process = writer("ingest", "jsonl", new, "--index", index_dir, "--no-progress", pause_at="batch", marker=marker)
    wait_for(marker, process)
    process.send_signal(stop)
    out, err = process.communicate(timeout=30)
    assert process.returncode == code and "Traceback" not in err
    assert err.strip().splitlines() == [
        f"{said}; the papers read so far are kept, with any already embedded: the next run resumes from them, and "
        "the next command that writes to the index publishes them (delete staging/ to drop them)"
    ]

    again = writer("ingest", "jsonl", new, "--index", index_dir, "--no-progress")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert Index.open(index_dir).manifest.count == BATCH + 30 and "more new from an earlier run" in err


def test_an_impatient_ctrl_c_pressed_three_times_is_answered_once(tmp_path):
    """Three Ctrl-C 50 ms apart printed the one-line answer and then twelve lines of "Exception
    ignored in threading" (the later ones came while the interpreter joined the embedding thread
    on its way out), exit -2: the first is answered, the others are ignored (an attacker's pass)."""
    new = write_papers(tmp_path / "new.jsonl", "2402", BATCH + 30)
    marker, index_dir = tmp_path / "paused", tmp_path / "idx"
    process = writer("ingest", "jsonl", new, "--index", index_dir, "--no-progress", pause_at="batch", marker=marker)
    wait_for(marker, process)
    for _ in range(3):
        process.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130 and len(err.strip().splitlines()) == 1, err
    assert err.startswith("interrupted; the papers read so far are kept")


@pytest.mark.parametrize("loading", ["typer", "semsearch.embeddings"])
def test_ctrl_c_while_the_command_is_still_loading_is_answered_in_one_line(tmp_path, loading):
    """Ctrl-C in the first tenths of a second, while `semsearch` imported its CLI (typer) or warmed
    the question's encoder, printed a traceback of what it cut short (an attacker's pass). The
    installed command is run as its console script runs it, and the Ctrl-C raised where that import
    happens, as the signal raises it there, so the test does not race the clock."""
    code = (
        "import sys\n"
        "class CtrlC:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        f"        if name == {loading!r}:\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, CtrlC())\n"
        f"sys.argv = ['semsearch', 'search', 'kv cache', '--index', {str(tmp_path / 'idx')!r}]\n"
        "from importlib.metadata import entry_points\n"
        "(command,) = entry_points(group='console_scripts', name='semsearch')\n"
        "sys.exit(command.load()())\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert (done.returncode, done.stderr) == (130, "interrupted; nothing was changed\n")
    assert not (tmp_path / "idx").exists()


def test_ctrl_c_of_a_label_says_what_it_left_as_the_next_writer_finds_it(tmp_path):
    """Stopped after its generation was renamed and before CURRENT named it, a label's change waits
    for the next writer, and its message says so; the next label publishes both and says that."""
    index_dir, marker = tmp_path / "idx", tmp_path / "paused"
    ingest_jsonl([write_papers(tmp_path / "papers.jsonl", "2401", 20)], index_dir=index_dir, progress=False)
    process = writer("label", "2401.00001", "Quantization", "--index", index_dir, pause_at="publish", marker=marker)
    wait_for(marker, process)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=30)
    assert process.returncode == 130 and "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("interrupted; a change it had begun waits in the index's staging/")
    assert not Index.open(index_dir).store.labels()  # no reader sees it yet

    again = writer("label", "2401.00002", "Quantization", "--index", index_dir)
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "this change also publishes what an interrupted run had staged" in err, err
    assert {row["id"] for row in Index.open(index_dir).store.labels()} == {"2401.00001", "2401.00002"}


@pytest.mark.parametrize("pause_at", ["batch", "publish"])
def test_a_writer_killed_mid_ingest_loses_nothing_and_the_server_keeps_answering(served, tmp_path, pause_at):
    index_dir, client = served
    new = write_papers(tmp_path / "new.jsonl", "2402", BATCH + 30)  # two batches
    marker = tmp_path / "paused"
    process = writer("ingest", "jsonl", new, "--index", index_dir, "--no-progress", pause_at=pause_at, marker=marker)
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    answers(client)  # through the kill
    assert Index.open(index_dir).manifest.count == 20  # CURRENT still names the old generation, readable

    again = writer("ingest", "jsonl", new, "--index", index_dir, "--no-progress")
    out, err = again.communicate(timeout=120)
    assert again.returncode == 0, err
    assert Index.open(index_dir).manifest.count == 20 + BATCH + 30
    health = health_once(client, lambda h: h["papers"] == 20 + BATCH + 30)  # moved on to the newest generation
    assert health["papers"] == 20 + BATCH + 30
    answers(client)
    # No stray generations: the published one, the one before (kept for readers that just opened it).
    current = current_generation(index_dir)
    assert current in generations(index_dir) and len(generations(index_dir)) <= 2
    assert not (index_dir / "staging").exists()


def test_two_writers_at_once_both_land_and_the_second_waits(served, tmp_path):
    index_dir, client = served
    marker = tmp_path / "paused"
    first = writer(
        "ingest", "jsonl", write_papers(tmp_path / "a.jsonl", "2403", 10), "--index", index_dir, "--no-progress",
        pause_at="batch", marker=marker,
    )  # fmt: skip
    wait_for(marker, first)  # holds the lock, mid-write
    said = tmp_path / "second.err"
    papers = write_papers(tmp_path / "b.jsonl", "2404", 10)
    second = writer("ingest", "jsonl", papers, "--index", index_dir, stderr=said)
    # Until it says it waits (however long a busy machine takes to start it), it neither ends nor writes.
    deadline = time.monotonic() + 60
    while "waiting for another writer" not in said.read_text():
        assert second.poll() is None, said.read_text()
        assert time.monotonic() < deadline, "the second writer never said it was waiting"
        time.sleep(0.05)
    assert not any(Index.open(index_dir).store.find(f"2404.{i:05d}") for i in range(10))
    first.send_signal(signal.SIGKILL)  # the lock dies with its holder
    first.wait(timeout=10)
    second.communicate(timeout=120)
    assert second.returncode == 0, said.read_text()
    # The second run resumed the first one's staging: both sets of papers are in.
    store = Index.open(index_dir).store
    assert store.find("2404.00009") is not None and store.find("2403.00009") is not None
    answers(client)


def test_two_writers_that_both_finish(tmp_path, fake_model):
    index_dir = tmp_path / "idx"
    ingest_jsonl([write_papers(tmp_path / "first.jsonl", "2401", 5)], index_dir=index_dir, progress=False)
    runs = [
        writer("ingest", "jsonl", write_papers(tmp_path / f"{p}.jsonl", p, 300), "--index", index_dir, "--no-progress")
        for p in ("2405", "2406")
    ]
    for run in runs:
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err
    assert Index.open(index_dir).manifest.count == 5 + 600


def test_a_writer_waiting_on_an_ingest_refused_for_its_cluster_lands_in_the_directory_that_refusal_undid(tmp_path):
    """`ingest --ray` refused on a new directory removes what it made, the directory and its `.lock`
    among them. It let go of the lock first: a writer waiting on that `.lock` took the lock of a file
    then removed, ran whole, and was refused at publishing ("was removed or replaced while this
    process held it"), its work lost. The refused start now removes them while it holds the lock,
    and a writer that finds the file it waited on gone takes the lock of the one now there."""
    index_dir, marker, log = tmp_path / "new" / "idx", tmp_path / "paused", tmp_path / "second.err"
    papers = write_papers(tmp_path / "papers.jsonl", "2401", 3)
    refused = writer("ingest", "jsonl", papers, "--ray", "ray://127.0.0.1:1", "--index", index_dir,
                     pause_at="export", marker=marker)  # fmt: skip
    wait_for(marker, refused)
    second = writer("ingest", "jsonl", papers, "--index", index_dir, "--no-progress", stderr=log)
    deadline = time.monotonic() + 60
    while "waiting for another" not in log.read_text():
        assert second.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    marker.unlink()  # the refused run goes on: refused for its cluster
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and err.startswith("error: --ray "), err
    second.communicate(timeout=120)
    assert second.returncode == 0, log.read_text()
    assert Index.open(index_dir).manifest.count == 3


def test_an_ingest_refused_for_its_cluster_keeps_what_was_put_in_its_new_directory_whatever_its_parent_is_named(
    tmp_path,
):
    """The refused start's new directory is removed only when empty of others' files. One whose
    parent was named `encoders` (`--index encoders/idx`) was taken for the encoder's export and
    removed whole, with a file put in it while the run waited."""
    (tmp_path / "encoders").mkdir()
    index_dir, marker = tmp_path / "encoders" / "idx", tmp_path / "paused"
    papers = write_papers(tmp_path / "papers.jsonl", "2401", 1)
    refused = writer("ingest", "jsonl", papers, "--ray", "ray://127.0.0.1:1", "--index", index_dir,
                     pause_at="export", marker=marker)  # fmt: skip
    wait_for(marker, refused)
    (index_dir / "notes.txt").write_text("mine\n")
    marker.unlink()
    _, err = refused.communicate(timeout=60)
    assert refused.returncode == 2 and err.startswith("error: --ray "), err
    assert sorted(p.name for p in index_dir.iterdir()) == ["notes.txt"]


SURVEY_V2 = """# Efficient Large Language Models: A Survey
## Model-Centric Methods
### Efficient Inference
#### Speculative Decoding
- Draft A, <ins>arXiv, 2023</ins> [[Paper](https://arxiv.org/abs/2302.01318)]
#### KV-Cache Optimization
- Draft B, <ins>ICML, 2023</ins> [[Paper](https://arxiv.org/abs/2211.17192)]
- A cache paper the survey did not list before, <ins>ICLR, 2026</ins> [[Paper](https://arxiv.org/abs/2612.99999)]
#### Early Exit
- Sinks D, <ins>ICLR, 2024</ins> [[Paper](https://arxiv.org/abs/2309.17453)]
"""


def killed_while_embedding(tmp_path, *command) -> None:
    """`semsearch COMMAND` killed with SIGKILL once it has embedded and committed its first batch."""
    marker = tmp_path / "paused"
    process = writer(*command, pause_at="batch", marker=marker)
    wait_for(marker, process)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=10)
    marker.unlink()


def a_label_publishes(index_dir: Path, paper: str) -> None:
    """The next writer, a label, publishes whatever an interrupted run staged."""
    label = writer("label", paper, "Quantization", "--index", index_dir)
    _, err = label.communicate(timeout=120)
    assert label.returncode == 0, err


def test_a_survey_refresh_killed_while_it_embeds_is_published_whole_by_the_next_writer(tmp_path, survey_only_index):
    """A refresh stored the papers it adds, with the new list's labels, in a transaction of its own:
    killed while they were embedded, the next writer (a label) published that part alone, the old
    list's 424 labels and the new paper's, under neither list, with nothing for `--undo` to undo."""
    index_dir = survey_only_index
    (tmp_path / "v2.md").write_text(SURVEY_V2)
    refresh = ("taxonomy", "refresh", tmp_path / "v2.md", "--offline", "--force", "--index", index_dir)
    killed_while_embedding(tmp_path, *refresh)
    assert Index.open(index_dir).store.content_counts()["survey_labelled"] == 424  # no reader sees it yet
    a_label_publishes(index_dir, "2302.01318")
    assert Index.open(index_dir).store.content_counts()["survey_labelled"] == 4  # the refresh, whole
    undo = writer("taxonomy", "refresh", "--undo", "--index", index_dir)
    _, err = undo.communicate(timeout=120)
    assert undo.returncode == 0, err
    assert Index.open(index_dir).store.content_counts()["survey_labelled"] == 424


LIST_V1 = """# Awesome caches
## Eviction
- **Paper 2401 0 on caches and decoding.** [[pdf](https://arxiv.org/abs/2401.00000)]
- **Paper 2401 1 on caches and decoding.** [[pdf](https://arxiv.org/abs/2401.00001)]
"""
LIST_V2 = (
    LIST_V1
    + """## Merging
- **A merging paper new to the index.** [[pdf](https://arxiv.org/abs/2612.99999)]
"""
)


def test_a_list_replaced_and_killed_while_it_embeds_is_published_whole_by_the_next_writer(tmp_path, fake_model):
    """`taxonomy add --replace` committed the new README and papers before the list itself: killed
    while the papers were embedded, the next writer published the old list's nodes and labels with
    the new list's README (which `taxonomy propose` writes its patch against)."""
    index_dir = tmp_path / "idx"
    ingest_jsonl([write_papers(tmp_path / "papers.jsonl", "2401", 20)], index_dir=index_dir, progress=False)
    (tmp_path / "v1.md").write_text(LIST_V1)
    (tmp_path / "v2.md").write_text(LIST_V2)
    add = writer("taxonomy", "add", "kv", tmp_path / "v1.md", "--offline", "--index", index_dir)
    _, err = add.communicate(timeout=120)
    assert add.returncode == 0, err
    replace = ("taxonomy", "add", "kv", tmp_path / "v2.md", "--replace", "--offline", "--index", index_dir)
    killed_while_embedding(tmp_path, *replace)
    a_label_publishes(index_dir, "2401.00003")
    store = Index.open(index_dir).store
    nodes, readme = store.taxonomy("kv")["nodes"], store.get_meta("list_markdown:kv")
    assert (nodes, readme) in ((["Eviction"], LIST_V1), (["Eviction", "Merging"], LIST_V2)), (nodes, readme)
    classify = writer(
        "classify", "--title", "Merging tokens", "--abstract", "We merge similar tokens in the cache.",
        "--taxonomy", "kv", "--json", "--index", index_dir,
    )  # fmt: skip
    out, err = classify.communicate(timeout=120)
    assert classify.returncode == 0 and json.loads(out)["suggestions"][0]["category"] in nodes, err


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
def test_a_broken_vector_file_is_a_clear_error_and_the_server_keeps_the_last_good_one(served, tmp_path, damage):

    index_dir, client = served
    before = client.get("/api/health").json()["generation"]
    ingest_jsonl([write_papers(tmp_path / "more.jsonl", "2407", 3)], index_dir=index_dir, progress=False)
    vectors = index_dir / current_generation(index_dir) / "vectors.faiss"
    if damage == "corrupt":
        vectors.write_bytes(b"\0" * 100)
    else:
        vectors.unlink()
    health = health_once(client, lambda h: "reload_error" in h)
    assert health["generation"] == before and "reload_error" in health
    answers(client)

    search = writer("search", "caches", "--index", index_dir)  # answers from the last intact generation
    out, err = search.communicate(timeout=60)
    assert search.returncode == 0 and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1 and f"{current_generation(index_dir)} is damaged (vectors.faiss" in err
    assert err.strip().endswith(f"serving {before}")


def _small_filesystem(tmp_path: Path) -> Path | None:
    target = tmp_path / "small"
    target.mkdir()
    if shutil.which("mount") is None:
        return None
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(target)], capture_output=True)
    return target if done.returncode == 0 else None


def test_a_disk_that_fills_fails_cleanly_and_loses_nothing(tmp_path, fake_model):
    small = _small_filesystem(tmp_path)
    if small is None:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        index_dir = small / "idx"
        ingest_jsonl([write_papers(tmp_path / "first.jsonl", "2401", 20)], index_dir=index_dir, progress=False)
        big = write_papers(tmp_path / "big.jsonl", "2408", 6000)  # more than 3 MB once stored
        run = writer("ingest", "jsonl", big, "--index", index_dir, "--no-progress")
        out, err = run.communicate(timeout=300)
        assert run.returncode == 2 and "Traceback" not in err and len(err.strip().splitlines()) <= 2
        assert Index.open(index_dir).manifest.count == 20  # the published index is untouched
        shutil.rmtree(index_dir / "staging", ignore_errors=True)  # the user frees space...
        run = writer("ingest", "jsonl", write_papers(tmp_path / "few.jsonl", "2409", 5), "--index", index_dir)
        out, err = run.communicate(timeout=120)
        assert run.returncode == 0, err  # ...and the next write succeeds
        assert Index.open(index_dir).manifest.count == 25
    finally:
        subprocess.run(["umount", "--lazy", str(small)], capture_output=True)  # open handles may remain
