"""Properties of the parsers of outside input that had none: each reads what it is given as a
reference reading would, round-trips what it writes, and refuses the rest with its one error.
Each runs in a second or two (max_examples and a deadline)."""

from __future__ import annotations

import json
import string
from datetime import date, datetime, timezone
from email.utils import format_datetime

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from semsearch.errors import SemsearchError
from tests.conftest import examples

QUICK = settings(max_examples=examples(300), deadline=1000)


# --- watch --every: intervals ---------------------------------------------------------------------
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@QUICK
@given(st.integers(0, 10**6), st.sampled_from(list(UNITS)), st.sampled_from(["", " ", "  "]))
def test_an_interval_is_its_number_times_its_unit_up_to_the_longest(number, unit, space):
    from semsearch.watch import MAX_INTERVAL_DAYS, parse_interval

    seconds = number * UNITS[unit]
    text = f"{space}{number}{space}{unit}{space}"
    if 0 < seconds <= MAX_INTERVAL_DAYS * 86400:
        assert parse_interval(text) == seconds
    else:
        with pytest.raises(SemsearchError):
            parse_interval(text)


def test_the_longest_interval_is_a_leap_year_and_a_second_more_is_refused():
    # Written out, not read from MAX_INTERVAL_DAYS: a changed limit must show here.
    from semsearch.watch import parse_interval

    assert parse_interval("366d") == parse_interval("8784h") == 366 * 86400
    with pytest.raises(SemsearchError, match="longer than"):
        parse_interval(f"{366 * 86400 + 1}s")
    assert parse_interval("0.5s") == 0.5
    with pytest.raises(SemsearchError, match="no time at all"):
        parse_interval("0.0h")


@QUICK
@given(st.text(alphabet="0123456789.smhdx -\t\n", max_size=12) | st.text(max_size=12))
def test_any_interval_text_is_a_positive_bounded_time_or_one_line_refusal(text):
    from semsearch.watch import MAX_INTERVAL_DAYS, parse_interval

    try:
        seconds = parse_interval(text)
    except SemsearchError as err:
        assert "\n" not in str(err).replace(repr(text), "")
        return
    assert 0 < seconds <= MAX_INTERVAL_DAYS * 86400
    assert text.strip()[:-1].strip().replace(".", "").isascii()  # digits of other scripts are refused


def test_an_interval_in_digits_of_another_script_is_refused():
    from semsearch.watch import parse_interval

    for text in ("٣h", "３h", "१२m"):  # Arabic-Indic, full-width, Devanagari
        with pytest.raises(SemsearchError, match="cannot read the interval"):
            parse_interval(text)


# --- dates every door takes (since, --since) -------------------------------------------------------
@QUICK
@given(st.dates(date(1, 1, 1), date(9999, 12, 31)))
def test_a_day_written_as_yyyy_mm_dd_reads_back_as_itself(day):
    from semsearch.requests_models import iso_day

    assert iso_day(day.isoformat()) == day.isoformat()


@QUICK
@given(
    st.text(alphabet="0123456789-WT:Z+ ", max_size=14)
    | st.text(max_size=14)
    | st.dates().map(lambda d: d.strftime("%Y%m%d"))  # other forms Python's date.fromisoformat reads
    | st.dates().map(lambda d: d.isoformat() + "T00:00")
    | st.dates().map(lambda d: "{:04d}-W{:02d}-{}".format(*d.isocalendar()))
)
def test_a_date_is_read_only_in_the_one_published_form(text):
    from semsearch.requests_models import iso_day

    try:
        reference = date(int(text[0:4]), int(text[5:7]), int(text[8:10])).isoformat()
    except ValueError:
        reference = None
    well_formed = (
        len(text) == 10
        and text[4] == text[7] == "-"
        and all(c in string.digits for c in text[:4] + text[5:7] + text[8:])
    )
    assert iso_day(text) == (reference if well_formed else None)


