import errno
import json
import os
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from semsearch.errors import SemsearchError
from semsearch.index import Index, IndexWriter
from semsearch.ingest import BATCH, Ingest, ingest_jsonl
from semsearch.paper import Paper
from semsearch.search import Searcher


def papers(n: int, prefix: str = "2401", text: str = "about caches") -> list[Paper]:
    return [
        Paper(id=f"{prefix}.{i:05d}", title=f"Paper {i} {text}", abstract=f"Abstract {i} {text}.") for i in range(n)
    ]


def ingest(index_dir, items, **kwargs):
    with Ingest(index_dir=index_dir, progress=False, **kwargs) as job:
        job.add(items)
    return job.report


def test_ingest_publishes_a_consistent_generation(tmp_path, fake_model):
    report = ingest(tmp_path / "idx", papers(5))
    index = Index.open(tmp_path / "idx")
    assert report.added == 5 and index.manifest.count == 5 == index.vectors.ntotal == index.store.count()
    manifest = json.loads((index.generation_dir / "manifest.json").read_text())
    assert manifest["model"] == "all-MiniLM-L6-v2" and manifest["dimension"] == 64 and manifest["normalized"]
    assert manifest["format_version"] == 1


def test_a_model_that_cannot_be_exported_is_tried_once(tmp_path, fake_model, monkeypatch):
    from semsearch import embeddings

    tried = []
    real = embeddings.export_onnx
    monkeypatch.setattr(embeddings, "export_onnx", lambda *args, **kw: tried.append(1) or real(*args, **kw))
    ingest(tmp_path, papers(2))
    ingest(tmp_path, papers(3))
    assert tried == [1]  # the fake model is no sentence-transformers pipeline: not exportable
    assert list((tmp_path / "encoders").glob("*.unsupported"))


def test_reingest_updates_in_place_and_embeds_only_changed_texts(tmp_path, fake_model):
    ingest(tmp_path, papers(5))
    fake_model.encoded.clear()
    changed = papers(5)
    changed[2] = Paper(id=changed[2].id, title=changed[2].title, abstract="A rewritten abstract.")
    report = ingest(tmp_path, changed + [Paper(id="2402.00001", title="New one")])
    assert (report.added, report.updated, report.unchanged) == (1, 1, 4)
    assert len(fake_model.encoded) == 2  # the changed paper and the new one
    index = Index.open(tmp_path)
    assert index.manifest.count == 6
    assert index.store.get(changed[2].id).abstract == "A rewritten abstract."


def test_versions_of_one_paper_are_one_record(tmp_path, fake_model):
    from semsearch.sources.jsonl import paper_from_record

    ingest(tmp_path, [paper_from_record({"id": "2401.00001v1", "title": "Old title"})])
    ingest(tmp_path, [paper_from_record({"id": "2401.00001v3", "title": "New title"})])
    index = Index.open(tmp_path)
    assert index.manifest.count == 1 and index.store.get("2401.00001").title == "New title"


def test_an_older_record_of_a_paper_read_again_does_not_bring_back_its_old_text(tmp_path, cli):
    """A snapshot read again after a newer version was stored (an old file re-ingested, two
    snapshots in the wrong order) put the replaced title and abstract back, silently: search
    answered from version 1 again and the paper's last update moved back a month."""
    v1 = {"id": "2411.00001v1", "title": "Old title", "abstract": "Old abstract.", "update_date": "2024-11-01"}
    v2 = {"id": "2411.00001v2", "title": "New title", "abstract": "New abstract.", "update_date": "2024-12-01"}
    index = tmp_path / "idx"
    for name, record in (("new.jsonl", v2), ("old.jsonl", v1)):
        (tmp_path / name).write_text(json.dumps(record) + "\n")
        cli("ingest", "jsonl", tmp_path / name, "--index", index, "--no-progress", "--json", check=True)
    held = Index.open(index).store.get("2411.00001")
    assert (held.title, held.abstract, held.updated) == ("New title", "New abstract.", "2024-12-01")
    found = json.loads(cli("search", "Old title", "--index", index, "--json", check=True).stdout)["results"]
    assert [hit["title"] for hit in found] == ["New title"]
    (tmp_path / "newer.jsonl").write_text(json.dumps(v2 | {"title": "Newest", "update_date": "2025-01-02"}) + "\n")
    cli("ingest", "jsonl", tmp_path / "newer.jsonl", "--index", index, "--no-progress", check=True)
    assert Index.open(index).store.get("2411.00001").title == "Newest"  # a newer one still replaces it


def test_survey_entry_without_id_merges_with_the_arxiv_record_of_the_same_title(tmp_path, fake_model):
    from semsearch.sources.survey import load_survey

    survey = load_survey()
    untitled = next(p for p in survey.papers if p.id.startswith("survey:"))
    ingest(tmp_path, [untitled])
    ingest(tmp_path, [Paper(id="2210.17323", title=untitled.title.upper(), abstract="Now with an abstract.")])
    index = Index.open(tmp_path)
    assert index.manifest.count == 1
    merged = index.store.get("2210.17323")
    assert merged.survey_categories == untitled.survey_categories and merged.abstract == "Now with an abstract."
    assert merged.title == untitled.title and set(merged.sources) == {"survey"}


