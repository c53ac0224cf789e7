import json
import re

import bibtexparser
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.bibtex import citation_key, escape, to_bibtex
from semsearch.errors import SemsearchError
from semsearch.index import Index
from semsearch.ingest import Ingest
from semsearch.paper import Paper
from semsearch.related import RelatedFinder
from tests.conftest import examples
from tests.test_cli import run


def _papers():
    topics = {
        "cache": "key value cache eviction memory long context tokens",
        "draft": "speculative decoding draft model verify tokens",
        "prune": "pruning sparse weights heads structured",
        "quant": "quantization bits integer weights rounding",
    }
    papers = []
    for t, (name, words) in enumerate(topics.items()):
        for i in range(5):
            papers.append(
                Paper(
                    id=f"240{t}.0000{i}",
                    title=f"{name} study {i}",
                    abstract=f"{words} variant {i}",
                    published=f"202{t}-01-0{i + 1}",
                    year=2020 + t,
                )
            )
    return papers


@pytest.fixture
def finder(tmp_path, fake_model):
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(_papers())
    return RelatedFinder(Index.open(tmp_path))


def test_related_excludes_the_paper_and_finds_its_kind(finder):
    hits = finder.related_to("2401.00002", k=4)
    ids = [h.paper.id for h in hits]
    assert sorted(ids) == ["2401.00000", "2401.00001", "2401.00003", "2401.00004"]  # the other draft-model papers
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_version_and_url_forms_resolve_to_the_same_paper(finder):
    expected = [h.paper.id for h in finder.related_to("2401.00002", k=3)]
    assert len(expected) == 3 and all(i.startswith("2401.") and i != "2401.00002" for i in expected)
    for form in ("2401.00002v3", "arXiv:2401.00002", "https://arxiv.org/abs/2401.00002v1"):
        assert [h.paper.id for h in finder.related_to(form, k=3)] == expected


def test_duplicate_records_of_the_paper_are_left_out(tmp_path, fake_model):
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(_papers() + [Paper(id="other:copy", title="draft study 2", abstract="a copy under another id")])
    finder = RelatedFinder(Index.open(tmp_path))
    assert "other:copy" not in [h.paper.id for h in finder.related_to("2401.00002", k=10)]


def test_another_record_of_the_paper_under_a_garbled_or_run_on_title_is_left_out(tmp_path, fake_model):
    """A survey's entry (title only) and the PDF-read copy of the same paper ("LORA: L OW-RANK ...
    Edward Hu ...") came back as each other's first related paper (a researcher's pass: LoRA,
    Performers, PoSE, Compacter on the dev index). With `--diverse` too, and k still met."""
    from tests.conftest import survey_entry_and_its_pdf_copy

    survey, garbled = survey_entry_and_its_pdf_copy(published="2024-01-09")
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add([*_papers(), survey, garbled])
    finder = RelatedFinder(Index.open(tmp_path))
    for one, other in (("survey:draft-study-2", "2401.00009"), ("2401.00009", "survey:draft-study-2")):
        for diverse in (False, True):
            found = [h.paper.id for h in finder.related_to(one, k=6, diverse=diverse)]
            assert other not in found and len(found) == 6, (one, diverse, found)
    for liked in ("survey:draft-study-2", "2401.00009"):  # nor recommended as a paper one liked
        found = [h.paper.id for h in finder.recommend([liked], k=6)]
        assert not {"survey:draft-study-2", "2401.00009"} & set(found) and len(found) == 6, (liked, found)
    recent = finder.recommend(["2401.00001"], k=20, since="2000-01-01")  # the survey's record has no date:
    assert "2401.00009" in [h.paper.id for h in recent] and all(h.paper.published for h in recent)  # its copy


@pytest.mark.parametrize(
    "one, other, same",
    [
        ("LoRA: Low-Rank Adaptation of Large Language Models",
         "LORA: L OW-RANK ADAPTATION OF LARGE LANGUAGE MODELS Edward Hu Yelong Shen", True),
        ("Rethinking Attention with Performers", "RETHINKING ATTENTION WITH PERFORMERS Krzysztof Choromanski 1", True),
        ("PoSE: Efficient Context Window Extension", "POSE: E FFICIENT CONTEXT WINDOW EXTENSION", True),
        ("Zephyr", "ZEPH YR", True),  # the same letters: any length
        ("Attention Is All You Need", "Attention Is All You Need In Speech Separation", False),  # title words run on
        ("Efficient Large Language Models", "Efficient Large Language Models: A Survey", False),
        ("Large Language Models", "Large Language Models Jane Doe", False),  # too short to tell
        ("Speculative Decoding with Drafts", "Speculative Sampling with Drafts", False),
        ("Speculative Decoding with Drafts", "Speculative Decoding with Drafts", True),
        ("key value cache eviction variant 10", "key value cache eviction variant 100", False),  # mid-word
        ("Key Value Cache Eviction Variant", "KEY VALUE CACHE EVICTION VARIANTS Ada", False),
        ("Switch Transformers: Simple and Efficient Sparsity", "Switch Transformers: Simple and E cient Sparsity",
         True),  # a PDF dropped the ligature's letters
        ("???", "∑", False),  # no letter or digit: nothing to tell a paper by
        ("", "", False),
    ],
)  # fmt: skip
def test_two_titles_are_one_papers_when_only_spacing_or_names_run_on_tell_them_apart(one, other, same):
    from semsearch.paper import same_paper_titles

    assert same_paper_titles(one, other) is same and same_paper_titles(other, one) is same