# --- arXiv ids ---------------------------------------------------------------------------------------
NEW_IDS = st.builds(
    lambda yymm, number, five: f"{yymm:04d}.{number:0{5 if five else 4}d}",
    st.integers(0, 9999),
    st.integers(0, 9999),
    st.booleans(),
)
OLD_IDS = st.builds(
    lambda archive, number: f"{archive}/{number:07d}",
    st.sampled_from(["hep-th", "math", "cs", "cond-mat", "astro-ph", "q-bio"]),
    st.integers(0, 9_999_999),
)
FORMS = [
    "{}",
    "arXiv:{}",
    "arxiv:{}",
    "https://arxiv.org/abs/{}",
    "http://arxiv.org/pdf/{}.pdf",
    "arxiv.org/abs/{}",
    "https://www.arxiv.org/html/{}",
    "https://export.arxiv.org/abs/{}",
    "10.48550/arXiv.{}",
    "https://doi.org/10.48550/arXiv.{}",
    "https://huggingface.co/papers/{}",
    "https://arxiv.org/abs/{}?context=cs",
    "https://arxiv.org/abs/{}#x",
    " {} ",
    "https://alphaxiv.org/overview/{}",
]


@QUICK
@given(st.one_of(NEW_IDS, OLD_IDS), st.one_of(st.none(), st.integers(1, 99)), st.sampled_from(FORMS))
def test_an_id_in_any_form_a_paper_is_cited_by_reads_as_its_versionless_id(arxiv_id, version, form):
    from semsearch.paper import parse_arxiv_id

    versioned = arxiv_id + (f"v{version}" if version else "")
    assert parse_arxiv_id(form.format(versioned)) == arxiv_id


@QUICK
@given(st.one_of(NEW_IDS, OLD_IDS), st.text(alphabet="0123456789.v/-ab", min_size=1, max_size=3))
def test_an_id_with_more_after_it_is_no_id(arxiv_id, extra):
    from semsearch.paper import parse_arxiv_id

    longer = arxiv_id + extra
    if parse_arxiv_id(longer) is not None:  # only where the longer text is itself an id (or a version)
        import re

        assert re.fullmatch(r"[0-9]{4}\.[0-9]{4,5}(v[0-9]+)?|[a-z-]+/[0-9]{7}(v[0-9]+)?(\.pdf)?", longer) or (
            "/" in arxiv_id and extra.startswith("/")
        ), longer


@pytest.mark.parametrize(
    "short", ["2401.001", "240.00001", "2401.000001", "hep-th/990100", "hep-th/99010011", "2401-00001"]
)
def test_an_id_with_a_digit_too_few_or_too_many_is_no_id(short):
    from semsearch.paper import parse_arxiv_id

    assert parse_arxiv_id(short) is None and parse_arxiv_id("arXiv:" + short) is None


def test_the_year_of_an_id_turns_at_1991():
    from semsearch.paper import appeared, year_from_arxiv_id

    assert [year_from_arxiv_id(i) for i in ("hep-th/9108001", "hep-th/9012001", "0001.0001", "2412.00001")] == [
        1991,
        2090,
        2000,
        2024,
    ]
    assert appeared("2402.00002", None) == "2024-02-01" and appeared("x", "2023-05-06T00:00:00") == "2023-05-06"


# --- arXiv's answers: Retry-After and the feed --------------------------------------------------------
@QUICK
@given(st.integers(0, 10**20))
def test_retry_after_in_seconds_is_that_many_seconds(seconds):
    from semsearch.sources.arxiv import retry_after

    waited, words = retry_after(f" {seconds} ")
    assert waited == float(seconds) and "\n" not in words


@QUICK
@given(st.datetimes(datetime(1990, 1, 1), datetime(2100, 1, 1)).map(lambda d: d.replace(microsecond=0)))
def test_retry_after_as_an_http_date_waits_until_then_or_not_at_all(moment):
    from semsearch.sources.arxiv import retry_after

    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    moment = moment.replace(tzinfo=timezone.utc)
    waited, words = retry_after(format_datetime(moment, usegmt=True), now=now)
    assert waited == max((moment - now).total_seconds(), 0.0)
    assert words == f"until {moment:%d %b %Y %H:%M:%S} UTC"


HTTP_DATES = st.builds(
    lambda moment, minutes: format_datetime(moment, usegmt=True)[:-3] + f"{minutes // 60:+03d}{abs(minutes) % 60:02d}",
    st.datetimes(datetime(1900, 1, 1), datetime(9999, 12, 31, 23, 59, 59), timezones=st.just(timezone.utc)),
    st.integers(-1439, 1439),
)  # any year a date can be written with, in any zone


@QUICK
@given(st.text(max_size=40) | HTTP_DATES)
@example("Fri, 31 Dec 9999 23:59:59 -0100")  # a minute into year 10000 in UTC
def test_any_retry_after_is_a_wait_of_zero_or_more_or_none(value):
    from semsearch.sources.arxiv import retry_after

    found = retry_after(value, now=datetime(2026, 1, 1, tzinfo=timezone.utc))
    assert found is None or (found[0] >= 0 and "\n" not in found[1])


