"""Trust under damage: a damaged, missing or unwritable file of the index is never used silently.

Each generation's manifest holds a checksum of each of its files; a damaged generation is passed
over for the newest intact older one (one warning line), or, when there is none, the CLI says so in
one line and exits 2 and the API answers 503. Real processes run `semsearch` (with the hashing test
model, through tests.cli_process) against real damaged files.
"""

from __future__ import annotations

import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from semsearch import index as index_module
from semsearch.errors import IndexDamaged, SemsearchError
from semsearch.index import GENERATION_NAME, Index, Manifest, current_generation
from semsearch.ingest import ingest_jsonl
from tests.conftest import built_once, copy_of, corpus_records, examples

ROOT = Path(__file__).resolve().parents[1]
OLD = [r for r in corpus_records() if r["id"] != "2305.00004"]  # the first generation lacks the KV-cache paper
KV = "2305.00004"


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="session")
def _two_generations_template(tmp_path_factory) -> Path:
    def build(index_dir: Path, work: Path) -> None:
        ingest_jsonl([write_jsonl(work / "old.jsonl", OLD)], index_dir=index_dir, progress=False)
        ingest_jsonl([write_jsonl(work / "all.jsonl", corpus_records())], index_dir=index_dir, progress=False)

    return built_once(tmp_path_factory, build)


@pytest.fixture
def two_generations(tmp_path, fake_model, _two_generations_template) -> Path:
    """gen-000001 (six papers), gen-000002 (all seven: it adds the KV-cache paper); a copy of an
    index built once per session (the tests damage their copy)."""
    write_jsonl(tmp_path / "old.jsonl", OLD)  # the sources it was built from, for tests that ingest them again
    write_jsonl(tmp_path / "all.jsonl", corpus_records())
    index_dir = copy_of(_two_generations_template, tmp_path)
    # A copy has new inodes, so its stamps no longer vouch for its files: opening it once hashes
    # and stamps them again, leaving it as publish leaves a new index (and forgetting that in memory).
    Index.open(index_dir).close()
    index_module._verified.clear()
    assert current_generation(index_dir) == "gen-000002"
    return index_dir


@pytest.fixture
def warnings() -> list[str]:
    """The library's warnings, whether or not the CLI's stderr handler (which stops propagation to
    pytest's caplog) was attached by an earlier test in this process."""
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.levelno >= logging.WARNING:
                seen.append(record.getMessage())

    handler = Collect()
    logging.getLogger("semsearch").addHandler(handler)
    yield seen
    logging.getLogger("semsearch").removeHandler(handler)


def semsearch(*args, env: dict | None = None, pause: str | None = None, marker: Path | None = None):
    """`semsearch ARGS` in its own process (the hashing model in place of the real one)."""
    command = [sys.executable, "-m", "tests.cli_process"]
    if pause:
        command = [sys.executable, "-c", PAUSING, pause, str(marker)]
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.Popen(
        [*command, "--", *map(str, args)], cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def run(*args, env: dict | None = None) -> tuple[int, str, str]:
    process = semsearch(*args, env=env)
    out, err = process.communicate(timeout=120)
    assert "Traceback" not in err, err
    return process.returncode, out, err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def first_hit(out: str) -> str:
    return json.loads(out)["results"][0]["id"]


def noise(size: int) -> bytes:
    """Garbage bytes, the same for the same size: a damage that fails a test fails it again."""
    return random.Random(size).randbytes(size)


def overwrite_middle(path: Path, size: int = 100_000) -> None:
    """Random bytes over the middle of a file, in place: same size, only the content changes."""
    length = path.stat().st_size
    size = min(size, length // 2)
    with open(path, "r+b") as handle:
        handle.seek((length - size) // 2)
        handle.write(noise(size))


# --- the checksums ---------------------------------------------------------------------------
def test_every_file_of_a_generation_has_its_checksum_in_the_manifest(two_generations):
    generation = two_generations / "gen-000002"
    files = json.loads((generation / "manifest.json").read_text())["files"]
    on_disk = {
        p.relative_to(generation).as_posix()
        for p in generation.rglob("*")
        if p.is_file() and p.name not in (".readers", ".verified", "manifest.json")
    }
    assert set(files) == on_disk and {"papers.db", "vectors.faiss", "lexical/vec_ids.npy"} <= on_disk
    assert files["papers.db"] == index_module.file_digest(generation / "papers.db")


def test_a_published_generation_opens_without_hashing_and_damage_is_hashed_and_found(two_generations, monkeypatch):
    hashed = []
    real = index_module.file_digest
    monkeypatch.setattr(index_module, "file_digest", lambda path: hashed.append(path.name) or real(path))
    Index.open(two_generations).close()
    assert hashed == []  # publish stamped what it had just hashed: cold start pays for stat() only
    vectors = two_generations / "gen-000002" / "vectors.faiss"
    stat = vectors.stat()
    overwrite_middle(vectors)
    os.utime(vectors, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # the mtime put back, as `touch -r` would
    index_module._verified.clear()
    with pytest.raises(IndexDamaged, match="gen-000002 is damaged"):
        Index.open(two_generations, fall_back=False)
    assert hashed == ["vectors.faiss"]  # only the file whose stat() changed


def test_a_copied_index_is_hashed_once_then_trusted_by_its_stamp(two_generations, tmp_path, monkeypatch):
    copy = tmp_path / "copy"
    shutil.copytree(two_generations, copy)  # new inodes: the stamp no longer vouches for the files
    hashed = []
    real = index_module.file_digest
    monkeypatch.setattr(index_module, "file_digest", lambda path: hashed.append(path.name) or real(path))
    Index.open(copy).close()
    assert "papers.db" in hashed
    hashed.clear()
    index_module._verified.clear()  # another process: only the stamp on disk remembers
    Index.open(copy).close()
    assert hashed == []


@settings(max_examples=examples(40), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    stamp=st.one_of(
        st.binary(max_size=200),
        st.dictionaries(
            st.sampled_from(["manifest.json", "papers.db", "vectors.faiss", "x"]),
            st.lists(st.integers(), max_size=5) | st.text(max_size=5) | st.none(),
        ).map(lambda d: json.dumps(d).encode()),
    )
)
def test_no_stamp_on_disk_vouches_for_a_damaged_file(two_generations, stamp):
    """Whatever `.verified` holds (garbage, a forged or stale record), damage is found: the stamp only
    spares hashing a file whose stat() is exactly the one recorded."""
    vectors = two_generations / "gen-000002" / "vectors.faiss"
    if not (two_generations / "damaged").exists():
        overwrite_middle(vectors)
        (two_generations / "damaged").touch()
    (two_generations / "gen-000002" / ".verified").write_bytes(stamp)
    index_module._verified.clear()
    with pytest.raises(IndexDamaged, match=r"gen-000002 is damaged \(vectors.faiss checksum mismatch\)"):
        Index.open(two_generations, fall_back=False)


def test_a_manifest_cannot_send_verification_outside_its_generation(two_generations, monkeypatch):
    manifest_path = two_generations / "gen-000002" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["files"]["../../../etc/hostname"] = "0" * 128
    manifest_path.write_text(json.dumps(manifest))
    read = []
    monkeypatch.setattr(index_module, "file_digest", lambda path: read.append(path) or "")
    with pytest.raises(IndexDamaged, match="names a file outside the generation"):
        Index.open(two_generations, fall_back=False)
    assert read == []


def test_an_index_written_before_checksums_still_opens(two_generations):
    manifest_path = two_generations / "gen-000002" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["files"]
    manifest_path.write_text(json.dumps(manifest))
    index = Index.open(two_generations)
    assert index.manifest.files is None and index.integrity is None and index.manifest.count == 7


def test_a_manifest_with_an_empty_checksum_map_is_damage_not_an_index_without_checksums(two_generations):
    """`"files": {}` switched every check off, and a garbled file behind it was read as it was."""
    manifest_path = two_generations / "gen-000002" / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), "files": {}}))
    with pytest.raises(IndexDamaged, match="'files' lists no file"):
        Index.open(two_generations, fall_back=False)


@pytest.mark.parametrize(
    "field, value", [("format_version", "1"), ("dimension", 384.0), ("count", True), ("model", 5), ("normalized", 1)]
)
def test_a_manifest_field_of_another_type_is_damage_and_the_previous_generation_answers(two_generations, field, value):
    """`"format_version": "1"` said "format version 1; this semsearch reads version 1: rebuild it" and
    served nothing; `"dimension": 384.0` was shown by `info` as it was."""
    manifest_path = two_generations / "gen-000002" / "manifest.json"
    manifest_path.write_text(json.dumps({**json.loads(manifest_path.read_text()), field: value}))
    with pytest.raises(IndexDamaged, match=rf"unreadable manifest .*'{field}' is "):
        Index.open(two_generations, fall_back=False)
    index = Index.open(two_generations)
    assert index.generation_dir.name == "gen-000001" and f"'{field}' is " in index.integrity


def _unchecked(index_dir: Path) -> None:
    """Every generation's manifest without checksums, as an index written before them."""
    for manifest_path in index_dir.glob("gen-*/manifest.json"):
        manifest = json.loads(manifest_path.read_text())
        del manifest["files"]
        manifest_path.write_text(json.dumps(manifest))


@pytest.mark.parametrize("vocabulary", ["[1]", '{"kv": "x"}', '"words"'])
def test_a_bm25_vocabulary_of_another_shape_is_damage_in_one_line(two_generations, vocabulary):
    _unchecked(two_generations)
    (two_generations / "gen-000002" / "lexical" / "vocab.index.json").write_text(vocabulary)
    with pytest.raises(IndexDamaged, match="vocab.index.json is not a map of words to term numbers"):
        Index.open(two_generations, fall_back=False).lexical  # noqa: B018 - loading it is the test