def test_titles_held_answer_as_comparing_every_title_would():
    """`TitlesHeld` looks a title up by its letters, its beginnings and a sorted range, never
    comparing it with every title held: never a twin missed nor one found too many, whatever the
    spacing, case, names run on, ligatures lost or length, and never across two arXiv ids."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from semsearch.paper import TitlesHeld, normalize_title, same_paper_titles, title_letters
    from tests.conftest import examples

    words = st.sampled_from(
        ["lora", "low", "rank", "of", "the", "a", "b", "attention", "Edward", "Hu", "1,", "x", "efficient", "fi", "?"]
    )
    titles = st.lists(words, min_size=1, max_size=8).map(" ".join)
    names = st.lists(st.sampled_from(["Edward", "Hu", "1,", "x", "b", "fi"]), min_size=1, max_size=3).map(" ".join)
    ids = st.sampled_from([None, "2401.00001", "2401.00002"])

    def one_paper(held: tuple[str, str | None], paper: tuple[str, str | None]) -> bool:
        (one, one_id), (other, other_id) = held, paper
        if not title_letters(normalize_title(other)) or None not in (one_id, other_id) and one_id != other_id:
            return False
        return normalize_title(one) == normalize_title(other) or same_paper_titles(one, other)

    @settings(max_examples=examples(300), deadline=2000)
    @given(st.lists(st.tuples(titles, ids), min_size=1, max_size=8), st.data())
    def check(held, data):
        title = data.draw(st.sampled_from(held))[0]  # a held title as another source writes it, or another
        form = data.draw(st.sampled_from(["spaced", "run on", "shortened", "ligature lost", "other"]))
        if form == "spaced":
            at = data.draw(st.integers(0, len(title)))
            title = (title[:at] + " " + title[at:]).upper()
        elif form == "run on":
            title = f"{title} {data.draw(names)}"
        elif form == "shortened":
            title = " ".join(title.split()[: data.draw(st.integers(1, 8))])
        elif form == "ligature lost":
            title = title.replace("ffi", " ").replace("fi", "")
        else:
            title = data.draw(titles)
        paper = (title, data.draw(ids))
        assert (paper in TitlesHeld(held)) is any(one_paper(h, paper) for h in held)
        same_letters = any(title_letters(normalize_title(h)) == title_letters(normalize_title(title)) for h, _ in held)
        assert (paper in TitlesHeld(held, strict=True)) is (same_letters and any(one_paper(h, paper) for h in held))

    check()
    assert same_paper_titles("lora lora lora of", "lora lora lora of fi")  # letters word by word: not "ffi"
    for short, long in (("b x b x", "b x b x Edward"), ("LoRA low rank of", "LORA LOW RANK OF Edward Hu")):
        assert (long, None) in TitlesHeld([(short, None)]) and (short, None) in TitlesHeld([(long, None)])
    phi = TitlesHeld([("Textbooks Are All You Need", "2306.11644")])  # phi-1.5's title runs on from phi-1's
    assert ("Textbooks Are All You Need II: phi-1.5 technical report", "2309.05463") not in phi
    assert ("TEXTBOOKS ARE ALL YOU NEED Suriya Gunasekar", "2306.11644") in phi


def test_diverse_keeps_the_best_hit_and_changes_the_list(finder):
    plain = finder.related_to("2401.00002", k=6)
    diverse = finder.related_to("2401.00002", k=6, diverse=True)
    assert diverse[0].paper.id == plain[0].paper.id
    assert [h.paper.id for h in diverse] != [h.paper.id for h in plain]
    assert len({h.paper.id for h in diverse}) == 6


def test_recommend_follows_likes_and_avoids_dislikes(finder):
    hits = finder.recommend(["2403.00000", "2403.00001"], ["2402.00000"], k=3)
    ids = [h.paper.id for h in hits]
    assert sorted(ids) == ["2403.00002", "2403.00003", "2403.00004"]  # the liked kind, the liked ones left out


def test_recommend_since_keeps_recent_papers(finder):
    hits = finder.recommend(["2400.00000"], k=20, since="2022-01-01")
    assert hits and all(h.paper.published >= "2022-01-01" for h in hits)


def test_unknown_id_is_a_clear_error(finder):
    with pytest.raises(SemsearchError, match="no paper 'nope'"):
        finder.related_to("nope")
    with pytest.raises(SemsearchError, match="^give at least one --like ID$"):
        finder.recommend([])


def test_bibtex_parses_back_with_the_right_fields():
    papers = [
        Paper(
            id="2306.00978",
            title="AWQ: Activation-aware Weight Quantization & 100% {fun}_x",
            year=2023,
            authors=["Ji Lin", "Jiaming Tang"],
            arxiv_categories=["cs.CL", "cs.LG"],
        ),
        Paper(
            id="survey:gptq",
            title="GPTQ: Accurate Quantization",
            venue="ICLR",
            year=2023,
            url="https://openreview.net/forum?id=tcbBPnfwxS",
            authors=["Elias Frantar"],
        ),
        Paper(id="2210.17323", title="GPTQ again", venue="ICLR", year=2023, authors=["Élias Frantar"]),
    ]
    library = bibtexparser.parse_string(to_bibtex(papers))
    assert not library.failed_blocks
    first, second, third = library.entries
    assert (first.entry_type, first.key) == ("article", "lin2023awq")
    fields = {f.key: f.value for f in first.fields}
    assert fields["eprint"] == "2306.00978" and fields["archivePrefix"] == "arXiv" and fields["primaryClass"] == "cs.CL"
    assert fields["author"] == "Ji Lin and Jiaming Tang"
    assert r"\&" in fields["title"] and r"100\%" in fields["title"]
    assert r"\textbraceleft{}fun\textbraceright{}\_x" in fields["title"]  # braces BibTeX does not count as one
    assert second.entry_type == "inproceedings" and second.fields_dict["booktitle"].value == "ICLR"
    assert "eprint" not in second.fields_dict
    assert second.key == "frantar2023gptq" and third.key == "frantar2023gptqb"  # unique within the file
    assert third.fields_dict["eprint"].value == "2210.17323"


def test_citation_keys_are_stable_and_plain():
    paper = Paper(id="x", title="The Power of Scale for Prompt Tuning", year=2021, authors=["Brian Lester"])
    assert citation_key(paper) == citation_key(paper) == "lester2021power"
    assert citation_key(Paper(id="y", title="Ünïcode: a test", year=2020)) == "anon2020unicode"  # no authors
    assert escape("a_b & c") == r"a\_b \& c"


# --- CLI --------------------------------------------------------------------------------------
@pytest.fixture
def related_index(tmp_path, fake_model):
    with Ingest(index_dir=tmp_path / "idx", progress=False) as job:
        job.add(_papers())
    return tmp_path / "idx"


def test_related_json_and_batch(related_index, capsys, tmp_path):
    code, out, err = run(capsys, "related", "2401.00002", "--json", "-k", 3, "--index", related_index)
    answer = json.loads(out)
    assert code == 0, err
    assert answer["id"] == "2401.00002" and len(answer["results"]) == 3
    assert set(answer["results"][0]) == {"id", "title", "score", "year", "categories", "category_source", "url"}
    ids = tmp_path / "ids.txt"
    ids.write_text("2401.00002\n\n2403.00001\n")
    code, out, _ = run(capsys, "related", "--batch", ids, "-k", 2, "--index", related_index)
    assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == ["2401.00002", "2403.00001"]


def test_related_text_recommend_and_export(related_index, capsys):
    code, out, _ = run(
        capsys, "related", "--text", "draft model speculative tokens", "--json", "--index", related_index
    )
    assert code == 0 and json.loads(out)["results"][0]["id"].startswith("2401.")
    code, out, _ = run(
        capsys, "recommend", "--like", "2403.00000", "--format", "bibtex", "-k", 2, "--index", related_index
    )
    assert code == 0 and len(bibtexparser.parse_string(out).entries) == 2
    code, out, _ = run(capsys, "export", "2400.00001", "2403.00002", "--bibtex", "--index", related_index)
    assert code == 0 and [e.fields_dict["eprint"].value for e in bibtexparser.parse_string(out).entries] == [
        "2400.00001",
        "2403.00002",
    ]
    forms = ("2400.00001", "arXiv:2400.00001v2", "https://arxiv.org/abs/2400.00001")
    code, out, _ = run(capsys, "export", *forms, "--index", related_index)
    assert code == 0 and len(bibtexparser.parse_string(out).entries) == 1  # one paper, however it is named
    code, out, _ = run(capsys, "search", "quantization bits", "--format", "bibtex", "-k", 1, "--index", related_index)
    assert code == 0 and out.startswith("@article{")


def test_a_batch_as_bibtex_is_one_bibliography_each_paper_once_under_a_key_of_its_own(related_index, capsys, tmp_path):
    """An entry list per answer gave two papers one key, and one paper two entries."""
    questions = tmp_path / "questions.txt"
    questions.write_text("quantization bits\nquantization bits\ndraft model speculative tokens\n")
    code, out, _ = run(capsys, "search", "--batch", questions, "--format", "bibtex", "-k", 3, "--index", related_index)
    library = bibtexparser.parse_string(out)  # an entry whose key is taken is a failed block
    eprints = [e.fields_dict["eprint"].value for e in library.entries]
    assert code == 0 and not library.failed_blocks and out.count("\n@") + 1 == len(library.entries)
    assert len(eprints) == len(set(eprints)) >= 4
    ids = tmp_path / "ids.txt"
    ids.write_text("2401.00002\n2403.00001\n2401.00002\n")
    code, out, _ = run(capsys, "related", "--batch", ids, "--format", "bibtex", "-k", 3, "--index", related_index)
    library = bibtexparser.parse_string(out)
    eprints = [e.fields_dict["eprint"].value for e in library.entries]
    assert code == 0 and not library.failed_blocks and out.count("\n@") + 1 == len(eprints) == len(set(eprints))


@pytest.mark.parametrize(
    "args, message",
    [
        (["related", "nope"], "no paper 'nope'"),
        (["related"], "give one of"),
        (["related", "2401.00002", "--text", "x"], "give one of"),
        (["recommend"], "give at least one paper you liked: --like ID"),
        (["recommend", "--like", "missing"], "no paper 'missing'"),
        (["recommend", "--like", "2401.00001", "--dislike", "arXiv:2401.00001v2"], "liked and disliked at once"),
        (["export", "missing"], "no paper 'missing'"),
    ],
)
def test_related_bad_input(related_index, capsys, args, message):
    code, _, err = run(capsys, *args, "--index", related_index)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_bibtex_escapes_latex_specials_and_keeps_keys_unique_past_z():
    from semsearch.paper import Paper

    tricky = Paper(id="2401.00001", title=r"50% of $x^2$ & #1 ~ a\b_c {d}", authors=["A. Smith"], year=2024)
    entry = to_bibtex([tricky])
    for raw, escaped in [
        ("\\", r"\textbackslash{}"), ("~", r"\textasciitilde{}"), ("^", r"\textasciicircum{}"),
        ("$", r"\$"), ("#", r"\#"), ("%", r"\%"), ("&", r"\&"), ("_", r"\_"),
    ]:  # fmt: skip
        assert escaped in entry, raw
    library = bibtexparser.parse_string(entry)
    assert len(library.entries) == 1 and not library.failed_blocks

    same = [Paper(id=f"2401.{i:05d}", title="Caching", authors=["A. Smith"], year=2024) for i in range(30)]
    keys = [e.key for e in bibtexparser.parse_string(to_bibtex(same)).entries]
    assert len(set(keys)) == 30 and all(re.fullmatch(r"smith2024caching[a-z]*", k) for k in keys)


def test_an_author_named_with_the_word_and_stays_one_author():
    paper = Paper(id="2401.00001", title="T", authors=["Alice and Injected Author", "Bob AND Carol", "Sandra Anderson"])
    entry = bibtexparser.parse_string(to_bibtex([paper])).entries[0]
    assert entry.fields_dict["author"].value == "{Alice and Injected Author} and {Bob AND Carol} and Sandra Anderson"


def test_a_citation_has_the_title_without_the_authors_a_pdf_ran_on_after_it():
    paper = Paper(id="2401.00001", title="Fast Decoding of Small Models Ada Lovelace, Alan Turing, Grace Hopper")
    entry = bibtexparser.parse_string(to_bibtex([paper])).entries[0]
    assert entry.fields_dict["title"].value == "{Fast Decoding of Small Models}"


def test_an_author_named_with_more_than_one_comma_stays_one_name_every_parser_splits():
    """An author "Z, Y, X, W" made an entry bibtexparser could not split ("Too many commas");
    "Last, First" is BibTeX's own form of a name, left as it is (an attacker's pass)."""
    from bibtexparser.middlewares import SeparateCoAuthors, SplitNameParts

    paper = Paper(id="2401.00001", title="T", authors=["Z, Y, X, W", "Lovelace, Ada", "Alan Turing"])
    library = bibtexparser.parse_string(to_bibtex([paper]), append_middleware=[SeparateCoAuthors(), SplitNameParts()])
    assert not library.failed_blocks
    names = library.entries[0].fields_dict["author"].value
    assert [(n.last, n.first) for n in names] == [
        (["{Z, Y, X, W}"], []),
        (["Lovelace"], ["Ada"]),
        (["Turing"], ["Alan"]),
    ]


def test_no_field_of_a_record_can_end_its_bibtex_entry_early():
    """An attacker's pass closed a field from a record's category (`cs.CL},note={INJECTED`) and
    its URL (`.../}},@misc{pwn2,...`), and a lone `}` in a title closed the title (BibTeX counts
    escaped braces too). Whatever a paper holds, its entry's braces balance, only at its end."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from semsearch.paper import web_url
    from tests.conftest import examples

    hostile = st.text(alphabet=st.sampled_from('{}\\%@#,="a b'), max_size=30)
    url = hostile.map(lambda t: "https://evil.example/" + t.replace(" ", ""))

    @settings(max_examples=examples(300), deadline=2000)
    @given(hostile, st.lists(hostile, max_size=2), hostile, url, st.booleans())
    def check(title, authors, category, link, arxiv):
        paper = Paper(id="2401.00001" if arxiv else "custom-1", title=title or "t", authors=authors,
                      arxiv_categories=[category], url=link if web_url(link) else None)  # fmt: skip
        entry = to_bibtex([paper])
        depth = 0
        for position, character in enumerate(entry.rstrip()):
            depth += {"{": 1, "}": -1}.get(character, 0)
            assert depth > 0 or position == len(entry.rstrip()) - 1 or position < entry.index("{"), entry
        assert depth == 0, entry
        library = bibtexparser.parse_string(entry)
        assert len(library.entries) == 1 and not library.failed_blocks, entry

    check()


