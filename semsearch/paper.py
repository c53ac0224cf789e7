"""The paper record shared by every source, and the rules for arXiv identifiers."""

from __future__ import annotations

import bisect
import functools
import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from semsearch.lexical import STOPWORDS

# ASCII digits only: `\d` also takes other scripts' digits, and "２３０６.００９７８" became an id
# no arXiv page has (a question is put in compatibility form first, where it is 2306.00978).
_NEW_ID = re.compile(r"^([0-9]{4}\.[0-9]{4,5})(v[0-9]+)?$")
# An old-style id is its archive and number: arXiv reads `math.GT/0309136` (the subject class a
# citation may add) and `MATH/0309136` as `math/0309136`, so they are one paper here too.
_OLD_ID = re.compile(r"^([a-z][a-z\-]*)(?:\.[a-z][a-z\-]+)?/([0-9]{7})(v[0-9]+)?$")
# `arXiv:`, arXiv's DOI (`10.48550/arXiv.`, also as a doi.org link), and its abs, pdf and html pages
# (with or without the scheme).
_ID_PREFIXES = re.compile(
    r"^(?:arxiv:|(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.|(?:https?://)?(?:export\.|www\.)?arxiv\.org/(?:abs|pdf|html)/)",
    re.IGNORECASE,
)


def parse_arxiv_id(value: str) -> str | None:
    """The versionless arXiv id in `value` (a bare id, `arXiv:...`, arXiv's DOI, an abs, pdf or html
    URL, its query or fragment aside, or a link to another page of the paper, `arxiv_id_from_link`),
    else None."""
    if "/" in value and (found := arxiv_id_from_link(value if "://" in value else f"https://{value.strip()}")):
        return found
    return _arxiv_id_of(value)


def _arxiv_id_of(value: str) -> str | None:
    """`parse_arxiv_id` of a bare id, `arXiv:...`, arXiv's DOI or an arXiv URL (never a link to
    another page: a link's path is read by this, so a link inside a link is not followed)."""
    text = _ID_PREFIXES.sub("", value.strip())
    if text != value.strip():  # a URL's query or fragment ("?context=cs") is not part of the id
        text = re.split(r"[?#]", text, maxsplit=1)[0]
    text = text.removesuffix(".pdf")
    if match := _NEW_ID.match(text):
        return match.group(1)
    archive, slash, number = text.partition("/")
    if slash and (match := _OLD_ID.match(archive.lower() + slash + number)):
        return f"{match.group(1)}/{match.group(2)}"
    return None


# Pages that name a paper by its arXiv id in their path: (host, path prefix). The id is what
# follows the prefix (a version or ".pdf" suffix is dropped by `parse_arxiv_id`).
ARXIV_ID_PAGES = (
    ("arxiv.org", ("/abs/", "/pdf/", "/html/")),
    ("export.arxiv.org", ("/abs/", "/pdf/")),
    ("ar5iv.org", ("/abs/", "/html/")),
    ("ar5iv.labs.arxiv.org", ("/html/",)),
    ("huggingface.co", ("/papers/",)),
    ("hf.co", ("/papers/",)),
    ("alphaxiv.org", ("/abs/", "/overview/", "/pdf/")),
    ("arxiv-vanity.com", ("/papers/",)),
    ("semanticscholar.org", ("/arxiv/",)),
    ("doi.org", ("/10.48550/arxiv.",)),
)