@pytest.mark.parametrize(
    "column, value",
    [
        ("authors", '{"a": 1}'),
        ("authors", "[1]"),
        ("authors", "not JSON"),
        ("sources", '"list"'),
        ("title", b"bytes"),
        ("year", "MMXXIV"),
        ("venue", b"ICML"),  # a TEXT column stores a number as text: only a blob is another shape
        ("published", b"\x00"),
        ("url", b"https://x"),
    ],
)
def test_a_paper_record_of_another_shape_is_damage_in_one_line(two_generations, capsys, column, value):
    """With its checksums made to match (here: none), authors as a JSON object made every search
    that met the paper fail with a traceback (an attacker's pass)."""
    import sqlite3

    _unchecked(two_generations)
    with sqlite3.connect(two_generations / "gen-000002" / "papers.db") as db:
        db.execute(f"UPDATE papers SET {column} = ? WHERE id = ?", (value, KV))
    store = Index.open(two_generations, fall_back=False).store
    with pytest.raises(IndexDamaged, match=rf"^papers.db: the record of '{KV}' is not a paper's; rebuild the index$"):
        store.get(KV)


def test_an_embedding_of_another_length_is_damage_in_one_line(two_generations):
    """With its checksums made to match, one paper's embedding cut short made `related` (and
    recommendations) fail with a numpy traceback, exit 1."""
    import sqlite3

    _unchecked(two_generations)
    with sqlite3.connect(two_generations / "gen-000002" / "papers.db") as db:
        db.execute(
            "UPDATE embeddings SET vector = substr(vector, 1, 100) "
            "WHERE vec_id = (SELECT vec_id FROM papers WHERE id = ?)",
            (KV,),
        )
    code, out, err = run("related", KV, "--index", two_generations)
    assert (code, out) == (2, "")
    assert re.fullmatch(
        r"error: papers.db: an embedding holds 100 bytes, not \d+ numbers; rebuild the index", one_line(err)
    )
    code, out, _ = run("search", "kv cache", "--json", "--index", two_generations)  # the other papers still answer
    assert code == 0 and json.loads(out)["results"]


def test_a_paper_without_its_embedding_is_damage_in_one_line_for_related_work_and_recommendations(two_generations):
    """With its checksums made to match, a published paper whose embedding row is gone failed
    `related` and `recommend` with a traceback: every published paper has its embedding."""
    import sqlite3

    _unchecked(two_generations)
    with sqlite3.connect(two_generations / "gen-000002" / "papers.db") as db:
        db.execute("DELETE FROM embeddings WHERE vec_id = (SELECT vec_id FROM papers WHERE id = ?)", (KV,))
    for command in (["related", KV], ["recommend", "--like", KV]):
        code, out, err = run(*command, "--index", two_generations)
        assert (code, out) == (2, "")
        assert one_line(err) == f"error: papers.db: '{KV}' has no embedding; rebuild the index"


@pytest.mark.parametrize("nodes", ['{"Pruning": 1}', "not JSON", "[1, 2]", '[""]'])
def test_a_lists_nodes_of_another_shape_are_damage_in_one_line(two_generations, nodes):
    """With its checksums made to match, a list's nodes stored as an object (or no JSON at all) made
    every command naming the list fail with a traceback (`taxonomy show kv`, `search --taxonomy kv`)."""
    import sqlite3

    _unchecked(two_generations)
    with sqlite3.connect(two_generations / "gen-000002" / "papers.db") as db:
        db.execute("INSERT INTO taxonomies (name, source, nodes) VALUES ('kv', 'x.md', ?)", (nodes,))
    for command in (["taxonomy", "show", "kv"], ["taxonomy", "list"], ["search", "kv cache", "--taxonomy", "kv"]):
        code, out, err = run(*command, "--index", two_generations)
        assert (code, out) == (2, "")
        assert (
            one_line(err)
            == "error: papers.db: the nodes of taxonomy 'kv' are not a list of headings; rebuild the index"
        )


def _rewrite_vectors(generation: Path, change) -> None:
    """vectors.faiss written again as a flat index of `change(matrix, ids)`'s (matrix, ids, metric)."""
    import faiss
    import numpy as np

    from semsearch import vectors

    flat = vectors.load(generation / "vectors.faiss")
    matrix, ids, metric = change(np.array(flat.matrix), np.array(flat.ids))
    inner = faiss.IndexFlatIP(matrix.shape[1]) if metric == "ip" else faiss.IndexFlatL2(matrix.shape[1])
    index = faiss.IndexIDMap2(inner) if ids is not None else inner
    if ids is not None:
        index.add_with_ids(matrix, ids)
    else:
        index.add(matrix)
    faiss.write_index(index, str(generation / "vectors.faiss"))


@pytest.mark.parametrize(
    "change, said",
    [
        (lambda m, ids: (m, ids + 1000, "ip"), "vectors.faiss holds other papers than papers.db"),
        (lambda m, ids: (m, ids * 0, "ip"), "vectors.faiss holds other papers than papers.db"),
        (lambda m, ids: (m, None, "ip"), "vectors.faiss holds other papers than papers.db"),  # places, not vec_ids
        (lambda m, ids: (m * float("nan"), ids, "ip"), "vectors.faiss holds values that are not numbers"),
        (lambda m, ids: (m, ids, "l2"), "vectors.faiss does not rank by inner product"),
    ],
    ids=["ids shifted", "ids repeated", "no id map", "not numbers", "L2 distance"],
)
def test_vectors_that_do_not_match_the_papers_are_damage_in_one_line(two_generations, change, said):
    """With its checksums made to match (here: none), a vectors.faiss whose ids were not papers.db's
    answered with other papers or dropped hits without a word, one of NaNs failed with a numpy
    traceback, and one ranking by L2 distance took distances for cosines."""
    _unchecked(two_generations)
    _rewrite_vectors(two_generations / "gen-000002", change)
    for command in (["search", "kv cache", "--json"], ["related", KV], ["recommend", "--like", KV]):
        code, out, err = run(*command, "--index", two_generations)
        assert (code, out) == (2, ""), command
        assert said in one_line(err)


def test_the_library_refuses_vectors_of_other_papers_naming_the_file(two_generations):
    """What the commands above say comes from `Index.vectors`, for every door that loads them."""
    _unchecked(two_generations)
    _rewrite_vectors(two_generations / "gen-000002", lambda m, ids: (m, ids + 1000, "ip"))
    index = Index.open(two_generations, fall_back=False)
    try:
        with pytest.raises(IndexDamaged) as raised:
            index.vectors  # noqa: B018 - loading it is the test
    finally:
        index.close()
    said = f"{two_generations / 'gen-000002' / 'vectors.faiss'} holds other papers than papers.db"
    assert str(raised.value) == f"index at {two_generations} is damaged: {said}"


def test_a_hard_link_to_a_file_of_the_index_is_no_file_to_write_and_one_to_another_file_is(two_generations, tmp_path):
    """`check_outside_index` knows a file of the index by its inode, under any name: a hard link
    to CURRENT or to a generation's papers.db is refused naming the file it is; a file with one
    name, or with two outside the index, is anyone's to write."""
    from semsearch.index import check_outside_index

    for target in (two_generations / "CURRENT", two_generations / "gen-000001" / "papers.db"):
        link = tmp_path / f"link-to-{target.name}"
        try:
            os.link(target, link)
        except OSError as err:  # another file system: no hard link can be made there
            pytest.skip(f"no hard link from {tmp_path} into the index: {err}")
        with pytest.raises(SemsearchError) as raised:
            check_outside_index(link, "--output", index_dir=two_generations)
        named = target.relative_to(two_generations).as_posix()
        assert str(raised.value) == (
            f"--output {link}: is a hard link to {named}, a file of the index directory "
            f"{two_generations.resolve()}; name a file outside it"
        )
    mine = tmp_path / "digest.md"
    mine.write_text("old digest\n")
    check_outside_index(mine, "--output", index_dir=two_generations)
    os.link(mine, tmp_path / "also-mine.md")
    check_outside_index(tmp_path / "also-mine.md", "--output", index_dir=two_generations)


def test_new_files_get_0666_less_the_umask_which_is_left_as_it_was():
    """Read once on import (`FILE_MODE`), by setting the umask and setting it back."""
    before = os.umask(0o027)
    try:
        assert index_module._file_mode() == 0o640
        assert os.umask(0o027) == 0o027
    finally:
        os.umask(before)


@pytest.mark.parametrize(
    "name, change",
    [
        ("vec_ids.npy", lambda a: a + 1000),
        ("vec_ids.npy", lambda a: a.astype(float)),
        ("indices.csc.index.npy", lambda a: a * 0 + 10**6),
        ("indptr.csc.index.npy", lambda a: a + 7),
        ("data.csc.index.npy", lambda a: a[:5]),
    ],
    ids=["vec_ids shifted", "vec_ids as numbers", "rows past the papers", "starts shifted", "weights cut"],
)
def test_bm25_arrays_that_do_not_fit_together_or_the_papers_are_damage_in_one_line(two_generations, name, change):
    """In an index without checksums (written before them), BM25 arrays cut or shifted made every
    search fail with a numpy traceback, or answer from other papers' scores without a word."""
    import numpy as np

    _unchecked(two_generations)
    path = two_generations / "gen-000002" / "lexical" / name
    np.save(path, change(np.load(path)))
    for command in (["search", "kv cache", "--json"], ["search", "kv cache", "--mode", "lexical", "--json"]):
        code, out, err = run(*command, "--index", two_generations)
        assert (code, out) == (2, ""), command
        assert re.search(
            r"lexical (cannot be read \(its arrays do not fit together\)|holds other papers)"
            r"|BM25 index names papers it does not hold",
            one_line(err),
        )


