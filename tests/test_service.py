"""The service every door answers with (`semsearch.service`), the vector index's sizing rules
(`semsearch.vectors`) and the taxonomy's counts (`semsearch.taxonomy`), in-process: what the
mutation runs found no test pinning down."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.ingest import IngestReport
from semsearch.watch import DigestEntry, WatchReport, save_digest
from tests.cli_process import run_here
from tests.conftest import examples
from tests.test_lists import LIST

KV = "Model-Centric Methods/Efficient Inference/KV-Cache Optimization"


@pytest.fixture
def with_a_list(survey_corpus_index, tmp_path):
    """The survey+corpus index with the curated list "kv" added offline."""
    readme = tmp_path / "README.md"
    readme.write_text(LIST)
    run_here("taxonomy", "add", "kv", readme, "--offline", "--index", survey_corpus_index, check=True)
    return survey_corpus_index


def _digest(index_dir, since: str, until: str, paper: str, taxonomy: str | None = None) -> None:
    entry = DigestEntry(paper, f"Paper {paper}", None, "Methods/Eviction", 0.8, True)
    save_digest(WatchReport(since, until, 1, [entry], IngestReport()), index_dir=index_dir, taxonomy=taxonomy)


# --- service --------------------------------------------------------------------------------------
def test_the_taxonomy_served_counts_the_index_papers_labelled_and_predicted(survey_corpus_index):
    """`GET /api/taxonomy` and `taxonomy show --json`: each node's papers are the index's (the
    survey's labels and the corpus's predictions), not the survey's list without an index."""
    from semsearch.index import Index
    from semsearch.service import Service, taxonomy_tree
    from semsearch.taxonomy import index_tree, subtree_counts

    service = Service(index_dir=survey_corpus_index)
    tree = service.taxonomy()
    store = Index.open(survey_corpus_index).store
    vec_ids = store.all_vec_ids()
    counted = subtree_counts(store.categories_for(vec_ids).values())
    labelled = subtree_counts(store.categories_for(vec_ids, predicted=False).values())
    assert {root["path"]: root["papers"] for root in tree} == {
        root["path"]: counted.get(root["path"], 0) for root in tree
    }
    assert {root["path"]: root["labelled"] for root in tree} == {
        root["path"]: labelled.get(root["path"], 0) for root in tree
    }
    assert any(root["papers"] > root["labelled"] for root in tree)  # the corpus's predicted papers count

    def nodes(branch):
        for node in branch:
            yield node
            yield from nodes(node["children"])

    every = list(nodes(tree))
    assert [node["papers"] for node in every] == [counted.get(node["path"], 0) for node in every]
    assert any(node["papers"] == 0 for node in every)  # a node no paper sits under says 0
    assert [node["labelled"] for node in every] == [labelled.get(node["path"], 0) for node in every]
    assert tree != index_tree(None) and taxonomy_tree(store, "survey") == tree


def test_without_an_index_the_tree_counts_the_surveys_own_list():
    """`semsearch taxonomy` with no index: the survey's papers under each node, every one labelled."""
    from semsearch.sources.survey import load_survey
    from semsearch.taxonomy import index_tree

    tree = index_tree(None)
    papers = load_survey().papers
    for root in tree:
        under = sum(
            1 for p in papers if any(c == root["path"] or c.startswith(root["path"] + "/") for c in p.survey_categories)
        )
        assert root["papers"] == root["labelled"] == under > 0


def test_recommend_gives_ten_papers_unless_asked_for_another_number(survey_corpus_index):
    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)
    liked = service.search("kv cache eviction", 1)["results"][0]["id"]
    assert len(service.recommend([liked])["results"]) == 10
    assert len(service.recommend([liked], k=3)["results"]) == 3


def test_papers_under_a_node_are_ranked_by_cosine_to_the_nodes_mean_and_bare_by_default(survey_corpus_index):
    """`GET /api/papers?category=`: the papers most typical of the node first, each scored by the
    cosine of its embedding to the normalised mean of the node's papers; without `details` no
    abstract, authors or venue (the list view asks for them)."""
    from semsearch.index import Index
    from semsearch.search import Filters
    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)
    answer = service.papers_under("KV-Cache Optimization", limit=5)
    assert answer["category"] == KV
    results = answer["results"]
    assert results and not {"abstract", "authors", "venue"} & set(results[0])
    assert "abstract" in service.papers_under("KV-Cache Optimization", limit=5, details=True)["results"][0]
    index = Index.open(survey_corpus_index)
    from semsearch.search import Searcher

    vec_ids = Searcher(index).allowed_vec_ids(Filters(category=KV)).tolist()
    embeddings = index.store.embeddings_for(vec_ids)
    matrix = np.vstack([embeddings[v] for v in vec_ids])
    centre = matrix.mean(axis=0)
    centre /= np.linalg.norm(centre)
    cosines = sorted((float(row @ centre) for row in matrix), reverse=True)
    assert [r["score"] for r in results] == pytest.approx([min(1.0, c) for c in cosines[: len(results)]], abs=1e-3)


