"""`semsearch taxonomy gaps`: topics a list has not named, and their evaluation by leaving headings out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.classify import LabelledPaper, TaxonomyClassifier
from semsearch.gaps import Gap, distinctive_terms, find_gaps
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
    monkeypatch.setattr(classifier, "scope_threshold", -10.0)  # the hashing model's scope is not under test
    titles = SPECULATIVE + ["Pruning heads of attention in large models", "Quantization of caches to two bits"]
    papers = [Paper(id=f"2501.0000{i}", title=t) for i, t in enumerate(titles)]

    gaps = find_gaps(classifier, papers, model.encode(titles), context=PRUNING + QUANTIZATION)

    assert [sorted(p.title for p in g.papers) for g in gaps] == [sorted(SPECULATIVE)]
    assert gaps[0].name.startswith("speculative decoding")
    assert isinstance(gaps[0], Gap) and gaps[0].parent == ""  # a flat list: it sits at the top level


def test_no_gap_when_every_paper_fits_a_heading(monkeypatch):
    model = HashingModel()
    classifier = _classifier(model)
    monkeypatch.setattr(classifier, "scope_threshold", -10.0)
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
