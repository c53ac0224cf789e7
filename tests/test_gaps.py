"""`semsearch taxonomy gaps`: topics a list has not named, and their evaluation by leaving headings out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.classify import LabelledPaper, TaxonomyClassifier
from semsearch.gaps import (
    Gap,
    affinity,
    clusters,
    distinctive_terms,
    find_gaps,
    fits_a_heading,
    list_shape,
    similarity,
)
from semsearch.lists import list_taxonomy
from semsearch.paper import Paper
from tests.cli_process import run_cli
from tests.conftest import HashingModel, examples

# Titles written for these tests.
PRUNING = [
    "Pruning attention heads of transformers",
    "Structured pruning of channels in language models",
    "Unstructured pruning by weight magnitude",
    "Pruning layers without retraining",
    "Pruning with second order information",
]
QUANTIZATION = [
    "Quantization of weights to four bits",
    "Activation quantization with outliers",
    "Quantization aware training of language models",
    "Mixed precision quantization by layer",
    "Quantization of embeddings to eight bits",
]
SPECULATIVE = [
    "Speculative decoding with a draft model",
    "Speculative decoding with tree attention drafts",
    "Self speculative decoding by skipping layers",
    "Speculative decoding for batched serving",
]


def test_a_groups_distinctive_terms_are_those_frequent_in_it_and_rare_elsewhere():
    terms = distinctive_terms(SPECULATIVE, PRUNING + QUANTIZATION)
    assert terms[0] == "speculative decoding"  # the pair covers its words: not "speculative", "decoding" too
    assert "speculative" not in terms[1:] and "decoding" not in terms[1:]


@settings(max_examples=examples(60), deadline=None)
@given(st.lists(st.text(max_size=80), min_size=1, max_size=6), st.lists(st.text(max_size=80), max_size=6))
def test_distinctive_terms_takes_any_text(group, rest):
    terms = distinctive_terms(group, rest)
    assert len(terms) <= 3 and all(isinstance(t, str) and t for t in terms)


def _classifier(model: HashingModel) -> TaxonomyClassifier:
    papers = [
        LabelledPaper(f"p{i}", t, t, model.encode([t])[0], [node])
        for i, (t, node) in enumerate([(t, "Pruning") for t in PRUNING] + [(t, "Quantization") for t in QUANTIZATION])
    ]
    return TaxonomyClassifier.train(papers, list_taxonomy(["Pruning", "Quantization"]), model.encode)


def test_papers_on_a_topic_the_list_lacks_make_one_gap_named_by_its_words(monkeypatch):
    model = HashingModel()
    classifier = _classifier(model)
    monkeypatch.setattr(classifier, "short_scope_threshold", -10.0)  # titles: the test model's scope is not tested
    titles = SPECULATIVE + ["Pruning heads of attention in large models", "Quantization of caches to two bits"]
    papers = [Paper(id=f"2501.0000{i}", title=t) for i, t in enumerate(titles)]

    gaps = find_gaps(classifier, papers, model.encode(titles), context=PRUNING + QUANTIZATION)

    assert len(gaps) == 1  # the two papers that fit the list's headings make no gap
    found = {p.title for p in gaps[0].papers}
    assert found <= set(SPECULATIVE) and len(found) >= 3  # the hashing model sees only shared words
    assert gaps[0].name.startswith("speculative decoding")
    assert isinstance(gaps[0], Gap) and gaps[0].parent == ""  # a flat list: it sits at the top level


def test_a_curated_lists_gaps_nearest_its_own_topic_come_first():
    """A KV-cache list's first gaps were speculative decoding and pruning: in its classifier's scope
    (efficient-LLM work), the other lists' topics."""
    from semsearch.gaps import by_the_lists_topic

    def gap(name: str, ids: list[str]) -> Gap:
        return Gap(name, [], "", [Paper(id=i, title=i) for i in ids])

    far, half, near = gap("far", ["a", "b", "c", "d"]), gap("half", ["e", "f"]), gap("near", ["g", "h", "i"])
    assert [g.name for g in by_the_lists_topic([far, half, near], {"e", "g", "h", "i"})] == ["near", "half", "far"]
    # By share, not count (3 of 6 after 2 of 2), and the larger of an equal share first.
    big, small, other = gap("big", list("abcdef")), gap("small", ["g", "h"]), gap("other", ["i", "j", "k"])
    assert [g.name for g in by_the_lists_topic([big, small], set("abcgh"))] == ["small", "big"]
    assert [g.name for g in by_the_lists_topic([small, other], set())] == ["other", "small"]