def arxiv_id_from_link(url: str) -> str | None:
    """The arXiv id a link carries in its path (arxiv.org, huggingface.co/papers, alphaxiv, ar5iv,
    arXiv's DOI, ...), else None. A list may link a paper only through one of these."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    host = (parts.hostname or "").removeprefix("www.")
    path = parts.path.lower() if host == "doi.org" else parts.path
    for known, prefixes in ARXIV_ID_PAGES:
        if host != known:
            continue
        for prefix in prefixes:
            if path.startswith(prefix):
                rest = parts.path[len(prefix) :].strip("/")
                return _arxiv_id_of(rest) or _arxiv_id_of(rest.rsplit("/", 1)[0]) if rest else None
    return None


def year_from_arxiv_id(arxiv_id: str) -> int | None:
    """Submission year encoded in a new-style id (YYMM.NNNNN) or old-style id (archive/YYMMNNN)."""
    digits = arxiv_id.split("/")[-1]
    if len(digits) < 4 or not digits[:2].isdigit():
        return None
    yy = int(digits[:2])
    return (1900 if yy >= 91 else 2000) + yy


def appeared(arxiv_id: str | None, published: str | None) -> str | None:
    """The day (YYYY-MM-DD) a paper appeared: its first version's, else the first of the month its
    arXiv id was given in (the id says it: 2402.00002 is February 2024); None when neither tells. A
    record without dates (an offline survey's, a JSON Lines line without versions) is dated so."""
    if published:
        return published[:10]
    digits = arxiv_id.split("/")[-1] if arxiv_id else ""
    year = year_from_arxiv_id(arxiv_id) if arxiv_id else None
    return f"{year}-{digits[2:4]}-01" if year and digits[2:4].isdigit() else None


@functools.lru_cache(maxsize=65_536)  # a result list compares its titles several times
def normalize_title(title: str) -> str:
    """Lower-case alphanumerics only: the key used to recognise one paper under two ids. Letters
    are compared without accents; a title with no Latin letter or digit at all (a Chinese one) keys
    on its own letters, or every such title would share the empty key and be one paper."""
    text = unicodedata.normalize("NFKD", title).lower()
    key = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return key or " ".join(re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", title).casefold()))


TWIN_WORDS = 4  # a title that another runs on from with names is the same paper's, from this long
# Letter runs a PDF sets as one ligature glyph, which its text extraction may drop ("E cient").
_LIGATURES = re.compile("ffi|ffl|ff|fi|fl")


def _word_letters(word: str) -> str:
    return _LIGATURES.sub("", word)


@functools.lru_cache(maxsize=65_536)
def title_letters(key: str) -> str:
    """A `normalize_title` key's letters and digits as two sources of one title agree on them: no
    spaces (a PDF's "L OW-RANK") and, word by word, no letters a ligature stands for ("Efficient",
    "E cient"); so a title's first words give the beginning of its letters."""
    return "".join(_word_letters(word) for word in key.split())


def _name_cuts(words: list[str], longest: int) -> Iterator[str]:
    """The letters of a title's first words at each cut after which only names follow (words, no
    stop word: a PDF's authors), up to `longest` letters: where a title it runs on from would end."""
    last_stop = max((i for i, word in enumerate(words) if word in STOPWORDS), default=-1)
    so_far = ""
    for n, word in enumerate(words[:-1], start=1):
        so_far += _word_letters(word)
        if len(so_far) > longest:
            return
        if n > last_stop:
            yield so_far


def _runs_on_from(letters: str, words: list[str]) -> bool:
    """Whether a title of `words` is one of `letters` with names run on (`_name_cuts`)."""
    return letters in _name_cuts(words, len(letters))


def same_paper_titles(one: str, other: str) -> bool:
    """Whether two titles are one paper's as two sources wrote them: the same letters and digits
    once spaces and ligatures are set aside (`title_letters`), or one running on past the other,
    from a word's start, with names, not title words (a PDF's title with its authors after it: no
    stop word in what runs on, and the shorter of TWIN_WORDS words or more; "Attention Is All You
    Need In Speech Separation" is another paper). A title with no letter or digit is no one's twin.
    Titles alone cannot tell a sequel ("Textbooks Are All You Need II: phi-1.5 ...") from names run
    on: `TitlesHeld` and `Searcher.survey_records_of` also weigh arXiv ids."""
    keys = normalize_title(one), normalize_title(other)
    (short, letters), (long, long_letters) = sorted(((k, title_letters(k)) for k in keys), key=lambda t: len(t[1]))
    if not letters:
        return False
    if letters == long_letters:
        return True
    if len(short.split()) < TWIN_WORDS or not long_letters.startswith(letters):
        return False
    return _runs_on_from(letters, long.split())


# A title read from a PDF may run on into its authors ("... Language Models Liang Li, Qingyuan
# Li, Bo Zhang"): names are capitalised words, an initial ("Z."), between commas and "and"s.
_NAME_SEPARATOR = re.compile(r"\s*,\s*(?:and\s+)?|\s+and\s+")
_NAME_WORD = re.compile(r"[A-Z]\.|[A-Z][A-Za-z'’.-]*[a-z][A-Za-z'’.-]*")
_INITIAL = re.compile(r"[A-Z]\.")


def _is_name(part: str, shortest: int = 2) -> bool:
    words = part.split()
    return shortest <= len(words) <= 4 and all(_NAME_WORD.fullmatch(word) for word in words)


def _cut_short(part: str) -> bool:
    """The last name of a list a PDF's text ran on: maybe cut short ("Zhifeng") or garbled by an
    accent it set apart ("Christopher R´ e"), still a capitalised start of four words at most."""
    return 1 <= len(part.split()) <= 4 and bool(_NAME_WORD.fullmatch(part.split()[0]))


def title_without_authors(title: str) -> str:
    """`title` without the authors' names a PDF's text ran on after it, for what is written for
    others (a line proposed to a list). Only a list of names is cut: after the title's last words,
    names of two to four capitalised words (or initials), the first two set apart by a comma (an
    author list's), the last perhaps cut short (`_cut_short`); the first name as long as most of
    the others. "Sparse, Dense, and Attentional Representations for Text Retrieval" and "... via
    Recursive Subsampling and Data Pruning" stay whole, as does a subtitle (after a colon)."""
    text = title.strip().rstrip(",").rstrip()
    separators = list(_NAME_SEPARATOR.finditer(text))
    starts = [0, *(m.end() for m in separators)]
    parts = [text[start:end] for start, end in zip(starts, [*(m.start() for m in separators), len(text)], strict=True)]
    at = len(parts) - 1  # the part holding the title's end and the first name
    while at > 0 and (_is_name(parts[at]) or (at == len(parts) - 1 >= 2 and _cut_short(parts[at]))):
        at -= 1
    lengths = Counter(len(part.split()) for part in parts[at + 1 :] if _is_name(part))
    if not lengths or "," not in separators[at].group():
        return title
    most = max(lengths.values())
    size = min(length for length, count in lengths.items() if count == most)
    words = parts[at].split()
    if len(words) > size and _INITIAL.fullmatch(words[-size]):  # "Frank F. Xu": the initial is a middle one
        size += 1
    kept, first_name = words[:-size], words[-size:]
    if len(kept) < 3 or kept[-1].endswith(":") or not all(_NAME_WORD.fullmatch(word) for word in first_name):
        return title
    return text[: starts[at]] + parts[at].rsplit(None, size)[0]


class TitlesHeld:
    """Papers held by title (a list's, a result list's), asked whether a paper is one of them: the
    same `normalize_title` key or letters (`title_letters`), or, unless `strict`, a title of the
    same paper with names run on (`same_paper_titles`); never a paper whose arXiv id differs from
    the one held (phi-1.5's title runs on from phi-1's with no stop word). Looked up by letters, by
    the beginnings of a title at each word and by a sorted range for the titles a title begins: a
    few lookups, not a comparison with every title held. A result list is `strict`: a title that
    runs on from another is the same paper there only by the survey's word (`survey_records_of`)."""

    def __init__(self, papers=(), *, strict: bool = False):
        self.strict = strict
        self.keys: set[str] = set()  # the titles' `normalize_title` keys
        self._by_letters: dict[str, list[tuple[str, str | None, str]]] = {}  # letters -> (title, id, key)
        self._sorted: list[str] = []
        self._unsorted = False
        self._longest = 0  # letters of the longest title held: where a look-up can stop
        for title, arxiv_id in papers:
            self.add(title, arxiv_id)

    def add(self, title: str, arxiv_id: str | None = None) -> None:
        key = normalize_title(title)
        self.keys.add(key)
        letters = title_letters(key)
        if letters:
            if letters not in self._by_letters:
                self._sorted.append(letters)
                self._unsorted = True
                self._longest = max(self._longest, len(letters))
            self._by_letters.setdefault(letters, []).append((title, arxiv_id, key))

    def find(self, title: str, arxiv_id: str | None = None) -> str | None:
        """The title held of `title`'s paper (with the arXiv id `arxiv_id`, if known), if any."""
        key = normalize_title(title)
        letters = title_letters(key)
        if not letters:  # no letter or digit: nothing to tell one paper by
            return None

        def fits(held_id: str | None) -> bool:
            return held_id is None or arxiv_id is None or held_id == arxiv_id

        same = [t for t, i, _ in self._by_letters.get(letters, ()) if fits(i)]  # the same key, or letters
        if same or self.strict:
            return same[0] if same else None
        words = key.split()
        for cut in _name_cuts(words, self._longest):  # a title held that this one runs on from
            for t, i, held_key in self._by_letters.get(cut, ()):
                if fits(i) and len(held_key.split()) >= TWIN_WORDS:
                    return t
        if len(words) < TWIN_WORDS:
            return None
        if self._unsorted:
            self._sorted.sort()
            self._unsorted = False
        at = bisect.bisect_right(self._sorted, letters)  # titles held that run on from this one
        while at < len(self._sorted) and self._sorted[at].startswith(letters):
            for t, i, held_key in self._by_letters[self._sorted[at]]:
                if fits(i) and _runs_on_from(letters, held_key.split()):
                    return t
            at += 1
        return None

    def __contains__(self, paper: tuple[str, str | None]) -> bool:
        return self.find(*paper) is not None


WEB_SCHEMES = ("http", "https")
YEARS = (1900, 2100)  # a paper's year, as every door takes it
# What `str.isspace` calls whitespace (re's \s is the same set) and the C0 controls and DEL: one
# scan in C, since every paper read from a store passes here.
_UNSAFE_IN_URL = re.compile(r"[\s\x00-\x1f\x7f]")


def web_url(value: str | None) -> str | None:
    """`value` if it is an http(s) URL with a host, else None: the one rule for every link a paper
    carries, whatever source brought it (a `javascript:` or `data:` link would run in the page that
    shows it). Whitespace and control characters are refused too: browsers drop them inside a
    scheme, so `java\tscript:` would otherwise slip through."""
    if not isinstance(value, str) or _UNSAFE_IN_URL.search(value):
        return None
    scheme, sep, rest = value.partition("://")
    if not sep or scheme.lower() not in WEB_SCHEMES or not rest or rest[0] in "/?#:":  # ":" a port, no host
        return None
    if "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]:  # "https://arxiv.org@evil.example" goes to evil.example
        return None
    return value


def service_address(value: str | None) -> str | None:
    """`value` if it can be the base of requests to a service (a web link by `web_url`, whose host,
    and port if given, parse, from 1 to 65535, with no query or fragment for a path or query to be
    appended to), else None. `SEMSEARCH_ARXIV_URL=http://127.0.0.1:99999/api` or `http://[::1` passed
    the link rule and were retried for 46 s as arXiv's failure; a fragment swallowed the query. The
    address must also parse for urllib3, which makes the requests: `http://[v1.fe]/` or a soft
    hyphen in the host passed urlsplit and were retried as arXiv's failure in the same way."""
    from urllib.parse import urlsplit

    from urllib3.exceptions import LocationParseError
    from urllib3.util import parse_url

    if web_url(value) is None:
        return None
    try:
        parts = urlsplit(value)
        port = parts.port
        parse_url(value)
    except (ValueError, LocationParseError):  # an unclosed IPv6 bracket, a port out of range, a host urllib3 refuses
        return None
    # "#" even with nothing after it: `...query#` sent no search at all (the query went into the fragment).
    if not parts.hostname or port == 0 or parts.query or "#" in value:
        return None
    return value


# C0 and C1 controls, DEL, the bidirectional overrides, isolates and marks, zero-width spaces and
# Unicode's line separators: in a title from a PDF or a hostile record they would ring the terminal,
# colour it, show text in another order, hide in a word or break a line. (The zero-width joiners
# stay: scripts such as Persian need them.) And lone surrogates (JSON's "\ud800"), which no UTF-8
# text can hold: storing one was a traceback.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff\ud800-\udfff]"
)


def printable(text: str) -> str:
    """`text` with control characters as spaces (and then its white space collapsed); a stored
    text without them is kept as it came."""
    return " ".join(_CONTROL.sub(" ", text).split()) if _CONTROL.search(text) else text


def counted(n: int | str, noun: str) -> str:
    """A count as a sentence says it: "1 paper", "2 papers", "no papers" (a noun whose plural
    takes an s)."""
    return f"{n} {noun}{'' if n == 1 else 's'}"


def one_line(text: str) -> str:
    """`text` as one line of printable characters: everything else (line breaks, controls, format
    characters such as zero-width spaces) a space, white space collapsed. For what a user types,
    and for a line written into a list."""
    return " ".join("".join(c if c.isprintable() else " " for c in text).split())


_LINE = re.compile(r"[^\n]*\n|[^\n]+\Z")


def split_lines(text: str, *, keepends: bool = False) -> list[str]:
    """The lines of a file as git and JSON Lines count them: each ends at a line feed ("\r\n"
    is one ending). `str.splitlines` also breaks at form feeds, U+2028 and other separators a JSON
    string or a README line may hold: a valid JSON line was refused, a question file answered more
    questions than it had lines, and a patch's line numbers missed the file."""
    if keepends:
        return _LINE.findall(text)
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def embedding_text(title: str, abstract: str) -> str:
    """What the model reads: the title, then the abstract when there is one."""
    title, abstract = " ".join(title.split()), " ".join(abstract.split())
    return f"{title}. {abstract}" if abstract else title


def _in_years(date: str | None) -> str | None:
    """`date` (ISO, from YYYY), or None when its year is outside YEARS."""
    year = date[:4] if isinstance(date, str) else ""
    return None if year.isascii() and year.isdigit() and not YEARS[0] <= int(year) <= YEARS[1] else date


@dataclass
class Paper:
    id: str
    title: str
    abstract: str = ""
    authors: list[str] = field(default_factory=list)
    published: str | None = None  # ISO date of the first version
    updated: str | None = None  # ISO date of the latest version
    arxiv_categories: list[str] = field(default_factory=list)
    survey_categories: list[str] = field(default_factory=list)
    venue: str | None = None
    year: int | None = None
    url: str | None = None
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        # Every source, and every row read back from an index written before this rule, passes
        # here: a paper never carries a link other than http(s). Sources that can name the bad
        # input (a JSON Lines line) refuse it before this point, with its line and field.
        if self.url is not None and web_url(self.url) is None:
            self.url = None
        # Likewise no control character reaches a terminal, a page or a BibTeX file from a paper.
        self.title, self.abstract = printable(self.title), printable(self.abstract)
        self.authors = [printable(name) for name in self.authors]
        if self.venue is not None:
            self.venue = printable(self.venue)
        if self.year is not None and not YEARS[0] <= self.year <= YEARS[1]:
            self.year = None  # a date read as year 1 or 99999 is no year to show, filter or cite
        # Nor a date in such a year: an arXiv entry "published" in 9999 headed every feed of the newest
        # papers for good and passed every `--since`.
        self.published, self.updated = _in_years(self.published), _in_years(self.updated)

    @property
    def arxiv_id(self) -> str | None:
        return parse_arxiv_id(self.id)

    @property
    def appeared(self) -> str | None:
        return appeared(self.arxiv_id, self.published)

    def embedding_text(self) -> str:
        return embedding_text(self.title, self.abstract)

    def text_hash(self, model: str) -> str:
        return hashlib.sha1(f"{model}\n{self.embedding_text()}".encode()).hexdigest()

    def link(self) -> str | None:
        if self.url:
            return self.url
        arxiv_id = self.arxiv_id
        return f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else None

    def merged_with(self, newer: Paper) -> Paper:
        """This paper updated by another record of it: the later record's non-empty values win,
        sources accumulate. A record last updated before this one (an old snapshot read again) only
        fills what this one lacks: it brought a replaced title and abstract back."""
        older = bool(self.updated and newer.updated and newer.updated < self.updated)
        first, last = (newer, self) if older else (self, newer)
        merged = first.to_dict()
        for key, value in last.to_dict().items():
            if key == "sources":
                merged[key] = sorted(set(self.sources) | set(value))
            elif value not in (None, "", []):
                merged[key] = value
        return Paper(**merged)

    def to_dict(self) -> dict:
        """Its fields, shallow (asdict's deep copy costs more than storing the paper)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