FEED = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<feed xmlns="http://www.w3.org/2005/Atom" '
    'xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/"><title>q</title>'
    "<opensearch:totalResults>{total}</opensearch:totalResults>{entries}</feed>{tail}"
)


@QUICK
@given(st.integers(0, 10**18 - 1), st.integers(0, 3), st.sampled_from(["", "\n", "  \n"]))
def test_a_whole_feed_is_read_with_the_total_it_says(total, entries, tail):
    from semsearch.sources.arxiv import _atom_feed, _total_results

    body = FEED.format(total=total, entries="<entry><id>x</id></entry>" * entries, tail=tail).encode()
    root = _atom_feed(body)
    assert root is not None and _total_results(root) == total
    assert _atom_feed(body[: body.rindex(b"</feed>") + 3]) is None  # cut short: not a feed


@QUICK
@given(st.text(alphabet="0123456789 \t\n+-.xe", max_size=24))
@example("9" * 18)
@example("1" * 19)
def test_a_total_is_read_only_when_it_is_a_count(total):
    import re

    from semsearch.sources.arxiv import _atom_feed, _total_results

    root = _atom_feed(FEED.format(total=total, entries="", tail="").encode())
    count = total.strip(" \t\n")
    assert _total_results(root) == (int(count) if re.fullmatch("[0-9]{1,18}", count) else None)


# --- the MCP line reader -------------------------------------------------------------------------------
JSON_IDS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@QUICK
@given(JSON_IDS, st.booleans(), st.booleans())
def test_an_odd_id_is_one_json_rpc_does_not_allow_on_a_request(request_id, has_id, has_method):
    from semsearch.mcp_server import odd_id

    message = {
        "jsonrpc": "2.0",
        **({"method": "tools/list"} if has_method else {}),
        **({"id": request_id} if has_id else {}),
    }
    allowed = isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool))
    assert odd_id(json.dumps(message)) == (has_id and has_method and not allowed)