# --- readable scores: 0-1, falling down the list ----------------------------------------------------
def _falls_within_unit(hits) -> bool:
    scores = [h.score for h in hits]
    return bool(scores) and all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)


def test_related_scores_are_between_0_and_1_and_fall_also_when_diverse(survey_corpus_index):
    """A labelled paper's neighbours gain the category bonus (which once lifted SpQR to 1.03), and
    the diverse re-ranking once listed a lower score above a higher one."""
    from semsearch.related import CATEGORY_BONUS

    finder = RelatedFinder(Index.open(survey_corpus_index))
    for paper_id in ("2306.00978", "2309.17453", "2302.00003"):
        plain = finder.related_to(paper_id, k=20)
        diverse = finder.related_to(paper_id, k=20, diverse=True)
        assert _falls_within_unit(plain) and _falls_within_unit(diverse), paper_id
    assert CATEGORY_BONUS > 0  # the bonus the scale accounts for is in force


def test_recommend_scores_are_cosines_between_0_and_1_and_fall(finder):
    """The SVM's weight vector is not unit length: its raw dot products were any size."""
    hits = finder.recommend(["2403.00000", "2403.00001"], ["2402.00000"], k=10)
    assert _falls_within_unit(hits)
    assert _falls_within_unit(finder.recommend(["2400.00000"], k=5))