def test_a_reload_that_fails_is_logged_with_why_and_said_in_health(survey_corpus_index, monkeypatch):
    import logging
    import threading
    import time

    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)

    def refused():
        raise PermissionError("stat refused")

    # A handler of its own: the CLI's stderr handler (attached by an earlier test's run in this
    # process) stops the record's propagation to pytest's caplog.
    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())
    logger = logging.getLogger("semsearch.service")
    logger.addHandler(handler)
    monkeypatch.setattr(service, "refresh", refused)
    try:
        stop = service.follow(0.01)
        assert "semsearch-reload" in {thread.name for thread in threading.enumerate()}  # named for a stack dump
        deadline = time.monotonic() + 10
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
    finally:
        logger.removeHandler(handler)
    assert seen[0] == "semsearch: reloading failed: PermissionError: stat refused"
    assert service.health()["reload_error"] == "PermissionError: stat refused"


def test_a_predicted_papers_page_says_the_classifiers_confidence_and_a_labelled_ones_none(survey_corpus_index):
    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)
    results = service.search("kv cache quantization", 30)["results"]
    predicted = next(r["id"] for r in results if r["category_source"] == "predicted")
    page = service.paper(predicted)
    assert page["category_source"] == "predicted"
    assert isinstance(page["confidence"], float) and 0 < page["confidence"] <= 1
    assert page["confidence"] == round(page["confidence"], 4)
    labelled = next(r["id"] for r in results if r["category_source"] == "survey")
    assert service.paper(labelled)["confidence"] is None


def test_a_lists_searcher_uses_the_model_the_service_loaded(with_a_list):
    """The models are loaded once: a list's searcher, made on its first request, embeds with the
    service's model rather than loading another."""
    from semsearch.service import Service

    generation = Service(index_dir=with_a_list).current
    assert generation.under("kv")[0].embedder is generation.searcher.embedder
    assert generation.under("kv") is generation.under("kv")  # made once a generation


def test_a_label_says_whether_it_is_in_effect(survey_corpus_index):
    """A user's label places its paper unless the survey files the paper elsewhere: in effect for a
    paper the survey has not filed, or when it names the survey's own node; not otherwise."""
    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)
    results = service.search("kv cache quantization", 30)["results"]
    filed = next(r for r in results if r["category_source"] == "survey")
    own = service.label(filed["id"], filed["categories"][0])
    assert own == {"id": filed["id"], "category": filed["categories"][0], "in_effect": True}
    assert not any(c.endswith("/Speculative Decoding") for c in filed["categories"])
    assert service.label(filed["id"], "Speculative Decoding")["in_effect"] is False
    predicted = next(r["id"] for r in results if r["category_source"] == "predicted")
    assert service.label(predicted, "Speculative Decoding")["in_effect"] is True


def test_the_service_loads_its_model_once_for_one_thread_a_request(survey_corpus_index, monkeypatch):
    """Concurrent requests use the cores better than one request split: the service's model runs
    each question on SESSION_THREADS (1) threads, and FAISS likewise."""
    import faiss

    from semsearch import embeddings
    from semsearch.service import SESSION_THREADS, Service

    asked = []
    real = embeddings.embedder_for

    def recorded(*args, **kwargs):
        asked.append(kwargs.get("threads"))
        return real(*args, **kwargs)

    monkeypatch.setattr(embeddings, "embedder_for", recorded)
    before = faiss.omp_get_max_threads()
    try:
        Service(index_dir=survey_corpus_index)
        assert asked == [SESSION_THREADS] == [1]
        assert faiss.omp_get_max_threads() == 1
    finally:
        faiss.omp_set_num_threads(before)


def test_a_lists_node_feed_is_the_lists_not_the_surveys(with_a_list):
    from semsearch.service import Service

    feed = Service(index_dir=with_a_list).node_feed("Eviction", "kv", "http://h/").decode()
    assert "<id>http://h/feeds/kv/Methods/Eviction.atom</id>" in feed and "(kv)</title>" in feed
    survey = Service(index_dir=with_a_list).node_feed("KV-Cache Optimization", None, "http://h/").decode()
    assert "http://h/feeds/survey/" in survey