def test_interrupted_ingest_leaves_previous_index_and_resumes(tmp_path, fake_model, monkeypatch):
    ingest(tmp_path, papers(3, prefix="2301"))
    before = Index.open(tmp_path).manifest

    calls = {"n": 0}
    real_encode = fake_model.encode

    def crash_on_second_batch(texts, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(fake_model, "encode", crash_on_second_batch)
    with pytest.raises(KeyboardInterrupt):
        ingest(tmp_path, papers(BATCH + 10))
    index = Index.open(tmp_path)
    assert index.manifest.generation == before.generation and index.manifest.count == 3

    monkeypatch.setattr(fake_model, "encode", real_encode)
    fake_model.encoded.clear()
    report = ingest(tmp_path, papers(BATCH + 10))
    assert len(fake_model.encoded) == 10  # the first batch was embedded before the crash and is reused
    assert report.embedded == 10
    assert Index.open(tmp_path).manifest.count == 3 + BATCH + 10
    # The run says where the papers it did not read as new came from: "0 new" while the index grew
    # by hundreds, after a kill -9 (a contract pass).
    assert (report.added, report.carried_over) == (0, BATCH + 10)
    assert f"{BATCH + 10} more new from an earlier run that stopped before publishing" in report.summary()
    assert ingest(tmp_path, papers(BATCH + 10)).carried_over == 0  # nothing staged: nothing carried


def test_error_part_way_publishes_what_came_before(tmp_path, fake_model):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "2401.00001", "title": "Fine"}\n{not json\n{"id": "2401.00002", "title": "Later"}\n')
    with pytest.raises(SemsearchError, match=r"bad.jsonl:2"):
        ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert [p.id for _, p in Index.open(tmp_path / "idx").store.iter_papers()] == ["2401.00001"]


def test_second_writer_waits_then_gives_up_with_a_clear_message(tmp_path, fake_model):
    """Another process is named as such (tests/test_faults.py); a writer of this very process (a
    server's label beside its watch) as this process's, not as "another process" with its own pid."""
    with IndexWriter(tmp_path, None):
        with pytest.raises(SemsearchError) as raised:
            with IndexWriter(tmp_path, None, lock_timeout=0.1):
                pass
    assert str(raised.value) == (
        f"this process's other semsearch writer (pid {os.getpid()}) is writing to {tmp_path}; "
        "try again when it has finished"
    )


def test_second_writer_proceeds_once_the_first_is_done(tmp_path, fake_model):
    first = IndexWriter(tmp_path, None).__enter__()
    timer = threading.Timer(0.1, first.__exit__, args=(None, None, None))
    timer.start()
    with IndexWriter(tmp_path, None, lock_timeout=5):
        pass
    timer.join()


def test_reader_sees_the_old_generation_while_a_writer_works(tmp_path, fake_model):
    ingest(tmp_path, papers(3))
    reader = Index.open(tmp_path)
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(papers(8, prefix="2402"))
        during = Index.open(tmp_path)
        assert during.manifest.count == 3 and during.vectors.ntotal == 3
    after = Index.open(tmp_path)
    assert after.manifest.count == 11
    # The reader opened before the write still answers from its own, complete generation.
    assert reader.store.count() == 3 and reader.vectors.ntotal == 3


def test_old_generations_are_cleaned_up(tmp_path, fake_model):
    for n in range(4):
        ingest(tmp_path, papers(1, prefix=f"240{n}"))
    assert sorted(p.name for p in tmp_path.glob("gen-*")) == ["gen-000003", "gen-000004"]


def test_model_mismatch_is_refused(tmp_path, fake_model):
    ingest(tmp_path, papers(1))
    with pytest.raises(SemsearchError, match="built with model 'all-MiniLM-L6-v2'"):
        with Ingest(index_dir=tmp_path, model="other-model", progress=False):
            pass


def test_missing_and_inconsistent_indexes_are_explained(tmp_path, fake_model):
    with pytest.raises(SemsearchError, match="no index at"):
        Index.open(tmp_path / "nowhere")
    ingest(tmp_path, papers(2))
    generation = Index.open(tmp_path).generation_dir
    db = sqlite3.connect(generation / "papers.db")
    db.execute("UPDATE meta SET value = 'another-model' WHERE key = 'model'")
    db.commit()
    db.close()
    with pytest.raises(SemsearchError, match=r"gen-000001 is damaged \(papers.db checksum mismatch\)"):
        Index.open(tmp_path)
    # A manifest from before checksums were kept: the cross-checks still catch it.
    manifest = json.loads((generation / "manifest.json").read_text())
    del manifest["files"]
    (generation / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SemsearchError, match="inconsistent.*another-model"):
        Index.open(tmp_path)


def test_index_dir_is_the_flag_then_the_variable_then_the_default(
    tmp_path, fake_model, monkeypatch, capsys, corpus_file
):
    from tests.test_cli import run

    def where(*flag) -> str:
        code, out, err = run(capsys, "info", "--json", *flag)
        assert code == 0, err
        return Path(json.loads(out)["path"]).name

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SEMSEARCH_INDEX", str(tmp_path / "from-env"))
    for flag in (["--index", tmp_path / "from-flag"], []):  # writing: the flag, else the variable
        assert run(capsys, "ingest", "jsonl", corpus_file, "--no-progress", *flag)[0] == 0
    assert where("--index", tmp_path / "from-flag") == "from-flag" and where() == "from-env"  # reading too
    monkeypatch.delenv("SEMSEARCH_INDEX")
    assert run(capsys, "ingest", "jsonl", corpus_file, "--no-progress")[0] == 0
    assert where() == "index" and (tmp_path / "index" / "CURRENT").exists()


def test_search_ranks_and_filters(tmp_path, fake_model, corpus_file):
    ingest_jsonl([corpus_file], index_dir=tmp_path, progress=False)
    searcher = Searcher(Index.open(tmp_path))
    hits = searcher.search("speculative decoding draft model", k=3)
    assert hits[0].paper.id == "2302.00003"
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    from semsearch.search import Filters

    recent = searcher.search("speculative decoding draft model", k=10, filters=Filters(year_from=2024))
    assert {h.paper.year for h in recent} == {2024}
    assert len(recent) == 2


@pytest.mark.parametrize("kind", ["ivf", "hnsw"])
def test_approximate_index_types_answer_and_filter(tmp_path, fake_model, kind):
    items = [
        Paper(id=f"2401.{i:05d}", title=f"Paper {i} topic{i % 7}", abstract=f"words{i} topic{i % 7}", year=2020 + i % 5)
        for i in range(400)
    ]
    with Ingest(index_dir=tmp_path, progress=False, index_type=kind) as job:
        job.add(items)
    index = Index.open(tmp_path)
    assert index.manifest.index_type == kind and index.vectors.ntotal == 400
    searcher = Searcher(index, mode="dense")
    from semsearch.search import Filters

    assert searcher.search(items[123].embedding_text(), k=1)[0].paper.id == "2401.00123"
    hits = searcher.search("topic3", k=5, filters=Filters(year_from=2023, year_to=2023))
    assert hits and all(h.paper.year == 2023 for h in hits)
    # The choice is remembered: a later ingest without --index-type keeps the kind.
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add([Paper(id="2402.00001", title="One more")])
    assert Index.open(tmp_path).manifest.index_type == kind


def test_a_flat_index_is_searched_without_faiss_as_faiss_would(tmp_path, fake_model):
    """A flat index (the kind up to 50,000 papers) is read from FAISS's file with numpy alone: the
    same neighbours and scores as FAISS's own search (papers of equal score may come in another
    order; this fake model ties often), filters included, and FAISS is never imported
    to answer (its import was ~40 ms of a question from a fresh process)."""
    import subprocess
    import sys

    import faiss

    from semsearch import vectors

    items = [Paper(id=f"2401.{i:05d}", title=f"Paper {i} topic{i % 7}", abstract=f"words{i}") for i in range(300)]
    ingest(tmp_path, items)
    index = Index.open(tmp_path)
    path = index.generation_dir / "vectors.faiss"
    flat, reference = vectors.load(path), faiss.read_index(str(path))
    assert isinstance(flat, vectors.FlatVectors) and vectors.kind_of(flat) == "flat"
    # Read into memory (a mapped file truncated under a server ends it: SIGBUS), mapped when large.
    assert not isinstance(flat.matrix, np.memmap)
    vectors.MAP_ABOVE_BYTES, limit = 0, vectors.MAP_ABOVE_BYTES
    try:
        mapped = vectors.load(path)
    finally:
        vectors.MAP_ABOVE_BYTES = limit
    assert isinstance(mapped.matrix, np.memmap) and np.array_equal(mapped.matrix, flat.matrix)
    queries = np.vstack([index.store.embedding(v) for v in (3, 50, 299)])
    for allowed in (None, np.array([7, 8, 120, 121, 122], dtype=np.int64), np.array([5], dtype=np.int64)):
        params = {} if allowed is None else {"params": faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))}
        expected_scores, expected_ids = reference.search(queries, 4, **params)
        scores, ids = vectors.search(flat, queries, 4, allowed)
        assert np.allclose(scores, expected_scores, atol=1e-5)
        for query, found, values, expected in zip(queries, ids, scores, expected_ids, strict=True):
            last = values[found >= 0].min()  # papers tied with the last one shown may differ
            assert set(found[values > last + 1e-5]) == set(expected[values > last + 1e-5])
            for vec_id, score in zip(found[found >= 0], values[found >= 0], strict=True):
                assert abs(float(index.store.embedding(int(vec_id)) @ query) - score) < 1e-5
    probe = (
        "import sys; from semsearch.index import Index; from semsearch.search import Searcher; "
        f"index = Index.open({str(tmp_path)!r}); "
        "Searcher(index).nearest(index.store.embedding(3)[None, :], 5); print('faiss' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_flat_matrix_is_mapped_only_above_the_limit_in_bytes_and_one_cut_while_read_is_left_to_faiss(
    tmp_path, fake_model, monkeypatch
):
    """MAP_ABOVE_BYTES counts bytes (four a number): a matrix of exactly that size is read into
    memory, one a byte larger mapped. A file cut between its size being read and its numbers (a
    copy `rsync --inplace` is writing) gives fewer numbers than its header said: not a flat index
    to reshape (which failed with a ValueError), but a file for FAISS to read or refuse."""
    from semsearch import vectors

    ingest(tmp_path, [Paper(id=f"2401.{i:05d}", title=f"Paper {i}", abstract=f"words{i}") for i in range(5)])
    path = Index.open(tmp_path).generation_dir / "vectors.faiss"
    size = vectors.load(path).matrix.size * 4
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", size)
    assert not isinstance(vectors.load(path).matrix, np.memmap)
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", size - 1)
    assert isinstance(vectors.load(path).matrix, np.memmap)
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", size)
    read = np.fromfile
    monkeypatch.setattr(np, "fromfile", lambda *args, **kwargs: read(*args, **kwargs)[:-1])
    assert vectors._read_flat(path) is None