# --- a damaged generation is passed over -------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["manifest.json", ".verified", ".readers", "papers.db", "lexical/vocab.index.json"])
@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_file_of_a_generation_that_is_a_fifo_or_a_device_is_damage_not_a_hang(two_generations, name, kind):
    """A FIFO in its place blocked every reader for ever (the open of a manifest or a stamp, or the
    hash of a data file), and a link to /dev/zero was read without end: a manifest's until memory ran
    out (12 GB in 30 s), a data file's hash for ever. Run with a memory limit, so a failure is not the
    machine's."""
    import resource

    path = two_generations / "gen-000002" / name
    path.unlink()
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to("/dev/zero")
    limit = lambda: resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))  # noqa: E731
    process = subprocess.run(
        [sys.executable, "-m", "tests.cli_process", "--", "search", "kv cache eviction", "--json", "--index",
         str(two_generations)],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
        preexec_fn=limit,
    )  # fmt: skip
    assert process.returncode == 0, process.stderr
    if name in (".verified", ".readers"):  # a record of past checks (hashed again), a lock (a FIFO locks too)
        assert process.stderr == "" and KV in {r["id"] for r in json.loads(process.stdout)["results"]}
        return
    assert one_line(process.stderr).startswith(f"warning: index at {two_generations}: gen-000002 is damaged (")
    assert one_line(process.stderr).endswith("; serving gen-000001")
    assert KV not in {r["id"] for r in json.loads(process.stdout)["results"]}  # gen-000001's answer


def _within(seconds: int):
    """A context in which a call that blocks (an open of a FIFO) fails the test instead of hanging it."""
    from contextlib import contextmanager

    @contextmanager
    def bounded():
        def expire(*_):
            raise TimeoutError(f"blocked for {seconds} s")

        previous = signal.signal(signal.SIGALRM, expire)
        signal.alarm(seconds)
        try:
            yield
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, previous)

    return bounded()


def test_a_small_file_is_read_only_when_it_is_a_regular_file_within_its_limit(tmp_path, monkeypatch):
    """A manifest, a stamp or an export's settings is read when it is a regular file of at most the
    limit, to its last byte; a FIFO or a device is refused at once as not a regular file (one blocked
    every reader for ever, /dev/zero was read until memory ran out), a larger file as too large, even
    one that grows after its size was read."""
    import errno

    from semsearch.index import read_small_file

    whole = tmp_path / "whole.json"
    whole.write_text("x" * 64)
    assert read_small_file(whole, limit=64) == "x" * 64
    with pytest.raises(OSError) as refused:
        read_small_file(whole, limit=63)
    assert refused.value.errno == errno.EFBIG
    fifo = tmp_path / "fifo.json"
    os.mkfifo(fifo)
    for not_a_file in (fifo, Path("/dev/zero")):
        with _within(5), pytest.raises(OSError) as refused:
            read_small_file(not_a_file)
        assert (refused.value.errno, refused.value.strerror) == (errno.EINVAL, "not a regular file"), not_a_file
    said_empty = os.stat_result((0o100644, 0, 0, 1, 0, 0, 0, 0, 0, 0))  # its size read before it grew
    monkeypatch.setattr(index_module.os, "fstat", lambda fd: said_empty)
    with pytest.raises(OSError) as refused:
        read_small_file(whole, limit=63)
    assert refused.value.errno == errno.EFBIG


def test_a_file_of_a_folder_checked_that_is_a_fifo_is_said_not_to_be_a_file_at_once(tmp_path):
    """A FIFO in a data file's place was hashed for ever: it is damage, named as such."""
    from semsearch.index import damaged_files

    (tmp_path / "manifest.json").write_text("{}")
    os.mkfifo(tmp_path / "vectors.faiss")
    with _within(5):
        assert damaged_files(tmp_path, {"vectors.faiss": "0" * 64}, "manifest.json") == "vectors.faiss is not a file"


def test_a_readers_file_that_is_a_fifo_neither_blocks_a_reader_nor_the_writer_retiring_it(tmp_path):
    """A .readers replaced by a FIFO blocked the open of every reader's lease, and of the writer that
    retires the generation: both go on at once (a FIFO locks as a file does)."""
    from semsearch.index import READERS_FILE, _drop_lease, _retire, _take_lease

    generation = tmp_path / "gen-000001"
    generation.mkdir()
    os.mkfifo(generation / READERS_FILE)
    with _within(5):
        lease = _take_lease(generation)
        assert lease is not None and _retire(generation) is False  # held by the reader
        _drop_lease(lease)
        assert _retire(generation) is True and not generation.exists()


def test_random_bytes_in_the_newest_vectors_are_caught_and_the_previous_generation_answers(two_generations):
    """The reported attack: 100 KB of random bytes into the middle of the newest vectors.faiss made
    `search` answer exit 0 with an unrelated first hit."""
    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    code, out, err = run("search", "kv cache eviction", "--json", "--index", two_generations)
    assert code == 0
    assert one_line(err) == (
        f"warning: index at {two_generations}: gen-000002 is damaged (vectors.faiss checksum mismatch); "
        "serving gen-000001"
    )
    assert KV not in {r["id"] for r in json.loads(out)["results"]}  # gen-000001's answer, whole
    code, out, err = run("related", "2401.00001", "--json", "--index", two_generations)
    assert code == 0 and "gen-000002 is damaged" in one_line(err)


def test_a_file_damaged_under_a_running_server_is_found_and_the_previous_generation_answers(two_generations):
    """An attacker's pass: vectors.faiss changed in place under `semsearch serve` (a disk fault,
    `rsync --inplace`) changed its answers while health said ok; only a fresh process noticed."""
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    assert KV in {hit["id"] for hit in service.search("kv cache eviction")["results"]}
    assert service.refresh() is False and service.health()["status"] == "ok"  # checked, intact: nothing to do
    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    assert service.refresh() is True
    health = service.health()
    assert health["status"] == "degraded" and health["generation"] == "gen-000001"
    assert health["integrity"] == "gen-000002 is damaged (vectors.faiss checksum mismatch); serving gen-000001"
    assert KV not in {hit["id"] for hit in service.search("kv cache eviction")["results"]}  # gen-000001's answer


def test_files_truncated_in_place_under_a_server_do_not_end_it_before_its_check_finds_them(two_generations):
    """An attacker's pass: `truncate` of vectors.faiss under a running `serve` killed it at the next
    question (SIGBUS: its pages were mapped), in the second before the reload tick would have found
    the damage. Read into memory, the arrays answer as before until the check moves the server to
    the intact generation. In a process of its own: a SIGBUS would end the test's."""
    import subprocess
    import sys

    from tests.cli_process import ROOT

    code = f"""
import os, json
from semsearch import embeddings
from tests.conftest import HashingModel
model = HashingModel()
embeddings._load = lambda name: model
from semsearch.service import Service
service = Service(index_dir={str(two_generations)!r})
before = service.search("kv cache eviction")
generation = {str(two_generations / "gen-000002")!r}
for name in ["vectors.faiss"] + [f"lexical/{{part}}.csc.index.npy" for part in ("data", "indices", "indptr")]:
    os.truncate(os.path.join(generation, name), 0)
after = service.search("kv cache eviction")
print(json.dumps([before == after, service.refresh(), service.health()["generation"]]))
"""
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, (done.returncode, done.stderr[-2000:])
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [True, True, "gen-000001"]


def test_a_server_with_no_intact_generation_left_refuses_until_one_is_published(two_generations, tmp_path):
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    for generation in ("gen-000001", "gen-000002"):
        overwrite_middle(two_generations / generation / "vectors.faiss")
    assert service.refresh() is False
    with pytest.raises(IndexDamaged, match="gen-000002 is damaged .*no intact older generation"):
        service.search("kv cache eviction")
    health = service.health()
    assert health["status"] == "degraded" and "no intact older generation" in health["integrity"]
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    ingest_jsonl([more], index_dir=two_generations, progress=False)  # its vectors rebuilt from papers.db
    assert service.refresh() is True and service.health()["status"] == "ok"
    assert KV in {hit["id"] for hit in service.search("kv cache eviction")["results"]}


def test_a_fall_back_that_cannot_load_leaves_the_server_refusing_and_checked_once(two_generations, monkeypatch):
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    real_load = Service._load
    monkeypatch.setattr(Service, "_load", lambda *args: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    assert service.refresh() is False and service.health()["status"] == "degraded"
    with pytest.raises(IndexDamaged):
        service.search("kv cache")
    checked = []
    real_verify = index_module.verify_generation
    monkeypatch.setattr(index_module, "verify_generation", lambda *a, **k: checked.append(1) or real_verify(*a, **k))
    monkeypatch.setattr(Service, "_load", real_load)
    assert service.refresh() is False and checked == []  # refusing: nothing to check until a publish


def test_an_index_moved_away_under_the_server_is_said_gone_and_served_again_once_back(two_generations, tmp_path):
    """Moved away, it was "damaged ... rebuild the index" (advice that loses labels), and moved back
    it stayed refused until something was published (a clumsy operator's pass)."""
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    before = service.search("kv cache")
    away = tmp_path / "away"
    two_generations.rename(away)
    assert service.refresh() is False
    health = service.health()
    assert health["status"] == "degraded" and "is gone (moved or deleted)" in health["integrity"]
    assert "rebuild" not in health["integrity"]
    with pytest.raises(IndexDamaged, match="is gone"):
        service.search("kv cache")
    away.rename(two_generations)
    assert service.refresh() is False and service.health()["status"] == "ok"
    assert service.search("kv cache") == before

    two_generations.rename(away)  # and an empty folder made in its place meanwhile: gone, not damaged
    two_generations.mkdir()
    assert service.refresh() is False and "is gone (moved or deleted)" in service.health()["integrity"]
    two_generations.rmdir()
    away.rename(two_generations)
    assert service.refresh() is False and service.health()["status"] == "ok"  # it was refused until a publish
    assert service.search("kv cache") == before


def test_the_serving_generation_deleted_beside_an_older_one_is_damage_with_a_fall_back_not_gone(two_generations):
    import shutil

    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    service.search("kv cache")
    shutil.rmtree(two_generations / "gen-000002")
    service.refresh()
    assert "is gone" not in str(service.health().get("integrity"))  # gen-000001 answers, said so


def test_a_folder_holding_a_stray_file_at_the_index_path_is_gone_and_the_index_served_once_back(
    two_generations, tmp_path
):
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    away = tmp_path / "away"
    two_generations.rename(away)
    two_generations.mkdir()
    (two_generations / "notes.txt").write_text("x")
    service.refresh()
    assert "is gone" in service.health()["integrity"]
    (two_generations / "notes.txt").unlink()
    two_generations.rmdir()
    away.rename(two_generations)
    service.refresh()
    assert service.health()["status"] == "ok"


def test_after_gone_and_back_damage_with_nothing_intact_waits_for_a_publish(two_generations, tmp_path, monkeypatch):
    """Once back, the index is judged as before: damage with nothing to fall back to is refused, and
    not checked again every tick."""
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    away = tmp_path / "away"
    two_generations.rename(away)
    service.refresh()
    away.rename(two_generations)
    service.refresh()
    assert service.health()["status"] == "ok"
    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    monkeypatch.setattr(Service, "_load", lambda *args: (_ for _ in ()).throw(OSError(5, "Input/output error")))
    assert service.refresh() is False and service.health()["status"] == "degraded"
    checked = []
    real_verify = index_module.verify_generation
    monkeypatch.setattr(index_module, "verify_generation", lambda *a, **k: checked.append(1) or real_verify(*a, **k))
    service.refresh()
    assert checked == []


@pytest.mark.parametrize(
    "where, said",
    [
        (
            "digest_files",
            "is published by the next command that writes to the index",
        ),  # staging closed, not yet current
        ("_retire", "interrupted; the change was published"),  # CURRENT written
    ],
)
def test_ctrl_c_inside_a_publish_says_where_it_stopped(two_generations, monkeypatch, capsys, where, said):
    from semsearch.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module, where, interrupted)
    assert main(["label", "2401.00001", "Quantization", "--index", str(two_generations)]) == 130
    assert said in capsys.readouterr().err