def test_a_lists_digests_feed_holds_its_watchs_digests_and_not_the_surveys(with_a_list):
    from semsearch.service import Service

    _digest(with_a_list, "202411010000", "202411020000", "2411.00001")  # the survey's watch
    _digest(with_a_list, "202411030000", "202411040000", "2411.00003", taxonomy="kv")
    service = Service(index_dir=with_a_list)
    listed = service.digests_feed("http://h/", "kv").decode()
    assert "2411.00003" in listed and "2411.00001" not in listed
    survey = service.digests_feed("http://h/").decode()
    assert "2411.00001" in survey and "2411.00003" not in survey


def test_a_digest_gone_between_listing_and_reading_is_passed_over_and_the_older_ones_kept(
    survey_corpus_index, monkeypatch
):
    """A watch (or a person) removing the newest digest while a feed is made: the feed leaves that
    one out and still holds the others."""
    from semsearch import watch
    from semsearch.service import Service

    _digest(survey_corpus_index, "202411010000", "202411020000", "2411.00001")
    _digest(survey_corpus_index, "202411020000", "202411030000", "2411.00002")
    scan = watch.scan_digests

    def listed_then_newest_removed(**kwargs):
        found = scan(**kwargs)
        (survey_corpus_index / "digests" / f"{found[0][0]['name']}.json").unlink()
        return found

    monkeypatch.setattr(watch, "scan_digests", listed_then_newest_removed)
    feed = Service(index_dir=survey_corpus_index).digests_feed("http://h/").decode()
    assert "2411.00001" in feed and "2411.00002" not in feed


# --- vectors: how an IVF index is sized -------------------------------------------------------------
@settings(max_examples=examples(300), deadline=1000)
@given(st.integers(0, 10**10))
def test_ivf_lists_are_the_power_of_two_nearest_four_root_n_capped_by_what_trains(count):
    """About 4·√n lists (the power of two nearest it, on a log scale), never more than count // 39
    (FAISS wants 39 training vectors a list), and at least one."""
    from semsearch.vectors import ivf_lists

    lists = ivf_lists(count)
    assert lists >= 1
    if count >= 39:
        assert lists <= count // 39
    if count >= 50_000:  # where the cap does not bind (4·√2·√n <= n / 39)
        assert lists & (lists - 1) == 0
        assert abs(math.log2(lists) - math.log2(4 * math.sqrt(count))) <= 0.5 + 1e-9


def test_ivf_lists_and_the_training_sample_at_known_sizes():
    from semsearch.vectors import ivf_lists, training_size

    assert [ivf_lists(n) for n in (0, 1, 38, 39, 100_000, 1_000_000)] == [1, 1, 1, 1, 1024, 4096]
    # At least 100,000 vectors, 40 a list where that is more, never more than there are.
    assert training_size(5_000) == 5_000
    assert training_size(200_000) == 100_000
    assert training_size(1_000_000) == 40 * 4096


# --- taxonomy: naming a node ----------------------------------------------------------------------
def test_an_unknown_node_is_refused_with_the_close_names_or_where_to_see_them():
    from semsearch.taxonomy import UnknownCategory, resolve_node

    with pytest.raises(UnknownCategory) as refused:
        resolve_node("Quantisation")
    close = str(refused.value).removeprefix("unknown category 'Quantisation' (did you mean: ").removesuffix("?)")
    names = close.split(", ")
    assert 1 < len(names) <= 3 and "Quantization" in names
    with pytest.raises(UnknownCategory, match=r"^unknown category 'zzqqxj' \(see `semsearch taxonomy`\)$"):
        resolve_node("zzqqxj")
    with pytest.raises(UnknownCategory, match=r"\(see `semsearch taxonomy show kv`\)$"):
        resolve_node("zzqqxj", ("A/B",), listed_by="semsearch taxonomy show kv")


def test_a_node_name_is_taken_whole_but_for_slashes_and_spaces_around_it():
    from semsearch.taxonomy import resolve_node

    nodes = ("A", "AX", "X", "A/X")
    assert resolve_node("AX", nodes) == "AX"
    assert resolve_node(" /A/X/ ", nodes) == "A/X"
    assert resolve_node("A › X", nodes) == "A/X"
    assert resolve_node("X", ("X", "XX")) == "X"


# --- vectors: the flat index read with numpy ---------------------------------------------------------
def test_a_flat_search_answers_in_faiss_types_whatever_the_questions_precision():
    """float32 scores and int64 ids, as FAISS's own search gives, for float64 questions too; -1 and
    float32's lowest where fewer papers match than asked."""
    from semsearch.vectors import FlatVectors

    flat = FlatVectors(np.eye(3, dtype=np.float32), np.array([10, 11, 12], dtype=np.int64))
    scores, ids = flat.search(np.array([[0.0, 1.0, 0.0]], dtype=np.float64), 2, allowed=np.array([11]))
    assert scores.dtype == np.float32 and ids.dtype == np.int64
    assert ids.tolist() == [[11, -1]] and scores[0, 1] == np.finfo(np.float32).min


