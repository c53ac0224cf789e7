"""The paper record shared by every source, and the rules for arXiv identifiers."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field, fields

from semsearch.lexical import STOPWORDS

# ASCII digits only: `\d` also takes other scripts' digits, and "２３０６.００９７８" became an id
# no arXiv page has (a question is put in compatibility form first, where it is 2306.00978).
_NEW_ID = re.compile(r"^([0-9]{4}\.[0-9]{4,5})(v[0-9]+)?$")
_OLD_ID = re.compile(r"^([a-z][a-z\-]*(?:\.[A-Z]{2})?/[0-9]{7})(v[0-9]+)?$")
# `arXiv:`, arXiv's DOI (`10.48550/arXiv.`, also as a doi.org link), and its abs, pdf and html pages
# (with or without the scheme).
_ID_PREFIXES = re.compile(
    r"^(?:arxiv:|(?:https?://(?:dx\.)?doi\.org/)?10\.48550/arxiv\.|(?:https?://)?(?:export\.|www\.)?arxiv\.org/(?:abs|pdf|html)/)",
    re.IGNORECASE,
)


def parse_arxiv_id(value: str) -> str | None:
    """The versionless arXiv id in `value` (a bare id, `arXiv:...`, arXiv's DOI, or an abs, pdf or
    html URL, its query or fragment aside), else None."""
    text = _ID_PREFIXES.sub("", value.strip())
    if text != value.strip():  # a URL's query or fragment ("?context=cs") is not part of the id
        text = re.split(r"[?#]", text, maxsplit=1)[0]
    text = text.removesuffix(".pdf")
    for pattern in (_NEW_ID, _OLD_ID):
        match = pattern.match(text)
        if match:
            return match.group(1)
    return None


def year_from_arxiv_id(arxiv_id: str) -> int | None:
    """Submission year encoded in a new-style id (YYMM.NNNNN) or old-style id (archive/YYMMNNN)."""
    digits = arxiv_id.split("/")[-1]
    if len(digits) < 4 or not digits[:2].isdigit():
        return None
    yy = int(digits[:2])
    return (1900 if yy >= 91 else 2000) + yy


def normalize_title(title: str) -> str:
    """Lower-case alphanumerics only: the key used to recognise one paper under two ids. Letters
    are compared without accents; a title with no Latin letter or digit at all (a Chinese one) keys
    on its own letters, or every such title would share the empty key and be one paper."""
    text = unicodedata.normalize("NFKD", title).lower()
    key = re.sub(r"[^a-z0-9]+", " ", text).strip()
    return key or " ".join(re.findall(r"[^\W_]+", unicodedata.normalize("NFKC", title).casefold()))


TWIN_WORDS = 4  # a title that another runs on from with names is the same paper's, from this long
TWIN_BUCKET = 6  # letters two titles of one paper begin with alike (four words or more, or the same letters)


def same_paper_titles(one: str, other: str) -> bool:
    """Whether two titles are one paper's as two sources wrote them: the same letters and digits
    once spaces are ignored (a PDF's "L OW-RANK A DAPTATION"), or one running on past the other
    with names, not title words (a PDF's title with its authors after it: no stop word in what runs
    on, and the shorter of TWIN_WORDS words or more; "Attention Is All You Need In Speech Separation"
    is another paper). Over every pair of the dev index's 1,855 titles: 7 pairs, each one paper
    twice. Related work leaves the other record out, search shows one, and a list holding one is not
    proposed the other."""
    short, long = sorted((normalize_title(one), normalize_title(other)), key=len)
    letters = short.replace(" ", "")
    if letters == long.replace(" ", ""):
        return True
    if len(short.split()) < TWIN_WORDS:
        return False
    if not long.replace(" ", "").startswith(letters):
        return False
    end = [i for i, char in enumerate(long) if char != " "][len(letters) - 1]  # spaces may fall elsewhere
    if not long[end + 1 :].startswith(" "):  # what runs on begins a word: "variant 10" is not "variant 100"'s
        return False
    runs_on = long[end + 1 :].split()
    return bool(runs_on) and not any(word in STOPWORDS for word in runs_on)


class TitlesHeld:
    """Titles held (a list's, a result list's), asked whether a paper's title is one of them as any
    source writes it: the same `normalize_title` key, or a twin by `same_paper_titles` (a PDF's
    spacing, its authors run on). Twins begin with the same letters, so only the titles sharing a
    title's first TWIN_BUCKET letters are compared."""

    def __init__(self, titles=()):
        self.keys: dict[str, str] = {}
        self.buckets: dict[str, list[tuple[str, str]]] = {}
        for title in titles:
            self.add(title)

    def add(self, title: str) -> None:
        key = normalize_title(title)
        self.keys.setdefault(key, title)
        letters = key.replace(" ", "")
        self.buckets.setdefault(letters[:TWIN_BUCKET], []).append((letters, title))

    def find(self, title: str) -> str | None:
        """The title held that is `title`'s paper's, if any."""
        key = normalize_title(title)
        if key in self.keys:
            return self.keys[key]
        letters = key.replace(" ", "")
        if len(letters) < TWIN_BUCKET:  # a short title may begin any longer one: every title is compared
            near = [pair for bucket in self.buckets.values() for pair in bucket]
        else:  # a longer one: the titles filed under its first letters, a shorter title under all of its own
            near = [pair for n in range(TWIN_BUCKET + 1) for pair in self.buckets.get(letters[:n], ())]
        return next(
            (
                other
                for held, other in near
                if (letters.startswith(held) or held.startswith(letters)) and same_paper_titles(other, title)
            ),
            None,
        )

    def __contains__(self, title: str) -> bool:
        return self.find(title) is not None


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
    if not sep or scheme.lower() not in WEB_SCHEMES or not rest or rest[0] in "/?#":
        return None
    if "@" in re.split(r"[/?#]", rest, maxsplit=1)[0]:  # "https://arxiv.org@evil.example" goes to evil.example
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

    @property
    def arxiv_id(self) -> str | None:
        return parse_arxiv_id(self.id)

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
        """This paper updated by a newer record of it: non-empty new values win, sources accumulate."""
        merged = self.to_dict()
        for key, value in newer.to_dict().items():
            if key == "sources":
                merged[key] = sorted(set(self.sources) | set(value))
            elif value not in (None, "", []):
                merged[key] = value
        return Paper(**merged)

    def to_dict(self) -> dict:
        """Its fields, shallow (asdict's deep copy costs more than storing the paper)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
