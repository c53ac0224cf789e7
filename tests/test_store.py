"""Store contracts that mutation testing found unpinned: the sample a quantiser trains on, and the
user's labels as they are removed and exported."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from semsearch.errors import IndexDamaged
from semsearch.paper import Paper
from semsearch.store import Prediction, Store


@pytest.fixture
def store(tmp_path):
    """Ten papers (vec_ids 1-10), each with an embedding of its text that names its vec_id (one-hot)."""
    opened = Store(tmp_path / "papers.db")
    ids = [opened.put(Paper(id=f"2401.{i:05d}", title=f"Paper number {i} on topic {i * 7}")) for i in range(1, 11)]
    opened.put_embeddings(opened.stale_embeddings(100), np.eye(16, dtype=np.float32)[ids])
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


def _one_hot(vec_id: int) -> np.ndarray:
    return np.eye(16, dtype=np.float32)[vec_id]


def test_a_paper_whose_text_changed_is_embedded_again_and_one_unchanged_is_not(store):
    assert store.stale_count() == 0 and store.stale_embeddings(10) == []
    store.put(Paper(id="2401.00003", title="Paper number 3 on topic 21", abstract="Now  with an abstract"))
    store.put(Paper(id="2401.00004", title="Paper number 4 on topic 28", venue="ICML"))  # the text read is the same
    new = store.put(Paper(id="2402.00001", title="A new paper"))
    pending = store.stale_embeddings(10)
    assert new == 11 and store.stale_count() == 2
    assert [(p.vec_id, p.text) for p in pending] == [
        (3, "Paper number 3 on topic 21. Now with an abstract"),
        (11, "A new paper"),
    ]
    assert [p.vec_id for p in store.stale_embeddings(1)] == [3]  # a batch at a time, in vec_id order
    assert [p.vec_id for p in store.stale_embeddings(10, after=3)] == [11]  # the next batch
    assert store.stale_embeddings(10, after=11) == []
    with pytest.raises(ValueError):  # one vector short: an error, not a paper silently left stale
        store.put_embeddings(pending, _one_hot(3)[None, :])
    store.put_embeddings(pending, np.stack([_one_hot(3), _one_hot(11)]))
    assert store.stale_count() == 0 and store.embedding_count() == 11
    assert store.has_embedding(3, pending[0].text_hash, _one_hot(3))
    assert not store.has_embedding(3, pending[0].text_hash, _one_hot(4))  # another vector
    assert not store.has_embedding(3, pending[1].text_hash, _one_hot(3))  # made from other text
    assert not store.has_embedding(12, pending[0].text_hash, _one_hot(3))  # no such paper


def test_embeddings_are_read_back_as_stored_one_batch_at_a_time_in_vec_id_order(store):
    assert np.array_equal(store.embedding(4), _one_hot(4)) and store.embedding(99) is None
    assert {v: int(np.argmax(e)) for v, e in store.embeddings_for([7, 2, 99]).items()} == {7: 7, 2: 2}
    batches = list(store.iter_embeddings(batch=4))
    assert [list(ids) for ids, _ in batches] == [[1, 2, 3, 4], [5, 6, 7, 8], [9, 10]]
    assert all(np.array_equal(vectors, np.eye(16, dtype=np.float32)[ids]) for ids, vectors in batches)
    assert [len(ids) for ids, _ in store.iter_embeddings()] == [10]


def test_a_paper_is_found_by_any_form_of_its_id_and_read_back_whole(store):
    for form in (
        "2401.00003",
        " 2401.00003 ",
        "2401.00003v2",
        "arXiv:2401.00003",
        "https://arxiv.org/abs/2401.00003v1",
    ):
        assert store.find(form) == 3, form
    assert store.find("2401.99999") is None and store.find("") is None and store.vec_id("2401.00003v2") is None
    paper = Paper(
        id="survey:x", title="Ünïcode — title", abstract="a", authors=["Zoë"], survey_categories=["A/B"],
        arxiv_categories=["cs.CL"], sources=["survey"], year=2021, venue="ACL", url="https://x.org",
    )  # fmt: skip
    vec_id = store.put(paper)
    assert store.get("survey:x") == paper and store.papers_by_vec_id([vec_id, 99]) == {vec_id: paper}
    assert store.find("survey:x") == vec_id and store.get("nope") is None
    assert store.papers_with_title("ünïcode: Title!") == [paper] and store.vec_ids_with_title("ÜNÏCODE title") == [
        vec_id
    ]
    assert [v for v, _ in store.iter_papers()] == list(range(1, 12)) and store.count() == 11


def test_putting_a_paper_again_updates_its_record_and_replacing_renames_it(store):
    store.put_predictions([(5, Prediction("Decoding", 0.8, True))])
    assert store.put(Paper(id="2401.00005", title="Renamed", year=2020)) == 5
    assert store.get("2401.00005").title == "Renamed" and store.predictions([5]) == {}  # stale prediction dropped
    assert store.put(Paper(id="2301.00001", title="Published version"), replacing="2401.00005") == 5
    assert store.get("2401.00005") is None and store.get("2301.00001").title == "Published version"
    assert store.count() == 10


def test_papers_are_chosen_by_date_and_year_range(tmp_path):
    store = Store(tmp_path / "papers.db")
    ids = {
        p.id: store.put(p)
        for p in [
            Paper(id="published", title="a", published="2024-03-01", updated="2023-01-01", year=2024),
            Paper(id="updated-only", title="b", updated="2024-05-01", year=2024),
            Paper(id="year-only", title="c", year=2024),
            Paper(id="old", title="d", published="2023-12-31", updated="2024-06-01", year=2023),
            Paper(id="old-year", title="e", year=2023),
            Paper(id="no-date", title="f"),
        ]
    }
    chosen = lambda **where: sorted(i for i, v in ids.items() if v in store.vec_ids_where(**where))  # noqa: E731
    assert chosen(since="2024-01-01") == ["published", "updated-only", "year-only"]  # first date, else year
    assert chosen(since="2024-03-01") == ["published", "updated-only", "year-only"]  # any date in its year
    assert chosen(since="2024-05-02") == ["year-only"]
    assert chosen(year_from=2024) == ["published", "updated-only", "year-only"]
    assert chosen(year_to=2023) == ["old", "old-year"]
    assert chosen(year_from=2023, year_to=2023) == ["old", "old-year"] and chosen() == sorted(ids)
    assert store.year_counts(ids.values()) == {2023: 2, 2024: 3}  # without the paper that has no year
    assert list(store.year_counts(reversed(list(ids.values())))) == [2023, 2024]
    store.close()


def test_hundreds_of_papers_are_read_each_once(tmp_path):
    """Asked in chunks (SQLite limits the parameters of one query): none lost or read twice."""
    store = Store(tmp_path / "papers.db")
    for i in range(1003):
        store.db.execute(
            "INSERT INTO papers (id, title, year, title_key, text_hash) VALUES (?, ?, ?, '', '')",
            (f"p{i}", f"t{i}", 2000 + i % 2),
        )
    assert store.year_counts(range(1, 1004)) == {2000: 502, 2001: 501}
    assert len(store.papers_by_vec_id(range(1, 1004))) == 1003
    store.close()


def test_meta_and_artifacts_are_kept_and_writing_the_same_value_changes_nothing(store):
    assert store.get_meta("taxonomy") is None and store.get_meta("taxonomy", "survey") == "survey"
    store.set_meta("taxonomy", "mine")
    changes = store.db.total_changes
    store.set_meta("taxonomy", "mine")  # an unchanged re-ingest publishes nothing
    assert store.db.total_changes == changes and store.get_meta("taxonomy") == "mine"
    store.set_meta("taxonomy", "other")
    assert store.get_meta("taxonomy", "survey") == "other" and store.model == ""
    store.set_meta("model", "m-1")
    store.commit()
    again = Store(store.path)
    assert store.model == "m-1" and again.model == "m-1"  # and as the store opens
    again.close()
    assert store.get_artifact("classifier") is None
    store.put_artifact("classifier", b"one")
    store.put_artifact("classifier", b"two")
    assert store.get_artifact("classifier") == b"two" and isinstance(store.get_artifact("classifier"), bytes)


def test_the_classifier_learns_from_survey_labels_and_user_labels_of_papers_the_survey_leaves_out(store):
    store.put(Paper(id="2401.00002", title="Paper number 2 on topic 14", survey_categories=["Compression/Pruning"]))
    store.put_label(2, "Decoding", "2024-01-01")  # the survey's label wins
    store.put_label(7, "Decoding/Speculative", "2024-01-02")
    signature = store.labelled_signature()
    assert [(i, c) for i, c, _ in signature] == [
        ("2401.00002", '["Compression/Pruning"]'),
        ("2401.00007", "user:Decoding/Speculative"),
    ]
    assert signature[1][2] == store.get("2401.00007").text_hash("")  # retrained when the text changes
    learned = [(p.id, int(np.argmax(vector)), categories) for p, vector, categories in store.survey_labelled()]
    assert learned == [("2401.00002", 2, ["Compression/Pruning"]), ("2401.00007", 7, ["Decoding/Speculative"])]


def test_a_taxonomy_keeps_its_nodes_and_labels_until_replaced_or_removed(store):
    store.put_taxonomy(
        "list", "https://example.org/list", ["A", "A/B", "C"], [(3, "A/B"), (1, "C"), (3, "C"), (3, "C")]
    )
    store.put_taxonomy("other", "file.md", ["X"], [(5, "X")])
    assert store.taxonomies() == [
        {"name": "list", "source": "https://example.org/list", "nodes": ["A", "A/B", "C"], "papers": 2},
        {"name": "other", "source": "file.md", "nodes": ["X"], "papers": 1},
    ]
    assert store.taxonomy("other")["papers"] == 1 and store.taxonomy("none") is None
    assert store.taxonomy_labels("list") == {3: ["A/B", "C"], 1: ["C"]}  # in the order given, each once
    papers = [(p.id, int(np.argmax(vector)), categories) for p, vector, categories in store.taxonomy_papers("list")]
    assert papers == [("2401.00001", 1, ["C"]), ("2401.00003", 3, ["A/B", "C"])]
    store.put_taxonomy("list", "again.md", ["D"], [(4, "D")])
    assert store.taxonomy("list") == {"name": "list", "source": "again.md", "nodes": ["D"], "papers": 1}
    assert store.taxonomy_labels("list") == {4: ["D"]}
    assert store.remove_taxonomy("list") is True and store.remove_taxonomy("list") is False
    assert store.taxonomy_labels("list") == {} and [t["name"] for t in store.taxonomies()] == ["other"]


def test_predictions_are_made_once_for_each_unlabelled_paper_and_read_back(store):
    store.derive_categories()
    assert store.content_counts() == {"with_abstract": 0, "survey_labelled": 0, "user_labelled": 0, "predicted": 0}
    store.put(Paper(id="2401.00002", title="Paper number 2 on topic 14", survey_categories=["Compression/Pruning"]))
    todo = store.unpredicted(3)
    assert [(v, t, int(np.argmax(e))) for v, t, e in todo] == [
        (1, "Paper number 1 on topic 7", 1), (3, "Paper number 3 on topic 21", 3), (4, "Paper number 4 on topic 28", 4)
    ]  # fmt: skip
    assert [v for v, _, _ in store.unpredicted(2, after=4)] == [5, 6]  # the next batch
    spread = np.array([0.25, 0.75], dtype=np.float32)
    store.put_predictions([(1, Prediction("A", 0.9, True, spread)), (3, Prediction("B", 0.2, False))])
    store.put_predictions([(4, Prediction("C", 0.6, True))])  # without the leaves' chances
    assert [v for v, _, _ in store.unpredicted(3)] == [5, 6, 7]
    assert store.predictions([1, 3, 5]) == {1: Prediction("A", 0.9, True), 3: Prediction("B", 0.2, False)}
    store.derive_categories()
    evidence = store.category_evidence([1, 2, 3, 4])
    assert evidence[2] == (["Compression/Pruning"], "survey", None) and 3 not in evidence  # out of scope
    assert evidence[4] == (["C"], "predicted", None)
    assert evidence[1][:2] == (["A"], "predicted") and np.array_equal(evidence[1][2], spread)
    assert store.categories_for([1, 2]) == {1: ["A"], 2: ["Compression/Pruning"]}
    assert store.categories_for([1, 2], predicted=False) == {2: ["Compression/Pruning"]}
    assert store.content_counts() == {"with_abstract": 0, "survey_labelled": 1, "user_labelled": 0, "predicted": 2}
    store.clear_predictions()
    assert [v for v, _, _ in store.unpredicted(2)] == [1, 3] and store.predictions([1, 3]) == {}


def test_a_published_store_reads_the_categories_derived_at_publish(store):
    store.put_label(3, "Decoding", "2024-01-01")
    store.derive_categories()
    store.put_label(4, "Later", "2024-01-02")  # after publishing: not this generation's
    store.commit()
    reader = Store(store.path, readonly=True)
    assert reader.categories_for([3, 4]) == {3: ["Decoding"]} and reader.count() == 10
    reader.close()
    store.db.execute("DROP TABLE paper_categories")  # as an index published before they were stored
    store.commit()
    older = Store(store.path, readonly=True)
    assert older.categories_for([3, 4]) == {3: ["Decoding"], 4: ["Later"]}  # derived on reading
    older.close()


def test_a_published_store_reads_its_embeddings_in_batches(store):
    store.commit()
    reader = Store(store.path, readonly=True)
    assert [list(ids) for ids, _ in reader.iter_embeddings(batch=6)] == [[1, 2, 3, 4, 5, 6], [7, 8, 9, 10]]
    reader.close()


def test_an_older_index_gains_the_leaf_probabilities_column_when_written_and_reads_without_it(tmp_path):
    path = tmp_path / "papers.db"
    Store(path).close()
    old = sqlite3.connect(path)
    old.execute("DROP TABLE predictions")
    old.execute("CREATE TABLE predictions (vec_id INTEGER PRIMARY KEY, category TEXT, confidence REAL, in_scope INT)")
    old.execute("INSERT INTO predictions VALUES (1, 'A', 0.9, 1)")
    old.execute("INSERT INTO paper_categories VALUES (1, 0, 'A', 'predicted')")
    old.commit()
    old.close()
    reader = Store(path, readonly=True)
    assert reader.keeps_leaf_probabilities is False and reader.predictions([1]) == {1: Prediction("A", 0.9, True)}
    assert reader.category_evidence([1]) == {1: (["A"], "predicted", None)}
    reader.close()
    writer = Store(path)
    assert writer.keeps_leaf_probabilities is True
    writer.put(Paper(id="2401.00001", title="a"))
    writer.put_predictions([(1, Prediction("A", 0.9, True, np.array([1.0], np.float32)))])
    writer.derive_categories()
    assert np.array_equal(writer.category_evidence([1])[1][2], [1.0])
    writer.close()


def test_a_published_store_that_is_missing_or_not_a_database_is_damaged_in_one_line(tmp_path):
    path = tmp_path / "index" / "gen-000001" / "papers.db"
    with pytest.raises(IndexDamaged, match=f"^index at {tmp_path / 'index'} is damaged: {path} is missing$"):
        Store(path, readonly=True)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database " * 100)
    with pytest.raises(IndexDamaged, match=r"is damaged: .*papers.db cannot be read \(file is not a database\)$"):
        Store(path, readonly=True)


def test_a_node_name_with_a_backslash_holds_its_subtree(store):
    """The backslash is the LIKE pattern's escape character: in a node's name it is a character."""
    own = store.put(Paper(id="2402.00001", title="A", survey_categories=["I\\O/Disk"]))
    store.put(Paper(id="2402.00002", title="B", survey_categories=["IO/Disk"]))
    store.derive_categories()
    assert store.vec_ids_where(categories=["I\\O"]) == [own]


def test_scope_learns_its_words_from_unlabelled_abstracts_an_even_sample_the_same_each_time(store):
    """What scope's words are taught from (classify.ScopeWords): abstracts that neither the survey
    nor a user labels; beyond the limit an evenly spaced sample, not the first rows."""
    for i in range(1, 11):  # every paper gets an abstract, its embedding stays one-hot
        store.put(Paper(id=f"2401.{i:05d}", title=f"Paper number {i} on topic {i * 7}", abstract=f"Abstract {i}."))
    store.put_embeddings(store.stale_embeddings(100), np.eye(16, dtype=np.float32)[range(1, 11)])
    store.put(Paper(id="2401.00099", title="A title alone"))  # vec_id 11: no abstract, not taught
    store.db.execute("UPDATE papers SET survey_categories = '[\"Quantization\"]' WHERE vec_id = 2")
    store.put_label(5, "Decoding/Speculative", "2024-01-01")
    taught = [1, 3, 4, 6, 7, 8, 9, 10]
    assert store.unlabelled_abstract_count() == len(taught)
    assert [_rows_of(v[None, :], store)[0] for _, v, _ in store.unlabelled_abstracts(100)] == taught
    first = store.unlabelled_abstracts(3)
    assert [_rows_of(v[None, :], store)[0] for _, v, _ in first] == [1, 7, 10]  # evenly spaced: ends and middle
    assert [text for text, _, _ in first] == [text for text, _, _ in store.unlabelled_abstracts(3)]
    assert first[0][0] == "Paper number 1 on topic 7. Abstract 1."  # the text as the classifier reads it
    assert first[0][2] == "Abstract 1."  # and the abstract alone, whose opening teaches the question model


def test_a_users_survey_label_on_a_paper_the_survey_labels_does_not_count(tmp_path):
    """The survey's own label stands: `propose` for the survey takes the user's label as confirmed
    only on a paper the survey leaves unlabelled."""
    from semsearch.paper import Paper
    from semsearch.store import Store

    store = Store(tmp_path / "papers.db")
    surveyed = store.put(Paper(id="2401.00001", title="Four-bit weights", survey_categories=["Quantization"]))
    unlabelled = store.put(Paper(id="2401.00002", title="Evicting tokens"))
    store.put_label(surveyed, "Caching", "2026-12-06")
    store.put_label(unlabelled, "Caching", "2026-12-06")
    assert store.survey_user_labels() == {unlabelled: "Caching"}
    store.close()