def test_faiss_indexes_searched_among_allowed_ids_give_only_those():
    """A FAISS index (a flat one FAISS wrote in another layout, IVF, HNSW) searched with a filter
    gives only the allowed papers, up to k."""
    from semsearch import vectors

    rng = np.random.default_rng(0)
    matrix = rng.standard_normal((400, 16)).astype(np.float32)
    matrix /= np.linalg.norm(matrix, axis=1, keepdims=True)
    ids = np.arange(1000, 1400, dtype=np.int64)
    allowed = ids[::7]
    for kind in ("flat", "ivf", "hnsw"):
        index = vectors.build(iter([(ids, matrix)]), 400, 16, kind, training=matrix)
        assert vectors.kind_of(index) == kind and not isinstance(index, vectors.FlatVectors)
        scores, found = vectors.search(index, matrix[:2], 5, allowed)
        assert set(found.ravel().tolist()) <= set(allowed.tolist()), kind
        assert found[0, 0] == 1000  # the first question is the first paper, allowed
        assert np.all(scores[:, :-1] >= scores[:, 1:])


def test_the_ids_of_an_index_are_its_map_or_for_one_without_a_map_its_places():
    import faiss

    from semsearch import vectors

    bare = faiss.IndexFlatIP(4)
    bare.add(np.eye(4, dtype=np.float32)[:3])
    assert vectors.ids_of(bare).tolist() == [0, 1, 2]
    mapped = vectors.build(iter([(np.array([7, 9]), np.eye(4, dtype=np.float32)[:2])]), 2, 4, "flat")
    assert vectors.ids_of(mapped).tolist() == [7, 9]


def test_a_flat_file_longer_or_shorter_than_its_header_says_is_left_to_faiss(tmp_path, fake_model):
    """The numpy reader takes FAISS's file only when its size is what its header makes it: a file
    with bytes after its ids (or fewer) is FAISS's to read or refuse."""
    from semsearch import vectors

    index = vectors.build(iter([(np.array([7, 9]), np.eye(4, dtype=np.float32)[:2])]), 2, 4, "flat")
    path = tmp_path / "vectors.faiss"
    vectors.write(index, path)
    assert vectors._read_flat(path).ids.tolist() == [7, 9]
    data = path.read_bytes()
    path.write_bytes(data + b"\0" * 8)
    assert vectors._read_flat(path) is None
    path.write_bytes(data[:-8])
    assert vectors._read_flat(path) is None


def test_a_flat_file_read_with_numpy_keeps_its_ids_mapped_or_not_and_when_empty(tmp_path, monkeypatch):
    from semsearch import vectors

    path = tmp_path / "vectors.faiss"
    vectors.write(vectors.build(iter([(np.array([7, 9]), np.eye(4, dtype=np.float32)[:2])]), 2, 4, "flat"), path)
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", 0)
    mapped = vectors.load(path)
    assert isinstance(mapped.matrix, np.memmap) and mapped.ids.tolist() == [7, 9]
    assert vectors.search(mapped, np.eye(4, dtype=np.float32)[1:2], 1)[1].tolist() == [[9]]
    vectors.write(vectors.build(iter([]), 0, 4, "auto"), path)
    empty = vectors.load(path)
    assert isinstance(empty, vectors.FlatVectors) and empty.ntotal == 0 and empty.ids.tolist() == []


def test_a_digests_feed_has_each_digest_with_its_own_papers(survey_corpus_index):
    from semsearch.service import Service

    _digest(survey_corpus_index, "202411010000", "202411020000", "2411.00001")
    _digest(survey_corpus_index, "202411020000", "202411030000", "2411.00002")
    feed = Service(index_dir=survey_corpus_index).digests_feed("http://h/").decode()
    entries = feed.split("<entry>")[1:]
    assert len(entries) == 2
    assert "2411.00002" in entries[0] and "2411.00001" not in entries[0]  # the newest first
    assert "2411.00001" in entries[1] and "2411.00002" not in entries[1]


def test_related_work_asked_diverse_is_the_finders_diverse_answer(survey_corpus_index):
    from semsearch.index import Index
    from semsearch.related import RelatedFinder
    from semsearch.service import Service

    service = Service(index_dir=survey_corpus_index)
    finder = RelatedFinder(Index.open(survey_corpus_index))
    own = service.related("GPTQ", k=8)["id"]
    for diverse in (False, True):
        ids = [r["id"] for r in service.related("GPTQ", k=8, diverse=diverse)["results"]]
        assert ids == [h.paper.id for h in finder.related_to(own, 8, diverse=diverse)]
    plain, varied = (service.related("GPTQ", k=8, diverse=d)["results"] for d in (False, True))
    assert plain != varied
