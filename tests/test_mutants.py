"""Behaviours that single plausible changes to the engine used to break unnoticed (issue 26).

Each test names the behaviour; the comment under it names the change (the mutant) it was written
to catch, so that a reader can check it fails for the right reason. None reads the constant it
guards: the fixtures put their cases on either side of the threshold as the docs state it.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from semsearch.paper import Paper
from semsearch.store import Prediction, Store


# --- store: a paper's effective categories -----------------------------------------------------------
@pytest.fixture
def store(tmp_path) -> Store:
    opened = Store(tmp_path / "papers.db")
    yield opened
    opened.close()


def test_an_out_of_scope_prediction_gives_an_unlabelled_paper_no_category(store):
    # Mutant: `AND r.in_scope = 1` dropped from the effective-category rule.
    inside = store.put(Paper(id="2401.00001", title="Four-bit weights"))
    outside = store.put(Paper(id="2401.00002", title="Captions of holiday photographs"))
    store.put_predictions(
        [(inside, Prediction("Compression/Quantization", 0.9, True)), (outside, Prediction("Compression", 0.2, False))]
    )
    store.derive_categories()
    assert store.categories_for([inside, outside]) == {inside: ["Compression/Quantization"]}
    assert store.vec_ids_where(categories=["Compression"]) == [inside]
    assert store.predictions([outside])[outside].in_scope is False  # the prediction is kept, only not used


def test_a_node_holds_its_subtree_not_a_sibling_whose_name_it_begins(store):
    # Mutant: the LIKE pattern without the `/` boundary ('Quant%' instead of 'Quant/%').
    quant = store.put(Paper(id="2401.00011", title="A", survey_categories=["Compression/Quant"]))
    below = store.put(Paper(id="2401.00012", title="B", survey_categories=["Compression/Quant/Weights"]))
    store.put(Paper(id="2401.00013", title="C", survey_categories=["Compression/Quantization"]))
    store.put(Paper(id="2401.00014", title="D", survey_categories=["Compression/Quant-aware training"]))
    store.derive_categories()
    assert sorted(store.vec_ids_where(categories=["Compression/Quant"])) == sorted([quant, below])
    assert len(store.vec_ids_where(categories=["Compression"])) == 4


def test_a_node_name_with_like_wildcards_matches_only_itself(store):
    # `_` and `%` are LIKE wildcards: a node called 'KV_Cache' must not hold 'KVxCache/...'.
    own = store.put(Paper(id="2401.00021", title="A", survey_categories=["KV_Cache/Eviction"]))
    store.put(Paper(id="2401.00022", title="B", survey_categories=["KVxCache/Eviction"]))
    store.put(Paper(id="2401.00023", title="C", survey_categories=["100%/Eviction"]))
    store.derive_categories()
    assert store.vec_ids_where(categories=["KV_Cache"]) == [own]
    assert len(store.vec_ids_where(categories=["100%"])) == 1


def test_a_paper_ingested_again_with_new_text_loses_its_stale_prediction(store):
    # Mutant: `put` keeps the prediction made from the old text (its DELETE dropped).
    vec_id = store.put(Paper(id="2401.00031", title="Pruning heads", abstract="We prune attention heads."))
    store.put_predictions([(vec_id, Prediction("Compression/Pruning", 0.8, True))])
    store.derive_categories()
    assert store.categories_for([vec_id]) == {vec_id: ["Compression/Pruning"]}
    again = store.put(Paper(id="2401.00031", title="Pruning heads", abstract="Now about caching keys and values."))
    store.derive_categories()
    assert again == vec_id  # the same paper, updated in place...
    assert store.predictions([vec_id]) == {} and store.categories_for([vec_id]) == {}  # ...to be predicted anew


def test_a_users_label_wins_over_a_prediction(store):
    # Mutant: the rule that a label hides the prediction dropped (seen before only as an IntegrityError).
    vec_id = store.put(Paper(id="2401.00041", title="Draft tokens"))
    store.put_predictions([(vec_id, Prediction("Compression/Pruning", 0.9, True))])
    store.put_label(vec_id, "Decoding/Speculative", "2024-01-01")
    store.derive_categories()
    assert store.category_evidence([vec_id])[vec_id][:2] == (["Decoding/Speculative"], "user")


# --- lexical: what BM25 reads for a paper ------------------------------------------------------------
def _bm25_order(tmp_path: Path, papers: list[tuple[str, str, list[str]]], question: str, descriptions=None):
    from semsearch.lexical import LexicalIndex, lexical_text

    texts = [lexical_text(title, abstract, categories, descriptions or {}) for title, abstract, categories in papers]
    LexicalIndex.build(texts, list(range(len(texts))), tmp_path)
    scores = LexicalIndex.load(tmp_path).scores(question)
    return [int(i) for i in np.argsort(-scores, kind="stable") if scores[i] > 0]


def test_a_title_only_paper_is_found_by_the_description_of_its_category(tmp_path):
    # Mutant: descriptions borrowed only when the paper has an abstract (the condition flipped).
    descriptions = {"Efficient Attention/Hashing": "locality sensitive hashing buckets attention"}
    papers = [
        ("Reformer", "", ["Efficient Attention/Hashing"]),
        ("Dense retrieval", "Hashing documents into buckets for retrieval.", ["Efficient Attention/Hashing"]),
        ("Longformer", "", ["Efficient Attention/Sparse"]),
    ]
    order = _bm25_order(tmp_path, papers, "locality sensitive hashing attention", descriptions)
    assert order[0] == 0  # the bare title, through our description of its category
    from semsearch.lexical import lexical_text

    # A paper with an abstract speaks for itself: the description would only blur it.
    assert "locality" not in lexical_text(*papers[1][:2], papers[1][2], descriptions)


def test_a_word_in_the_title_outweighs_the_same_word_once_in_a_shorter_abstract(tmp_path):
    # Mutant: the title counted once. Paper 0 names the method in its title; paper 1 mentions the
    # word once in its abstract and is shorter, so with the title counted once paper 1 would lead.
    papers = [
        ("Zeroquant adapters", "tuning networks cheaply with small matrices in practice", []),
        ("Efficient adapters", "zeroquant tuning networks cheaply", []),
        ("Unrelated", "images and captions of photographs", []),
    ]
    assert _bm25_order(tmp_path, papers, "zeroquant") == [0, 1]


# --- digests -----------------------------------------------------------------------------------------
def _entry(paper_id: str, category: str, confidence: float, in_scope: bool = True):
    from semsearch.watch import DigestEntry

    return DigestEntry(paper_id, f"Paper {paper_id}", None, category, confidence, in_scope)


def _report(entries):
    from semsearch.ingest import IngestReport
    from semsearch.watch import WatchReport

    return WatchReport("202411010000", "202411020000", len(entries), entries, IngestReport())


def test_a_digest_lists_each_node_most_confident_first(tmp_path):
    # Mutant: the entries sorted least confident first.
    from semsearch.watch import render_digest

    entries = [
        _entry("2411.00001", "Decoding", 0.55),
        _entry("2411.00002", "Decoding", 0.91),
        _entry("2411.00003", "Decoding", 0.73),
        _entry("2411.00004", "Attention", 0.60),
        _entry("2411.00005", "Decoding", 0.99, in_scope=False),
    ]
    groups = json.loads(render_digest(_report(entries), "json"))["groups"]
    assert [e["id"] for e in groups["Decoding"]] == ["2411.00002", "2411.00003", "2411.00001"]
    markdown = render_digest(_report(entries), "markdown")
    assert markdown.index("2411.00002") < markdown.index("2411.00003") < markdown.index("2411.00001")
    assert "2411.00005" not in markdown


# --- the HTTP server, over a real socket --------------------------------------------------------------
@pytest.fixture(scope="module")
def server(tmp_path_factory, _survey_corpus_template):
    """`create_app` served by uvicorn on a free port in this process: requests go over a real
    socket, exactly as written (no client normalises the path or fills in the length). One server
    for the module (stopping one takes uvicorn a fifth of a second), over its own copy of the index:
    only digests are written to it, and no test here reads a digest another one wrote."""
    import uvicorn

    from semsearch.server import create_app
    from tests.conftest import copy_of, use_hashing_model

    index_dir = copy_of(_survey_corpus_template, tmp_path_factory.mktemp("served"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.MonkeyPatch.context() as patch:
        use_hashing_model(patch)
        app = create_app(index_dir=index_dir, reload_seconds=None)
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        running = uvicorn.Server(config)
        thread = threading.Thread(target=running.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 30
        while not running.started:
            assert time.monotonic() < deadline and thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        yield port, index_dir
        running.should_exit = True
        thread.join(10)


def raw_request(port: int, head: str, body: bytes = b"", timeout: float = 10.0) -> tuple[int, dict]:
    """Send `head` (request line and headers, no blank line) and `body` as they are; (status, JSON)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as connection:
        connection.sendall(head.encode("latin-1") + b"\r\nConnection: close\r\n\r\n")
        if body:
            try:
                connection.sendall(body)
            except (BrokenPipeError, ConnectionResetError):  # refused mid-body: the answer is still there
                pass
        answer = b""
        try:
            while chunk := connection.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
    status_line, _, rest = answer.partition(b"\r\n")
    payload = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(payload) if payload.startswith(b"{") else {}