def test_near_a_lists_topic_means_in_its_scope_and_at_the_near_level(monkeypatch):
    from semsearch import gaps as module
    from semsearch import propose
    from semsearch.propose import TopicVerdict

    papers = [Paper(id=f"p{i}", title=f"Paper {i}") for i in range(4)]
    judged = []

    def verdict(own, chosen, others, embed):
        judged.extend(c.paper.id for c in chosen)
        return TopicVerdict(np.array([True, True, False]), np.array([False, True, False]))

    class Scope:
        def scope_probabilities(self, texts, vectors):
            return np.array([0.9, 0.1, 0.9, 0.9])  # p1 is outside the list's scope

    monkeypatch.setattr(propose, "on_topic", verdict)
    kept, vectors = module.on_the_lists_topic(Scope(), [], papers, np.eye(4), [], None)
    assert judged == ["p0", "p2", "p3"] and [p.id for p in kept] == ["p0", "p2"]  # near, sure or not
    assert vectors.tolist() == np.eye(4)[[0, 2]].tolist()


def test_the_gaps_command_orders_a_curated_lists_gaps_by_its_topic_and_leaves_the_surveys(monkeypatch):
    from semsearch import gaps as module

    papers = [Paper(id=f"p{i}", title=f"Paper {i}") for i in range(6)]
    found = [Gap("far", [], "", papers[:4]), Gap("near", [], "", papers[4:])]
    sampled = []

    class Store:
        def taxonomy_papers(self, name):
            return []

    index = type("Index", (), {"store": Store()})()
    classifier = type("C", (), {"labelled_titles": []})()
    vectors = np.eye(6)

    def unlisted(store, name, since=None):
        assert store is index.store
        return papers[: 3 if since else 6], vectors[: 3 if since else 6]

    def on_the_lists_topic(of, own, looked_at, their_vectors, others, embed):
        assert of is classifier and own == [] and embed == "embed"  # the list's own papers: none here
        assert their_vectors.tolist() == vectors[: len(looked_at)].tolist()
        return papers[4:], None

    def classifier_of(index, name, embedder):
        assert embedder == "model"
        return classifier

    monkeypatch.setattr(module, "unlisted", unlisted)
    monkeypatch.setattr(module, "find_gaps", lambda *a, **k: list(found))
    monkeypatch.setattr(module, "field_sample", lambda papers, vectors: sampled.append(len(papers)) or [])
    monkeypatch.setattr(module, "on_the_lists_topic", on_the_lists_topic)
    monkeypatch.setattr("semsearch.propose.classifier_of", classifier_of)
    monkeypatch.setattr("semsearch.propose.embed_fn", lambda index, embedder: "embed")

    def names(name: str, since: str | None = None) -> list[str]:
        answer = module._gaps_for(index, name, since=since, embedder="model", classifier=None)
        return [g["name"] for g in answer["gaps"]]

    assert names("kv") == ["near", "far"]
    assert names("kv", since="2024-01-01") == ["near", "far"] and sampled == [6, 6]  # the field: every unlisted paper
    monkeypatch.setattr(module, "on_the_lists_topic", lambda *a: pytest.fail("the survey's scope is its topic"))
    assert names("survey") == ["far", "near"]