def test_unknown_index_type_is_refused(tmp_path, fake_model):
    with pytest.raises(SemsearchError, match="unknown index type 'kd-tree'"):
        with Ingest(index_dir=tmp_path, progress=False, index_type="kd-tree"):
            pass


def test_auto_index_type_by_size():
    from semsearch.vectors import choose_index_type, ivf_lists

    assert choose_index_type("auto", 1_000) == "flat"
    assert choose_index_type("auto", 1_000_000) == "ivf"
    assert ivf_lists(1_000_000) == 4096 and ivf_lists(400) == 10


def test_interrupted_jsonl_ingest_resumes_where_it_stopped(tmp_path, fake_model, monkeypatch):
    source = tmp_path / "snapshot.jsonl"
    records = [{"id": f"2401.{i:05d}", "title": f"Paper {i}", "abstract": f"text {i}"} for i in range(BATCH + 10)]
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    from semsearch.store import Store

    real_put = Store.put
    calls = {"n": 0}

    def ctrl_c_after_the_first_batch(self, paper, **kwargs):
        calls["n"] += 1
        if calls["n"] == BATCH + 1:  # Ctrl-C reaches the main thread, here while it stores on
            raise KeyboardInterrupt  # the first BATCH lines are stored; their embedding is dropped
        return real_put(self, paper, **kwargs)

    monkeypatch.setattr(Store, "put", ctrl_c_after_the_first_batch)
    with pytest.raises(KeyboardInterrupt):
        ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert not (tmp_path / "idx" / "CURRENT").exists()  # nothing published

    monkeypatch.setattr(Store, "put", real_put)
    report = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    # The second run reads on from the end of the last committed batch instead of the first line,
    # and embeds what the first run stored but did not embed.
    assert report.read == 10 and report.embedded == BATCH + 10
    assert any("resuming" in w for w in report.warnings)
    assert Index.open(tmp_path / "idx").manifest.count == BATCH + 10
    # Once published, the file's place is forgotten: ingesting it again reads it all (and changes nothing).
    again = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert again.read == BATCH + 10 and again.unchanged == BATCH + 10


