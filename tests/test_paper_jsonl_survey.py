import gzip
import json
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from semsearch.errors import SemsearchError
from semsearch.paper import Paper, normalize_title, parse_arxiv_id, year_from_arxiv_id
from semsearch.sources.jsonl import check_readable, count_records, first_record, paper_from_record, read_jsonl
from semsearch.sources.survey import load_survey
from semsearch.taxonomy import resolve_node
from tests.conftest import SHARED, examples


@pytest.mark.parametrize(
    "value, expected",
    [
        ("2308.13137", "2308.13137"),
        ("2308.13137v2", "2308.13137"),
        ("arXiv:2308.13137", "2308.13137"),
        ("https://arxiv.org/abs/2308.13137v1", "2308.13137"),
        ("https://arxiv.org/pdf/2308.13137.pdf", "2308.13137"),
        ("hep-th/9901001v1", "hep-th/9901001"),
        # An old-style id's subject class is not part of it, and its archive is read in lower case,
        # as arXiv reads them (math.GT/0309136 is math/0309136): kept, they were a second paper.
        ("math.GT/0309136", "math/0309136"),
        ("arXiv:cs.CL/0601001v2", "cs/0601001"),
        ("CS/0601001", "cs/0601001"),
        ("https://arxiv.org/abs/Hep-Th/9901001", "hep-th/9901001"),
        ("0704.0001", "0704.0001"),
        ("https://arxiv.org/html/2308.13137v2", "2308.13137"),  # the forms a helper's pass found refused
        ("arxiv.org/abs/2308.13137", "2308.13137"),
        ("https://arxiv.org/abs/2308.13137?context=cs", "2308.13137"),
        ("https://arxiv.org/pdf/2308.13137v3#page=2", "2308.13137"),
        ("10.48550/arXiv.2308.13137", "2308.13137"),
        ("https://doi.org/10.48550/arXiv.2308.13137", "2308.13137"),
        ("https://huggingface.co/papers/2306.00978", "2306.00978"),  # a consumer's pass found it refused
        ("hf.co/papers/2306.00978?utm=x", "2306.00978"),
        ("https://www.alphaxiv.org/abs/2306.00978v2", "2306.00978"),
        ("https://huggingface.co/models/2306.00978", None),  # a model's page is not the paper's
        ("https://huggingface.co/papers/https://huggingface.co/papers/2306.00978", None),  # not followed
        ("2308.13137?x", None),  # a bare id's text is all id
        ("survey:gptq", None),
        ("12345.678", None),
        ("２３０６.００９７８", None),  # digits of another width are no id arXiv has ("\\d" took them)
        ("٢٣٠٦.٠٠٩٧٨", None),
        ("hep-th/９９０１００１", None),
    ],
)
def test_parse_arxiv_id(value, expected):
    assert parse_arxiv_id(value) == expected


def test_year_from_arxiv_id():
    assert year_from_arxiv_id("2308.13137") == 2023
    assert year_from_arxiv_id("hep-th/9901001") == 1999
    assert year_from_arxiv_id("0704.0001") == 2007


def test_a_paper_appeared_on_its_first_versions_day_else_in_its_arxiv_ids_month():
    from semsearch.paper import appeared

    assert appeared("2402.00002", "2024-03-05T10:00:00") == "2024-03-05"
    assert [appeared(i, None) for i in ("2402.00002", "cs/0601001", "hep-th/9901001")] == [
        "2024-02-01", "2006-01-01", "1999-01-01",
    ]  # fmt: skip
    assert appeared(None, None) is None and Paper(id="notes-1", title="t").appeared is None


def test_merge_keeps_known_values_and_accumulates_sources():
    old = Paper(id="1", title="T", abstract="A", venue="ICLR", sources=["survey"])
    new = Paper(id="1", title="T2", abstract="", sources=["jsonl"])
    merged = old.merged_with(new)
    assert (merged.title, merged.abstract, merged.venue, merged.sources) == ("T2", "A", "ICLR", ["jsonl", "survey"])