def test_a_reload_that_fails_in_any_way_is_said_in_health_and_tried_again(two_generations, monkeypatch):
    """The reload thread caught nothing: one unexpected error (a stat() refused, a database error
    while loading) ended it for good, and health said ok while the server never reloaded again."""
    from semsearch.service import Service

    service = Service(index_dir=two_generations)
    calls = []

    def failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied")
        return False

    monkeypatch.setattr(service, "refresh", failing_once)
    stop = service.follow(0.01)
    try:
        deadline = time.monotonic() + 10
        while len(calls) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        stop.set()
    assert len(calls) >= 3  # the thread lived on
    health = service.health()
    assert health["status"] == "degraded" and health["reload_error"] == "PermissionError: [Errno 13] Permission denied"


@pytest.mark.slow
def test_a_real_server_notices_a_file_damaged_under_it(two_generations):
    from tests.test_doors import _get, _serving

    port, process = _serving(two_generations)
    try:
        assert _get(port, "127.0.0.1")[1]["status"] == "ok"
        overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
        deadline = time.monotonic() + 20
        while _get(port, "127.0.0.1")[1]["status"] == "ok" and time.monotonic() < deadline:
            time.sleep(0.2)
        health = _get(port, "127.0.0.1")[1]
        assert health["status"] == "degraded" and health["generation"] == "gen-000001", health
        status, answer = _get(port, "127.0.0.1", "/api/search?q=kv+cache+eviction")
        assert status == 200 and KV not in {hit["id"] for hit in answer["results"]}
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_a_writer_whose_lock_file_was_removed_meanwhile_publishes_nothing_and_keeps_its_work(
    two_generations, tmp_path, monkeypatch
):
    """An operator's "stale lock" cleanup while an ingest ran let a label in beside it: both published
    from one staging folder, and CURRENT named a generation without its papers.db."""
    from semsearch.errors import IndexBusy

    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    real = index_module.build_lexical_index

    def lock_removed_meanwhile(store, staging):
        (two_generations / ".lock").unlink()
        return real(store, staging)

    monkeypatch.setattr(index_module, "build_lexical_index", lock_removed_meanwhile)
    with pytest.raises(IndexBusy, match=r"\.lock was removed or replaced while this process held it"):
        ingest_jsonl([more], index_dir=two_generations, progress=False)
    assert current_generation(two_generations) == "gen-000002" and not (two_generations / "gen-000003").exists()
    assert (two_generations / "staging").is_dir()

    def lock_replaced_meanwhile(store, staging):  # by a writer that made it again: a file, but not ours
        (two_generations / ".lock").unlink()
        (two_generations / ".lock").write_text("4242")
        return real(store, staging)

    monkeypatch.setattr(index_module, "build_lexical_index", lock_replaced_meanwhile)
    with pytest.raises(IndexBusy, match="removed or replaced"):
        ingest_jsonl([more], index_dir=two_generations, progress=False)
    assert current_generation(two_generations) == "gen-000002"
    monkeypatch.setattr(index_module, "build_lexical_index", real)
    report = ingest_jsonl([more], index_dir=two_generations, progress=False)  # resumes what was staged
    index = Index.open(two_generations)
    assert report.published and index.integrity is None and index.store.find("2409.00001") is not None


# --- an index handed over: links where semsearch writes (an attacker's pass) ----------------------------
@pytest.mark.parametrize("name", [".lock", ".watch.lock"])
def test_a_lock_file_that_is_a_link_is_refused_and_what_it_points_to_left_alone(two_generations, tmp_path, name):
    """A writer opened `.lock` through a link and wrote its pid over the file it pointed to."""
    from semsearch.index import take_lock

    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (two_generations / name).unlink(missing_ok=True)
    (two_generations / name).symlink_to(victim)
    with pytest.raises(SemsearchError, match=rf"{re.escape(name)} is a symbolic link, which semsearch never makes"):
        take_lock(two_generations / name, 0, "writing to")
    code, _, err = run("label", "2401.00001", "Quantization", "--index", two_generations)
    if name == ".lock":
        assert code == 2 and "is a symbolic link, which semsearch never makes; remove it" in one_line(err)
    assert victim.read_text() == "precious"


def test_links_in_or_for_staging_and_a_current_tmp_link_are_never_written_through(two_generations, tmp_path):
    """`CURRENT.tmp` linked to a file had it overwritten with a generation's name (and CURRENT made
    a link to it); staging/ or a file in it linked elsewhere would be written where it points."""
    victim, elsewhere = tmp_path / "precious.txt", tmp_path / "elsewhere"
    victim.write_text("precious")
    elsewhere.mkdir()
    (two_generations / "CURRENT.tmp").symlink_to(victim)
    (two_generations / "staging").symlink_to(elsewhere)
    assert run("label", "2401.00001", "Quantization", "--index", two_generations)[0] == 0
    assert not (two_generations / "CURRENT").is_symlink() and current_generation(two_generations) == "gen-000003"
    assert victim.read_text() == "precious" and list(elsewhere.iterdir()) == []

    # An interrupted run's staging/ (as the next writer would resume it) with a file linked elsewhere.
    shutil.copytree(two_generations / "gen-000003", two_generations / "staging")
    (two_generations / "staging" / "vectors.faiss").unlink()
    (two_generations / "staging" / "vectors.faiss").symlink_to(victim)
    code, _, err = run("label", "2401.00002", "Quantization", "--index", two_generations)
    assert code == 0 and "held a link or a file semsearch never makes; dropped" in err
    assert victim.read_text() == "precious" and current_generation(two_generations) == "gen-000004"


def test_a_generation_that_is_a_link_is_never_adopted_nor_written_through(two_generations, tmp_path):
    """`gen-000009` linked to another index's unpublished-looking generation: a writer adopted it as
    its own interrupted work and deleted that generation's manifest and vectors through the link."""
    other = tmp_path / "other"
    shutil.copytree(two_generations, other)
    victim = other / "gen-000002"
    import sqlite3

    with sqlite3.connect(victim / "papers.db") as db:  # looks like work built on this index's CURRENT
        db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('base_generation', 'gen-000002')")
    db.close()
    before = sorted(p.name for p in victim.iterdir())
    (two_generations / "gen-000009").symlink_to(victim)
    code, _, err = run("label", "2401.00001", "Quantization", "--index", two_generations)
    assert code == 0, err
    assert sorted(p.name for p in victim.iterdir()) == before  # nothing deleted there


def test_a_hard_link_as_the_lock_or_as_current_is_neither_written_nor_quoted(two_generations, tmp_path, capsys):
    """A hard link passes every symbolic-link check: `.lock` sharing a file's inode had that file
    overwritten with a pid; `CURRENT` sharing a secret's had its first line quoted."""
    from semsearch.cli import main
    from semsearch.index import take_lock

    victim = tmp_path / "precious.txt"
    victim.write_text("precious")
    (two_generations / ".lock").unlink(missing_ok=True)
    os.link(victim, two_generations / ".lock")
    with pytest.raises(SemsearchError, match="is not a file semsearch made .* a hard link"):
        take_lock(two_generations / ".lock", 0, "writing to")
    assert victim.read_text() == "precious"
    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = SECRET-VALUE\n")
    (two_generations / "CURRENT").unlink()
    os.link(secret, two_generations / "CURRENT")
    assert main(["search", "cache", "--index", str(two_generations)]) == 2
    err = one_line(capsys.readouterr().err)
    assert "bytes that name no generation" in err and "SECRET" not in err


def test_a_writer_out_of_file_handles_is_said_as_such_by_the_api_too(two_generations, monkeypatch, capsys):
    """Out of file handles part-way through a label, the CLI said so but the API answered 500
    "internal error": the writer's errors now tell it as the CLI does (503: the same request can
    succeed later; nothing published)."""
    import errno

    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    def out_of_handles(store, staging):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(index_module, "build_lexical_index", out_of_handles)
    app = create_app(index_dir=two_generations, reload_seconds=None)
    response = TestClient(app).post("/api/labels", json={"id": "2401.00001", "category": "Quantization"})
    assert response.status_code == 503 and response.json()["error"].startswith("too many open files")
    assert current_generation(two_generations) == "gen-000002"