@QUICK
@given(st.text(max_size=20), st.lists(st.integers(0xD800, 0xDBFF), max_size=3), st.booleans(), st.booleans())
def test_a_line_with_lone_surrogates_reads_as_the_same_message_with_replacement_characters(text, highs, low, upper):
    from semsearch.mcp_server import surrogates_replaced

    text = text.replace("\\", "")  # JSON writes a backslash of the text as two: no escape, nothing to upper-case
    value = ("\udc00" if low else "") + text + "".join(map(chr, highs))  # none of them in a pair
    line = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x", "params": {"q": value}}) + "\n"
    if upper:  # JSON's escapes may be written in either case
        line = line.replace("\\ud", "\\uD")
    read = surrogates_replaced(line)
    read.encode("utf-8")  # what the SDK's reader can take
    expected = "".join("\ufffd" if 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    assert json.loads(read)["params"]["q"] == expected
    assert surrogates_replaced(read) == read  # a line read so is left as it is
    if not any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        assert json.loads(read) == json.loads(line)


# --- questions: request words and terms ----------------------------------------------------------------
WORDS = st.lists(
    st.sampled_from(
        [
            "papers",
            "on",
            "KV",
            "cache",
            "recommend",
            "state",
            "of",
            "the",
            "art",
            "a",
            "paper",
            "named",
            "GPTQ",
            "worth",
            "reading",
            "8-bit",
            "LoRA",
            "search",
            "?",
            "it",
            "was",
            "called",
            "Find",
        ]
    ),
    max_size=12,
).map(" ".join) | st.text(max_size=40)


@QUICK
@given(WORDS)
def test_a_question_without_its_request_keeps_only_its_own_words_and_no_request_word(question):
    from semsearch.lexical import _WORD, _request_stems, _stem, strip_request

    about = strip_request(question)
    assert about == " ".join(about.split())
    request = _request_stems()
    for word in about.split():
        assert word in question
        found = _WORD.findall(word.lower())
        assert not found or not all(s in request for s in _stem()(found))


@QUICK
@given(st.text(max_size=60))
def test_terms_are_the_same_in_any_unicode_form_or_case_and_stopwords_add_none(text):
    import unicodedata

    from semsearch.lexical import tokenize

    terms = tokenize(text)
    assert tokenize(unicodedata.normalize("NFKC", text)) == terms == tokenize(unicodedata.normalize("NFD", text))
    assert tokenize(f"the {text} of and with") == terms
    if text.isascii():
        assert tokenize(text.upper()) == terms


def test_one_letter_words_and_stopwords_are_not_terms():
    from semsearch.lexical import tokenize

    assert tokenize("a b of the KV x caching") == ["kv", "cach"]


@QUICK
@given(
    st.sampled_from(
        [
            "",
            "can you recommend some good papers",
            "papers to read",
            "which paper is worth reading",
            "find recent work",
            "what was it called",
            "a method named",
            "state of the art",
        ]
    ),
    st.lists(
        st.sampled_from(["KV", "cache", "speculative", "decoding", "LoRA", "pruning", "state", "space"]),
        min_size=1,
        max_size=4,
    ),
)
def test_a_request_around_a_topic_leaves_the_topics_terms_alone(request_, topic):
    """Whatever way a question asks (request words, stopwords and request phrases), what is left to
    match is the topic's terms."""
    from semsearch.lexical import question_terms, tokenize

    topic = " ".join(topic)
    assert question_terms(f"{request_} on {topic}?") == tokenize(topic)


# --- web links from any record ---------------------------------------------------------------------------
@QUICK
@given(
    st.sampled_from(["http://", "https://", "HTTPS://", "javascript:", "ftp://", "", "http:/", "data:"]),
    st.text(alphabet="/?#@a.b:1 \t", max_size=12),
)
def test_a_link_is_kept_only_when_it_is_http_with_a_host_and_no_user(scheme, rest):
    from urllib.parse import urlsplit

    from semsearch.paper import web_url

    url = scheme + rest
    parts = urlsplit(url)
    reference = (
        parts.scheme.lower() in ("http", "https")
        and url[len(parts.scheme) : len(parts.scheme) + 3] == "://"
        and bool(parts.hostname)  # "https://:80/" has a port and no host
        and "@" not in parts.netloc
        and not any(c.isspace() for c in url)
    )
    assert web_url(url) == (url if reference else None)


# --- BibTeX: a field shows the paper's text, read back by a LaTeX reader ---------------------------------
def _latex_text(value: str) -> str:
    """`value` as a LaTeX reader shows it (pylatexenc, taught the three text macros it lacks)."""
    from pylatexenc.latex2text import LatexNodes2Text, MacroTextSpec, get_default_latex_context_db

    context = get_default_latex_context_db()
    context.add_context_category(
        "text-symbols",
        prepend=True,
        macros=[
            MacroTextSpec("textbraceleft", "{"),
            MacroTextSpec("textbraceright", "}"),
            MacroTextSpec("textasciicircum", "^"),
        ],
    )
    return LatexNodes2Text(latex_context=context, math_mode="verbatim", strict_latex_spaces=True).latex_to_text(value)


LATEX_TEXT = st.text(alphabet=st.sampled_from(list("\\{}&%$#_~^ab xyz \t\n") + ["é", "ü"]), max_size=30)


@QUICK
@given(LATEX_TEXT)
def test_escaped_text_reads_back_in_latex_as_the_same_words(value):
    from semsearch.bibtex import escape

    assert _latex_text(escape(value)) == " ".join(value.split())


@settings(max_examples=examples(150), deadline=2000)
@given(LATEX_TEXT.filter(lambda t: t.strip()), st.lists(LATEX_TEXT.filter(lambda t: t.strip()), max_size=2))
def test_an_entrys_title_and_authors_read_back_from_the_bibtex_as_they_were(title, authors):
    import bibtexparser

    from semsearch.bibtex import to_bibtex
    from semsearch.paper import Paper

    (entry,) = bibtexparser.parse_string(to_bibtex([Paper(id="2401.00001", title=title, authors=authors)])).entries
    assert _latex_text(entry.fields_dict["title"].value[1:-1]) == " ".join(title.split())
    if authors:
        assert _latex_text(entry.fields_dict["author"].value) == " and ".join(" ".join(a.split()) for a in authors)


# --- the request models every door reads a question through ----------------------------------------------
@QUICK
@given(
    st.text(max_size=30) | st.text(min_size=1995, max_size=2005, alphabet="ab \n"),
    st.one_of(st.integers(-2, 103), st.booleans()),
    st.one_of(st.none(), st.integers(1895, 2105)),
)
def test_a_question_is_taken_as_one_line_within_its_limits_or_refused_in_one_line(question, k, year_from):
    from semsearch.paper import one_line
    from semsearch.requests_models import BadRequest, SearchRequest, parse

    takes = (
        len(question) <= 2000
        and one_line(question) != ""
        and not isinstance(k, bool)
        and 1 <= k <= 100
        and (year_from is None or 1900 <= year_from <= 2100)
    )  # the limits as docs/usage.md states them, not read from the module
    try:
        request = parse(SearchRequest, q=question, k=k, year_from=year_from)
    except BadRequest as err:
        assert not takes and "\n" not in str(err)
        return
    assert takes and request.question == one_line(question) and request.k == k and request.year_from == year_from


# --- seconds from the environment (SEMSEARCH_ARXIV_TIMEOUT and the like) ---------------------------------
@QUICK
@given(st.one_of(st.floats(-10, 90_000), st.sampled_from([0.0, 86400.0, 86400.5, -0.0])), st.booleans())
def test_seconds_from_the_environment_are_taken_from_0_to_a_day_or_refused_in_one_line(seconds, positive):
    import os

    from semsearch.sources.arxiv import _env_float

    name = "SEMSEARCH_TEST_SECONDS"
    os.environ[name] = repr(seconds)
    try:
        takes = 0 <= seconds <= 86400 and not (positive and seconds == 0)  # a day, as the refusal says
        try:
            read = _env_float(name, 7.0, positive=positive)
        except SemsearchError as err:
            assert not takes and "\n" not in str(err)
        else:
            assert takes and read == seconds
        os.environ[name] = ""
        assert _env_float(name, 7.0, positive=positive) == 7.0  # set but empty: the default
    finally:
        del os.environ[name]


# --- arXiv categories a watch asks for ---------------------------------------------------------------------
LISTED = ["cs.CL", "cs.LG", "hep-th", "physics.comp-ph", "stat.ML", "math.AG", "q-bio.NC", "cond-mat.stat-mech"]


@QUICK
@given(st.lists(st.sampled_from(LISTED) | st.text(alphabet="cs.CL-h )(:", max_size=10), min_size=1, max_size=4))
def test_a_category_is_taken_in_arxivs_form_archive_dot_subject_and_nothing_else(categories):
    """arXiv's categories are an archive and at most one subject: `cs.CL`, `hep-th`,
    `cond-mat.stat-mech`. Anything else would go into the query as written."""
    import re

    from semsearch.sources.arxiv import check_categories

    given_ = [c.strip() for c in categories if c.strip()]
    form = re.compile(r"[a-z][a-z-]*(\.[A-Za-z][A-Za-z-]*)?")  # one dot at most, never first or last
    try:
        taken = check_categories(categories)
    except SemsearchError as err:
        assert "\n" not in str(err)
        assert not given_ or not all(form.fullmatch(c) for c in given_)
        return
    assert taken == given_ and all(c in LISTED or (form.fullmatch(c) and c.count(".") <= 1) for c in taken)


@pytest.mark.parametrize("odd", ["cs.CL.x", "cs..CL", ".cs", "cs.", "CS.CL", "cs.CL)", "cs CL", "1cs"])
def test_a_category_not_in_arxivs_form_is_refused(odd):
    from semsearch.sources.arxiv import check_categories

    with pytest.raises(SemsearchError, match="not an arXiv category"):
        check_categories(["cs.LG", odd])


# --- a paper's text to place (POST /api/classify, the classify tool) ----------------------------------------
@QUICK
@given(st.text(max_size=12), st.text(max_size=12))
@example("™", "㎒")  # signs that are letters in compatibility form: TM, MHz
@example("\u037a", "ok")  # a sign that folds to no letter
def test_a_paper_to_place_needs_a_letter_or_digit_in_its_title_and_its_abstract(title, abstract):
    import unicodedata

    from semsearch.paper import one_line
    from semsearch.requests_models import BadRequest, ClassifyRequest, parse

    def readable(text: str) -> bool:  # a letter or digit, as the text is read (in compatibility form)
        return any(c.isalnum() for c in unicodedata.normalize("NFKC", one_line(text)))

    try:
        request = parse(ClassifyRequest, title=title, abstract=abstract)
    except BadRequest as err:
        assert "\n" not in str(err) and not (readable(title) and readable(abstract))
        return
    assert readable(title) and readable(abstract)
    assert (request.title, request.abstract) == (one_line(title), one_line(abstract))