def test_normalize_title():
    assert normalize_title("LLM.int8(): 8-bit  Matrix") == normalize_title("llm int8 8 bit matrix")


def test_a_year_no_paper_has_is_no_year():
    """A date read as year 1 (or a record's 99999) was shown, filtered on and cited."""
    assert [Paper(id="x", title="t", year=y).year for y in (1, 1899, 1900, 2100, 2101, 99999)] == [
        None, None, 1900, 2100, None, None,
    ]  # fmt: skip


def test_titles_without_a_latin_letter_keep_their_own_letters_as_key():
    """They all keyed as "" and were one paper: a list of three Chinese titles kept one."""
    keys = {normalize_title(t) for t in ["大模型剪枝综述", "大语言模型的量化方法", "«大模型» 剪枝综述!"]}
    assert keys == {"大模型剪枝综述", "大语言模型的量化方法", "大模型 剪枝综述"}
    assert normalize_title("ＧＰＴＱ量化") == "gptq"  # a Latin letter anywhere: the key it always had


def test_snapshot_record_fields():
    paper = paper_from_record(
        {
            "id": "0704.0001v2",
            "title": "  A  title\n with breaks ",
            "abstract": " An\nabstract. ",
            "authors": "C. Balázs, E. L. Berger and P. M. Nadolsky",
            "authors_parsed": [["Balázs", "C.", ""], ["Berger", "E. L.", ""]],
            "categories": "hep-ph cs.CL",
            "update_date": "2008-11-13",
            "versions": [{"version": "v1", "created": "Mon, 2 Apr 2007 19:18:42 GMT"}],
            "doi": "ignored",
        }
    )
    assert paper.id == "0704.0001" and paper.title == "A title with breaks" and paper.abstract == "An abstract."
    assert paper.authors == ["C. Balázs", "E. L. Berger"]
    assert paper.arxiv_categories == ["hep-ph", "cs.CL"]
    assert (paper.published, paper.updated, paper.year) == ("2007-04-02", "2008-11-13", 2007)


def test_authors_as_string():
    paper = paper_from_record({"id": "x1", "title": "T", "authors": "A. One, B. Two and C. Three"})
    assert paper.authors == ["A. One", "B. Two", "C. Three"] and paper.id == "x1"


def test_malformed_line_stops_with_its_number_or_is_skipped(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"id": "2401.00001", "title": "A"}\n\n{"title": "no id"}\n{"id": "2401.00003", "title": "C"}\n')
    with pytest.raises(SemsearchError, match=r"p.jsonl:3: missing 'id'"):
        list(read_jsonl(path))
    warnings = []
    assert [p.id for p in read_jsonl(path, skip_malformed=True, warn=warnings.append)] == ["2401.00001", "2401.00003"]
    assert len(warnings) == 1 and ":3:" in warnings[0]


def test_a_line_that_is_not_utf8_is_a_malformed_line_wherever_it_is(tmp_path):
    """A Latin-1 "café" in line 101 was stored as "caf\ufffd" without a word (the same byte in the
    file's first 8 KB refused the whole file): a line that is not UTF-8 is malformed, named by its
    number and the byte, stopped at or skipped, as any line that is not a record."""
    lines = [json.dumps({"id": f"2401.{n:05d}", "title": f"Paper {n}"}).encode() for n in range(1, 101)]
    lines.append(b'{"id": "2401.00101", "title": "Caf\xe9 au lait"}')
    path = tmp_path / "p.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    check_readable(path)  # its first line reads: the file is read, up to the line that does not
    with pytest.raises(SemsearchError, match=r"^.*p.jsonl:101: not UTF-8 text \(byte 0xe9 at column 35\)"):
        list(read_jsonl(path))
    warnings = []
    papers = list(read_jsonl(path, skip_malformed=True, warn=warnings.append))
    assert len(papers) == 100 and not any("\ufffd" in p.title for p in papers)
    assert len(warnings) == 1 and ":101:" in warnings[0]


