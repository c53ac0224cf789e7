"""Atom feeds (RFC 4287): the newest papers under a node of a taxonomy, and the digests of watches,
so a researcher follows "KV-Cache Optimization" in the feed reader they already use.

`semsearch serve` answers them at `/feeds/{taxonomy}/{node path}.atom` and `/feeds/digests.atom`.
The XML is written by ElementTree (every title and abstract escaped), with the characters XML 1.0
cannot carry removed first: a paper's text comes from PDFs and arXiv and may hold any of them.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote
from xml.etree import ElementTree as ET

from semsearch.paper import Paper, counted

ATOM = "http://www.w3.org/2005/Atom"
MAX_ENTRIES = 50
SUMMARY_CHARS = 600
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")  # C1 too: readers map them
EPOCH = "1970-01-01T00:00:00Z"


@dataclass
class Entry:
    id: str
    title: str
    updated: str  # RFC 3339
    link: str | None = None
    summary: str = ""
    authors: list[str] = field(default_factory=list)
    categories: list[str] = field(default_factory=list)


def xml_text(text: str | None) -> str:
    """`text` as XML 1.0 can carry it (control characters and lone surrogates removed)."""
    return _NOT_XML.sub("", text or "")


def rfc3339(date: str | None) -> str:
    """An ISO date or time ("2024-01-02", "2024-01-02T10:00:00Z") as Atom wants it; the epoch when
    there is none or it names no real day and time: an undated paper is sorted as "0000-00-00",
    which was written as it was (a feed reader read 30 November of the year -1)."""
    text = (date or "").strip()
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        moment = f"{text}T00:00:00Z"
    elif re.fullmatch(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?(Z|[+-][0-9]{2}:[0-9]{2})", text
    ):
        moment = text
    elif re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}", text):
        moment = text.replace(" ", "T") + "Z"
    else:
        return EPOCH
    try:
        datetime.strptime(moment[:19], "%Y-%m-%dT%H:%M:%S")  # a real day (year 1 on), hour, minute
    except ValueError:
        return EPOCH
    return moment


def atom(*, feed_id: str, title: str, self_url: str, page_url: str, entries: Sequence[Entry]) -> bytes:
    """The feed as UTF-8 XML."""
    ET.register_namespace("", ATOM)
    feed = ET.Element(f"{{{ATOM}}}feed")

    def add(parent: ET.Element, tag: str, text: str | None = None, **attributes: str) -> ET.Element:
        child = ET.SubElement(parent, f"{{{ATOM}}}{tag}", {k: xml_text(v) for k, v in attributes.items()})
        if text is not None:
            child.text = xml_text(text)
        return child

    add(feed, "id", feed_id)
    add(feed, "title", title)
    add(feed, "updated", max((e.updated for e in entries), default=EPOCH))
    add(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    add(feed, "link", rel="alternate", href=page_url, type="text/html")
    add(add(feed, "author"), "name", "semsearch")
    add(feed, "generator", "semsearch")
    for item in entries:
        entry = add(feed, "entry")
        add(entry, "id", item.id)
        add(entry, "title", xml_text(item.title).strip() or item.id)  # a title of control characters only
        add(entry, "updated", item.updated)
        if item.link:
            add(entry, "link", rel="alternate", href=item.link)
        for name in item.authors[:20]:
            add(add(entry, "author"), "name", name)
        for category in item.categories:
            add(entry, "category", term=category)
        if item.summary:
            add(entry, "summary", item.summary)
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)


def paper_entry(paper: Paper, base_url: str, categories: Iterable[str] = ()) -> Entry:
    from semsearch.propose import paper_date

    arxiv_id = paper.arxiv_id
    summary = " ".join(paper.abstract.split())
    if len(summary) > SUMMARY_CHARS:
        summary = summary[: SUMMARY_CHARS - 1].rsplit(" ", 1)[0] + "…"
    return Entry(
        id=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else f"{base_url}paper/{quote(paper.id, safe='')}",
        title=" ".join(paper.title.split()),
        updated=rfc3339(paper_date(paper)),  # the day it appeared: what the feed is ordered by
        link=paper.link() or f"{base_url}paper/{quote(paper.id, safe='')}",
        summary=summary,
        authors=list(paper.authors),
        categories=list(categories),
    )


def node_feed(taxonomy: str, node: str, papers: Iterable[Paper], base_url: str) -> bytes:
    """The newest MAX_ENTRIES papers under `node` (by the day they appeared)."""
    from semsearch.propose import paper_date

    newest = sorted(papers, key=lambda p: (paper_date(p), p.id), reverse=True)[:MAX_ENTRIES]
    path = quote(node, safe="/")
    return atom(
        feed_id=f"{base_url}feeds/{quote(taxonomy)}/{path}.atom",
        title=f"semsearch: {node.rsplit('/', 1)[-1]} ({taxonomy})",
        self_url=f"{base_url}feeds/{quote(taxonomy)}/{path}.atom",
        page_url=f"{base_url}?view=node&category={quote(node, safe='')}"  # the page reads `category`
        + (f"&taxonomy={quote(taxonomy)}" if taxonomy != "survey" else ""),
        entries=[paper_entry(p, base_url, [node]) for p in newest],
    )


def digests_feed(digests: Iterable[dict], base_url: str, taxonomy: str | None = None) -> bytes:
    """One entry a digest with papers in scope (newest first), at most MAX_ENTRIES: `digests` is read
    no further than that. Each entry: its window and those papers by node.
    A watch that found none is no news (a feed reader showed "0 new papers" every day). `taxonomy`:
    the digests of a curated list's watch (`watch --taxonomy NAME`)."""
    kind = f"taxonomy={quote(taxonomy)}" if taxonomy not in (None, "survey") else ""
    entries = []
    for digest in digests:
        lines = [
            f"{item['title']} ({item.get('id', '')})" for items in digest.get("groups", {}).values() for item in items
        ]
        count = digest.get("papers", len(lines))
        if not count:
            continue
        entries.append(
            Entry(
                id=f"{base_url}api/digests/{quote(digest['name'])}" + (f"?{kind}" if kind else ""),
                title=f"{counted(count, 'new paper')}, {digest.get('window') or digest['name']}",
                # A window read on by a later watch grows: its entry is news again from then.
                updated=rfc3339(digest.get("revised") or _stamp_time(digest.get("until", ""))),
                link=f"{base_url}?view=digest&name={quote(digest['name'])}" + (f"&{kind}" if kind else ""),
                summary="\n".join(lines[:100]),
            )
        )
        if len(entries) == MAX_ENTRIES:  # full: the digests after it are not read
            break
    return atom(
        feed_id=f"{base_url}feeds/digests.atom" + (f"?{kind}" if kind else ""),
        title="semsearch: new papers from arXiv (digests" + (f" for {taxonomy})" if kind else ")"),
        self_url=f"{base_url}feeds/digests.atom" + (f"?{kind}" if kind else ""),
        page_url=f"{base_url}?view=digest" + (f"&{kind}" if kind else ""),
        entries=entries,
    )


def _stamp_time(stamp: str) -> str:
    """A digest's YYYYMMDDHHMM stamp as an ISO time."""
    if re.fullmatch(r"\d{12}", stamp or ""):
        return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[8:10]}:{stamp[10:12]}:00Z"
    return stamp