def test_a_failed_command_publishes_nothing(tmp_path, fake_model, capsys):
    from tests.test_cli import run

    ingest(tmp_path, papers(3))
    published = (tmp_path / "CURRENT").read_text()
    assert run(capsys, "label", "nope", "Quantization", "--index", tmp_path)[0] == 2
    assert run(capsys, "label", "2401.00000", "Nope", "--index", tmp_path)[0] == 2
    assert (tmp_path / "CURRENT").read_text() == published
    ingest(tmp_path, papers(3))  # nothing new: nothing to publish either
    assert (tmp_path / "CURRENT").read_text() == published
    assert run(capsys, "label", "2401.00000", "Quantization", "--index", tmp_path)[0] == 0
    assert (tmp_path / "CURRENT").read_text() != published


@pytest.mark.parametrize("others", [0, 2])
def test_a_paper_of_stopwords_only_is_stored_and_found_by_id(tmp_path, fake_model, others):
    from semsearch.related import RelatedFinder

    ingest(tmp_path, [*papers(others), Paper(id="2402.00001", title="On it", abstract="")])
    index = Index.open(tmp_path)
    assert index.manifest.count == others + 1 and index.store.find("2402.00001") is not None
    assert len(Searcher(index).search("on it", 3)) == others + 1  # no term of it matches; the embedding does
    assert len(RelatedFinder(index).related_to("2402.00001", 3)) == others


# --- precomputed vectors ------------------------------------------------------------------------------
def _records(n: int, model: str | None = "all-MiniLM-L6-v2", dimension: int = 64, embedded: bool = True) -> list[dict]:
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        row = {"id": f"2403.{i:05d}", "title": f"Precomputed paper {i}", "abstract": "made on a GPU elsewhere"}
        if embedded:
            row["embedding"] = rng.normal(size=dimension).tolist()
            if model:
                row["embedding_model"] = model
        rows.append(row)
    return rows


def _write(path, rows) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_precomputed_vectors_are_stored_as_given(tmp_path, fake_model):
    source = tmp_path / "vectors.jsonl"
    rows = _records(5)
    _write(source, rows)
    report = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert report.embedded == 0 and report.manifest.count == 5  # nothing embedded here
    store = Index.open(tmp_path / "idx").store
    stored = store.embedding(store.vec_id("2403.00003"))
    given = np.asarray(rows[3]["embedding"], dtype=np.float32)
    assert np.allclose(stored, given / np.linalg.norm(given), atol=1e-6)