# The limit as docs/usage.md states it ("bodies over 1 MB get 413"), not as the module spells it.
DOCUMENTED_LIMIT = 1_000_000


def test_a_declared_length_over_the_limit_is_refused_without_waiting_for_the_body(server):
    # Mutant: Content-Length not checked up front. No byte of the body is sent: only a check of the
    # declared length can answer; counting the body as it arrives would wait for it (and time out).
    port, _ = server
    head = (
        "POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {DOCUMENTED_LIMIT + 1}"
    )
    started = time.monotonic()
    status, answer = raw_request(port, head, timeout=8)
    assert status == 413 and "over" in answer["error"]
    assert time.monotonic() - started < 8


@pytest.mark.parametrize("size, refused", [(DOCUMENTED_LIMIT, False), (DOCUMENTED_LIMIT + 1, True)])
def test_the_body_limit_is_exact(server, size, refused):
    # Mutants: the limit doubled, or `>` turned into `>=`. A body of exactly the limit is read (and
    # refused as JSON, 422); one byte more is refused unread (413), streamed without a length too.
    port, _ = server
    body = b"x" * size
    head = f"POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {size}"
    assert raw_request(port, head, body)[0] == (413 if refused else 422)
    chunked = b"".join(
        f"{len(part):x}\r\n".encode() + part + b"\r\n" for part in (body[: size // 2], body[size // 2 :])
    )
    head = (
        "POST /api/classify HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked"
    )
    assert raw_request(port, head, chunked + b"0\r\n\r\n")[0] == (413 if refused else 422)


def test_a_digest_path_outside_the_digests_is_not_followed(server, tmp_path):
    # Sent literally, `..` reaches the server as it is (a client would have normalised it away).
    port, index_dir = server
    for path in ["/api/digests/../../etc/passwd", "/api/digests/..%2F..%2Fetc%2Fpasswd", "/api/digests/.."]:
        status, answer = raw_request(port, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1")
        assert status == 404 and list(answer) == ["error"] and "root:" not in json.dumps(answer)


def test_only_a_file_named_like_a_digest_is_served_as_one(server):
    # Mutant: the digest-name check removed. A readable digest saved under another name in
    # digests/ (a copy, a note, a symlink to elsewhere) is not a digest of this index.
    from semsearch.watch import DIGESTS_DIR, save_digest

    port, index_dir = server
    saved = save_digest(_report([_entry("2411.00001", "Decoding", 0.9)]), index_dir=index_dir)
    assert raw_request(port, f"GET /api/digests/{saved.stem} HTTP/1.1\r\nHost: 127.0.0.1")[0] == 200
    (index_dir / DIGESTS_DIR / "latest.json").write_bytes(saved.read_bytes())
    status, answer = raw_request(port, "GET /api/digests/latest HTTP/1.1\r\nHost: 127.0.0.1")
    assert status == 404 and "latest" in answer["error"]


# --- bibtex ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("venue", ["CoRR", "corr", " arXiv ", ""])
def test_an_arxiv_preprint_is_an_article_whatever_the_survey_calls_its_venue(venue):
    # Mutant: "CoRR" (arXiv's name in DBLP) taken for a venue: @inproceedings{booktitle = {CoRR}}.
    from semsearch.bibtex import to_bibtex

    paper = Paper(id="2306.00978", title="AWQ", authors=["Ji Lin"], year=2023, venue=venue)
    entry = to_bibtex([paper])
    assert entry.startswith("@article{") and "booktitle" not in entry
    assert "journal = {arXiv preprint arXiv:2306.00978}" in entry


def test_a_paper_from_a_venue_is_in_its_proceedings():
    from semsearch.bibtex import to_bibtex

    entry = to_bibtex([Paper(id="2306.00978", title="AWQ", authors=["Ji Lin"], year=2024, venue="MLSys")])
    assert entry.startswith("@inproceedings{") and "booktitle = {MLSys}" in entry and "journal" not in entry


# --- search: how the evidence is weighed ---------------------------------------------------------------
# Pairs of papers put on either side of the trade-offs the ranking is meant to make, with margins
# that a halved or doubled weight crosses (docs/design.md, search).
def test_meaning_weighs_more_than_shared_words_but_the_exact_words_still_count():
    # Mutant: the dense weight 0.7 -> 0.35 (the first pair flips); a dense weight near 1 flips the second.
    from semsearch.search import Evidence, fused_score

    close_in_meaning = Evidence(dense=0.80, lexical_share=0.0)
    only_shares_words = Evidence(dense=0.50, lexical_share=0.60)
    assert fused_score(close_in_meaning, 0.0) > fused_score(only_shares_words, 0.0)
    best_words_and_near = Evidence(dense=0.70, lexical_share=1.0)
    a_little_nearer_no_words = Evidence(dense=0.85, lexical_share=0.0)
    assert fused_score(best_words_and_near, 0.0) > fused_score(a_little_nearer_no_words, 0.0)


def test_the_questions_category_decides_between_fair_matches_not_against_a_far_better_one():
    # Mutant: the taxonomy weight 2 -> 1 (the first pair flips); at 3 the second would.
    from semsearch.search import Evidence, fused_score

    better_match = Evidence(dense=0.80)  # direct evidence 0.56, outside the question's leaf
    in_the_leaf = Evidence(dense=0.45, category_probability=0.2)  # direct 0.315
    assert fused_score(in_the_leaf) > fused_score(better_match)
    barely_a_match = Evidence(dense=0.05, category_probability=0.2)  # direct 0.035
    assert fused_score(better_match) > fused_score(barely_a_match)


@pytest.mark.parametrize("one_paper, known", [(0.5, True), (0.49, False)])
def test_a_question_one_half_likely_about_one_paper_gets_its_three_best_direct_matches_first(one_paper, known):
    # Mutants: the threshold moved (0.5 -> 0.6 or 0.4), or the direct slots changed (3 -> 2 or 4).
    from semsearch.search import Evidence, rank_hybrid

    evidence = {i: Evidence(dense=0.60, category_probability=0.9) for i in range(5)}
    for rank, vec_id in enumerate((99, 98, 97, 96)):
        evidence[vec_id] = Evidence(dense=0.70 - 0.01 * rank, category_probability=0.0)
    ranked = [vec_id for vec_id, _ in rank_hybrid(evidence, k=9, one_paper=one_paper)]
    assert evidence[99].direct is known and evidence[99].known_item is known
    assert (ranked[:4] == [99, 98, 97, 0]) is known  # the fourth best direct match gets no slot
    assert (ranked[:5] == [0, 1, 2, 3, 4]) is not known


def test_bm25_evidence_is_relative_to_the_best_match_for_the_question(survey_corpus_index):
    # Mutant: the BM25 share not divided by the best score (raw BM25 runs to 10 and more).
    from semsearch.index import Index
    from semsearch.search import Searcher

    hits = Searcher(Index.open(survey_corpus_index)).search("speculative decoding with a small draft model", k=20)
    shares = [h.evidence.lexical_share for h in hits]
    raw = [h.evidence.lexical for h in hits]
    assert max(raw) > 1.0  # a scale the share must not inherit
    assert max(shares) == pytest.approx(1.0) and min(shares) >= 0.0
    best = max(hits, key=lambda h: h.evidence.lexical)
    assert all(h.evidence.lexical_share == pytest.approx(h.evidence.lexical / best.evidence.lexical) for h in hits)


# --- related: recommendations from likes and dislikes -------------------------------------------------
@pytest.fixture
def finder(tmp_path, fake_model):
    """Four kinds of paper, five of each (tests/test_related.py), and three GPU-kernel quantization
    papers: look-alikes of one another within the quantization kind."""
    from semsearch.index import Index
    from semsearch.ingest import Ingest
    from semsearch.related import RelatedFinder
    from tests.test_related import _papers

    kernels = [
        Paper(
            id=f"2404.0000{i}",
            title=f"quant kernels {i}",
            abstract="quantization bits integer weights rounding gpu kernels fused matmul",
            year=2024,
        )
        for i in range(3)
    ]
    with Ingest(index_dir=tmp_path / "idx", progress=False) as job:
        job.add(_papers() + kernels)
    return RelatedFinder(Index.open(tmp_path / "idx"))


def test_a_disliked_paper_is_never_recommended_even_among_the_liked_kind(finder):
    # Mutant: only the liked papers kept out of the recommendations. The disliked one is of the very
    # kind liked four times over, so nearness alone would put it first.
    likes = ["2403.00000", "2403.00001", "2403.00002", "2403.00003"]
    hits = finder.recommend(likes, ["2403.00004"], k=3)
    assert len(hits) == 3 and "2403.00004" not in [h.paper.id for h in hits]
    assert not set(likes) & {h.paper.id for h in hits}


def test_a_dislike_counts_more_than_silence(finder):
    # Mutant: the dislike weighed like any unread paper (5 -> 1). Liking two quantization papers and
    # disliking a GPU-kernel one: its look-alikes drop below papers of another kind altogether
    # (pruning); weighed as silence, they would stay among the first.
    def first(ids: list[str], prefix: str) -> int:
        return next((n for n, i in enumerate(ids) if i.startswith(prefix)), len(ids))

    ids = [h.paper.id for h in finder.recommend(["2403.00000", "2403.00001"], ["2404.00000"], k=6)]
    assert sorted(ids[:3]) == ["2403.00002", "2403.00003", "2403.00004"]  # the liked kind first
    assert first(ids, "2402.") < first(ids, "2404.") and sum(i.startswith("2404.") for i in ids) <= 1
    without = [h.paper.id for h in finder.recommend(["2403.00000", "2403.00001"], k=6)]
    assert first(without, "2404.") == 3 and first(without, "2402.") == 6  # without it, the look-alikes next


# --- classify: the probabilities it gives are the calibrated ones -------------------------------------
@pytest.fixture
def classifier(survey_only_index):
    """The classifier of the survey's index (titles only, the test model), with the held-out
    (leave-one-out) scores it was calibrated on."""
    from semsearch.index import Index
    from semsearch.search import Searcher

    return Searcher(Index.open(survey_only_index)).classifier


def _log_loss(p: np.ndarray, right: np.ndarray) -> float:
    p = np.clip(p, 1e-9, 1 - 1e-9)
    return float(-np.where(right, np.log(p), np.log(1 - p)).mean())


def test_leaf_probabilities_at_prediction_are_the_calibrated_ones(classifier):
    # Mutant: the temperature doubled at prediction. The probabilities given for the held-out
    # scores must fit the true leaves better than flatter or sharper ones would.
    from semsearch.classify import softmax

    scores, truth = classifier.loo_scores, classifier.loo_truth.astype(bool)

    def fit(p: np.ndarray) -> float:  # mean log-probability of the true leaves
        return float(np.log(np.maximum((p * truth).sum(axis=1), 1e-12)).mean())

    given = fit(classifier.probabilities(scores))
    assert given > fit(softmax(scores, classifier.temperature * 2)) + 0.01
    assert given > fit(softmax(scores, classifier.temperature / 2)) + 0.01


def test_confidence_is_calibrated_on_whether_the_area_is_right(classifier):
    # Mutant: confidence computed at the leaf temperature instead of its own.
    from semsearch.classify import CONFIDENCE_DEPTH
    from semsearch.taxonomy import node_at

    scores = classifier.loo_scores
    firsts = [classifier.first_leaf(n) for n in classifier.node_probabilities(classifier.path(scores))]
    right = np.array(
        [
            any(node_at(c, CONFIDENCE_DEPTH) == node_at(f, CONFIDENCE_DEPTH) for c in cats)
            for f, cats in zip(firsts, classifier.labelled_categories, strict=True)
        ]
    )
    confidence = classifier.confidence(scores, firsts)
    areas, matrix = classifier._area_matrix
    column = [areas.index(node_at(f, CONFIDENCE_DEPTH)) for f in firsts]
    leaf_chance = (classifier.probabilities(scores) @ matrix)[np.arange(len(firsts)), column]
    assert _log_loss(confidence, right) < _log_loss(leaf_chance, right) - 0.005
    assert abs(confidence.mean() - right.mean()) < 0.05  # as confident as it is right, on average


def test_about_one_labelled_paper_in_twenty_falls_below_even_odds_of_scope(classifier):
    # Mutant: the scope percentile 5 -> 10. The threshold (even odds) is set so that about one in
    # twenty of the labelled papers, each judged without itself, would be called out of scope.
    held_out = classifier.scope_scores(classifier.labelled_vectors, exclude_self=True)
    below = float((held_out < classifier.scope_threshold).mean())
    assert 0.03 <= below <= 0.07


def test_the_explain_block_says_each_signal_to_four_places_under_its_documented_name():
    # Survivors of mutmut on search.py: Evidence.to_dict's keys and rounding were never pinned (the
    # tests checked keys that are always emitted, not what they hold).
    from semsearch.search import Evidence, Hit

    evidence = Evidence(
        dense=0.123456, lexical=12.345678, lexical_share=0.987654, category="Compression/Quantization",
        category_probability=0.333333, direct=True, known_item=True, one_paper=0.876543, taxonomy_weight=2.0,
        title_share=0.555555,
    )  # fmt: skip
    assert evidence.to_dict() == {
        "dense": 0.1235, "lexical": 12.3457, "lexical_share": 0.9877, "category": "Compression/Quantization",
        "category_probability": 0.3333, "direct": True, "question": "one paper", "one_paper": 0.8765,
        "taxonomy_weight": 2.0, "named": False, "title_share": 0.5556, "beside_named": False,
    }  # fmt: skip
    assert Evidence(taxonomy_weight=2.0).to_dict()["question"] == "a kind of work"
    assert Evidence().to_dict()["question"] == "not judged"
    hit = Hit(Paper(id="2306.00978", title="AWQ", year=2023), 0.12345678, evidence=evidence, categories=["A/B"])
    shown = hit.to_dict(explain=True)
    assert shown == {
        "id": "2306.00978", "title": "AWQ", "score": 0.123457, "year": 2023, "categories": ["A/B"],
        "category_source": None, "url": "https://arxiv.org/abs/2306.00978", "explain": evidence.to_dict(),
    }  # fmt: skip
    assert "explain" not in hit.to_dict()
