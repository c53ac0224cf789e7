"""Store contracts that mutation testing found unpinned: the sample a quantiser trains on, and the
user's labels as they are removed and exported."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from semsearch.paper import Paper
from semsearch.store import Store


@pytest.fixture
def store(tmp_path):
    """Ten papers (vec_ids 1-10), each with an embedding that names its vec_id (one-hot)."""
    opened = Store(tmp_path / "papers.db")
    ids = [opened.put(Paper(id=f"2401.{i:05d}", title=f"Paper number {i} on topic {i * 7}")) for i in range(1, 11)]
    vectors = np.eye(16, dtype=np.float32)[ids]
    opened.put_embeddings([SimpleNamespace(vec_id=v, text_hash=str(v)) for v in ids], vectors)
    yield opened
    opened.close()


def _rows_of(sample: np.ndarray, store) -> list[int]:
    """The vec_ids whose embeddings make up `sample`, in its order."""
    return [int(np.argmax(row)) for row in sample]


def test_a_sample_is_spread_evenly_over_the_store(store):
    assert store.embedding_count() == 10 and store.all_vec_ids() == list(range(1, 11))
    assert _rows_of(store.sample_embeddings(5), store) == [2, 4, 6, 8, 10]  # every second, not the first five
    assert _rows_of(store.sample_embeddings(3), store) == [3, 6, 9]
    assert _rows_of(store.sample_embeddings(10), store) == list(range(1, 11))
    assert len(store.sample_embeddings(50)) == 10  # never more than there is


def test_a_sample_of_sparse_ids_falls_back_to_the_first_papers(store):
    store.db.execute("DELETE FROM embeddings WHERE vec_id % 2 = 0")  # only odd vec_ids keep a vector
    assert _rows_of(store.sample_embeddings(2), store) == [1, 3]  # every second would find none


def test_removing_a_label_says_whether_there_was_one(store):
    store.put_label(3, "Decoding/Speculative", "2024-01-01")
    assert store.remove_label(3) is True
    assert store.remove_label(3) is False and store.remove_label(4) is False


def test_labels_export_with_the_papers_id_title_category_and_date(store):
    store.put_label(2, "Compression/Pruning", "2024-02-01")
    store.put_label(1, "Decoding/Speculative", "2024-01-01")
    assert store.labels() == [
        {"id": "2401.00001", "title": "Paper number 1 on topic 7", "category": "Decoding/Speculative",
         "labelled_at": "2024-01-01"},
        {"id": "2401.00002", "title": "Paper number 2 on topic 14", "category": "Compression/Pruning",
         "labelled_at": "2024-02-01"},
    ]  # fmt: skip