@pytest.mark.parametrize("dtype, scale", [(np.float32, 1.0), (np.float64, 1e300), (np.float64, 1e-300)])
def test_precomputed_vectors_from_an_npy_file(tmp_path, fake_model, capsys, dtype, scale):
    """A row of any finite size is a direction (float64 rows of 1e300 were read as float32: inf)."""
    from tests.test_cli import run

    source = tmp_path / "papers.jsonl"
    _write(source, _records(4, embedded=False))
    matrix = np.random.default_rng(1).normal(size=(4, 64)).astype(dtype)
    np.save(tmp_path / "v.npy", matrix * scale)
    code, _, err = run(
        capsys, "ingest", "jsonl", source, "--vectors", tmp_path / "v.npy", "--vectors-model", "all-MiniLM-L6-v2",
        "--index", tmp_path / "idx", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    store = Index.open(tmp_path / "idx").store
    assert np.allclose(store.embedding(store.vec_id("2403.00002")), matrix[2] / np.linalg.norm(matrix[2]), atol=1e-6)


@pytest.mark.parametrize("rows", [3, 5])
def test_a_vectors_file_whose_rows_do_not_pair_up_with_the_records_is_refused_before_anything_is_stored(
    tmp_path, fake_model, capsys, rows
):
    from tests.test_cli import run

    source = tmp_path / "papers.jsonl"
    _write(source, _records(4, embedded=False))
    with source.open("a") as more:
        more.write("\n")  # a blank line is no record
    np.save(tmp_path / "v.npy", np.ones((rows, 64), dtype=np.float32))
    code, _, err = run(
        capsys, "ingest", "jsonl", source, "--vectors", tmp_path / "v.npy", "--vectors-model", "all-MiniLM-L6-v2",
        "--index", tmp_path / "idx", "--no-progress",
    )  # fmt: skip
    assert code == 2 and err == f"error: {tmp_path / 'v.npy'} has {rows} rows for the 4 records of {source}\n"
    assert not (tmp_path / "idx" / "CURRENT").exists()


@pytest.mark.parametrize(
    "rows, message",
    [
        (_records(3, dimension=32), "32-d vectors; the index's model gives 64-d"),
        (_records(3, model="another-model"), "made with 'another-model'"),
        (_records(3, model=None), "must name their model"),
    ],
)
def test_precomputed_vectors_of_another_model_are_refused(tmp_path, fake_model, capsys, rows, message):
    from tests.test_cli import run

    ingest(tmp_path / "idx", papers(2))
    published = (tmp_path / "idx" / "CURRENT").read_text()
    source = tmp_path / "bad.jsonl"
    _write(source, rows)
    code, _, err = run(capsys, "ingest", "jsonl", source, "--index", tmp_path / "idx", "--no-progress")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert (tmp_path / "idx" / "CURRENT").read_text() == published  # nothing stored, nothing published
    assert Index.open(tmp_path / "idx").store.get("2403.00000") is None


@pytest.mark.parametrize("scale", [1e30, 1e39, 1e-25, 1e-300, 1e300])
def test_a_precomputed_vector_of_any_finite_size_is_a_direction_stored_without_a_warning(
    tmp_path, fake_model, capsys, scale
):
    """1e30s overflowed float32's length (numpy's warnings on stderr, then "zero or not finite"),
    1e-25s underflowed it: the direction is what counts."""
    import warnings

    from tests.test_cli import run

    rows = _records(2)
    rows[1]["embedding"] = [scale * x for x in rows[1]["embedding"]]
    _write(tmp_path / "v.jsonl", rows)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning fails the test
        code, _, err = run(
            capsys, "ingest", "jsonl", tmp_path / "v.jsonl", "--index", tmp_path / "idx", "--no-progress"
        )
    assert code == 0 and "Warning" not in err, err
    store = Index.open(tmp_path / "idx").store
    given = np.asarray(_records(2)[1]["embedding"])
    assert np.allclose(store.embedding(store.vec_id("2403.00001")), given / np.linalg.norm(given), atol=1e-6)


@pytest.mark.parametrize(
    "values, said", [([0.0] * 64, "the vector is zero"), ([1.0] * 63 + [float("inf")], "not finite")]
)
def test_a_precomputed_vector_that_is_zero_or_not_finite_is_refused_in_one_line(
    tmp_path, fake_model, capsys, values, said
):
    from tests.test_cli import run

    rows = _records(1)
    rows[0]["embedding"] = values
    (tmp_path / "v.jsonl").write_text(json.dumps(rows[0]).replace("Infinity", "1e999") + "\n")
    code, _, err = run(capsys, "ingest", "jsonl", tmp_path / "v.jsonl", "--index", tmp_path / "idx", "--no-progress")
    assert code == 2 and said in err and len(err.strip().splitlines()) == 1, err


def test_the_taxonomy_texts_are_embedded_once_per_index(tmp_path, fake_model):
    """Retraining the classifier (a user labelled a paper) reuses the vectors of the taxonomy's own
    texts stored at the first training: nothing is embedded again."""
    from semsearch.ingest import ingest_survey, label_paper
    from semsearch.taxonomy import load_taxonomy

    ingest_survey(index_dir=tmp_path, offline=True, progress=False)
    taxonomy = load_taxonomy()
    assert {taxonomy.described(node) for node in taxonomy.nodes} <= set(fake_model.encoded)  # the first training
    ingest(tmp_path, papers(1))
    before = Index.open(tmp_path).store.get_artifact("taxonomy_classifier")
    fake_model.encoded.clear()
    label_paper(papers(1)[0].id, taxonomy.leaves[0], index_dir=tmp_path)
    assert Index.open(tmp_path).store.get_artifact("taxonomy_classifier") != before  # retrained ...
    assert fake_model.encoded == []  # ... without embedding anything


def test_scope_learns_its_words_again_when_the_indexs_abstracts_grow_by_a_quarter(tmp_path, fake_model):
    """Scope's words are learned from the index's unlabelled abstracts (classify.ScopeWords): a
    first corpus of 200 teaches them; 40 more (a fifth) are only predicted; 20 more after them (a
    quarter over the 200 learned from) retrain, and every paper is predicted again by it."""
    from semsearch.classify import CLASSIFIER_ARTIFACT, MIN_WORD_SCOPE_PAPERS, load_saved
    from semsearch.taxonomy import load_taxonomy

    leaves = load_taxonomy().leaves[:3]
    field = "weights bits cache tokens memory latency draft sparse heads experts layers context".split()
    other = "cooking recipes kitchen football league goals protein weather traffic music poems".split()

    def long_papers(start: int, n: int, labelled: bool = False) -> list[Paper]:
        """Labelled papers are in the field; of the others, every second is from another one."""
        return [
            Paper(
                id=f"{2301 if labelled else 2402}.{i:05d}",
                title=f"Paper {i}",
                abstract=" ".join(words[(i + j) % len(words)] for j in range(45)),
                survey_categories=[leaves[i % 3]] if labelled else [],
            )
            for i in range(start, start + n)
            for words in [field if labelled or i % 2 == 0 else other]
        ]

    directory = tmp_path / "idx"
    ingest(directory, long_papers(0, 24, labelled=True) + long_papers(0, MIN_WORD_SCOPE_PAPERS))

    def state():
        store = Index.open(directory).store
        return store.get_meta("scope_corpus_papers"), store.get_artifact(CLASSIFIER_ARTIFACT), store

    learned_on, first, store = state()
    assert learned_on == "200" and load_saved(store).scope_words is not None
    ingest(directory, long_papers(200, 40))
    learned_on, second, store = state()
    assert learned_on == "200" and second == first and not store.unpredicted(1)
    ingest(directory, long_papers(240, 20))
    learned_on, third, store = state()
    assert learned_on == "260" and third != first and not store.unpredicted(1)
    # A label retrains too, and every other paper's prediction is then the new classifier's.
    from semsearch.ingest import label_paper

    label_paper("2402.00001", leaves[2], index_dir=directory)
    store = Index.open(directory).store
    vec_ids = [store.find(p.id) for p in long_papers(0, 260) if p.id != "2402.00001"]
    papers, vectors = store.papers_by_vec_id(vec_ids), store.embeddings_for(vec_ids)
    again = load_saved(store).classify(
        [papers[v].embedding_text() for v in vec_ids], np.vstack([vectors[v] for v in vec_ids]), explain=False
    )
    stored = store.predictions(vec_ids)
    assert [(stored[v].category, round(stored[v].confidence, 6), stored[v].in_scope) for v in vec_ids] == [
        (r.category, round(r.confidence, 6), r.in_scope) for r in again
    ]
    # A count that is no count (an edited index) means: learn again, not a crash of every ingest.
    from semsearch.index import current_generation, reseal

    generation = directory / current_generation(directory)
    with sqlite3.connect(generation / "papers.db") as db:
        db.execute("UPDATE meta SET value = '260.0' WHERE key = 'scope_corpus_papers'")
    db.close()
    reseal(generation)
    ingest(directory, long_papers(260, 1))
    assert state()[0] == "260"  # 261 abstracts, one of them labelled


@pytest.mark.parametrize(
    ("trained_on", "now", "again"),
    [
        (0, 199, False),
        (0, 200, True),
        (198, 200, True),  # the first time there are enough: the docs' "once the index holds 200"
        (200, 249, False),
        (200, 250, True),
        (1000, 1000, False),
        (1000, 900, False),
    ],
)
def test_scope_corpus_grew_by_a_quarter_over_the_minimum(trained_on, now, again):
    from semsearch.ingest import scope_corpus_grew

    assert scope_corpus_grew(trained_on, now) is again


def test_a_summary_counts_one_paper_in_the_singular():
    from semsearch.ingest import IngestReport

    assert IngestReport(read=1, added=1).summary().startswith("read 1 paper: 1 new")
    assert IngestReport(read=2, added=2).summary().startswith("read 2 papers: 2 new")


@pytest.mark.parametrize("source", ["jsonl", "arxiv", "survey"])
def test_a_resumed_ingest_says_it_in_its_summary_not_again_as_a_warning(tmp_path, fake_model, monkeypatch, source):
    """The commands that print a summary say "N more new from an earlier run" there; a change that
    prints none warns instead (a mutation pass: each ingest's `prints_summary` was unchecked)."""
    from semsearch.ingest import ingest_arxiv, ingest_survey
    from semsearch.store import Store

    index_dir = tmp_path / "idx"
    records = papers(BATCH + 10)
    source_file = tmp_path / "papers.jsonl"
    source_file.write_text("".join(json.dumps(p.to_dict()) + "\n" for p in records))
    real_put, calls = Store.put, {"n": 0}

    def ctrl_c(self, paper, **kwargs):
        calls["n"] += 1
        if calls["n"] == BATCH + 1:
            raise KeyboardInterrupt
        return real_put(self, paper, **kwargs)

    monkeypatch.setattr(Store, "put", ctrl_c)
    with pytest.raises(KeyboardInterrupt):
        ingest_jsonl([source_file], index_dir=index_dir, progress=False)
    monkeypatch.setattr(Store, "put", real_put)
    if source == "jsonl":
        report = ingest_jsonl([source_file], index_dir=index_dir, progress=False)
    elif source == "arxiv":
        report = ingest_arxiv([], None, index_dir=index_dir, progress=False)
    else:
        report = ingest_survey(index_dir=index_dir, offline=True, progress=False)
    assert not any("interrupted run had staged" in w for w in report.warnings), report.warnings
    assert "more new from an earlier run" in report.summary()


# --- ingest jsonl's options, as a user runs them (conftest's `cli`: a process of its own in the full suite)
@pytest.fixture
def three_categories(tmp_path) -> Path:
    """Three papers, one per arXiv category (cs.CL; cs.LG with cs.AI; cs.RO), dated Jan, Mar, Jun 2024."""
    rows = [
        {"id": "2401.00001", "title": "Quantizing KV caches", "abstract": "We quantize caches.", "categories": "cs.CL",
         "update_date": "2024-01-05"},
        {"id": "2401.00002", "title": "Draft models for decoding", "abstract": "Drafts verified.",
         "categories": "cs.LG cs.AI", "update_date": "2024-03-01"},
        {"id": "2401.00003", "title": "Robot arms", "abstract": "Robots.", "categories": "cs.RO",
         "update_date": "2024-06-01"},
    ]  # fmt: skip
    path = tmp_path / "papers.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def held(index_dir: Path) -> list[str]:
    return sorted(paper.id for paper in Index.open(index_dir).store.papers_by_vec_id(range(10)).values())


def test_ingest_jsonl_keeps_the_categories_and_dates_asked_for(cli, three_categories, tmp_path):
    """And says how many records the filter left out: a file none of whose records matched read
    "read 0 papers", as if it were empty."""
    done = cli("ingest", "jsonl", three_categories, "--categories", "cs.CL,cs.LG", "--index", tmp_path / "a")
    assert done.returncode == 0
    assert held(tmp_path / "a") == ["2401.00001", "2401.00002"]
    assert done.stderr.startswith("read 2 papers (1 record left out by --categories): 2 new,"), done.stderr
    done = cli("ingest", "jsonl", three_categories, "--since", "2024-02-01", "--index", tmp_path / "b", check=True)
    assert held(tmp_path / "b") == ["2401.00002", "2401.00003"]
    assert done.stderr.startswith("read 2 papers (1 record left out by --since): 2 new,"), done.stderr
    done = cli(
        "ingest", "jsonl", three_categories, "--categories", "cs.CV", "--since", "2025-01-01", "--index", tmp_path / "c"
    )
    assert done.stderr.startswith("read 0 papers (3 records left out by --categories and --since):"), done.stderr
    done = cli("ingest", "jsonl", three_categories, "--index", tmp_path / "b", check=True)
    assert done.stderr.startswith("read 3 papers: 1 new,"), done.stderr  # no filter, nothing said of one


@pytest.mark.parametrize(
    "given, refusal",
    [
        ("", "no arXiv category given (e.g. cs.CL,cs.LG)"),
        (" , ", "no arXiv category given (e.g. cs.CL,cs.LG)"),
        ("CS.CL", "not an arXiv category: 'CS.CL' (e.g. cs.CL, cs.LG, stat.ML, hep-th)"),
    ],
)
def test_ingest_jsonl_refuses_categories_that_name_none_as_watch_does(cli, three_categories, tmp_path, given, refusal):
    """An empty --categories (a shell variable unset) kept every paper, the filter dropped without a
    word; a misspelt one ('CS.CL') kept none and exit 0. Now both are refused in watch's words."""
    done = cli("ingest", "jsonl", three_categories, "--categories", given, "--index", tmp_path / "idx")
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {refusal}\n")
    assert not (tmp_path / "idx").exists() or not any((tmp_path / "idx").iterdir())


def test_ingest_jsonl_takes_precomputed_vectors_from_an_npy_file_named_with_their_model(
    cli, three_categories, tmp_path
):
    np.save(tmp_path / "v.npy", np.random.default_rng(0).standard_normal((3, 64)).astype(np.float32))
    given = ("--vectors", tmp_path / "v.npy", "--vectors-model", "all-MiniLM-L6-v2", "--index", tmp_path / "idx")
    done = cli("ingest", "jsonl", three_categories, *given, "--no-progress", check=True)
    assert "embedded 0" in done.stderr and len(held(tmp_path / "idx")) == 3


def test_ingest_jsonl_refuses_vectors_model_without_vectors(cli, three_categories, tmp_path):
    """--vectors-model names the model of --vectors: alone it was dropped without a word and the
    papers embedded by the index's model, exit 0."""
    done = cli("ingest", "jsonl", three_categories, "--vectors-model", "all-MiniLM-L6-v2", "--index", tmp_path / "idx")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "error: --vectors-model names the model that made --vectors: give --vectors FILE too\n"
    assert not (tmp_path / "idx").exists()


@pytest.mark.parametrize("kind", ["flat", "ivf", "hnsw"])
def test_ingest_jsonl_builds_the_index_type_asked_for(cli, three_categories, tmp_path, kind):
    cli("ingest", "jsonl", three_categories, "--index-type", kind, "--index", tmp_path / "idx", check=True)
    assert json.loads(cli("info", "--json", "--index", tmp_path / "idx", check=True).stdout)["index_type"] == kind


def test_ingest_model_is_the_indexs_model_and_ray_without_an_export_is_refused(cli, three_categories, tmp_path):
    """--model names the index's model (ingest jsonl, survey, arxiv alike); --ray runs the model's ONNX
    export, which the test model has not: one line, exit 2, no index made."""
    cli("ingest", "jsonl", three_categories, "--model", "some/other-model", "--index", tmp_path / "a", check=True)
    assert (
        json.loads(cli("info", "--json", "--index", tmp_path / "a", check=True).stdout)["model"] == "some/other-model"
    )
    survey = cli(
        "ingest", "survey", "--offline", "--model", "some/other-model", "--progress", "--index", tmp_path / "s"
    )
    assert survey.returncode == 0 and "embedding" in survey.stderr  # the bar, asked for off a terminal
    quiet = cli("ingest", "survey", "--offline", "--no-progress", "--index", tmp_path / "s", check=True)
    assert "embedding" not in quiet.stderr and "0 new" in quiet.stderr
    ray = cli("ingest", "jsonl", three_categories, "--ray", "ray://127.0.0.1:1", "--index", tmp_path / "r")
    assert (ray.returncode, ray.stdout) == (2, "") and ray.stderr.count("\n") == 1 and "--ray" in ray.stderr
    assert cli("info", "--index", tmp_path / "r").returncode == 2  # no index was made


def test_ingest_arxiv_query_max_and_model_as_a_user_runs_them(cli, tmp_path, monkeypatch):
    from tests.arxiv_stub import ArxivStub

    papers = {f"2411.0000{i}": {"title": f"Paper {i} on caches", "abstract": "Caches."} for i in range(1, 6)}
    with ArxivStub(papers=papers) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        given = ("--query", "all:caches", "--max", "2", "--model", "some/other-model", "--index", tmp_path / "idx")
        done = cli("ingest", "arxiv", *given, "--no-progress", check=True)
        too_many = cli("ingest", "arxiv", "--query", "all:caches", "--max", "10001", "--index", tmp_path / "idx")
    assert (
        "2 new" in done.stderr and json.loads(cli("info", "--json", "--index", tmp_path / "idx").stdout)["papers"] == 2
    )
    assert stub.requests[0]["search_query"] == ["all:caches"]
    assert (too_many.returncode, too_many.stderr.count("\n")) == (2, 1) and "--max" in too_many.stderr


def test_an_empty_source_into_a_new_index_reports_no_papers(tmp_path, fake_model):
    """Nothing read, nothing published: `ingest ... --json` says the index holds 0 papers."""
    source = tmp_path / "empty.jsonl"
    source.write_text("\n")
    report = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert report.manifest is None and not report.published
    assert report.counts() == {
        "read": 0, "added": 0, "updated": 0, "unchanged": 0, "embedded": 0, "papers": 0, "skipped": 0,
        "skipped_lines": [],
    }  # fmt: skip


def test_a_vectors_file_goes_with_one_source_file_only(tmp_path, fake_model):
    one, two = tmp_path / "one.jsonl", tmp_path / "two.jsonl"
    _write(one, _records(2, embedded=False))
    _write(two, _records(2, embedded=False))
    np.save(tmp_path / "v.npy", np.ones((2, 64), dtype=np.float32))
    with pytest.raises(SemsearchError) as refused:
        ingest_jsonl([one, two], index_dir=tmp_path / "idx", vectors=tmp_path / "v.npy", vectors_model="m")
    assert str(refused.value) == "--vectors goes with one JSON Lines file, whose records its rows follow"
    assert not (tmp_path / "idx").exists()


def test_half_precision_vectors_are_read_at_full_precision(tmp_path, fake_model):
    """An .npy of float16 rows (a compact export): the stored direction is the row's to float32
    precision, not one computed in float16 (off by about 1e-3)."""
    source = tmp_path / "papers.jsonl"
    _write(source, _records(3, embedded=False))
    matrix = np.random.default_rng(2).normal(size=(3, 64)).astype(np.float16)
    np.save(tmp_path / "v.npy", matrix)
    ingest_jsonl(
        [source], index_dir=tmp_path / "idx", vectors=tmp_path / "v.npy", vectors_model="all-MiniLM-L6-v2",
        progress=False,
    )  # fmt: skip
    store = Index.open(tmp_path / "idx").store
    row = matrix[1].astype(np.float64)
    assert np.allclose(store.embedding(store.vec_id("2403.00001")), row / np.linalg.norm(row), atol=1e-6)


def test_the_next_batch_is_embedded_in_the_background_while_the_following_papers_are_stored(
    tmp_path, fake_model, monkeypatch
):
    """Reading and storing cost no time beside the encoder: each full batch stored starts its
    embedding on the embedding thread, and every paper ends up embedded once."""
    threads: list[str] = []
    original = Ingest.embedder

    def spied(self):
        embedder = original(self)
        if not getattr(embedder, "spied", False):
            encode = embedder.encode

            def encoding(texts):
                threads.append(threading.current_thread().name)
                return encode(texts)

            embedder.encode, embedder.spied = encoding, True
        return embedder

    monkeypatch.setattr(Ingest, "embedder", spied)
    report = ingest(tmp_path, papers(BATCH + 3))
    assert report.embedded == BATCH + 3 and report.manifest.count == BATCH + 3
    assert threads[0].startswith("semsearch-embed")  # the first batch, while the last 3 were read
    assert threads[1:] == [threading.current_thread().name]  # the rest, at the end


def test_an_online_survey_ingest_asks_arxiv_only_for_what_it_lacks_and_a_rerun_changes_nothing(
    tmp_path, fake_model, monkeypatch
):
    """The survey's papers with an arXiv id are fetched by id, those without one looked up by title
    once; a run after that asks arXiv for nothing and publishes nothing. A paper found by its title
    keeps its arXiv record's link (the survey's replaced it on the second run: "1 updated", a new
    generation for nothing)."""
    from semsearch import ingest as ingest_module
    from semsearch.ingest import ingest_survey
    from semsearch.sources.survey import Survey, load_survey
    from tests.arxiv_stub import ArxivStub

    full = load_survey()
    int8 = "LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale"
    other = next(p for p in full.papers if p.arxiv_id and p.arxiv_id != "2306.00978")
    chosen = [p for p in full.papers if p.arxiv_id == "2306.00978" or p.title == int8] + [other]
    assert len(chosen) == 3 and not next(p for p in chosen if p.title == int8).arxiv_id
    monkeypatch.setattr(ingest_module, "survey_of", lambda store: Survey(list(full.nodes), chosen))
    with ArxivStub() as stub:
        stub.papers["2208.07339"] = {"title": int8, "abstract": "Vector-wise quantization with outlier features."}
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        report = ingest_survey(index_dir=tmp_path, progress=False)
        asked = len(stub.requests)
    assert asked >= 2 and report.warnings == [] and report.manifest.count == 3
    store = Index.open(tmp_path).store
    assert store.get("2306.00978").abstract.startswith("An abstract written for the stub")
    assert store.get(other.arxiv_id).abstract.startswith("An abstract written for the stub")
    found = store.get("2208.07339")
    assert found.abstract.startswith("Vector-wise") and found.survey_categories
    assert found.url == "https://arxiv.org/abs/2208.07339"  # the arXiv record's, not the survey's
    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        again = ingest_survey(index_dir=tmp_path, progress=False)
        assert stub.requests == []
    assert (again.updated, again.unchanged, again.published) == (0, 3, False)
    assert Index.open(tmp_path).store.get("2208.07339").url == found.url


def test_an_interrupted_ingest_of_precomputed_vectors_resumes_where_it_stopped(tmp_path, fake_model, monkeypatch):
    source = tmp_path / "vectors.jsonl"
    _write(source, [row | {"id": f"2499.{i:05d}"} for i, row in enumerate(_records(BATCH + 4))])  # none the survey's
    from semsearch.store import Store

    real_put, calls = Store.put, {"n": 0}

    def ctrl_c_after_the_first_batch(self, paper, **kwargs):
        calls["n"] += 1
        if calls["n"] == BATCH + 1:
            raise KeyboardInterrupt
        return real_put(self, paper, **kwargs)

    monkeypatch.setattr(Store, "put", ctrl_c_after_the_first_batch)
    with pytest.raises(KeyboardInterrupt):
        ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    monkeypatch.setattr(Store, "put", real_put)
    report = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert (report.read, report.embedded) == (4, 0)  # on from the last committed batch; nothing embedded here
    assert any(w.startswith(f"resuming {source} at byte ") for w in report.warnings)
    index = Index.open(tmp_path / "idx")
    assert index.manifest.count == BATCH + 4  # the paper being stored at the Ctrl-C too (it was skipped)
    assert index.store.get(f"2499.{BATCH:05d}") is not None


def test_a_bad_precomputed_vector_is_named_by_its_file_and_line(tmp_path, fake_model):
    source = tmp_path / "vectors.jsonl"
    rows = _records(3)
    rows[1]["embedding"] = [0.0] * 64
    _write(source, rows)
    with pytest.raises(SemsearchError) as refused:
        ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False)
    assert str(refused.value) == f"{source}:2: the vector is zero"