def test_filters_and_gzip(tmp_path, corpus_file):
    packed = tmp_path / "c.jsonl.gz"
    with gzip.open(packed, "wt") as handle:
        handle.write(corpus_file.read_text())
    ids = [p.id for p in read_jsonl(packed, categories={"cs.CV", "cs.CL"}, since="2023-06-01")]
    assert ids == ["2401.00001", "2308.00007"]


def test_unreadable_files(tmp_path):
    with pytest.raises(SemsearchError, match="no such file"):
        check_readable(tmp_path / "missing.jsonl")
    binary = tmp_path / "b.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(SemsearchError, match="cannot read"):
        check_readable(binary)


def test_packaged_survey_is_facts_only_and_consistent():
    survey = load_survey()
    assert len(survey.nodes) == 74 and len(survey.papers) == 424
    assert sum(1 for p in survey.papers if p.arxiv_id) == 353  # 3 linked through huggingface.co/papers
    nodes = set(survey.nodes)
    assert all(p.survey_categories and set(p.survey_categories) <= nodes for p in survey.papers)
    assert all(not p.abstract for p in survey.papers)
    assert len({p.id for p in survey.papers}) == 424
    roots = {n.split("/")[0] for n in survey.nodes}
    assert roots == {
        "Model-Centric Methods",
        "Data-Centric Methods",
        "System-Level Efficiency Optimization and LLM Frameworks",
    }


@pytest.mark.skipif(not (SHARED / "data" / "survey_taxonomy.json").exists(), reason="../shared not present")
def test_packaged_survey_matches_the_shared_list():
    raw = json.loads((SHARED / "data" / "survey_taxonomy.json").read_text())
    survey = load_survey()
    assert list(survey.nodes) == raw["nodes"]
    packaged = {(p.title, tuple(p.survey_categories)) for p in survey.papers}
    assert packaged == {(p["title"], tuple(p["categories"])) for p in raw["papers"]}


def test_annotate_uses_id_then_title():
    survey = load_survey()
    labelled = survey.annotate(Paper(id="2306.00978", title="whatever"))
    assert labelled.survey_categories and labelled.title.startswith("AWQ")
    by_title = survey.annotate(
        Paper(id="x", title="gptq accurate quantization for generative pre trained transformers")
    )
    assert by_title.venue == "ICLR" and by_title.survey_categories
    assert survey.annotate(Paper(id="y", title="Unrelated")).survey_categories == []


def test_resolve_node():
    assert resolve_node("quantization") == "Model-Centric Methods/Model Compression/Quantization"
    full = "Model-Centric Methods/Efficient Inference/Speculative Decoding"
    assert resolve_node(full) == full and resolve_node("speculative decoding") == full
    with pytest.raises(SemsearchError, match="did you mean"):
        resolve_node("Speculativ Decoding")


# --- a survey paper's arXiv id from any link that carries one -----------------------------------------
def test_survey_papers_linked_through_hugging_face_get_their_arxiv_id():
    """Palu, SnapKV and LazyLLM are linked only as huggingface.co/papers/<id>: once survey:… ids."""
    ids = {p.title.split(":")[0].strip(): p.id for p in load_survey().papers}
    assert (ids["Palu"], ids["SnapKV"], ids["LazyLLM"]) == ("2407.21118", "2404.14469", "2407.14057")


@pytest.mark.parametrize(
    "link, arxiv_id",
    [
        ("https://huggingface.co/papers/2407.14057", "2407.14057"),
        ("https://www.alphaxiv.org/abs/2404.14469v2", "2404.14469"),
        ("https://alphaxiv.org/overview/2404.14469", "2404.14469"),
        ("https://arxiv.org/pdf/2306.00978v3.pdf", "2306.00978"),
        ("https://ar5iv.labs.arxiv.org/html/2306.00978", "2306.00978"),
        ("https://doi.org/10.48550/arXiv.2210.17323", "2210.17323"),
        ("https://arxiv.org/abs/cs/0101001", "cs/0101001"),
        ("https://openreview.net/forum?id=tcbBPnfwxS", None),
        ("https://huggingface.co/papers/", None),
        ("https://evilhuggingface.co/papers/2407.14057", None),
        ("https://huggingface.co/models/2407.14057", None),
    ],
)
def test_arxiv_id_from_a_link(link, arxiv_id):
    from semsearch.sources.survey import arxiv_id_from_link

    assert arxiv_id_from_link(link) == arxiv_id


