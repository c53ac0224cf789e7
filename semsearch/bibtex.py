"""BibTeX entries for papers: @article for arXiv preprints, @inproceedings when the survey names a venue."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from semsearch.paper import Paper, title_without_authors

_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    # BibTeX counts every brace, escaped or not, to find a field's end: a lone `\}` still closed it.
    "{": r"\textbraceleft{}",
    "}": r"\textbraceright{}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}
_STOP = {"a", "an", "the", "on", "of", "for", "to", "in", "and", "with", "towards", "toward", "is", "are", "via"}
PREPRINT_VENUES = {"", "arxiv", "corr"}


_ARXIV_CATEGORY = re.compile(r"[a-z][a-z\-]*(\.[A-Za-z\-]+)?")
# A URL keeps its meaning with these percent-encoded, and can then never close its field.
_URL_UNSAFE = {"{": "%7B", "}": "%7D", "\\": "%5C"}


def escape(text: str) -> str:
    """LaTeX-safe text: special characters escaped, whitespace folded."""
    return "".join(_SPECIAL.get(ch, ch) for ch in " ".join(text.split()))


def _author(name: str) -> str:
    """One author's name, braced (one name, as written) when BibTeX would not read it as one: it
    holds the word "and" ("Alice and Injected Author" became two authors), or more than one comma
    ("Last, First" is a name; "Z, Y, X, W" was an entry no parser could read)."""
    shown = escape(name)
    return "{" + shown + "}" if re.search(r"\band\b", shown, re.IGNORECASE) or shown.count(",") > 1 else shown


# Latin letters Unicode does not decompose into an ASCII letter and a mark: without these, NFKD
# and ASCII lost them whole (Łukasiewicz keyed as "ukasiewicz", Strauß as "strau").
_LETTERS = str.maketrans(
    {"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "ħ": "h", "Ħ": "H",
     "ı": "i", "ß": "ss", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "þ": "th", "Þ": "Th", "ŧ": "t", "Ŧ": "T"}
)  # fmt: skip


def _ascii_word(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text.translate(_LETTERS)).encode("ascii", "ignore").decode()
    return re.sub(r"[^a-z0-9]", "", plain.lower())


NO_AUTHOR = "anon"  # the surname part of a key when the index has no authors (a titles-only, offline survey)


def citation_key(paper: Paper) -> str:
    """One rule: the first author's surname (its letters), the year, the first significant title
    word (one that begins with a letter), in ASCII lower case: frantar2023gptq. Without authors the surname is `anon`
    (anon2023gptq); without a year it is left out; a title with no significant word gives `paper`.
    Stable for a paper as it is stored (an ingest that brings its authors turns anon into them)."""
    names = paper.authors[0].split() if paper.authors else []
    surname = "".join(c for c in _ascii_word(names[-1]) if c.isalpha()) if names else ""  # letters: the year follows
    words = [_ascii_word(w) for w in re.split(r"[\s\-:/]+", paper.title)]
    # A word that begins with a digit ("4-bit", "70B") would run into the year: hopper20264.
    first = next((w for w in words if w and w not in _STOP and w[0].isalpha()), "paper")
    return f"{surname or NO_AUTHOR}{paper.year or ''}{first}"


def bibtex_entry(paper: Paper, key: str) -> str:
    venue = (paper.venue or "").strip()
    arxiv_id = paper.arxiv_id
    published = venue.lower() not in PREPRINT_VENUES
    fields: list[tuple[str, str]] = [("title", "{" + escape(title_without_authors(paper.title)) + "}")]
    if paper.authors:
        fields.append(("author", " and ".join(_author(a) for a in paper.authors)))
    if published:
        fields.append(("booktitle", escape(venue)))
    elif arxiv_id:
        fields.append(("journal", f"arXiv preprint arXiv:{arxiv_id}"))
    if paper.year:
        fields.append(("year", str(paper.year)))
    if arxiv_id:
        fields += [("eprint", arxiv_id), ("archivePrefix", "arXiv")]
        if paper.arxiv_categories and _ARXIV_CATEGORY.fullmatch(paper.arxiv_categories[0]):
            fields.append(("primaryClass", paper.arxiv_categories[0]))  # what a record says it is, if it is one
    if link := paper.link():
        fields.append(("url", "".join(_URL_UNSAFE.get(ch, ch) for ch in link)))
    kind = "inproceedings" if published else ("article" if arxiv_id else "misc")
    body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
    return f"@{kind}{{{key},\n{body}\n}}\n"


def _suffix(n: int) -> str:
    """Letters for the n-th repeat of a key (n ≥ 1): b … z, then ba, bb, … (never a character a
    key may not hold)."""
    letters = ""
    while True:
        n, r = divmod(n, 26)
        letters = chr(ord("a") + r) + letters
        if n == 0:
            return letters


def to_bibtex(papers: Iterable[Paper]) -> str:
    """Entries for `papers`, with keys made unique within the file (a second frantar2023gptq is …b)."""
    seen: dict[str, int] = {}
    used: set[str] = set()
    entries = []
    for paper in papers:
        base = key = citation_key(paper)
        while key in used:  # the n-th repeat of a key, or a suffixed key another paper already has
            seen[base] = seen.get(base, 0) + 1
            key = base + _suffix(seen[base])
        used.add(key)
        entries.append(bibtex_entry(paper, key))
    return "\n".join(entries)


def split_ids(values: Iterable[str] | None) -> list[str] | None:
    """Paper ids given as `a,b`, repeated, or both, in order (no id holds a comma). None stays None,
    so a request without ids is refused as "ids: Field required"."""
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]