def test_the_diverse_score_is_relevance_and_novelty_at_pick(finder):
    """The first pick has nothing above it (novelty 1); a later pick that repeats an earlier one
    scores below its plain relevance."""
    from semsearch.related import MMR_TRADE_OFF

    plain = {h.paper.id: h.score for h in finder.related_to("2401.00002", k=19)}
    diverse = finder.related_to("2401.00002", k=6, diverse=True)
    first = diverse[0]
    assert first.score == pytest.approx(MMR_TRADE_OFF * plain[first.paper.id] + 1 - MMR_TRADE_OFF)
    assert any(h.score < plain[h.paper.id] for h in diverse[1:])


# --- BibTeX keys: one rule ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "paper, key",
    [
        (Paper(id="1", title="GPTQ: Accurate Post-Training Quantization", year=2023, authors=["Elias Frantar"]),
         "frantar2023gptq"),
        (Paper(id="2", title="GPTQ: Accurate Post-Training Quantization", year=2023), "anon2023gptq"),
        (Paper(id="3", title="The Power of Scale", authors=["Brian Lester"]), "lesterpower"),
        (Paper(id="4", title="On the of", year=2021, authors=["Zoë Ñúñez"]), "nunez2021paper"),
        # A word that begins with a digit ran into the year: hopper20264 read as the year 20264.
        (Paper(id="5", title="4-bit Weight Quantization", year=2026, authors=["Grace Hopper"]), "hopper2026bit"),
        (Paper(id="6", title="70B on one GPU", year=2024), "anon2024one"),
        # Letters Unicode does not decompose lost themselves: Łukasiewicz was "ukasiewicz", Nørgaard
        # "nrgaard", Strauß "strau", Łódź "odz" (a week of use: a Polish author's key misspelt).
        (Paper(id="7", title="Łódź: Pruning", year=2026, authors=["Jan Łukasiewicz"]), "lukasiewicz2026lodz"),
        (Paper(id="8", title="Æther", year=2025, authors=["Mette Nørgaard"]), "norgaard2025aether"),
        (Paper(id="9", title="Œuvre of Þorn", year=2025, authors=["Johann Strauß"]), "strauss2025oeuvre"),
    ],
    ids=["surname-year-word", "no-authors-is-anon", "no-year-left-out", "no-significant-word", "digits-after-year",
         "a-word-of-digits-and-letters", "polish-l", "danish-o-and-ae", "german-sharp-s"],
)  # fmt: skip
def test_one_citation_key_rule(paper, key):
    assert citation_key(paper) == key


@settings(max_examples=examples(200), deadline=None)
@given(
    title=st.text(max_size=80),
    authors=st.lists(st.text(max_size=30), max_size=3),
    year=st.one_of(st.none(), st.integers(1900, 2100)),
)
def test_every_key_is_surname_year_word_in_plain_ascii(title, authors, year):
    key = citation_key(Paper(id="x", title=title, authors=authors, year=year))
    assert re.fullmatch(r"[a-z0-9]+", key) and key[0].isalpha()
    assert str(year or "") in key
    assert re.fullmatch(r"[a-z]+" + str(year or "") + r"[a-z][a-z0-9]*", key)  # the year is followed by a letter


# --- export: ids=a,b and repeated ids=, at both doors --------------------------------------------------
@settings(max_examples=examples(100), deadline=None)
@given(st.lists(st.lists(st.text("abcxyz0189.:/-", min_size=1, max_size=12), min_size=1, max_size=3), max_size=4))
def test_ids_split_on_commas_and_repetition_keep_their_order(groups):
    from semsearch.bibtex import split_ids

    assert split_ids([",".join(g) for g in groups]) == [i for g in groups for i in g]
    assert split_ids(None) is None