def test_a_survey_item_linked_only_through_alphaxiv_is_filed_under_its_id():
    from semsearch.sources.survey import survey_facts

    markdown = (
        "# S\n## Node\n- **Other**, [[Paper](https://arxiv.org/abs/2306.00978)]\n"
        "- **A paper**, Someone, <ins>ICML, 2024</ins> [[Paper](https://www.alphaxiv.org/abs/2404.14469)]\n"
    )
    assert [p["arxiv_id"] for p in survey_facts(markdown)["papers"]] == ["2306.00978", "2404.14469"]


def test_a_survey_list_is_read_as_facts_title_venue_year_links_and_categories():
    """What `taxonomy refresh` stores of the survey's README, without ../shared (the byte-for-byte
    rebuild of the packaged list is skipped where that folder is absent, as under mutmut)."""
    from semsearch.sources.survey import survey_facts

    markdown = (
        "# Efficient LLMs\n## Model Compression\n### Quantization\n"
        "- **Rotations for Ints** <ins>ICML, 2024</ins> [[Paper](https://arxiv.org/abs/2401.00001)]"
        " [[Code](https://github.com/a/b)]\n"
        "- **Cache Games** <ins>NeurIPS2023</ins> [[Paper](https://openreview.net/forum?id=abc)]"
        " [[Code](javascript:alert(1))]\n"
        "- **Bare Link** <ins>ACL</ins> https://arxiv.org/abs/2402.00005\n"
        "- **Bare Title**, arXiv\n"
        "- **Broken Mark** <ins>EMNLP, 2023/ins>\n"
    )
    facts = survey_facts(markdown, source="https://example.org/list")
    assert facts["source"] == "https://example.org/list"
    assert facts["nodes"] == ["Model Compression", "Model Compression/Quantization"]
    rows = [(p["title"], p["venue"], p["year"], p["url"], p["arxiv_id"], p["code"]) for p in facts["papers"]]
    assert rows == [
        (
            "Rotations for Ints",
            "ICML",
            2024,
            "https://arxiv.org/abs/2401.00001",
            "2401.00001",
            "https://github.com/a/b",
        ),
        # A year run into the venue stays in the venue's words and is still the paper's year;
        # a link that is not a web address is no code link.
        ("Cache Games", "NeurIPS2023", 2023, "https://openreview.net/forum?id=abc", None, None),
        ("Bare Link", "ACL", None, None, "2402.00005", None),  # an id outside a markdown link
        ("Bare Title", None, None, None, None, None),
        ("Broken Mark", "EMNLP", 2023, None, None, None),  # the list's "/ins>" closes a mark too
    ]
    assert all(p["categories"] == ["Model Compression/Quantization"] for p in facts["papers"])


@pytest.mark.parametrize(
    "text, venue",
    [
        ("<ins>ICML, 2024</ins>", ("ICML", "2024")),
        ("<ins>ICML 2024</ins>", ("ICML", "2024")),
        ("<ins>ICML,2024</ins>", ("ICML", "2024")),
        ("<ins> ACL , 2020 </ins>", ("ACL", "2020")),
        ("<ins>ICML2024</ins>", ("ICML2024", None)),  # no separator: not a venue and a year
        ("<ins>2024</ins>", ("2024", None)),
        ("<ins>EMNLP</ins>", ("EMNLP", None)),
        ("<ins>ICML, 2024/ins>", ("ICML", "2024")),  # the broken closing mark the list has
        ("no mark", None),
    ],
)
def test_a_venue_mark_is_split_into_venue_and_year_at_a_comma_or_space(text, venue):
    from semsearch.sources.survey import _venue

    assert _venue(text) == venue


