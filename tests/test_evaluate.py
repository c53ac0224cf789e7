"""The metrics every reported figure comes from, checked against their textbook definitions.

Each expected value is worked out by hand in the comment beside it (or, for the properties, by a
direct transcription of the definition), never by calling the code under test a second way.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.evaluate import (
    balanced_accuracy,
    expected_calibration_error,
    ndcg_at,
    reciprocal_rank,
)
from tests.conftest import examples


# --- nDCG@k (Järvelin & Kekäläinen, binary gains, log2(rank + 1) discount) --------------------------
def test_ndcg_counts_only_the_first_k_and_an_ideal_ranking_of_at_most_k():
    # Relevant at ranks 2 and 4 of k = 3: only rank 2 counts. DCG = 1/log2(3).
    # Five relevant in all, but the ideal list holds only k = 3: 1 + 1/log2(3) + 1/log2(4).
    assert ndcg_at([0, 1, 0, 1], total_relevant=5, k=3) == pytest.approx(
        (1 / math.log2(3)) / (1 + 1 / math.log2(3) + 0.5)
    )
    # Default k is 10: a relevant paper at rank 11 does not count; at rank 10 it does (1/log2(11)).
    assert ndcg_at([0] * 10 + [1], total_relevant=1) == 0.0
    assert ndcg_at([0] * 9 + [1], total_relevant=1) == pytest.approx(1 / math.log2(11))
    # A perfect ranking scores 1, and one relevant paper first of one relevant in all too.
    assert ndcg_at([1, 1, 1, 0], total_relevant=3) == pytest.approx(1.0)
    assert ndcg_at([1], total_relevant=1) == pytest.approx(1.0)
    # Rank 2 alone of one relevant: 1/log2(3) = 0.6309...
    assert ndcg_at([0, 1], total_relevant=1) == pytest.approx(0.6309297535714575)


def _ndcg_by_definition(relevances: list[int], total: int, k: int) -> float:
    dcg = 0.0
    for position in range(1, min(k, len(relevances)) + 1):  # ranks from 1
        dcg += relevances[position - 1] / math.log2(position + 1)
    ideal = sum(1 / math.log2(position + 1) for position in range(1, min(k, total) + 1))
    return dcg / ideal if ideal else 0.0


@settings(max_examples=examples(200), deadline=2000)
@given(st.lists(st.integers(0, 1), max_size=25), st.integers(0, 30), st.integers(1, 20))
def test_ndcg_is_the_dcg_over_the_ideal_dcg_for_any_ranking(relevances, extra, k):
    total = sum(relevances) + extra  # at least the relevant papers ranked
    value = ndcg_at(relevances, total, k)
    assert value == pytest.approx(_ndcg_by_definition(relevances, total, k))
    assert 0.0 <= value <= 1.0 + 1e-12


# --- reciprocal rank --------------------------------------------------------------------------------
def test_reciprocal_rank_is_one_over_the_first_relevant_rank_within_k():
    assert reciprocal_rank([1, 1]) == 1.0
    assert reciprocal_rank([0, 1, 1]) == 0.5  # the first relevant counts, not the later one
    assert reciprocal_rank([0] * 9 + [1]) == pytest.approx(0.1)  # rank 10 is within the default k
    assert reciprocal_rank([0, 0, 1], k=2) == 0.0
    assert reciprocal_rank([0, 1], k=2) == 0.5
    assert reciprocal_rank([]) == 0.0


# --- expected calibration error (Guo et al. 2017; equal-width bins) ----------------------------------
def test_calibration_error_puts_each_confidence_in_its_own_tenth():
    # 0.05 (right) and 0.15 (wrong) are in different bins: |1 - 0.05| and |0 - 0.15|, each weight 1/2.
    # Were they in one bin: |0.5 - 0.1| = 0.4 instead.
    assert expected_calibration_error(np.array([0.05, 0.15]), np.array([1.0, 0.0])) == pytest.approx((0.95 + 0.15) / 2)
    # Confidence 1.0 falls in the top bin, 0.0 in the bottom one.
    assert expected_calibration_error(np.array([1.0, 0.0]), np.array([1.0, 0.0])) == pytest.approx(0.0)
    # Perfectly calibrated bins score 0: confidence 0.75 right three times in four.
    assert expected_calibration_error(np.full(4, 0.75), np.array([1.0, 1.0, 1.0, 0.0])) == pytest.approx(0.0)
    # Five bins: [0, 0.2) holds 0.1 and [0.2, 0.4) holds 0.3, both wrong: gaps 0.1 and 0.3, each weight 1/2.
    assert expected_calibration_error(np.array([0.1, 0.3]), np.array([0.0, 0.0]), bins=5) == pytest.approx(0.2)
    # Two bins: 0.1 and 0.3 share [0, 0.5): accuracy 1 against mean confidence 0.2.
    assert expected_calibration_error(np.array([0.1, 0.3]), np.array([1.0, 1.0]), bins=2) == pytest.approx(0.8)


def _ece_by_definition(confidence, correct, bins: int) -> float:
    total = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [i for i, c in enumerate(confidence) if low <= c < high or (b == bins - 1 and c == 1.0)]
        if members:
            accuracy = sum(correct[i] for i in members) / len(members)
            mean = sum(confidence[i] for i in members) / len(members)
            total += len(members) / len(confidence) * abs(accuracy - mean)
    return total


# Confidences away from the bin edges, where float rounding of the edges would decide the bin.
_confidence = st.integers(0, 999).filter(lambda n: n % 100 not in (0, 99)).map(lambda n: n / 1000)


@settings(max_examples=examples(200), deadline=2000)
@given(
    st.lists(st.tuples(_confidence, st.booleans()), min_size=1, max_size=40),
    st.sampled_from([2, 5, 10]),
)
def test_calibration_error_is_the_weighted_gap_per_bin_for_any_confidences(pairs, bins):
    confidence = [c for c, _ in pairs]
    correct = [float(r) for _, r in pairs]
    assert expected_calibration_error(np.array(confidence), np.array(correct), bins) == pytest.approx(
        _ece_by_definition(confidence, correct, bins)
    )


# --- balanced accuracy ------------------------------------------------------------------------------
def test_balanced_accuracy_is_the_mean_of_the_two_recalls():
    truth = np.array([True, True, True, True, False, False])
    # Inside kept: 3 of 4; outside turned away: 1 of 2. (0.75 + 0.5) / 2.
    assert balanced_accuracy([True, True, True, False, True, False], truth) == pytest.approx(0.625)
    # "All in" cannot game it: 1 and 0.
    assert balanced_accuracy([True] * 6, truth) == pytest.approx(0.5)
    assert balanced_accuracy([False, False, False, False, True, True], truth) == 0.0
    assert balanced_accuracy([True, True, True, True, False, False], truth) == 1.0
    # A class missing from the truth: no figure.
    assert math.isnan(balanced_accuracy([True, False], np.array([True, True])))
    assert math.isnan(balanced_accuracy([True, False], np.array([False, False])))


# --- the kNN baseline ---------------------------------------------------------------------------------
class _Labelled:
    """What knn_vote reads of a classifier: unit vectors of labelled papers and their leaves."""

    def __init__(self, vectors, categories):
        self.labelled_vectors = np.asarray(vectors, dtype=np.float32)
        self.labelled_categories = categories


def test_knn_vote_weighs_each_neighbours_leaves_by_its_cosine_and_ignores_the_rest():
    from semsearch.evaluate import knn_vote

    classifier = _Labelled(
        [[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [-1, 0, 0]],
        [["A"], ["B", "A"], ["C"], ["D"]],
    )
    # The query (3, 4, 0) is normalised to (0.6, 0.8, 0): cosines 0.6, 0.96, 0.8, -0.6.
    # k = 3 nearest: papers 1, 2, 0. Votes: A 0.96 + 0.6 = 1.56, B 0.96, C 0.8 (D is not a neighbour).
    [(ranked, share, near)] = knn_vote(classifier, np.array([[3.0, 4.0, 0.0]]), k=3)
    assert ranked == ["A", "B", "C"]
    assert share == pytest.approx(1.56 / (1.56 + 0.96 + 0.8))
    assert near == pytest.approx((0.96 + 0.8 + 0.6) / 3)  # the mean cosine of the three neighbours
    # All four neighbours: D's cosine is negative and weighs nothing, but counts in the mean cosine.
    [(ranked, share, near)] = knn_vote(classifier, np.array([[0.6, 0.8, 0.0]]), k=4)
    assert ranked[:3] == ["A", "B", "C"] and share == pytest.approx(1.56 / 3.32)
    assert near == pytest.approx((0.96 + 0.8 + 0.6 - 0.6) / 4)
    # The default k is 10 (all four here), and the best three leaves are given, not four.
    [(ranked, _, near)] = knn_vote(classifier, np.array([[0.6, 0.8, 0.0]]))
    assert ranked == ["A", "B", "C"] and near == pytest.approx(1.76 / 4)


# --- what is relevant ---------------------------------------------------------------------------------
def test_a_known_item_is_the_paper_with_the_question_s_arxiv_id_else_its_title():
    from semsearch.evaluate import is_target
    from semsearch.paper import Paper

    paper = Paper(id="2401.00001", title="Rotations for Quantization")
    assert is_target({"arxiv_id": "2401.00001", "title": "Something else"}, paper) == 1
    assert is_target({"arxiv_id": "2401.99999", "title": "rotations  for quantization."}, paper) == 1
    assert is_target({"arxiv_id": None, "title": "Rotations for Quantization"}, paper) == 1
    assert is_target({"title": "Rotations for pruning"}, paper) == 0
    assert is_target({"arxiv_id": "2401.99999", "title": "Rotations for pruning"}, paper) == 0


def test_related_papers_are_relevant_when_they_share_a_survey_leaf_or_a_reading_list_topic():
    from semsearch.evaluate import share_a_category
    from semsearch.paper import Paper

    one = Paper(id="2401.00001", title="A", survey_categories=["X/Leaf 1", "X/Leaf 2"])
    same_leaf = Paper(id="2401.00002", title="B", survey_categories=["X/Leaf 2"])
    same_branch = Paper(id="2401.00003", title="C", survey_categories=["X/Leaf 3"])
    unlabelled = Paper(id="2401.00004", title="D")
    topics = {"2401.00001": {"kv cache"}, "2401.00003": {"kv cache", "pruning"}, "2401.00004": {"pruning"}}
    assert share_a_category(one, same_leaf, {}) is True
    assert share_a_category(one, same_branch, {}) is False  # a shared branch is not a shared leaf
    assert share_a_category(one, same_branch, topics) is True  # a shared topic is
    assert share_a_category(one, unlabelled, topics) is False
    assert share_a_category(unlabelled, one, {}) is False


def test_question_files_are_known_item_when_they_name_a_title(tmp_path):
    from semsearch.errors import SemsearchError
    from semsearch.evaluate import read_questions, read_topics

    known = tmp_path / "known.jsonl"
    known.write_text('{"query": "rotations", "title": "QuaRot"}\n\n{"query": "cache", "title": "H2O"}\n')
    kind, rows = read_questions(known)
    assert kind == "known-item" and [r["query"] for r in rows] == ["rotations", "cache"]
    topical = tmp_path / "topical.jsonl"
    topical.write_text('{"query": "kv cache", "categories": ["KV-Cache Optimization"]}\n')
    assert read_questions(topical) == ("topical", [{"query": "kv cache", "categories": ["KV-Cache Optimization"]}])
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"query": "fine", "topics": ["a"]}\n{"query": 7}\n')
    with pytest.raises(SemsearchError, match=r"bad.jsonl:2: expected a JSON object with a 'query'"):
        read_questions(bad)

    topics = tmp_path / "topics.jsonl"
    topics.write_text('{"id": 2401.00001, "topics": ["a", "b"]}\n{"id": "2401.00002"}\n')
    assert read_topics(topics) == {"2401.00001": {"a", "b"}, "2401.00002": set()}
    topics.write_text('{"topics": ["a"]}\n')
    with pytest.raises(SemsearchError, match=r"topics.jsonl:1: expected a JSON object with an 'id'"):
        read_topics(topics)


def test_expected_nodes_are_read_as_full_paths_a_list_of_them_or_none(tmp_path):
    from semsearch.errors import SemsearchError
    from semsearch.evaluate import read_expected
    from semsearch.sources.survey import load_survey

    leaf = next(node for node in load_survey().nodes if node.count("/") >= 2)
    short = leaf.rsplit("/", 1)[1]
    path = tmp_path / "new.jsonl"
    path.write_text(
        f'{{"id": "2401.00001", "expected": "{short}"}}\n'
        f'{{"id": "x", "title": "  Two \\n words ", "abstract": " an\\tabstract ", "expected": ["{leaf}"]}}\n'
        '{"title": "Recipes", "expected": null}\n'
    )
    assert read_expected(path) == [
        {"id": "2401.00001", "title": "", "abstract": "", "expected": [leaf]},
        {"id": "x", "title": "Two words", "abstract": "an abstract", "expected": [leaf]},
        {"id": None, "title": "Recipes", "abstract": "", "expected": None},
    ]
    for line in ('{"expected": null}', '{"id": 5, "expected": null}', '{"id": "2401.00001"}'):
        path.write_text(line + "\n")
        with pytest.raises(SemsearchError, match=r"new.jsonl:1: expected a JSON object with an 'id'"):
            read_expected(path)


def test_new_paper_scores_judge_the_verdicts_by_balanced_accuracy_and_split_top1_by_branch():
    from semsearch.evaluate import score_suggestions

    quant = "Model-Centric Methods/Model Compression/Quantization"
    lora = "Model-Centric Methods/Efficient Fine-Tuning/Parameter-Efficient Fine-Tuning/Low-Rank Adaptation"
    expected = [[quant], [lora], [lora, quant], None]
    suggested = [[quant], [quant], [quant], [lora]]
    # Top-1: right, wrong, right (quant is expected too). Paper 3's branch is its first expected one.
    report = score_suggestions(
        expected, suggested, [0.8, 0.6, 0.4, 0.9], [0.9, 0.8, 0.7, 0.1], [True, False, True, True]
    )
    assert report["node_top1"] == pytest.approx(2 / 3)
    assert report["mean_confidence"] == pytest.approx(0.6)  # of the papers inside only
    assert report["scope_auroc"] == 1.0
    # Inside kept: 2 of 3; outside turned away: 0 of 1.
    assert report["scope_balanced_accuracy"] == pytest.approx(1 / 3)
    assert report["top1_by_branch"] == {
        "Model-Centric Methods/Model Compression": (1, 1.0),
        "Model-Centric Methods/Efficient Fine-Tuning": (2, 0.5),
    }
    assert score_suggestions(expected, suggested, [0.5] * 4, [0.5] * 4)["scope_balanced_accuracy"] is None


def test_knn_vote_asks_ten_neighbours_by_default():
    from semsearch.evaluate import knn_vote

    # Eleven labelled papers, the query's cosine with each falling: ten vote "near", the eleventh,
    # the least similar, "far". Were it asked too, "far" would be among the three leaves given.
    angles = np.linspace(0.0, 1.0, 11)
    vectors = np.stack([np.cos(angles), np.sin(angles), np.zeros(11)], axis=1)
    classifier = _Labelled(vectors, [["near"]] * 10 + [["far"]])
    [(ranked, share, near)] = knn_vote(classifier, np.array([[1.0, 0.0, 0.0]]))
    assert ranked == ["near"] and share == 1.0
    assert near == pytest.approx(np.cos(angles[:10]).mean(), rel=1e-6)


def test_no_known_item_question_holds_no_target():
    from semsearch.evaluate import targets_with_abstract
    from semsearch.paper import Paper

    held = targets_with_abstract([Paper(id="2401.00001", title="A", abstract="x")], [])
    assert held.dtype == bool and (~held).tolist() == []  # the "title only" group is its negation


# --- leave-one-out figures over the toy taxonomy, four leaves -------------------------------------------
@pytest.fixture
def four_leaves():
    import dataclasses

    from semsearch.classify import LabelledPaper
    from semsearch.taxonomy import Taxonomy
    from tests.conftest import HashingModel
    from tests.test_classify import TOY, toy_papers

    exit_leaf = "Decoding/Early Exit"
    taxonomy = dataclasses.replace(
        TOY,
        nodes=(*TOY.nodes, exit_leaf),
        descriptions={**TOY.descriptions, exit_leaf: "exit early layers confidence skip"},
    )
    model = HashingModel()
    texts = ["early exit layers skip", "exit at shallow layers confidence", "skip layers early exit", "exit early"]
    papers = toy_papers(model) + [
        LabelledPaper(f"exit-{i}", text, text, model.encode([text])[0], [exit_leaf]) for i, text in enumerate(texts)
    ]
    assert isinstance(taxonomy, Taxonomy) and len(taxonomy.leaves) == 4
    return model, taxonomy, papers


def test_leave_one_out_reports_every_figure_and_counts_top3_over_the_three_best_leaves(four_leaves):
    import dataclasses

    from semsearch.evaluate import evaluate_classifier

    model, taxonomy, papers = four_leaves
    clean = evaluate_classifier(None, model, taxonomy, papers)
    assert set(clean) == {
        "papers",
        "with_abstract",
        "leaf_top1",
        "leaf_top3",
        "level3_top1",
        "ece",
        "mean_confidence",
        "suggestion_precision",
        "in_scope_share",
        "in_scope_share_with_abstract",
        "knn_baseline_top1",
    }
    assert (clean["papers"], clean["leaf_top1"], clean["leaf_top3"], clean["level3_top1"]) == (16, 1.0, 1.0, 1.0)
    # A speculation paper filed under Early Exit, whose words it shares none of: left out, its
    # label comes fourth of four leaves, outside the top 3 (15 of 16 within it).
    assert papers[8].text == "speculative decoding draft tokens"
    papers[8] = dataclasses.replace(papers[8], categories=["Decoding/Early Exit"])
    assert evaluate_classifier(None, model, taxonomy, papers)["leaf_top3"] == pytest.approx(15 / 16)


def test_each_paper_s_confidence_is_its_own_top_probability_at_the_other_half_s_temperature(four_leaves):
    import zlib

    from semsearch.classify import TaxonomyClassifier, fit_temperature, softmax
    from semsearch.evaluate import evaluate_classifier

    model, taxonomy, papers = four_leaves
    report = evaluate_classifier(None, model, taxonomy, papers)
    classifier = TaxonomyClassifier.train(papers, taxonomy, model.encode)
    scores, truth = classifier.loo_scores, classifier.loo_truth
    halves = np.array([zlib.crc32(p.id.encode()) % 2 for p in papers])
    confidence = []
    for row, half in zip(scores, halves, strict=True):
        temperature = fit_temperature(scores[halves != half], truth[halves != half])
        confidence.append(float(softmax(row[None, :], temperature)[0].max()))
    assert len(set(np.round(confidence, 9))) > 2  # a paper's own, not one per half
    assert report["mean_confidence"] == pytest.approx(np.mean(confidence))


def test_ten_labelled_papers_are_enough_to_evaluate_and_nine_are_not(four_leaves):
    from semsearch.errors import SemsearchError
    from semsearch.evaluate import evaluate_classifier

    model, taxonomy, papers = four_leaves
    assert evaluate_classifier(None, model, taxonomy, papers[:10])["papers"] == 10
    with pytest.raises(
        SemsearchError, match=r"^too few labelled papers to evaluate; run `semsearch ingest survey` first$"
    ):
        evaluate_classifier(None, model, taxonomy, papers[:9])


def test_scope_auroc_sets_the_labelled_papers_each_left_out_against_the_papers_outside(four_leaves):
    from semsearch.evaluate import evaluate_classifier

    model, taxonomy, papers = four_leaves
    # Recipes and football share no word with any labelled paper: every labelled one outscores them.
    outside = model.encode(["cooking recipes kitchen", "football goals league", "garden flowers"])
    report = evaluate_classifier(None, model, taxonomy, papers, outside_vectors=outside)
    assert (report["outside_papers"], report["scope_auroc"]) == (3, 1.0)
    assert "scope_auroc" not in evaluate_classifier(None, model, taxonomy, papers)


def test_knn_vote_normalises_each_query_on_its_own():
    from semsearch.evaluate import knn_vote

    classifier = _Labelled([[1, 0], [0, 1]], [["A"], ["B"]])
    # (3, 4) → (0.6, 0.8) and (10, 0) → (1, 0): mean cosines of both neighbours 0.7 and 0.5.
    results = knn_vote(classifier, np.array([[3.0, 4.0], [10.0, 0.0]]), k=2)
    assert [near for _, _, near in results] == [pytest.approx(0.7), pytest.approx(0.5)]
    assert [ranked for ranked, _, _ in results] == [["B", "A"], ["A", "B"]]  # B 0.8, A 0.6; A 1, B 0


def test_the_knn_baseline_of_leave_one_out_votes_with_all_ten_nearest(four_leaves):
    from semsearch.evaluate import evaluate_classifier

    # Each toy paper's ten nearest (itself left out) hold its three leaf-mates first: the vote is right.
    model, taxonomy, papers = four_leaves
    assert evaluate_classifier(None, model, taxonomy, papers)["knn_baseline_top1"] == 1.0


def test_a_topical_question_finds_papers_filed_under_a_named_node_at_any_depth(tmp_path, fake_model):
    from semsearch.evaluate import evaluate_search
    from semsearch.index import Index
    from semsearch.ingest import Ingest
    from semsearch.paper import Paper
    from semsearch.search import Searcher

    quant = "Model Compression/Quantization"
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(
            [
                Paper(
                    id="2401.00001", title="Rotations", abstract="rotations bits", survey_categories=[quant + "/PTQ"]
                ),
                Paper(id="2401.00002", title="Outliers", abstract="outliers bits", survey_categories=[quant]),
                Paper(
                    id="2401.00003",
                    title="Heads",
                    abstract="pruning heads",
                    survey_categories=["Model Compression/Pruning"],
                ),
            ]
        )
    index = Index.open(tmp_path)
    question = {"query": "bits", "categories": ["Quantization"], "topics": []}  # an inner node, by name
    result = evaluate_search(index, [question], "topical", {}, {"lexical": Searcher(index, mode="lexical")})["lexical"]
    # Two relevant papers (one under the node, one at it), both ranked first and second: nDCG 1, P@10 0.2.
    assert result == {"ndcg@10": 1.0, "p@10": 0.2, "mrr@10": 1.0}


def test_level3_top1_counts_a_wrong_leaf_under_the_right_third_level_node():
    import dataclasses

    from semsearch.classify import LabelledPaper
    from semsearch.evaluate import evaluate_classifier
    from semsearch.taxonomy import Taxonomy
    from tests.conftest import HashingModel
    from tests.test_classify import TOY, TOY_PAPERS

    quant = "M/Compression/Quantization"
    texts = {
        quant + "/Weights": TOY_PAPERS["Compression/Quantization"],
        quant + "/Activations": [
            "activations quantization outliers smoothing",
            "activation bits per channel scales",
            "smoothing activation outliers migration",
            "activations low bits channel",
        ],
        "M/Compression/Pruning/Heads": TOY_PAPERS["Compression/Pruning"],
        "M/Decoding/Drafts/Speculation": TOY_PAPERS["Decoding/Speculation"],
    }
    nodes = sorted({"/".join(leaf.split("/")[:depth]) for leaf in texts for depth in range(1, 5)})
    taxonomy = Taxonomy(
        nodes=tuple(nodes),
        descriptions={node: node.rsplit("/", 1)[-1].lower() + " methods" for node in nodes},
        out_of_scope=TOY.out_of_scope,
    )
    model = HashingModel()
    papers = [
        LabelledPaper(f"{leaf}-{i}", text, text, model.encode([text])[0], [leaf])
        for leaf, some in texts.items()
        for i, text in enumerate(some)
    ]
    # A weights paper filed under Activations: the top leaf is now wrong for two papers (14 of 16),
    # but each wrong leaf is under Quantization, the third-level node its truth is under too.
    papers[2] = dataclasses.replace(papers[2], categories=[quant + "/Activations"])
    report = evaluate_classifier(None, model, taxonomy, papers)
    assert (report["leaf_top1"], report["level3_top1"]) == (14 / 16, 1.0)