def test_export_takes_comma_separated_and_repeated_ids(survey_corpus_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    client = TestClient(create_app(index_dir=survey_corpus_index, reload_seconds=None))
    for query in ("ids=2306.00978,2309.17453", "ids=2306.00978&ids=2309.17453", "ids=2306.00978,&ids=2309.17453"):
        answer = client.get(f"/api/export?{query}")
        assert answer.status_code == 200, (query, answer.text)
        assert [e.fields_dict["eprint"].value for e in bibtexparser.parse_string(answer.text).entries] == [
            "2306.00978",
            "2309.17453",
        ]
    missing = client.get("/api/export?ids=2306.00978,nope")
    assert missing.status_code == 404 and missing.json() == {"error": "no paper 'nope' in the index"}
    assert client.get("/api/export").status_code == 422 and "ids" in client.get("/api/export").json()["error"]
    assert client.get("/api/export?ids=,").json()["error"].startswith("ids: ")


def test_export_on_the_command_line_takes_commas_too(related_index, capsys):
    code, out, err = run(capsys, "export", "2400.00001,2403.00002", "2401.00000", "--index", related_index)
    assert code == 0, err
    assert [e.fields_dict["eprint"].value for e in bibtexparser.parse_string(out).entries] == [
        "2400.00001",
        "2403.00002",
        "2401.00000",
    ]


# --- related --batch: all ids checked first, every unknown one named -----------------------------------
def test_related_batch_names_every_unknown_id_and_prints_nothing(related_index, capsys, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("2401.00002\nnope-1\n2403.00001\nnope-2\n")
    code, out, err = run(capsys, "related", "--batch", ids, "-k", 2, "--index", related_index)
    assert code == 2 and out == ""
    assert "2 of 4 ids are not in the index: 'nope-1', 'nope-2'; nothing printed" in err
    assert len(err.strip().splitlines()) == 1


def test_a_nodes_papers_come_closest_to_the_node_first_with_scores_0_to_1(survey_corpus_index):
    """Listed under a node, papers were in the store's order with a score of 1 each."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    client = TestClient(create_app(index_dir=survey_corpus_index, reload_seconds=None))
    results = client.get("/api/papers?category=Quantization&limit=100&details=true").json()["results"]
    scores = [r["score"] for r in results]
    assert len(results) > 10 and all(0 <= s <= 1 for s in scores) and scores == sorted(scores, reverse=True)
    assert len(set(scores)) > 1 and all("published" in r for r in results)


# --- related work for a text that is not in the index ------------------------------------------------
def test_a_text_is_related_like_a_paper_ten_at_a_time_without_itself(finder):
    """`related --text` / `--arxiv`: ten by default and not diverse; a record with the same title, or
    the paper's own id, is the paper itself and is left out."""
    title, abstract = "draft study 2", "speculative decoding draft model verify tokens"
    default = finder.related_to_text(title, abstract)
    assert [h.paper.id for h in default] == [h.paper.id for h in finder.related_to_text(title, abstract, k=10)]
    assert len(default) == 10 and "2401.00002" not in [h.paper.id for h in default]  # same title
    assert {h.paper.id for h in default[:4]} == {"2401.00000", "2401.00001", "2401.00003", "2401.00004"}
    renamed = finder.related_to_text("a preprint of draft study 2", abstract, k=19, paper_id="2401.00002")
    assert "2401.00002" not in [h.paper.id for h in renamed] and len(renamed) == 19  # its own id
    diverse = finder.related_to_text(title, abstract, k=6, diverse=True)
    assert diverse[0].paper.id == default[0].paper.id
    assert [h.paper.id for h in diverse] != [h.paper.id for h in default[:6]]


def _without_the_classifier(finder: RelatedFinder, title: str, abstract: str) -> list[tuple[str, float]]:
    classifier, finder.searcher.classifier = finder.searcher.classifier, None
    try:
        return [(h.paper.id, h.score) for h in finder.related_to_text(title, abstract, k=5)]
    finally:
        finder.searcher.classifier = classifier


def test_a_text_in_scope_lifts_the_papers_of_the_leaf_it_is_placed_in(survey_corpus_index):
    from semsearch.paper import embedding_text

    finder = RelatedFinder(Index.open(survey_corpus_index))
    title = "Speculative decoding with a small draft model"  # the corpus's paper: left out by its title
    abstract = "A small draft model proposes several tokens that the large target model verifies in parallel."
    placed = finder.searcher.classifier.classify(
        [embedding_text(title, abstract)], finder.searcher.embed_query(embedding_text(title, abstract))
    )[0]
    assert placed.in_scope and placed.suggestions[0].category.endswith("/Speculative Decoding")
    hits = finder.related_to_text(title, abstract, k=5)
    assert "2302.00003" not in [h.paper.id for h in hits]
    leaf = placed.suggestions[0].category
    with_bonus = sum(leaf in h.categories for h in hits)
    plain = _without_the_classifier(finder, title, abstract)
    filed = {h.paper.id: h.categories for h in finder.searcher.hits([(finder.store.find(i), s) for i, s in plain])}
    assert with_bonus >= 4 and with_bonus > sum(leaf in filed[i] for i, _ in plain)
    assert all(0.0 <= h.score <= 1.0 for h in hits)


def test_a_text_out_of_scope_is_related_by_its_words_alone(survey_corpus_index):
    from semsearch.paper import embedding_text

    finder = RelatedFinder(Index.open(survey_corpus_index))
    title, abstract = "Photographs of birds", "Birds sing in the garden at dawn; photographs of feathers and nests."
    text = embedding_text(title, abstract)
    assert not finder.searcher.classifier.classify([text], finder.searcher.embed_query(text))[0].in_scope
    hits = [(h.paper.id, h.score) for h in finder.related_to_text(title, abstract, k=5)]
    assert hits == _without_the_classifier(finder, title, abstract)  # no leaf, no bonus, cosine as it is


def test_the_first_diverse_pick_is_fully_novel_whatever_its_relevance(finder):
    """Module note: a pick shows MMR_TRADE_OFF × its score + (1 − MMR_TRADE_OFF) × its novelty, and
    the first has nothing above it. (With a near-duplicate on top, relevance 1, any such rule
    gives 1: this text's best match is a loose one.)"""
    from semsearch.related import MMR_TRADE_OFF

    plain = finder.related_to_text("draft tokens", "speculative decoding memory", k=6)
    diverse = finder.related_to_text("draft tokens", "speculative decoding memory", k=6, diverse=True)
    assert plain[0].score < 0.8 and diverse[0].paper.id == plain[0].paper.id
    assert diverse[0].score == pytest.approx(MMR_TRADE_OFF * plain[0].score + 1 - MMR_TRADE_OFF)
    assert [h.score for h in diverse] == sorted((h.score for h in diverse), reverse=True)


def test_recommendations_come_ten_at_a_time_and_need_a_liked_paper(finder):
    assert len(finder.recommend(["2403.00000"])) == 10
    with pytest.raises(SemsearchError, match="^give at least one --like ID$"):
        finder.recommend([], ["2403.00000"])


def test_a_paper_named_twice_is_liked_or_disliked_once(finder):
    """A paper named twice (`2403.00000` and `arXiv:2403.00000v2`; the CLI, the API and MCP take
    both) counted twice: the list leaned towards it, different from liking it once."""

    def shown(likes, dislikes):
        return [(h.paper.id, h.score) for h in finder.recommend(likes, dislikes, k=10)]

    once = shown(["2403.00000", "2401.00001"], ["2402.00000"])
    twice = shown(["2403.00000", "arXiv:2403.00000v2", "2401.00001", "2403.00000"], ["2402.00000", "2402.00000v1"])
    assert twice == once


def test_liking_every_paper_leaves_nothing_to_recommend(tmp_path, fake_model):
    """No other paper to set against the liked ones: the query is their centroid, and it finds
    only them, which are left out."""
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(_papers()[:3])
    finder = RelatedFinder(Index.open(tmp_path))
    assert finder.recommend([p.id for p in _papers()[:3]]) == []
    assert {h.paper.id for h in finder.recommend(["2400.00000"], k=2)} == {"2400.00001", "2400.00002"}


def _recommend_along(finder: RelatedFinder, monkeypatch, weights: np.ndarray) -> tuple[list, dict]:
    """Liking two quantization papers and disliking a pruning one, with the SVM's weight vector given
    (of a length of its own, as the SVM's margin makes it); `seen` keeps what it was asked to separate."""
    import semsearch.related

    seen: dict = {}

    def fixed_separator(features, labels, sample_weight):
        seen.update(features=features, labels=labels, sample_weight=sample_weight)
        return weights

    monkeypatch.setattr(semsearch.related, "separating_direction", fixed_separator)
    return finder.recommend(["2403.00000", "2403.00001"], ["2402.00000"], k=17), seen


def test_a_recommendation_scores_its_cosine_to_the_direction_and_the_likes_less_the_dislikes(finder, monkeypatch):
    """Module note: a recommendation shows its cosine to the query, the separating direction and
    Rocchio's feedback (the liked papers' centroid less 0.2 of the disliked ones'), each of length 1,
    summed (whatever the length of the SVM's weight vector); a paper on the other side shows 0."""
    vector = {i: finder.store.embedding(finder.store.find(i)) for i in ("2403.00002", "2403.00003", "2401.00002")}
    liked = np.mean([finder.store.embedding(finder.store.find(i)) for i in ("2403.00000", "2403.00001")], axis=0)
    disliked = finder.store.embedding(finder.store.find("2402.00000"))
    centroid = liked / np.linalg.norm(liked) - 0.2 * disliked / np.linalg.norm(disliked)
    centroid /= np.linalg.norm(centroid)
    for length in (0.5, 7.0):
        hits, _ = _recommend_along(finder, monkeypatch, length * vector["2403.00002"])
        query = (vector["2403.00002"] + centroid) / np.linalg.norm(vector["2403.00002"] + centroid)
        scores = {h.paper.id: h.score for h in hits}
        for paper in ("2403.00002", "2403.00003", "2401.00002"):
            assert scores[paper] == pytest.approx(max(0.0, float(query @ vector[paper])), abs=1e-6)
        assert len(hits) == 17 and all(0.0 <= s <= 1.0 for s in scores.values())
    hits, _ = _recommend_along(finder, monkeypatch, -3.0 * vector["2401.00002"])
    assert {h.paper.id: h.score for h in hits}["2401.00002"] == 0.0  # its cosine is negative


def test_the_separator_learns_the_likes_against_the_rest_and_a_dislike_weighs_more_than_silence(finder, monkeypatch):
    _, seen = _recommend_along(finder, monkeypatch, np.ones(64, np.float32))
    row = {
        i: next(n for n, v in enumerate(seen["features"]) if np.array_equal(v, finder.store.embedding(vec_id)))
        for i in ("2403.00000", "2403.00001", "2402.00000")
        for vec_id in [finder.store.find(i)]
    }
    assert len(seen["features"]) == 20  # every paper: the liked, the disliked and all the others
    assert {n for n, label in enumerate(seen["labels"]) if label == 1} == {row["2403.00000"], row["2403.00001"]}
    weights = np.asarray(seen["sample_weight"])
    assert {n for n, w in enumerate(weights) if w > 1.0} == {row["2402.00000"]}
    assert set(np.delete(weights, row["2402.00000"])) == {1.0}


def _svm_problem(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A few liked unit vectors near one direction, the rest anywhere, one disliked weighing 5."""
    rng = np.random.default_rng(seed)
    liked = 1.5 * rng.normal(size=16) + rng.normal(size=(3, 16))
    rest = rng.normal(size=(40, 16))
    features = np.vstack([liked, rest])
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    weights = np.ones(len(features))
    weights[3] = 5.0
    return features, np.array([1] * 3 + [0] * 40), weights


def _badly_scaled_svm_problem() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Long vectors, uneven weights, classes that overlap: a full Newton step overshoots here (six
    times on the way), so only a solver that steps back where it must ends at the optimum."""
    rng = np.random.default_rng(32)
    n_liked, n_rest, dimension = int(rng.integers(1, 4)), int(rng.integers(5, 30)), int(rng.integers(2, 6))
    features = np.vstack([rng.normal(size=(n_liked, dimension)) + 1.0, rng.normal(size=(n_rest, dimension))])
    features *= rng.uniform(1, 30)
    return features, np.array([1] * n_liked + [0] * n_rest), rng.uniform(0.5, 5, size=len(features))


def _linear_svc_objective(w: np.ndarray, b: float, features, labels, weights) -> float:
    """LinearSVC(C=0.1, class_weight="balanced")'s problem as scikit-learn (1.9) states it: 1/2 (|w|^2 +
    b^2) + C sum of class weight x sample weight x squared hinge, the class weight balancing the two
    classes' total sample weights (all weight / (2 x the class's weight))."""
    y = np.where(labels == 1, 1.0, -1.0)
    balanced = {1.0: weights.sum() / (2 * weights[y > 0].sum()), -1.0: weights.sum() / (2 * weights[y < 0].sum())}
    cost = 0.1 * np.array([balanced[v] for v in y]) * weights
    hinge = np.maximum(0.0, 1.0 - y * (features @ w + b))
    return 0.5 * (w @ w + b * b) + float(cost @ hinge**2)


@pytest.mark.parametrize("problem", ["unit vectors 0", "unit vectors 1", "badly scaled"])
def test_the_separating_direction_is_the_linear_svms_optimum(problem):
    """No step away from the answer lowers the SVM's objective (with the best bias for it): the problem
    is strictly convex, so this is scikit-learn's answer, without scikit-learn."""
    from semsearch.related import separating_direction

    features, labels, weights = (
        _badly_scaled_svm_problem() if problem == "badly scaled" else _svm_problem(int(problem[-1]))
    )
    w = separating_direction(features, labels, weights)
    assert w.shape == (features.shape[1],)

    def objective(w, b):
        return _linear_svc_objective(w, b, features, labels, weights)

    low, high = -100.0, 100.0  # the best bias for w: the objective is convex in it
    for _ in range(200):
        left, right = low + (high - low) / 3, high - (high - low) / 3
        low, high = (low, right) if objective(w, left) < objective(w, right) else (left, high)
    bias = (low + high) / 2
    best = objective(w, bias)
    rng = np.random.default_rng(0)
    for _ in range(200):
        step = 1e-3 * rng.normal(size=len(w) + 1)
        assert objective(w + step[:-1], bias + step[-1]) > best * (1 - 1e-12)
    if problem != "badly scaled":
        liked_side = features @ w
        assert liked_side[:3].min() > liked_side[4:].max()  # the liked come first along it


def test_papers_that_cannot_be_told_apart_give_no_direction_rather_than_nan():
    """Liked and other papers all the same vector: nothing separates them, the direction is zero (and
    recommend's scores fall to 0), never a NaN from a step of zero length."""
    from semsearch.related import separating_direction

    features = np.tile(np.eye(1, 8), (6, 1))
    w = separating_direction(features, np.array([1, 1, 0, 0, 0, 0]), np.array([1.0, 1.0, 5.0, 1.0, 1.0, 1.0]))
    assert np.isfinite(w).all() and np.allclose(w, 0.0)


@pytest.mark.slow
def test_the_separating_direction_is_scikit_learns_linear_svc():
    from sklearn.svm import LinearSVC

    from semsearch.related import separating_direction

    for features, labels, weights in [*map(_svm_problem, range(5)), _badly_scaled_svm_problem()]:
        svm = LinearSVC(C=0.1, class_weight="balanced", tol=1e-10, max_iter=100_000).fit(features, labels, weights)
        ours = separating_direction(features, labels, weights)
        assert ours == pytest.approx(svm.coef_[0], abs=1e-5)


def test_a_paper_opposite_to_the_picks_is_no_more_novel_than_an_unrelated_one():
    """--diverse: novelty is 1 minus the cosine to the closest pick, at most 1. A is picked first;
    B is unrelated to A (cosine 0), C points away from it (cosine -0.6) and is a little less
    relevant, so B comes next, worth 0.7 × 0.8 + 0.3 = 0.86. C, close to B (0.8), comes last:
    0.7 × 0.75 + 0.3 × 0.2 = 0.585. (Counted as more novel than unrelated, C would come second.)"""
    from types import SimpleNamespace

    from semsearch.search import Hit

    vectors = {1: np.array([1.0, 0.0]), 2: np.array([0.0, 1.0]), 3: np.array([-0.6, 0.8])}
    store = SimpleNamespace(embeddings_for=lambda ids: {v: vectors[v].astype(np.float32) for v in ids})
    finder = RelatedFinder.__new__(RelatedFinder)
    finder.index = SimpleNamespace(store=store)
    hits = [
        Hit(Paper(id=name, title=name), score, vec_id=v)
        for v, name, score in [(1, "A", 0.9), (2, "B", 0.8), (3, "C", 0.75)]
    ]
    picked = finder._diversify(hits, 3)
    assert [(h.paper.id, round(h.score, 6)) for h in picked] == [("A", 0.93), ("B", 0.86), ("C", 0.585)]


def test_without_categories_a_related_paper_shows_its_plain_cosine_ten_by_default(finder):
    """No paper here has a category: no bonus, and nothing to scale for one."""
    store = finder.store
    paper = store.embedding(store.find("2401.00002"))
    hits = finder.related_to("2401.00002")
    assert len(hits) == 10
    assert [h.score for h in hits] == pytest.approx([float(paper @ store.embedding(h.vec_id)) for h in hits])
    assert [h.paper.id for h in finder.related_to("2401.00002", k=1)] == [hits[0].paper.id]
    for k, said in ((0, "at least 1"), (101, "at most 100")):  # recommend(k=0) answered [], more was fewer
        with pytest.raises(SemsearchError, match=f"^k must be {said}$"):
            finder.related_to("2401.00002", k=k)
        with pytest.raises(SemsearchError, match=f"^k must be {said}$"):
            finder.recommend(["2401.00002"], k=k)


def test_related_scores_share_one_scale_on_which_a_copy_in_the_leaf_shows_1(tmp_path, fake_model):
    """Module note: shown, a score is (cosine + bonus) / (1 + CATEGORY_BONUS), at most 1 (a near
    copy in the same leaf, its cosine plus the bonus over 1, once showed 1.03). Without reading the
    bonus: a paper of another leaf shows its cosine divided by the scale, which gives the scale;
    on it, a copy in the paper's leaf (cosine 1, full bonus) shows 1, and another paper of the
    leaf its cosine plus the rest of the scale."""
    leaf = "Model-Centric Methods/Model Compression/Quantization/Post-Training Quantization/Weight-Only Quantization"
    other = "Model-Centric Methods/Efficient Inference/Speculative Decoding"
    papers = [
        Paper(
            id="2401.00001", title="alpha quantization", abstract="weights four bits rounding", survey_categories=[leaf]
        ),
        Paper(
            id="2401.00002", title="quantization alpha", abstract="rounding bits four weights", survey_categories=[leaf]
        ),
        Paper(
            id="2401.00003",
            title="beta quantization",
            abstract="weights eight bits calibration",
            survey_categories=[leaf],
        ),
        Paper(id="2401.00004", title="draft alpha", abstract="weights draft tokens verify", survey_categories=[other]),
    ]
    with Ingest(index_dir=tmp_path / "idx", progress=False) as job:
        job.add(papers)
    index = Index.open(tmp_path / "idx")
    vector = {p.id: index.store.embedding(index.store.find(p.id)) for p in papers}
    shown = {h.paper.id: h.score for h in RelatedFinder(index).related_to("2401.00001", k=3)}
    cosine = {i: float(vector["2401.00001"] @ vector[i]) for i in shown}
    assert cosine["2401.00002"] == pytest.approx(1.0) and 0.1 < cosine["2401.00004"] < cosine["2401.00003"] < 0.9
    scale = cosine["2401.00004"] / shown["2401.00004"]
    assert scale > 1.0 and shown["2401.00002"] == pytest.approx(1.0)
    assert shown["2401.00003"] == pytest.approx((cosine["2401.00003"] + scale - 1.0) / scale)


def test_recommendations_from_a_sample_of_the_other_papers_are_the_same_every_time(finder, monkeypatch):
    """In a big index the SVM sets the liked papers against a sample of the others: a fixed one, so
    that the same likes give the same list (here the sample is made small to be a sample at all)."""
    import semsearch.related

    monkeypatch.setattr(semsearch.related, "BACKGROUND", 4)
    lists = [finder.recommend(["2403.00000"], k=8) for _ in range(3)]
    assert len(lists[0]) == 8 and all([h.paper.id for h in hits] == [h.paper.id for h in lists[0]] for hits in lists)
    assert all([h.score for h in hits] == [h.score for h in lists[0]] for hits in lists)  # to the last digit


def test_a_shown_score_is_clipped_to_0_1():
    """A cosine may be slightly negative, or over 1 by rounding."""
    from semsearch.related import readable

    assert (readable(-0.2), readable(0.4), readable(1.0000001), readable(1.3)) == (0.0, 0.4, 1.0, 1.0)


def test_related_work_for_a_text_reads_it_with_the_embedder_given(finder):
    """The caller's embedder (the service's, already loaded), not the default model loaded again."""
    # Near that paper, not on it: a text on it would be the paper's own, left out (SAME_TEXT).
    along = finder.store.embedding(finder.store.find("2403.00002")) + 0.3 * finder.store.embedding(
        finder.store.find("2400.00000")
    )
    along /= np.linalg.norm(along)

    class Fixed:
        model_name = "fixed"

        def encode(self, texts, **_):
            return along[None, :]

    hits = RelatedFinder(finder.index, Fixed()).related_to_text("draft study 9", "speculative decoding", k=1)
    assert [h.paper.id for h in hits] == ["2403.00002"]  # where the embedder points, not what the words say


def test_a_paper_is_found_by_its_methods_name_when_one_paper_has_it(survey_corpus_index, capsys):
    """Many survey papers have no arXiv id offline, and their ids are long slugs: a name will do."""
    from semsearch.cli import main

    finder = RelatedFinder(Index.open(survey_corpus_index))
    gptq = finder.resolve("GPTQ")
    assert finder.store.papers_by_vec_id([gptq])[gptq].title.startswith("GPTQ:")
    assert finder.resolve("gptq") == gptq  # all the "id" says: a name in any case
    with pytest.raises(SemsearchError, match="no paper 'quantization of weights'"):
        finder.resolve("quantization of weights")  # words, not a name
    assert main(["related", "GPTQ", "--json", "-k", "3", "--index", str(survey_corpus_index)]) == 0
    assert gptq not in [finder.store.find(h["id"]) for h in json.loads(capsys.readouterr().out)["results"]]
    assert main(["related", "nope", "--index", str(survey_corpus_index)]) == 2
    err = capsys.readouterr().err
    assert err == "error: no paper 'nope' in the index (give an id `search` shows, or a method's name such as GPTQ)\n"


def test_the_answer_names_the_paper_by_its_own_id_however_it_was_asked_for(survey_corpus_index, capsys, tmp_path):
    """`related arXiv:2306.00978v2` and `related GPTQ` answer for the paper's id, not the words typed
    (an answer echoed "GPTQ", and `--batch` refused the names a single call takes)."""
    from semsearch.cli import main
    from semsearch.service import Service

    gptq = RelatedFinder(Index.open(survey_corpus_index)).paper_id("GPTQ")
    assert main(["related", "GPTQ", "--json", "-k", "2", "--index", str(survey_corpus_index)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == gptq
    ids = tmp_path / "ids.txt"
    ids.write_text("gptq\n")
    assert main(["related", "--batch", str(ids), "-k", "2", "--index", str(survey_corpus_index)]) == 0
    assert json.loads(capsys.readouterr().out)["id"] == gptq
    assert Service(index_dir=survey_corpus_index).related("GPTQ", k=2)["id"] == gptq  # the HTTP API's and MCP's answer


def test_a_name_several_papers_carry_is_refused_with_their_ids(tmp_path, fake_model, capsys):
    twins = [
        Paper(id="2401.00001", title="Twin: Fast Decoding", abstract="speculative decoding draft"),
        Paper(id="2401.00002", title="Twin: Small Caches", abstract="key value cache eviction"),
    ]
    with Ingest(index_dir=tmp_path, progress=False) as job:
        job.add(twins)
    with pytest.raises(SemsearchError, match=r"'Twin' names 2 papers in the index \(2401.0000[12], 2401.0000[12]\)"):
        RelatedFinder(Index.open(tmp_path)).resolve("Twin")
    code, _, err = run(capsys, "related", "Twin", "--index", tmp_path)
    assert code == 2 and err.startswith("error: 'Twin' names 2 papers") and err.endswith("give one of their ids\n")


def test_a_pasted_title_and_abstract_of_an_indexed_paper_leave_that_paper_out(finder):
    """`related --text "<title>. <abstract>"` gave the paper itself first (16 of 16 runs); distinct
    papers of the dev index never come closer than a cosine of 0.94 (SAME_TEXT is 0.99)."""
    from semsearch.related import SAME_TEXT

    paper = finder.store.get("2401.00002")
    hits = finder.related_to_text(paper.embedding_text(), "", k=4)
    assert "2401.00002" not in [h.paper.id for h in hits] and len(hits) == 4
    assert 0.95 < SAME_TEXT < 1.0


def test_a_papers_text_is_not_held_to_a_questions_length(survey_corpus_index, cli):
    """`related --arxiv ID` and `--text` embedded the paper as a question, and refused any abstract
    past 2,000 characters (77 of the 1,537 papers of the dev corpus): "the question is longer"."""
    long_abstract = "We quantize the weights of large language models to four bits after training. " * 40
    assert len(long_abstract) > 3000
    done = cli("related", "--text", "Four-bit weights. " + long_abstract, "--json", "-k", "2",
               "--index", survey_corpus_index, check=True)  # fmt: skip
    assert len(json.loads(done.stdout)["results"]) == 2
    too_long = cli("related", "--text", "x " * 11_000, "--index", survey_corpus_index)
    assert (too_long.returncode, too_long.stdout) == (2, "")
    assert too_long.stderr == "error: text: String should have at most 21000 characters\n"  # as every limit says


def test_an_author_named_with_exactly_two_commas_is_braced_as_one_name():
    """The rule is "more than one comma": two already is braced (written as given), not read as
    BibTeX's "Last, Jr, First"."""
    paper = Paper(id="2401.00001", title="T", authors=["Z, Y, X", "Lovelace, Ada"])
    entry = bibtexparser.parse_string(to_bibtex([paper])).entries[0]
    assert entry.fields_dict["author"].value == "{Z, Y, X} and Lovelace, Ada"


def test_recommend_since_reads_an_undated_papers_day_from_its_arxiv_id(tmp_path, cli):
    """A record with no date (an offline survey's, a JSON Lines line without versions) counted by
    its year: `--since 2024-06-01` recommended 2402.00002, which arXiv numbered in February 2024,
    while `taxonomy propose --since` left it out by the month its id names. One rule now for both."""
    words = "key value cache eviction memory long context tokens"
    rows = [
        {"id": "2401.00001", "title": "Liked cache study", "abstract": words},
        {"id": "2402.00002", "title": "February cache study", "abstract": words + " february"},
        {"id": "2406.00003", "title": "June cache study", "abstract": words + " june"},
        {"id": "2412.00004v2", "title": "December cache study", "abstract": words + " december"},
        {"id": "notes-1", "title": "My own notes on caches", "abstract": words, "update_date": "2024-03-01"},
        {"id": "notes-2", "title": "Other notes on caches", "abstract": words, "update_date": "2024-07-01"},
    ]
    source = tmp_path / "undated.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    index = tmp_path / "idx"
    cli("ingest", "jsonl", source, "--index", index, "--no-progress", check=True)
    found = cli("recommend", "--like", "2401.00001", "--since", "2024-06-01", "--index", index, "--json", check=True)
    assert sorted(hit["id"] for hit in json.loads(found.stdout)["results"]) == ["2406.00003", "2412.00004", "notes-2"]


# --- options as a user runs them (conftest's `cli`: a process of its own in the full suite) ------------
def test_related_diverse_taxonomy_and_format_as_a_user_runs_them(cli, survey_only_index):
    def ids(*args) -> list[str]:
        done = cli("related", "2306.00978", "-k", "3", *args, "--index", survey_only_index, check=True)
        return [hit["id"] for hit in json.loads(done.stdout)["results"]]

    plain, diverse = ids("--format", "json"), ids("--diverse", "--json")
    assert len(diverse) == 3 and "2306.00978" not in diverse and diverse[0] == plain[0]  # the nearest stays first
    assert ids("--taxonomy", "survey", "--json") == plain
    refused = cli("related", "2306.00978", "--taxonomy", "nope", "--index", survey_only_index)
    assert (refused.returncode, refused.stderr) == (
        2,
        "error: no taxonomy 'nope' in the index (see `semsearch taxonomy list`)\n",
    )
    cited = cli("related", "2306.00978", "-k", "1", "--format", "bibtex", "--index", survey_only_index, check=True)
    assert cited.stdout.startswith("@") and cited.stdout.count("@") == 1


def test_recommend_dislike_k_and_format_and_export_bibtex_as_a_user_runs_them(cli, survey_only_index):
    likes = ("--like", "2306.00978", "--dislike", "2306.02272")
    found = json.loads(cli("recommend", *likes, "-k", "2", "--format", "json", "--index", survey_only_index,
                           check=True).stdout)  # fmt: skip
    assert found["dislikes"] == ["2306.02272"] and len(found["results"]) == 2
    assert {"2306.00978", "2306.02272"}.isdisjoint(hit["id"] for hit in found["results"])
    cited = cli("recommend", *likes, "-k", "2", "--format", "bibtex", "--index", survey_only_index, check=True)
    assert cited.stdout.count("@") == 2
    exported = cli("export", "2306.00978,2306.02272", "--bibtex", "--index", survey_only_index, check=True)
    assert exported.stdout.count("@") == 2 and "arXiv:2306.00978" in exported.stdout


def test_eval_related_k_is_the_depth_judged(cli, survey_corpus_index, tmp_path):
    awq = tmp_path / "awq.jsonl"  # a survey paper with an abstract: one to ask about
    awq.write_text('{"id": "2306.00978", "title": "AWQ", "abstract": "Activation-aware 4-bit weight quantization."}\n')
    cli("ingest", "jsonl", awq, "--index", survey_corpus_index, "--no-progress", check=True)
    report = json.loads(cli("eval", "related", "-k", "3", "--json", "--index", survey_corpus_index, check=True).stdout)
    assert report["queries"] == 1 and 0.0 <= report["precision_at_3"] <= 1.0 and "precision_at_5" not in report
    refused = cli("eval", "related", "-k", "0", "--index", survey_corpus_index)
    assert (refused.returncode, refused.stderr) == (2, "error: k: Input should be greater than or equal to 1\n")


@pytest.mark.slow  # a process of its own
def test_the_recommendation_script_runs_as_a_user_runs_it(unchanged_survey_corpus_index, tmp_path):
    """scripts/eval_recommend.py: simulated readers of each reading-list topic like papers of it;
    recommend and the simpler uses of the same likes are scored by the share of the first k that
    carry the topic (over every paper, and over those that carry any topic)."""
    from tests.test_search import run_script

    papers = [p for _, p in Index.open(unchanged_survey_corpus_index).store.iter_papers()]
    (tmp_path / "data").mkdir()
    rows = [{"id": p.id, "topics": ["quantization" if n % 2 else "pruning"]} for n, p in enumerate(papers[:60])]
    (tmp_path / "data" / "arxiv_topics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = run_script(
        "scripts/eval_recommend.py", "--index", unchanged_survey_corpus_index, "--shared", tmp_path,
        "--likes", 2, "--readers", 2, "-k", 5,
    )  # fmt: skip
    assert out.startswith("2 topics, 4 readers, 2 papers liked each; precision@5:"), out
    for way in ("recommend", "recommend, one paper of another topic disliked", "centroid of the liked papers",
                "related work of the first liked paper", "each liked paper's nearest, in turn"):  # fmt: skip
        assert re.search(rf"^\| {re.escape(way)} \| [01]\.\d{{3}} \| [01]\.\d{{3}} \|$", out, re.M), out