def test_a_short_write_of_the_word_index_is_the_disk_full_message(two_generations, tmp_path, monkeypatch, capsys):
    """numpy, writing the BM25 arrays onto a full disk, says "145263 requested and 15328 written" with
    no errno: a traceback in the CLI and a 500 from the API."""
    from fastapi.testclient import TestClient

    from semsearch.cli import main
    from semsearch.server import create_app

    def short_write(store, staging):
        raise OSError("145263 requested and 15328 written")

    monkeypatch.setattr(index_module, "build_lexical_index", short_write)
    code = main(["label", "2401.00001", "Quantization", "--index", str(two_generations)])
    assert code == 2 and one_line(capsys.readouterr().err).startswith("error: the disk is full; nothing was published")
    app = create_app(index_dir=two_generations, reload_seconds=None)
    response = TestClient(app).post("/api/labels", json={"id": "2401.00001", "category": "Quantization"})
    assert response.status_code == 507 and current_generation(two_generations) == "gen-000002"


def test_no_room_to_stage_a_copy_is_the_disk_full_message_not_damage(two_generations, monkeypatch, capsys):
    """The first step of every writer, copying papers.db into staging/, failed on a full disk and
    was told as "index ... is damaged" (inviting a rebuild that loses the labels); the part copy
    was left, keeping the disk full."""
    import sqlite3

    from semsearch.cli import main

    class FullDisk:
        def __init__(self, real):
            self.real = real

        def backup(self, target):
            raise sqlite3.OperationalError("database or disk is full")

        def __getattr__(self, name):
            return getattr(self.real, name)

    real_connect = sqlite3.connect
    monkeypatch.setattr(
        index_module.sqlite3,
        "connect",
        lambda path, **kw: FullDisk(real_connect(path, **kw)) if "mode=ro" in str(path) else real_connect(path, **kw),
    )
    code = main(["label", "2401.00001", "Quantization", "--index", str(two_generations)])
    err = one_line(capsys.readouterr().err)
    assert code == 2 and err.startswith("error: the disk is full: there is no room to copy the index into staging/")
    assert not (two_generations / "staging").exists() and current_generation(two_generations) == "gen-000002"


def test_a_change_stopped_before_it_staged_anything_says_nothing_was_changed(two_generations, monkeypatch, capsys):
    """Ctrl-C in a label's first instant said its change waited in staging/ for the next writer,
    when none did (a clumsy operator's pass): the writer tells the message what it left."""
    from semsearch.cli import main
    from semsearch.store import Store

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(Store, "put_label", interrupted)
    assert main(["label", "2401.00001", "Quantization", "--index", str(two_generations)]) == 130
    assert capsys.readouterr().err.strip() == "interrupted; nothing was changed"
    assert not (two_generations / "staging").exists() and current_generation(two_generations) == "gen-000002"


def test_a_change_beside_a_running_watch_says_it_publishes_the_watchs_work_not_an_interrupted_runs(
    two_generations, monkeypatch, capsys
):
    """A label while a watch waited on arXiv said it published "what an interrupted run had staged":
    nothing was interrupted (a week of use)."""
    from semsearch.cli import main
    from semsearch.index import WATCH_LOCK, drop_lock, take_lock

    real = index_module.IndexWriter.publish

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.IndexWriter, "publish", interrupted)  # staged work, as a watch leaves it
    assert main(["label", "2401.00001", "Quantization", "--index", str(two_generations)]) == 130
    monkeypatch.setattr(index_module.IndexWriter, "publish", real)
    capsys.readouterr()
    watching = take_lock(two_generations / WATCH_LOCK, 0, "watching arXiv for", who="watch")
    try:
        assert main(["label", "2401.00002", "Quantization", "--index", str(two_generations)]) == 0
    finally:
        drop_lock(watching)
    err = capsys.readouterr().err
    assert "this change also publishes what the watch running now has staged" in err and "interrupted" not in err


def test_a_change_that_publishes_what_an_interrupted_run_staged_says_so(two_generations, monkeypatch, capsys):
    """A Ctrl-C'd label, which said "interrupted" only, took effect with the next label of another
    paper, which said nothing of it (a clumsy operator's pass)."""
    from semsearch.cli import main

    real = index_module.IndexWriter.publish

    def interrupted(self, *args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index_module.IndexWriter, "publish", interrupted)
    assert main(["label", "2401.00001", "Quantization", "--index", str(two_generations)]) == 130
    assert "is published by the next command that writes to the index" in capsys.readouterr().err
    monkeypatch.setattr(index_module.IndexWriter, "publish", real)
    assert main(["label", "2401.00002", "Quantization", "--index", str(two_generations)]) == 0
    assert "this change also publishes what an interrupted run had staged" in capsys.readouterr().err
    assert {row["id"] for row in Index.open(two_generations).store.labels()} == {"2401.00001", "2401.00002"}
    assert main(["label", "2302.00003", "Quantization", "--index", str(two_generations)]) == 0
    assert "interrupted run" not in capsys.readouterr().err  # only while there was such work


def test_a_current_that_is_a_link_is_damage_and_what_it_points_to_is_never_shown(two_generations, tmp_path, capsys):
    """A CURRENT linked to a file had that file's first 60 characters quoted in the error, which
    `/api/health` shows anyone who asks (an attacker's pass: a link to a credentials file)."""
    from fastapi.testclient import TestClient

    from semsearch.cli import main
    from semsearch.server import create_app

    secret = tmp_path / "credentials"
    secret.write_text("aws_secret_access_key = SECRET-VALUE\n")
    (two_generations / "CURRENT").unlink()
    (two_generations / "CURRENT").symlink_to(secret)
    assert main(["search", "cache", "--index", str(two_generations)]) == 2
    err = one_line(capsys.readouterr().err)
    assert "CURRENT cannot be read (it is a symbolic link, which semsearch never makes)" in err and "SECRET" not in err
    try:  # a server refuses to start on it, or answers health with the same words
        said = TestClient(create_app(index_dir=two_generations, reload_seconds=None)).get("/api/health").text
    except IndexDamaged as err:
        said = str(err)
    assert "symbolic link" in said and "SECRET" not in said
    (two_generations / "CURRENT").unlink()
    (two_generations / "CURRENT").mkdir()
    assert main(["search", "cache", "--index", str(two_generations)]) == 2
    assert "CURRENT cannot be read (it is not a file)" in one_line(capsys.readouterr().err)
    (two_generations / "CURRENT").rmdir()
    os.mkfifo(two_generations / "CURRENT")  # read, it would wait for a writer for ever
    assert main(["search", "cache", "--index", str(two_generations)]) == 2
    assert "CURRENT cannot be read (it is not a file)" in one_line(capsys.readouterr().err)


def test_too_many_open_files_is_said_as_such_not_as_damage(two_generations, monkeypatch, capsys):
    """Under `ulimit -n 10` a search said the index was damaged (inviting a rebuild); nothing was."""
    import errno

    from semsearch.cli import main
    from semsearch.lexical import LexicalIndex

    def exhausted(directory):
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(LexicalIndex, "load", exhausted)
    assert main(["search", "kv cache", "--index", str(two_generations)]) == 1
    err = one_line(capsys.readouterr().err)
    assert err == "error: too many open files; raise the limit (`ulimit -n`) and run again"
    monkeypatch.setattr(Index, "open", exhausted)  # anywhere else: one line too, not a traceback
    assert main(["info", "--index", str(two_generations)]) == 1
    assert one_line(capsys.readouterr().err).startswith("error: too many open files")


DB_DAMAGE = {
    "garbage header": lambda db: db.write_bytes(noise(100) + db.read_bytes()[100:]),
    "garbage middle": overwrite_middle,
    "truncated": lambda db: os.truncate(db, db.stat().st_size // 2),
    "empty": lambda db: db.write_bytes(b""),
    "deleted": lambda db: db.unlink(),
}


@pytest.mark.slow
@pytest.mark.parametrize("damage", DB_DAMAGE)
def test_a_damaged_papers_db_is_passed_over_or_one_line(two_generations, damage):
    DB_DAMAGE[damage](two_generations / "gen-000002" / "papers.db")
    code, out, err = run("search", "kv cache eviction", "--json", "--index", two_generations)
    assert code == 0 and "warning: " in one_line(err) and "gen-000002 is damaged (papers.db" in err
    assert KV not in {r["id"] for r in json.loads(out)["results"]}

    shutil.rmtree(two_generations / "gen-000001")  # nothing to fall back to
    for command in (["search", "kv cache"], ["related", "2401.00001"], ["info"]):
        code, out, err = run(*command, "--index", two_generations)
        assert code == 2 and out == ""
        assert one_line(err).startswith(f"error: index at {two_generations}: gen-000002 is damaged (papers.db")


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["garbage header", "empty"])
def test_a_damaged_papers_db_of_an_index_without_checksums_is_one_line(two_generations, damage):
    for generation in ("gen-000001", "gen-000002"):
        manifest_path = two_generations / generation / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        del manifest["files"]
        manifest_path.write_text(json.dumps(manifest))
        DB_DAMAGE[damage](two_generations / generation / "papers.db")
    code, out, err = run("search", "kv cache", "--index", two_generations)
    # Found by SQLite, not by a checksum: said as the checked damage is, the generation and its file.
    assert code == 2 and one_line(err).startswith(
        f"error: index at {two_generations}: gen-000002 is damaged (papers.db cannot be read ("
    )


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["missing", "garbled"])
def test_a_missing_or_garbled_lexical_index_is_passed_over_or_one_line(two_generations, damage):
    lexical = two_generations / "gen-000002" / "lexical"
    if damage == "missing":
        shutil.rmtree(lexical)
    else:
        (lexical / "vocab.index.json").write_text("{not json")
    code, out, err = run("search", "kv cache eviction", "--json", "--index", two_generations)
    assert code == 0 and "gen-000002 is damaged (lexical/" in one_line(err)

    for generation in ("gen-000001", "gen-000002"):  # an index without checksums, no intact generation
        manifest_path = two_generations / generation / "manifest.json"
        manifest = json.loads(manifest_path.read_text())
        del manifest["files"]
        manifest_path.write_text(json.dumps(manifest))
    shutil.rmtree(two_generations / "gen-000001" / "lexical")
    if damage == "garbled":
        shutil.rmtree(two_generations / "gen-000002" / "lexical")
        (two_generations / "gen-000002" / "lexical").mkdir()
        (two_generations / "gen-000002" / "lexical" / "vec_ids.npy").write_bytes(noise(64))
    code, out, err = run("search", "kv cache eviction", "--index", two_generations)
    assert code == 2 and "lexical cannot be read" in one_line(err)