@settings(max_examples=examples(300), deadline=None)
@given(st.text(max_size=200))
def test_any_link_text_gives_an_id_or_none_quickly(text):
    from semsearch.paper import parse_arxiv_id
    from semsearch.sources.survey import arxiv_id_from_link

    for link in (text, "https://huggingface.co/papers/" + text, "https://arxiv.org/abs/" + text):
        found = arxiv_id_from_link(link)
        assert found is None or parse_arxiv_id(found) == found


def test_one_line_is_printable_text_on_one_line():
    from semsearch.paper import one_line

    assert one_line("GP\u200bTQ\n\tquant\x00ization  \u202ex") == "GP TQ quant ization x"


# --- a title with its authors run on (a PDF's text) ----------------------------------------------
@pytest.mark.parametrize(
    "title, written",
    [
        ("Fast Decoding of Small Models Ada Lovelace, Alan Turing, Grace Hopper", "Fast Decoding of Small Models"),
        ("Fast Decoding of Small Models Ada Lovelace, Alan Turing", "Fast Decoding of Small Models"),
        ("FAST DECODING: A STUDY Ada Lovelace, Alan Turing and Grace Hopper,", "FAST DECODING: A STUDY"),
        ("Fast Decoding of Small Models Ada B. Lovelace, Alan Turing, Grace Hopper", "Fast Decoding of Small Models"),
        ("Fast Decoding of Small Models Ada Lovelace , Alan Turing , Grace Hopper", "Fast Decoding of Small Models"),
        (
            "Fast Decoding of Small Models Ada Lovelace, Alan Turing, Grace",
            "Fast Decoding of Small Models",
        ),  # cut short
        ("Fast Decoding of Small Models Ada Lovelace, Alan Turing and Kurt G¨ odel", "Fast Decoding of Small Models"),
        # Titles that only look like it: a comma list of title words, "and" between method names, a
        # subtitle after a colon, a title of two words before the names.
        ("Sparse, Dense, and Attentional Representations for Text Retrieval", None),
        ("Scaling Vision Transformers via Recursive Subsampling and Data Pruning", None),
        ("Llama 2: Open Foundation and Fine-Tuned Chat Models", None),
        ("AutoML for Language Models: Current Challenges, Future Opportunities and Risks", None),
        ("Go Wider Instead of Deeper", None),
        ("Fast Decoding Ada Lovelace, Alan Turing", None),
        ("Faster, Smaller, Cheaper: Decoding Small Models", None),
        # A last part of five words is no name cut short (four words at most).
        ("Fast Decoding of Small Models Ada Lovelace, Alan Turing, Grace Hopper Wrote Five Papers", None),
    ],
)
def test_a_title_is_written_without_the_authors_a_pdf_ran_on_after_it(title, written):
    from semsearch.paper import title_without_authors

    assert title_without_authors(title) == (written or title)


PIECES = ["A", "a", "B", "b", " ", ",", ".", ":", "-", "´", " and ", "Ada ", "B. ", "Lovelace", "Small Models "]


@given(st.lists(st.sampled_from(PIECES), max_size=40).map("".join))
@settings(max_examples=examples(400), deadline=2000)
def test_a_title_without_its_authors_is_the_titles_own_start_of_three_words_or_more(title):
    from semsearch.paper import title_without_authors

    written = title_without_authors(title)
    assert written == title or (title.strip().startswith(written) and len(written.split()) >= 3)