def test_the_papers_near_a_curated_lists_topic_are_told_from_the_rest_of_its_scope(monkeypatch):
    """What `by_the_lists_topic` counts: in the list's scope and near its own topic."""
    from semsearch.gaps import field_sample, on_the_lists_topic
    from semsearch.propose import Candidate

    model = HashingModel()
    classifier = _classifier(model)  # a list of pruning and quantization papers
    monkeypatch.setattr(classifier, "short_scope_threshold", -10.0)
    own = [Candidate(Paper(id=f"p{i}", title=t), model.encode([t])[0]) for i, t in enumerate(PRUNING + QUANTIZATION)]
    near = ["Pruning of attention heads in layers", "Quantization of weights to three bits"]
    elsewhere = ["Retrieval augmented answers from documents", "Dense retrieval for open domain answers"]
    titles = SPECULATIVE + elsewhere + near
    papers = [Paper(id=f"2501.0000{i}", title=t) for i, t in enumerate(titles)]
    field_titles = [f"{w} study number {i}" for i in range(20) for w in ("retrieval answers", "speculative decoding")]
    field = [Paper(id=f"2502.{i:05d}", title=t) for i, t in enumerate(field_titles)]
    others = field_sample(field, model.encode(field_titles))
    kept, vectors = on_the_lists_topic(classifier, own, papers, model.encode(titles), others, model.encode)
    titled = {p.title for p in kept}
    assert set(near) <= titled and not titled & set(elsewhere) and len(vectors) == len(kept)
    assert len(titled & set(SPECULATIVE)) <= 1  # the test model reads words alone: one shares "with a model"


def test_no_gap_when_every_paper_fits_a_heading(monkeypatch):
    model = HashingModel()
    classifier = _classifier(model)
    monkeypatch.setattr(classifier, "short_scope_threshold", -10.0)
    titles = [
        "Pruning attention heads by magnitude",
        "Quantization of weights by layer",
        "Structured pruning of layers",
    ]
    papers = [Paper(id=f"2501.0001{i}", title=t) for i, t in enumerate(titles)]
    assert find_gaps(classifier, papers, model.encode(titles), context=PRUNING + QUANTIZATION) == []


def test_taxonomy_gaps_on_the_command_line(cli, survey_corpus_index):
    found = json.loads(cli("taxonomy", "gaps", "survey", "--json", "--index", survey_corpus_index, check=True).stdout)
    assert found["taxonomy"] == "survey" and found["papers"] == 7  # the small corpus: the survey lacks it
    for gap in found["gaps"]:
        assert set(gap) == {"name", "terms", "parent", "papers"} and len(gap["papers"]) >= 3
    text = cli("taxonomy", "gaps", "survey", "--since", "2030-01-01", "--index", survey_corpus_index, check=True)
    assert "0 gaps among 0 papers" in text.stderr


@pytest.mark.slow
def test_eval_gaps_leaves_each_large_heading_out_in_a_real_process(survey_only_index):
    report = json.loads(
        run_cli(
            "eval", "gaps", "survey", "--min-papers", "14", "--json", "--index", survey_only_index, check=True
        ).stdout
    )
    assert report["headings"] == len(report["by_heading"]) >= 3
    assert all(row["papers"] >= 1 and 0.0 <= row["best_jaccard"] <= 1.0 for row in report["by_heading"])
    assert report["recovered"] == sum(row["best_jaccard"] >= 0.5 for row in report["by_heading"])
    # The control: half a heading hidden while the heading stays is no gap; counted apart.
    assert all(0.0 <= row["held_in_jaccard"] <= 1.0 for row in report["by_heading"])
    assert report["false_gaps"] == sum(row["held_in_jaccard"] >= 0.5 for row in report["by_heading"])


