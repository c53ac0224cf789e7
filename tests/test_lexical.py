"""The BM25 side's own contracts, on small indexes written here: how rare a question's words are
(`LexicalIndex.specificity`, which the ranking reads to tell a question about one paper from a
topical one) and which paper a score belongs to (`score_of`)."""

from __future__ import annotations

import numpy as np
import pytest

from semsearch.lexical import LexicalIndex

# Four papers: "transformer" in all of them, "pruning" in two, "zebra" in one.
TEXTS = [
    "pruning transformer heads",
    "pruning transformer channels",
    "zebra transformer caches",
    "quantized transformer weights",
]


@pytest.fixture
def index(tmp_path) -> LexicalIndex:
    LexicalIndex.build(TEXTS, [10, 11, 12, 13], tmp_path)
    return LexicalIndex.load(tmp_path)


def test_a_word_no_paper_holds_is_the_rarest_and_one_every_paper_holds_the_commonest(index):
    assert index.specificity("xylophone") == pytest.approx(1.0)
    assert index.specificity("transformer") == pytest.approx(0.0)


def test_rarer_words_make_a_more_specific_question(index):
    rare, some, common = (index.specificity(q) for q in ("zebra", "pruning", "transformer"))
    assert 1.0 > rare > some > common


def test_a_question_is_as_specific_as_its_words_on_average(index):
    """The mean, not the rarest or the sum: one rare word among common ones counts for its share."""
    both = index.specificity("zebra transformer")
    assert both == pytest.approx((index.specificity("zebra") + index.specificity("transformer")) / 2)
    assert index.specificity("zebra pruning transformer") < index.specificity("zebra pruning")


def test_request_words_stop_words_and_numbers_do_not_count(index):
    assert index.specificity("can you recommend papers about the zebra from 2024") == index.specificity("zebra")
    assert index.specificity("papers about the") == 0.0  # nothing left to be specific about
    assert index.specificity("") == 0.0


def test_one_paper_says_nothing_about_rarity(tmp_path):
    LexicalIndex.build(["zebra caches"], [0], tmp_path)
    assert LexicalIndex.load(tmp_path).specificity("zebra") == 0.0


def test_two_papers_are_enough_to_tell_rare_from_common(tmp_path):
    LexicalIndex.build(["zebra caches", "lion caches"], [0, 1], tmp_path)
    lexical = LexicalIndex.load(tmp_path)
    assert lexical.specificity("zebra") > lexical.specificity("caches") == pytest.approx(0.0)


def test_scores_are_read_back_by_vec_id_and_an_unknown_paper_scores_nothing(index):
    scores = index.scores("zebra caches")
    assert scores[2] > 0 and np.count_nonzero(scores) == 1  # in vec_ids order: paper 12 alone
    assert list(index.score_of(scores, [12, 99, 10])) == [scores[2], 0.0, 0.0]


def test_a_paper_not_indexed_scores_nothing_in_an_index_of_one_or_none(tmp_path):
    LexicalIndex.build(["zebra caches"], [7], tmp_path / "one")
    one = LexicalIndex.load(tmp_path / "one")
    scores = one.scores("zebra")
    assert list(one.score_of(scores, [99, 7, 3])) == [0.0, scores[0], 0.0]
    LexicalIndex.build([], [], tmp_path / "none")
    none = LexicalIndex.load(tmp_path / "none")
    assert list(none.score_of(none.scores("zebra"), [1, 2])) == [0.0, 0.0]


def test_a_bare_title_keeps_its_own_words_beside_the_borrowed_description():
    from semsearch.lexical import lexical_text

    text = lexical_text("Reformer", "", ["Hashing"], {"Hashing": "locality sensitive hashing"})
    assert text.split().count("Reformer") == 2 and "locality sensitive hashing" in text


def test_building_again_into_a_directory_replaces_its_index(tmp_path):
    LexicalIndex.build(["zebra caches"], [0], tmp_path)
    LexicalIndex.build(["lion caches", "lion heads"], [5, 6], tmp_path)
    again = LexicalIndex.load(tmp_path)
    assert list(again.vec_ids) == [5, 6] and not again.scores("zebra").any() and again.scores("lion").all()


def test_a_question_reads_a_large_saved_index_memory_mapped_and_read_only_and_a_small_one_into_memory(
    index, tmp_path, monkeypatch
):
    """Module note: a question is scored straight from the saved arrays, memory-mapped when large (a
    large index is not read into memory for each process that answers); a small one is read, so a
    file truncated in place under a server cannot end it with SIGBUS (vectors.MAP_ABOVE_BYTES)."""
    from semsearch import vectors

    assert not any(isinstance(a, np.memmap) for a in (index.weights, index.rows, index.starts))
    LexicalIndex.build(["lion caches", "lion heads"], [5, 6], tmp_path)
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", 0)
    large = LexicalIndex.load(tmp_path)
    for array in (large.weights, large.rows, large.starts):
        assert isinstance(array, np.memmap) and not array.flags.writeable
    # The limit is a file's size: one of exactly that size is still read.
    from semsearch.lexical import LEXICAL_DIR

    parts = [tmp_path / LEXICAL_DIR / f"{part}.csc.index.npy" for part in ("data", "indices", "indptr")]
    monkeypatch.setattr(vectors, "MAP_ABOVE_BYTES", max(path.stat().st_size for path in parts))
    read = LexicalIndex.load(tmp_path)
    assert not any(isinstance(a, np.memmap) for a in (read.weights, read.rows, read.starts))


def test_a_paper_whose_text_has_ligatures_matches_the_words_they_spell(tmp_path):
    """Text taken from a PDF writes "efﬁcient" with the one character "ﬁ" (U+FB01): a question is
    read in compatibility form, so the paper must be too, or "efficient" never matched it (269 of
    the dev index's 1,855 papers hold such a character)."""
    from semsearch.lexical import tokenize

    assert tokenize("Efﬁcient ﬁne-tuning, ofﬂine") == tokenize("Efficient fine-tuning, offline")
    LexicalIndex.build(["COMPACTER: Efﬁcient Low-Rank Adapters", "Quantization of weights"], [7, 8], tmp_path)
    index = LexicalIndex.load(tmp_path)
    assert index.score_of(index.scores("efficient"), [7])[0] > 0