def test_no_title_of_the_survey_or_of_the_shared_lists_is_cut():
    """The survey's titles (and, where ../shared is present, every title of the curated lists)
    are clean: none loses a word. On `../shared/data/arxiv_topics.jsonl` 68 of 1,537 titles a PDF
    gave are cut, 64 of them exactly at their authors (docs/evaluation.md)."""
    from semsearch.paper import title_without_authors
    from semsearch.sources.curated import parse_list

    titles = [p.title for p in load_survey().papers]
    lists = sorted((SHARED / "data" / "lists").glob("*.md")) if SHARED.exists() else []  # none without ../shared
    titles += [p.title for path in lists for p in parse_list(path.read_text(encoding="utf-8")).papers]
    assert len(titles) >= 424
    assert [t for t in titles if title_without_authors(t) != t] == []


def test_only_the_start_of_the_first_line_is_read_before_a_file_is_taken(tmp_path):
    """Its first 4,096 bytes: a character they cut in two is no fault, and a byte further on that
    is not UTF-8 is its line's, named by its number when the records are read."""
    cut = tmp_path / "cut.jsonl"
    cut.write_bytes(b"x" * 4095 + "é".encode() + b"\n")  # the 4,096th byte is the first of "é"'s two
    check_readable(cut)
    later = tmp_path / "later.jsonl"
    later.write_bytes(b'{"id": "2401.00001", "title": "' + b"x" * 5000 + b'\xe9"}\n')
    check_readable(later)
    with pytest.raises(SemsearchError, match=r"later.jsonl:1: not UTF-8 text \(byte 0xe9 at column 5032\)"):
        list(read_jsonl(later))


def test_survey_facts_become_papers_filed_under_their_arxiv_id_else_their_title():
    from semsearch.sources.survey import survey_from_facts

    facts = {
        "nodes": ["A", "A/B"],
        "papers": [
            {
                "title": "Rotations",
                "arxiv_id": "arXiv:2401.00001v2",
                "categories": ["A/B"],
                "venue": "ICML",
                "year": 2024,
                "url": "https://arxiv.org/abs/2401.00001",
            },
            {"title": "Éclair: Fast Attention!", "arxiv_id": None, "categories": ["A"]},
        ],
    }
    survey = survey_from_facts(facts)
    assert survey.nodes == ("A", "A/B")
    first, second = survey.papers
    assert (first.id, first.title, first.survey_categories) == ("2401.00001", "Rotations", ["A/B"])
    assert (first.venue, first.year, first.url, first.sources) == (
        "ICML",
        2024,
        "https://arxiv.org/abs/2401.00001",
        ["survey"],
    )
    assert (second.id, second.venue, second.year, second.url) == ("survey:e-clair-fast-attention", None, None, None)


def _line_of(path, megabytes: int) -> None:
    """A .gz of three records whose second is one line of `megabytes` MB (a few hundred KB packed)."""
    with gzip.open(path, "wb", compresslevel=1) as out:
        out.write(b'{"id": "2401.00001", "title": "A"}\n{"id": "2401.00002", "title": "B", "abstract": "')
        for _ in range(megabytes):
            out.write(b"a" * (1 << 20))
        out.write(b'"}\n{"id": "2401.00003", "title": "C"}\n')


def test_a_line_too_long_to_be_a_record_is_malformed_and_never_held_whole(tmp_path):
    """A small .gz can unpack to one line of gigabytes: a line over MAX_LINE_BYTES is refused by its
    number, read a piece at a time (one of 1.5 GB held 9 GB for 41 s, then failed in SQLite)."""
    path = tmp_path / "bomb.jsonl.gz"
    _line_of(path, 300)
    started = time.monotonic()
    with pytest.raises(SemsearchError, match=r"bomb.jsonl.gz:2: longer than 4 MB"):
        list(read_jsonl(path))
    warnings = []
    assert [p.id for p in read_jsonl(path, skip_malformed=True, warn=warnings.append)] == ["2401.00001", "2401.00003"]
    assert len(warnings) == 1 and ":2: longer than 4 MB" in warnings[0]
    assert count_records(path) == 3 and first_record(path) == {"id": "2401.00001", "title": "A"}
    assert time.monotonic() - started < 20  # 3 s here; the whole line was read, parsed and stored before