def test_eval_gaps_leaves_each_heading_out_whole_and_hides_half_of_it_for_the_control(monkeypatch):
    """In-process, on a list of three headings (three papers under two of them), so each step is
    pinned: the heading left out (gone from the papers also filed elsewhere too, or the list still
    had it), its papers freed, found again at a Jaccard of 0.5 or more, and the control (half the
    heading's papers hidden, the heading kept) counted as a false gap when they form one."""
    from types import SimpleNamespace

    from semsearch import classify
    from semsearch.gaps import evaluate_gaps

    monkeypatch.setattr(classify, "SCOPE_THRESHOLD", -1.0)  # titles: the test model's scope is not tested
    model = HashingModel()
    headings = {"Pruning": PRUNING, "Quantization": QUANTIZATION, "Speculative decoding": SPECULATIVE}
    listed = [(f"{node[:4]}{i}", title, [node]) for node, titles in headings.items() for i, title in enumerate(titles)]
    listed += [
        (f"both{i}", title, ["Pruning", "Quantization"])
        for i, title in enumerate(
            [
                "Quantization aware pruning of language models",
                "Pruning and quantization together",
                "Joint pruning quantization of weights",
            ]
        )
    ]
    rows = [(Paper(id=i, title=title), model.encode([title])[0], nodes) for i, title, nodes in listed]

    class Store:
        def taxonomy(self, name):
            return {"nodes": list(headings), "source": "toy.md"}

        def taxonomy_papers(self, name):
            return rows

    report = evaluate_gaps(SimpleNamespace(store=Store()), "toy", model.encode, min_papers=4)

    assert report["by_heading"] == [
        {"heading": "Pruning", "papers": 5, "best_jaccard": 0.0, "gap": "", "held_in_jaccard": 0.75},
        {"heading": "Quantization", "papers": 5, "best_jaccard": 0.0, "gap": "", "held_in_jaccard": 0.0},
        {
            "heading": "Speculative decoding",
            "papers": 4,
            "best_jaccard": 0.75,
            "gap": "speculative decoding / drafts",
            "held_in_jaccard": 0.0,
        },
    ]
    assert {k: v for k, v in report.items() if k != "by_heading"} == {
        "taxonomy": "toy",
        "headings": 3,
        "recovered": 1,
        "share": 1 / 3,
        "false_gaps": 1,
        "false_share": 1 / 3,
    }
    # Headings under `min_papers` are not left out: speculative decoding's four, at five.
    five = evaluate_gaps(SimpleNamespace(store=Store()), "toy", model.encode, min_papers=5)
    assert [r["heading"] for r in five["by_heading"]] == ["Pruning", "Quantization"]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["taxonomy", "gaps", "survey", "--since", "June"], "since"),
        (["taxonomy", "gaps", "nope"], "no taxonomy 'nope'"),
        (["eval", "gaps", "nope"], "no taxonomy 'nope'"),
        (["eval", "gaps", "survey", "--min-papers", "100000"], "no heading"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(cli, survey_corpus_index, args, says):
    done = cli(*args, "--index", survey_corpus_index)
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1 and says in done.stderr


def test_find_gaps_with_nothing_to_look_at():
    model = HashingModel()
    assert find_gaps(_classifier(model), [], np.zeros((0, model.dimension), dtype=np.float32)) == []


# --- clustering as alike as the list's headings, and the check against them -----------------------
def _two_topics(rng: np.random.Generator, sizes=(6, 6), spread: float = 0.3) -> np.ndarray:
    """Similarities of papers on two topics: alike within a topic (about 0.8), not across (about 0.1)."""
    labels = np.repeat([0, 1], sizes)
    alike = (
        np.where(labels[:, None] == labels[None, :], 0.8, 0.1) + rng.uniform(-spread, spread, (len(labels),) * 2) / 10
    )
    return (alike + alike.T) / 2


def test_clusters_merge_papers_as_alike_as_a_heading_and_no_further():
    alike = _two_topics(np.random.default_rng(0))
    assert clusters(alike, tightness=0.5, largest=100) == [list(range(6)), list(range(6, 12))]
    assert clusters(alike, tightness=0.05, largest=100) == [list(range(12))]  # looser than across: one


def test_no_cluster_grows_past_the_lists_largest_heading():
    alike = _two_topics(np.random.default_rng(1), sizes=(10, 2))
    found = clusters(alike, tightness=0.5, largest=4)
    assert max(len(group) for group in found) <= 4 and sorted(i for g in found for i in g) == list(range(12))


@settings(max_examples=40, deadline=None)
@given(st.floats(0.05, 0.95), st.floats(0.05, 0.95))
def test_two_samples_of_one_topic_have_affinity_one_whatever_their_spread(own_a, own_b):
    # Papers of one topic are as alike across two samples as within each: across = own.
    assert affinity(own_a, own_a, own_a) == pytest.approx(1.0)
    assert affinity(min(own_a, own_b) * 0.5, own_a, own_b) < 1.0  # less alike across: two topics


def test_a_group_of_a_headings_own_papers_fits_it_and_a_new_topic_does_not(monkeypatch):
    model = HashingModel()
    classifier = _classifier(model)
    shape = list_shape(classifier)
    assert shape is not None and shape.largest == 5 and len(shape.rows) == 2
    titles = ["Pruning heads by magnitude", "Pruning channels of layers", "Pruning attention heads"]
    novel = SPECULATIVE[:3]
    for group, fits in [(titles, True), (novel, False)]:
        vectors = model.encode(group)
        alike = similarity(classifier, group, vectors)
        own = (alike.sum() - np.trace(alike)) / (len(group) * (len(group) - 1))
        n = len(classifier.labelled_ids)
        to_labelled = (
            vectors @ classifier.labelled_vectors.T
            + classifier.train_tfidf.head(n).dot_rows(classifier.tfidf.transform(group))
        ) / 2
        assert fits_a_heading(shape, own, to_labelled) is fits


def test_a_group_as_large_as_the_largest_heading_stays_one_group():
    alike = _two_topics(np.random.default_rng(2), sizes=(4, 4))
    assert clusters(alike, tightness=0.5, largest=4) == [list(range(4)), list(range(4, 8))]


def test_fitting_a_heading_asks_more_than_another_heading_is_alike_and_less_than_its_own_papers():
    # A gap must be a topic apart: a group as alike a heading as the list's two headings are to each
    # other is not that heading's; a group need not be as alike it as the heading's own papers are.
    model = HashingModel()
    classifier = _classifier(model)
    shape = list_shape(classifier)
    (a, b) = shape.rows
    alike = similarity(classifier, PRUNING + QUANTIZATION, classifier.labelled_vectors)  # the labelled papers' texts
    between = affinity(float(alike[np.ix_(a, b)].mean()), shape.own[0], shape.own[1])
    assert between < shape.same_topic < 1.0


def test_a_gap_sits_under_the_deepest_heading_holding_most_of_its_papers():
    """Not the most probable one: "Compression" holds every paper a "Compression/Pruning" holds."""
    from types import SimpleNamespace

    from semsearch.gaps import _parent

    nodes = ["Compression", "Compression/Pruning", "Compression/Pruning/Heads", "Compression/Quantization"]
    leaves = ["Compression/Pruning/Heads", "Compression/Quantization"]

    def classifier(rows):
        return SimpleNamespace(nodes=nodes, leaves=leaves, node_probabilities=lambda probabilities: rows)

    both = [{"Compression": 0.9, "Compression/Pruning": 0.6}, {"Compression": 1.0, "Compression/Pruning": 0.7}]
    assert _parent(classifier(both), None) == "Compression/Pruning"
    split = [{"Compression": 0.9, "Compression/Pruning": 0.9}, {"Compression": 0.9, "Compression/Pruning": 0.1}]
    assert _parent(classifier(split), None) == "Compression"  # a half is not most of them
    apart = [{"Compression": 0.4, "Compression/Pruning": 0.2}] * 2
    assert _parent(classifier(apart), None) == ""  # none holds them: the top level
    assert _parent(SimpleNamespace(nodes=leaves, leaves=leaves), None) == ""  # a flat list


def test_two_papers_are_one_group_only_when_as_alike_as_a_heading_and_one_paper_is_one_group():
    apart = np.array([[1.0, 0.1], [0.1, 1.0]])
    assert clusters(apart, tightness=0.5, largest=10) == [[0], [1]]
    assert clusters(apart, tightness=0.05, largest=10) == [[0, 1]]
    assert clusters(np.ones((1, 1)), tightness=0.5, largest=10) == [[0]]


def test_a_gaps_name_is_its_three_most_particular_terms_each_in_two_of_its_papers_at_least():
    group = ["Ring attention for long context", "Memory efficient ring attention", "Blockwise ring attention"]
    group += ["Long context by sequence parallel", "Sequence parallel long context memory"]
    rest = ["Attention heads pruned", "Quantized attention", "Blockwise serving"]
    # A pair covers its words ("long context": not "long" or "context" after it, and the terms after
    # those still count); "blockwise" is in one of the group's papers: not the group's term.
    assert distinctive_terms(group, rest) == ["long context", "ring attention", "sequence parallel"]
    assert distinctive_terms(group, rest, most=4) == ["long context", "ring attention", "sequence parallel", "memory"]
    assert distinctive_terms(group, rest, most=1) == ["long context"]


def test_a_gap_is_not_named_by_a_word_the_lists_own_titles_use_too(monkeypatch):
    model = HashingModel()
    classifier = _classifier(model)
    monkeypatch.setattr(classifier, "short_scope_threshold", -10.0)  # titles: the test model's scope is not tested
    titles = [
        "Speculative decoding with attention drafts",
        "Speculative decoding of attention heads drafts",
        "Speculative attention decoding for serving drafts",
        "Drafts of attention by speculative decoding",
    ]
    papers = [Paper(id=f"2501.0000{i}", title=t) for i, t in enumerate(titles)]
    listed = PRUNING + QUANTIZATION + ["Attention sinks", "Sparse attention", "Linear attention"]
    gaps = find_gaps(classifier, papers, model.encode(titles), context=listed)
    assert [(g.name, g.terms, len(g.papers)) for g in gaps] == [
        ("decoding / drafts / speculative", ["decoding", "drafts", "speculative"], 4)  # every title says attention
    ]


def test_a_gap_of_a_nested_list_sits_under_the_heading_its_papers_are_placed_under():
    model = HashingModel()
    nodes = ["Compression", "Compression/Pruning", "Compression/Quantization", "Decoding", "Decoding/Speculative"]
    rows = [(t, "Compression/Pruning") for t in PRUNING] + [(t, "Compression/Quantization") for t in QUANTIZATION]
    rows += [(t, "Decoding/Speculative") for t in SPECULATIVE]
    labelled = [LabelledPaper(f"p{i}", t, t, model.encode([t])[0], [n]) for i, (t, n) in enumerate(rows)]
    classifier = TaxonomyClassifier.train(labelled, list_taxonomy(nodes), model.encode)
    classifier.short_scope_threshold = -10.0  # titles: the test model's scope is not tested
    titles = [
        "Distillation of weights into small students",
        "Distillation of layers into students",
        "Students by distillation of weights",
        "Distillation students of quantization weights",
    ]
    papers = [Paper(id=f"2501.0000{i}", title=t) for i, t in enumerate(titles)]
    gaps = find_gaps(classifier, papers, model.encode(titles), context=[t for t, _ in rows])
    assert [(g.name, g.parent, len(g.papers)) for g in gaps] == [
        ("distillation / students / weights", "Compression", 4)
    ]