@pytest.mark.slow
def test_a_missing_manifest_is_named_not_a_race(two_generations):
    (two_generations / "gen-000002" / "manifest.json").unlink()
    code, out, err = run("search", "kv cache", "--index", two_generations)
    assert code == 0 and "gen-000002 is damaged (manifest.json is missing); serving gen-000001" in one_line(err)
    shutil.rmtree(two_generations / "gen-000001")
    code, out, err = run("info", "--index", two_generations)
    assert code == 2 and "manifest.json is missing" in one_line(err) and "keeps changing" not in err


@pytest.mark.parametrize(
    "field, value, said",
    [
        ("dimension", 768, "papers.db holds 64-d vectors, manifest says 768"),
        ("generation", "gen-000001", "the manifest is gen-000001's"),
        ("dimension", "64", "'dimension' is str '64', not int"),
        ("dimension", True, "'dimension' is bool 'True', not int"),
        ("index_type", "FLAT", "names no kind of vector index ('FLAT')"),
        ("index_type", None, "'index_type' is NoneType 'None', not str"),
    ],
)
def test_a_manifest_whose_claims_its_generation_belies_is_passed_over_or_one_line(two_generations, field, value, said):
    """The manifest is the anchor of the checksums, so nothing hashes it: an edited dimension failed
    every search with an intact older generation beside it, and `info` showed an edited generation."""
    path = two_generations / "gen-000002" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, field: value}))
    index = Index.open(two_generations)
    assert index.manifest.generation == "gen-000001" and said in index.integrity
    index.close()
    shutil.rmtree(two_generations / "gen-000001")
    with pytest.raises(IndexDamaged, match=re.escape(said)):
        Index.open(two_generations)


def test_a_manifest_naming_another_kind_of_vector_index_is_damage_in_one_line(two_generations, cli):
    path = two_generations / "gen-000002" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "index_type": "hnsw"}))
    code, out, err = cli("search", "kv cache", "--index", two_generations)
    assert code == 2 and out == "" and "(flat), manifest says 7 of dimension 64 (hnsw)" in one_line(err)


# --- CURRENT ---------------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize(
    "content",
    [b"\xff\xfe gen-000001\n", b"ABSOLUTE", b"../../../etc\n", b"gen-000001/../../other\n", b"", b"\n"],
    ids=["not utf-8", "absolute path", "dot-dot", "dot-dot after a name", "empty", "blank"],
)
def test_current_may_only_name_a_generation_inside_the_index(two_generations, tmp_path, content):
    elsewhere = tmp_path / "elsewhere"  # a whole other index that an absolute path could lead to
    shutil.copytree(two_generations / "gen-000001", elsewhere / "gen-000001")
    if content == b"ABSOLUTE":
        content = str(elsewhere / "gen-000001").encode()
    (two_generations / "CURRENT").write_bytes(content)
    for command in (["search", "kv cache"], ["info"], ["ingest", "jsonl", tmp_path / "all.jsonl"]):
        code, out, err = run(*command, "--index", two_generations)
        assert code == 2 and out == ""
        assert one_line(err).startswith(
            f"error: index at {two_generations} is damaged: CURRENT must name a generation (gen-NNNNNN), not "
        )
        assert err.strip().endswith("(the newest here is gen-000002)")


@pytest.mark.slow
def test_a_missing_current_beside_generations_is_damage_not_a_new_index(two_generations, tmp_path):
    """Taken for a new index, the next ingest published its one paper and retired both generations."""
    (two_generations / "CURRENT").unlink()
    new = write_jsonl(tmp_path / "one.jsonl", [{"id": "2409.00001", "title": "One more paper on caches"}])
    for command in (["search", "kv cache"], ["info"], ["ingest", "jsonl", new]):
        code, out, err = run(*command, "--index", two_generations)
        assert (code, out) == (2, "")
        assert one_line(err) == (
            f"error: index at {two_generations} is damaged: CURRENT is missing; write the name of a generation "
            "into it (the newest here is gen-000002)"
        )
    assert sorted(p.name for p in two_generations.glob("gen-*")) == ["gen-000001", "gen-000002"]
    (two_generations / "CURRENT").write_text("gen-000002\n")  # the repair the message asks for
    code, out, err = run("search", "kv cache eviction", "--json", "--index", two_generations)
    assert code == 0 and first_hit(out) == KV


@pytest.mark.slow
def test_current_naming_a_generation_that_does_not_exist_says_so(two_generations):
    (two_generations / "CURRENT").write_text("gen-999999\n")
    code, out, err = run("search", "kv cache eviction", "--json", "--index", two_generations)
    assert code == 0 and first_hit(out) == KV
    assert one_line(err).endswith("gen-999999 is missing (CURRENT names it); serving gen-000002")
    for generation in ("gen-000001", "gen-000002"):
        shutil.rmtree(two_generations / generation)
    code, out, err = run("search", "kv cache", "--index", two_generations)
    assert code == 2 and "gen-999999 is missing (CURRENT names it)" in one_line(err)
    assert "keeps changing" not in err


def test_a_generation_retired_between_reading_current_and_opening_it_is_looked_up_again(
    two_generations, monkeypatch, warnings
):
    """The real race stays a retry, with no warning: a writer published gen-000002 and retired
    gen-000001 between our reading CURRENT and opening what it named."""
    (two_generations / "CURRENT").write_text("gen-000001\n")
    real = Index._open_generation.__func__
    calls = []

    def racing(cls, directory, generation_dir):
        calls.append(generation_dir.name)
        if generation_dir.name == "gen-000001":
            (two_generations / "CURRENT").write_text("gen-000002\n")
            shutil.rmtree(generation_dir)
            raise FileNotFoundError(generation_dir)
        return real(cls, directory, generation_dir)

    monkeypatch.setattr(Index, "_open_generation", classmethod(racing))
    index = Index.open(two_generations)
    assert calls == ["gen-000001", "gen-000002"] and index.integrity is None and warnings == []


@settings(max_examples=examples(300), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode)))
def test_current_is_a_generation_name_or_damage_never_anything_else(tmp_path, content):
    (tmp_path / "CURRENT").write_bytes(content)
    try:
        name = current_generation(tmp_path)
    except IndexDamaged as err:
        assert "\n" not in str(err) and "CURRENT must name a generation" in str(err)
        return
    assert GENERATION_NAME.fullmatch(name) and (tmp_path / name).parent == tmp_path


@settings(max_examples=examples(200), deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    data=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=10),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=10),
        max_leaves=20,
    ),
    keep=st.booleans(),
)
def test_a_manifest_is_read_whole_or_refused_in_one_line(tmp_path, data, keep):
    if keep and isinstance(data, dict):  # a real manifest with something odd in one field
        real = dict(
            format_version=1, model="m", dimension=4, normalized=True, count=1, index_type="flat",
            generation="gen-000001", created_at="now",
        )  # fmt: skip
        data = {**real, **data}
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(data))
    try:
        manifest = Manifest.read(path)
    except SemsearchError as err:
        assert "\n" not in str(err)
        return
    assert manifest.files is None or all(isinstance(v, str) for v in manifest.files.values())


# --- writers ----------------------------------------------------------------------------------------
def test_an_ingest_after_the_vectors_were_damaged_rebuilds_them_from_the_intact_papers_db(
    two_generations, tmp_path, warnings
):
    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    ingest_jsonl([more], index_dir=two_generations, progress=False)
    index = Index.open(two_generations)
    assert index.generation_dir.name == "gen-000003" and index.integrity is None
    assert index.manifest.count == 8 and index.store.find(KV) is not None  # nothing of gen-000002 lost
    assert warnings == []


def test_an_ingest_after_papers_db_was_damaged_builds_on_the_last_intact_generation(
    two_generations, tmp_path, warnings
):
    overwrite_middle(two_generations / "gen-000002" / "papers.db")
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    ingest_jsonl([more], index_dir=two_generations, progress=False)
    assert warnings == [f"warning: index at {two_generations}: gen-000002 is damaged (papers.db checksum mismatch); "
                        "serving gen-000001"]  # fmt: skip
    index = Index.open(two_generations)
    assert index.generation_dir.name == "gen-000003" and index.integrity is None
    assert index.manifest.count == 7 and index.store.find(KV) is None  # gen-000001's papers and the new one


@pytest.mark.slow
def test_an_unparsable_lock_timeout_is_one_line(two_generations, tmp_path):
    code, out, err = run(
        "ingest", "jsonl", tmp_path / "all.jsonl", "--index", two_generations, env={"SEMSEARCH_LOCK_TIMEOUT": "abc"}
    )
    assert code == 2 and one_line(err) == "error: SEMSEARCH_LOCK_TIMEOUT must be a number of seconds, not 'abc'"
    # Set to nothing it means its default, as every SEMSEARCH_ variable does (it was refused as '').
    code, out, err = run(
        "ingest", "jsonl", tmp_path / "all.jsonl", "--index", two_generations, env={"SEMSEARCH_LOCK_TIMEOUT": " "}
    )
    assert code == 0, err