def test_an_ingest_with_progress_shows_the_embedding_bar_on_standard_error(tmp_path, fake_model, capsys, corpus_file):
    ingest_jsonl([corpus_file], index_dir=tmp_path / "idx", progress=True)
    captured = capsys.readouterr()
    assert "embedding" in captured.err and " papers/s" in captured.err and captured.out == ""


@pytest.mark.parametrize(
    ("failure", "said"),
    [
        (OSError(errno.ENOSPC, "No space left on device"), "the disk is full"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "the disk quota is used up"),
        (OSError(errno.EROFS, "Read-only file system", "/x/store.sqlite"), "(/x/store.sqlite: Read-only file system)"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "(attempt to write a readonly database)"),
    ],
)
def test_a_write_failing_for_want_of_room_or_permission_is_said_by_its_cause(tmp_path, fake_model, failure, said):
    """The CLI and the API say these in one line (507, 503), by what ran out, not as a traceback."""
    from semsearch.errors import DiskFull, IndexUnwritable

    with pytest.raises((DiskFull, IndexUnwritable)) as told:
        with Ingest(index_dir=tmp_path / "idx", progress=False) as job:
            job.add(papers(2))
            raise failure
    assert said in str(told.value)
    assert isinstance(told.value, DiskFull if failure.args[0] in (errno.ENOSPC, errno.EDQUOT) else IndexUnwritable)


def test_a_skipped_malformed_line_is_a_warning_of_the_run_and_counted(tmp_path, fake_model):
    source = tmp_path / "papers.jsonl"
    source.write_text(json.dumps({"id": "2401.00001", "title": "A paper", "abstract": "text"}) + "\n{oops\n")
    report = ingest_jsonl([source], index_dir=tmp_path / "idx", progress=False, skip_malformed=True)
    assert report.skipped == [f"{source}:2"] and report.counts()["skipped_lines"] == [f"{source}:2"]
    assert [w for w in report.warnings if w.startswith(f"{source}:2: ")] != []


def test_vectors_of_another_model_in_a_vectors_file_are_refused_naming_the_file(tmp_path, fake_model):
    source = tmp_path / "papers.jsonl"
    _write(source, _records(2, embedded=False))
    np.save(tmp_path / "v.npy", np.ones((2, 64), dtype=np.float32))
    with pytest.raises(SemsearchError) as refused:
        ingest_jsonl([source], index_dir=tmp_path / "idx", vectors=tmp_path / "v.npy", vectors_model="other-model")
    assert (
        str(refused.value)
        == f"{tmp_path / 'v.npy'}: vectors made with 'other-model'; the index uses 'all-MiniLM-L6-v2'"
    )