def test_an_unchanged_reingest_publishes_nothing(two_generations, tmp_path):
    before = sorted(p.name for p in two_generations.iterdir())
    report = ingest_jsonl([tmp_path / "all.jsonl"], index_dir=two_generations, progress=False)
    assert not report.published and report.unchanged == 7
    assert current_generation(two_generations) == "gen-000002"
    assert sorted(p.name for p in two_generations.iterdir()) == before  # no new generation, no staging
    assert "nothing new: gen-000002 (7 papers) is unchanged" in report.summary()


def test_an_unchanged_reingest_of_precomputed_vectors_publishes_nothing(tmp_path, fake_model):
    rows = [
        {**r, "embedding": [float((i + j) % 5) for j in range(64)], "embedding_model": "all-MiniLM-L6-v2"}
        for i, r in enumerate(corpus_records())
    ]
    source = write_jsonl(tmp_path / "vectors.jsonl", rows)
    assert ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False).published
    again = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert not again.published and current_generation(tmp_path / "idx") == "gen-000001"


@pytest.mark.slow
def test_an_unchanged_reingest_says_nothing_new(two_generations, tmp_path):
    code, out, err = run("ingest", "jsonl", tmp_path / "all.jsonl", "--index", two_generations, "--no-progress")
    assert code == 0 and "nothing new" in err and current_generation(two_generations) == "gen-000002"


@pytest.mark.slow
def test_a_device_is_not_a_json_lines_file(two_generations):
    code, out, err = run("ingest", "jsonl", "/dev/null", "--index", two_generations)
    assert (
        code == 2
        and one_line(err) == "error: cannot read /dev/null: not a regular file (save the records to a file first)"
    )


# A writer that stops at a point inside publish() (for the test to kill it with SIGKILL).
PAUSING = """
import sys
from pathlib import Path
from tests import cli_process
from semsearch import index, vectors

point, marker = sys.argv[1], Path(sys.argv[2])
sys.argv = [sys.argv[0], *sys.argv[3:]]
if point == "vectors":  # the FAISS file half-written, resume keys already dropped
    def write(built, path):
        path.write_bytes(b"half a file")
        cli_process.pause_here(marker)
    vectors.write = write
elif point == "checksums":  # every file written, the manifest not yet
    index.digest_files = lambda directory: cli_process.pause_here(marker)
elif point == "current":  # the generation renamed into place, CURRENT not yet replaced
    import os
    real = os.replace
    class PausingOs:
        def __getattr__(self, name):
            return getattr(os, name)
        @staticmethod
        def replace(source, target):
            if Path(target).name == "CURRENT":
                cli_process.pause_here(marker)
            real(source, target)
    index.os = PausingOs()
raise SystemExit(cli_process.main())
"""


@pytest.mark.slow
@pytest.mark.parametrize("point", ["vectors", "checksums", "current"])
def test_a_writer_killed_inside_publish_leaves_its_embeddings_for_the_next_run(two_generations, tmp_path, point):
    new = write_jsonl(
        tmp_path / "new.jsonl", [{"id": f"2409.{i:05d}", "title": f"Paper {i} on caches"} for i in range(40)]
    )
    marker = tmp_path / "paused"
    writer = semsearch("ingest", "jsonl", new, "--index", two_generations, "--no-progress", pause=point, marker=marker)
    deadline = time.monotonic() + 60
    while not marker.exists():
        assert writer.poll() is None, writer.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait(timeout=10)
    assert current_generation(two_generations) == "gen-000002"

    code, out, err = run("ingest", "jsonl", new, "--index", two_generations, "--no-progress")
    assert code == 0 and "embedded 0 in" in err  # all 40 were embedded before the kill
    index = Index.open(two_generations)
    assert index.manifest.count == 47 and index.integrity is None and index.store.find("2409.00039") is not None
    assert not (two_generations / "staging").exists()


# --- a read-only index ----------------------------------------------------------------------------------
@pytest.fixture
def read_only(two_generations, tmp_path):
    """The index seen through a read-only bind mount: writes fail with EROFS even for root."""
    view = tmp_path / "ro"
    view.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount here")
    done = subprocess.run(["mount", "--bind", str(two_generations), str(view)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {done.stderr.decode().strip()}")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True, capture_output=True)
        (two_generations / "gen-000002" / ".verified").unlink()  # it must be verified, and cannot be stamped
        yield view
    finally:
        subprocess.run(["umount", "--lazy", str(view)], capture_output=True)


@pytest.mark.slow
def test_a_read_only_index_is_searched_and_refuses_writes_in_one_line(read_only, tmp_path):
    code, out, err = run("search", "kv cache eviction", "--json", "--index", read_only)
    assert code == 0 and first_hit(out) == KV and err == ""  # verified in memory: no stamp can be written
    for command in (["ingest", "jsonl", tmp_path / "old.jsonl"], ["label", "2401.00001", "Quantization"]):
        code, out, err = run(*command, "--index", read_only)
        assert code == 2
        assert one_line(err) == (
            f"error: cannot write to the index at {read_only} (Read-only file system); it can still be searched"
        )


@pytest.fixture
def immutable(two_generations):
    """The index folder made immutable (`chattr +i`): no file can be made in it, even by root, while
    its files (.lock among them) can still be written."""
    (two_generations / ".lock").touch()  # as a writer leaves it
    done = subprocess.run(["chattr", "+i", str(two_generations)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot make a folder immutable here: {done.stderr.decode().strip()}")
    try:
        yield two_generations
    finally:
        subprocess.run(["chattr", "-i", str(two_generations)], capture_output=True)


def test_an_immutable_index_folder_refuses_writes_as_a_read_only_one_does(immutable, tmp_path):
    """Each writer said only "error: [Errno 1] Operation not permitted: 'IDX/staging'"."""
    for command in (["ingest", "jsonl", tmp_path / "old.jsonl"], ["label", "2401.00001", "Quantization"]):
        code, out, err = run(*command, "--index", immutable)
        assert code == 2
        assert one_line(err) == (
            f"error: cannot write to the index at {immutable} (Operation not permitted); it can still be searched"
        )
    code, out, err = run("search", "kv cache eviction", "--json", "--index", immutable)
    assert code == 0 and first_hit(out) == KV


def test_the_api_refuses_a_label_on_a_read_only_index_with_503(read_only):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=read_only, reload_seconds=0)) as client:
        response = client.post("/api/labels", json={"id": "2401.00001", "category": "Quantization"})
        assert response.status_code == 503 and "Read-only file system" in response.json()["error"]
        assert client.get("/api/search", params={"q": "kv cache"}).status_code == 200


@pytest.fixture
def vectors_to_a_full_disk(tmp_path, monkeypatch):
    """publish() writes vectors.faiss to a real, full file system (a tiny tmpfs); all else as usual."""
    from semsearch import vectors

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        real = vectors.write
        monkeypatch.setattr(vectors, "write", lambda index, path: real(index, small / "vectors.faiss"))
        with open(small / "filler", "wb", buffering=0) as filler:
            try:
                while True:
                    filler.write(b"\0" * 4096)
            except OSError:
                pass
        yield small
    finally:
        subprocess.run(["umount", "--lazy", str(small)], capture_output=True)


def test_a_disk_that_fills_while_faiss_is_written_is_the_disk_full_message(
    two_generations, tmp_path, vectors_to_a_full_disk, capsys
):
    """FAISS's own writer printed the error at close and left a truncated file, which was published."""
    from semsearch.cli import main

    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    code = main(["ingest", "jsonl", str(more), "--index", str(two_generations), "--no-progress"])
    assert code == 2 and current_generation(two_generations) == "gen-000002"
    assert one_line(capsys.readouterr().err).startswith("error: the disk is full; nothing was published")


def test_the_api_says_a_full_disk_in_json(two_generations, vectors_to_a_full_disk):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    response = TestClient(app).post("/api/labels", json={"id": "2401.00001", "category": "Quantization"})
    assert response.status_code == 507 and response.json()["error"].startswith("the disk is full")
    assert current_generation(two_generations) == "gen-000002"


def test_a_damaged_papers_db_found_by_a_query_is_503_not_500(two_generations):
    """A papers.db damaged after it was verified (under a running server) is found by SQLite
    part-way through a request: the API says so with a 503, not a 500."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    client, service = TestClient(app), app.state.service
    db = two_generations / "gen-000002" / "papers.db"
    db.write_bytes(db.read_bytes()[:1024] + noise(db.stat().st_size - 1024))  # the header alone intact
    service.current.index.store.close()  # the next request reads through a new connection
    response = client.get("/api/search", params={"q": "kv cache"})
    assert response.status_code == 503 and "papers.db cannot be read" in response.json()["error"]


# --- the server -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_server_never_swaps_in_a_damaged_generation_and_health_says_so(two_generations, tmp_path):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    client, service = TestClient(app), app.state.service
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    assert run("ingest", "jsonl", more, "--index", two_generations, "--no-progress")[0] == 0  # another process
    overwrite_middle(two_generations / "gen-000003" / "vectors.faiss")
    assert not service.refresh()
    health = client.get("/api/health").json()
    assert health["generation"] == "gen-000002" and "gen-000003" in health["reload_error"]
    assert health["integrity"] == "gen-000003 is damaged (vectors.faiss checksum mismatch); serving gen-000002"
    assert health["status"] == "degraded"  # a monitor reading only `status` learns of it too
    response = client.get("/api/search", params={"q": "kv cache eviction"})
    assert response.status_code == 200 and response.json()["results"][0]["id"] == KV

    restarted = TestClient(create_app(index_dir=two_generations, reload_seconds=None))  # a server started now
    assert restarted.get("/api/health").json()["integrity"] == health["integrity"]

    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")  # nothing intact left (gen-000001 retired)
    code, out, err = run("serve", "--index", two_generations, "--port", "8765")
    assert code == 2 and "no intact older generation" in one_line(err)


def test_a_server_keeps_serving_when_current_is_garbled(two_generations):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    client, service = TestClient(app), app.state.service
    (two_generations / "CURRENT").write_bytes(b"/etc\n")
    assert not service.refresh()  # raised in the reload thread before, which then stopped following
    health = client.get("/api/health").json()
    assert health["generation"] == "gen-000002" and "CURRENT must name a generation" in health["reload_error"]
    assert client.get("/api/search", params={"q": "kv cache"}).status_code == 200
    response = client.post("/api/labels", json={"id": "2401.00001", "category": "Quantization"})
    assert response.status_code == 503 and "CURRENT must name a generation" in response.json()["error"]


def test_health_is_ok_again_once_current_reads_again(two_generations):
    """CURRENT unreadable for a moment (a server out of open files, 'Too many open files'; an editor
    saving it): health said the index was damaged until the next publish, long after it read again."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    client, service = TestClient(app), app.state.service
    current = (two_generations / "CURRENT").read_bytes()
    (two_generations / "CURRENT").write_bytes(b"/etc\n")
    assert not service.refresh()
    assert client.get("/api/health").json()["status"] == "degraded"
    (two_generations / "CURRENT").write_bytes(current)
    assert not service.refresh()  # the same generation: nothing to swap in
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and "reload_error" not in health, health
    assert client.post("/api/labels", json={"id": "2401.00001", "category": "Quantization"}).status_code != 503


def test_a_generation_published_while_the_server_looks_is_served_not_called_damaged(
    two_generations, tmp_path, monkeypatch
):
    """CURRENT read, then a writer publishes again before the server opens the index: it opens an
    intact generation newer than the one it read of, and serves it (nothing fell back, nothing is
    damaged)."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    app = create_app(index_dir=two_generations, reload_seconds=None)
    client, service = TestClient(app), app.state.service
    more = write_jsonl(tmp_path / "more.jsonl", [{"id": "2409.00001", "title": "A paper on caches"}])
    ingest_jsonl([more], index_dir=two_generations, progress=False)  # gen-000003
    read_before = iter(["gen-000001"])  # what CURRENT said a moment before gen-000003 was published
    monkeypatch.setattr(index_module, "current_generation", lambda directory: next(read_before, "gen-000003"))
    assert service.refresh()
    health = client.get("/api/health").json()
    assert health["generation"] == "gen-000003" and health["status"] == "ok", health
    assert health.get("reload_error") is None


def test_a_lock_whose_directory_is_removed_as_it_is_opened_is_taken_in_the_directory_made_again(tmp_path, monkeypatch):
    """A refused `ingest --ray` removes the new index directory it made, under its lock: a writer that
    had just made sure of the directory, and opened `.lock` after its removal, was told the index
    could not be written (IndexUnwritable) where the directory could simply be made again."""
    from semsearch.index import drop_lock, take_lock

    path, real_open, removed = tmp_path / "new" / "idx" / ".lock", os.open, []

    def open_after_the_removal(name, *args, **kwargs):
        if Path(name) == path and not removed:
            shutil.rmtree(path.parent)  # the refused start's last step, between the two
            removed.append(True)
        return real_open(name, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_after_the_removal)
    fd = take_lock(path, 1, "writing to")
    try:
        assert removed and os.fstat(fd).st_ino == path.stat().st_ino
    finally:
        drop_lock(fd)


def test_a_writer_waits_for_the_lock_saying_so_once_then_names_its_holder(tmp_path):
    """`take_lock` waits up to its timeout, warning once (not each try) whom it waits for, then
    refuses naming the holder by the pid the holder wrote: this process's other writer, or another
    process. Once the holder lets go, the lock is taken at once."""
    from semsearch.errors import IndexBusy
    from semsearch.index import drop_lock, take_lock

    class Said(logging.Handler):  # the module's own logger: the CLI's set-up may stop it propagating
        def __init__(self):
            super().__init__(logging.WARNING)
            self.lines = []

        def emit(self, record):
            self.lines.append(record.getMessage())

    said = Said()
    logging.getLogger("semsearch.index").addHandler(said)
    path = tmp_path / "index" / ".lock"
    held = take_lock(path, 0, "writing to")
    try:
        assert path.read_text() == str(os.getpid())
        with pytest.raises(IndexBusy) as raised:
            take_lock(path, 0.3, "writing to")
        assert str(raised.value) == (
            f"this process's other semsearch writer (pid {os.getpid()}) is writing to {path.parent}; "
            "try again when it has finished"
        )
        assert said.lines == [
            f"waiting for this process's other writer (pid {os.getpid()}) to finish with {path.parent}…"
        ]
        os.pwrite(held, b"999999", 0)  # as a holder in another process leaves it
        said.lines.clear()
        with pytest.raises(IndexBusy) as raised:
            take_lock(path, 0.2, "watching arXiv for", who="watch")
        assert str(raised.value) == (
            f"another semsearch process (pid 999999) is watching arXiv for {path.parent}; "
            "try again when it has finished"
        )
        assert said.lines == [f"waiting for another watch (pid 999999) to finish with {path.parent}…"]
    finally:
        drop_lock(held)
        logging.getLogger("semsearch.index").removeHandler(said)
    drop_lock(take_lock(path, 0, "writing to"))


def test_a_generation_renamed_but_never_named_by_current_is_taken_up_by_the_next_writer(
    two_generations, monkeypatch, capsys
):
    """A writer stopped between renaming staging to its generation and writing CURRENT left a whole
    generation no reader sees: the next writer takes it back as its staging (its work is not redone
    or lost) and publishes it with its own change, under the next number."""
    from semsearch.cli import main

    real = index_module.write_atomically

    def stopped_before_current(target, data):
        if target.name == "CURRENT":
            raise KeyboardInterrupt
        real(target, data)

    monkeypatch.setattr(index_module, "write_atomically", stopped_before_current)
    assert main(["label", "2401.00001", "Quantization", "--index", str(two_generations)]) == 130
    monkeypatch.setattr(index_module, "write_atomically", real)
    assert current_generation(two_generations) == "gen-000002" and (two_generations / "gen-000003").is_dir()
    assert not (two_generations / "staging").exists()
    capsys.readouterr()
    assert main(["label", "2401.00002", "Quantization", "--index", str(two_generations)]) == 0
    assert "this change also publishes what an interrupted run had staged" in capsys.readouterr().err
    assert current_generation(two_generations) == "gen-000003"
    index = Index.open(two_generations)
    try:
        assert {row["id"] for row in index.store.labels()} == {"2401.00001", "2401.00002"}
    finally:
        index.close()
    assert sorted(p.name for p in two_generations.glob("gen-*")) == ["gen-000002", "gen-000003"]


def test_a_papers_db_sqlite_cannot_read_is_damage_of_its_generation_said_without_the_path(two_generations):
    """Found by SQLite, not by a checksum (an index written before them): the generation is damaged,
    its reason names the file within it, and an older intact generation answers."""
    from semsearch.index import GenerationDamaged

    _unchecked(two_generations)
    DB_DAMAGE["garbage header"](two_generations / "gen-000002" / "papers.db")
    with pytest.raises(GenerationDamaged) as raised:
        Index.open(two_generations, fall_back=False)
    assert raised.value.generation == "gen-000002"
    assert raised.value.reason.startswith("papers.db cannot be read (") and str(two_generations) not in str(
        raised.value.reason
    )
    index = Index.open(two_generations)
    try:
        assert index.generation_dir.name == "gen-000001"
        assert index.integrity.startswith("gen-000002 is damaged (papers.db cannot be read (")
    finally:
        index.close()


def test_a_generation_resealed_after_a_rewrite_on_purpose_is_checked_against_its_new_checksums(two_generations):
    """`reseal` records the checksums anew, not none: the rewritten file opens, and damage done to
    it afterwards is still found."""
    from semsearch.index import GenerationDamaged, reseal

    generation = two_generations / "gen-000002"
    vocabulary = generation / "lexical" / "vocab.index.json"
    vocabulary.write_text(vocabulary.read_text() + " ")  # a rewrite on purpose
    reseal(generation)
    Index.open(two_generations, fall_back=False).close()
    assert Manifest.read(generation / "manifest.json").files["lexical/vocab.index.json"] == index_module.file_digest(
        vocabulary
    )
    vocabulary.write_text(vocabulary.read_text() + " ")
    with pytest.raises(GenerationDamaged, match=r"lexical/vocab\.index\.json checksum mismatch"):
        Index.open(two_generations, fall_back=False)


def test_a_service_started_on_a_damaged_newest_generation_says_so_from_its_first_health(two_generations):
    """`serve` started after the newest generation was damaged answers from the one before, and its
    health says so at once, not only once a later generation is published."""
    from semsearch.service import Service

    overwrite_middle(two_generations / "gen-000002" / "vectors.faiss")
    health = Service(index_dir=two_generations).health()
    assert health["status"] == "degraded" and health["generation"] == "gen-000001"
    assert health["integrity"] == "gen-000002 is damaged (vectors.faiss checksum mismatch); serving gen-000001"


def test_a_generation_missing_or_damaged_is_said_in_one_form(tmp_path):
    from semsearch.index import GenerationDamaged

    missing = GenerationDamaged(tmp_path, "gen-000002", "CURRENT names it", missing=True)
    assert missing.what == "gen-000002 is missing (CURRENT names it)"
    assert str(missing) == f"index at {tmp_path}: gen-000002 is missing (CURRENT names it)"
    assert GenerationDamaged(tmp_path, "gen-000003", "bad checksum").what == "gen-000003 is damaged (bad checksum)"


def test_a_lock_file_that_is_a_symbolic_link_is_not_followed(tmp_path):
    """`lock_is_held` opens the lock with O_NOFOLLOW: a link at its place is no lock, even to a file
    someone holds locked."""
    import fcntl
    import os

    from semsearch.index import lock_is_held

    target = tmp_path / "held"
    target.write_text("")
    (tmp_path / ".lock").symlink_to(target)
    fd = os.open(target, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert lock_is_held(target)  # held, in this process too
        assert not lock_is_held(tmp_path / ".lock")
    finally:
        os.close(fd)
