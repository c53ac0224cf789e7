"""JSON Lines in the arXiv metadata-snapshot form, streamed one line at a time.

Fields read: `id`, `title`, `abstract`, and when present `authors` (string or list),
`authors_parsed`, `categories` (space-separated string or list), `update_date`, `versions`.
Everything else is ignored, so a real snapshot and smaller exports read the same way.
"""

from __future__ import annotations

import gzip
import json
import sys
from collections.abc import Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from semsearch.errors import SemsearchError
from semsearch.paper import Paper, parse_arxiv_id, year_from_arxiv_id

T = TypeVar("T")

SOURCE = "jsonl"


class MalformedLine(SemsearchError):
    pass


class Cursor:
    """Byte offset just past the last line read, so that an interrupted ingest can resume there."""

    def __init__(self, offset: int = 0, records: int = 0):
        self.offset = offset
        self.records = records  # non-blank lines read: a record's row in a --vectors file


def check_readable(path: Path) -> None:
    if path.is_dir():
        raise SemsearchError(f"cannot read {path}: it is a directory")
    if not path.is_file():
        raise SemsearchError(f"cannot read {path}: no such file")
    try:
        with _open(path) as handle:
            handle.read(1)
    except (OSError, UnicodeDecodeError) as err:
        raise SemsearchError(f"cannot read {path}: {err}") from None


def _open(path: Path, mode: str = "rt"):
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8") if "t" in mode else gzip.open(path, mode)
    return path.open(mode, encoding="utf-8") if "t" in mode else path.open(mode)


def read_records(path: Path, parse: Callable[[dict], T], expected: str) -> list[T]:
    """`parse` applied to each JSON object of a small JSON Lines file ('-': standard input):
    questions, labels, papers to classify, expected categories. A line it cannot take is one error
    naming the file and line (`expected` says what a line should hold). Papers to index, which can
    be millions, are streamed by `read_jsonl` instead."""
    if str(path) == "-":
        lines = sys.stdin.read().splitlines()
    else:
        check_readable(Path(path))
        with _open(Path(path), "rt") as handle:
            lines = handle.read().splitlines()
    rows = []
    for number, line in enumerate(lines, start=1):
        if line.strip():
            try:
                record = json.loads(line)
                if not isinstance(record, dict):
                    raise ValueError
                rows.append(parse(record))
            except SemsearchError as err:
                raise SemsearchError(f"{path}:{number}: {err}") from None
            except (ValueError, KeyError, TypeError, AttributeError):
                raise SemsearchError(f"{path}:{number}: expected {expected}") from None
    if not rows:
        raise SemsearchError(f"{path}: nothing to read")
    return rows


def first_record(path: Path) -> dict | None:
    """The first record of a JSON Lines file (None if it has none or it is not an object)."""
    with _open(path, "rb") as handle:
        for raw in handle:
            if raw.strip():
                try:
                    record = json.loads(raw)
                except ValueError:
                    return None
                return record if isinstance(record, dict) else None
    return None


def read_jsonl(
    path: Path,
    *,
    skip_malformed: bool = False,
    warn: Callable[[str], None] = lambda message: None,
    categories: set[str] | None = None,
    since: str | None = None,
    cursor: Cursor | None = None,
    progress: bool = False,
    with_vectors: bool = False,
) -> Iterator[Paper]:
    """Yield the papers in `path`; a malformed line stops the stream, or is reported and skipped.
    With a cursor, reading starts at its offset and the cursor follows each line read. With
    `with_vectors`, yield (paper, record) pairs instead, for a precomputed embedding (`embedding`,
    `embedding_model`) or the record's place in the file (`cursor.records` counts the records)."""
    cursor = cursor or Cursor()
    bar = None
    if progress:
        from tqdm import tqdm

        size = path.stat().st_size if path.suffix != ".gz" else None
        bar = tqdm(
            total=size,
            initial=cursor.offset if size else 0,
            unit="B",
            unit_scale=True,
            desc=f"reading {path.name}",
            file=sys.stderr,
            dynamic_ncols=True,
            position=1,
        )
    try:
        with _open(path, "rb") as handle:
            handle.seek(cursor.offset)
            line_number = 0 if cursor.offset == 0 else None  # line numbers are unknown after a resume
            for raw in handle:
                cursor.offset += len(raw)
                if bar is not None:
                    bar.update(len(raw))
                if line_number is not None:
                    line_number += 1
                line = raw.decode("utf-8", errors="replace")
                if not line.strip():
                    continue
                cursor.records += 1
                try:
                    record = json.loads(line)
                    paper = paper_from_record(record)
                except (ValueError, TypeError, KeyError) as err:
                    location = line_number if line_number is not None else f"byte {cursor.offset - len(raw)}"
                    message = f"{path}:{location}: {err}"
                    if not skip_malformed:
                        raise MalformedLine(message + " (use --skip-malformed to continue past such lines)") from None
                    warn(message)
                    continue
                if categories and not categories.intersection(paper.arxiv_categories):
                    continue
                if since and (paper.updated or paper.published or "") < since:
                    continue
                yield (
                    (paper, {**record, "_line": line_number, "_ordinal": cursor.records - 1}) if with_vectors else paper
                )
    finally:
        if bar is not None:
            bar.close()


def paper_from_record(record: dict) -> Paper:
    if not isinstance(record, dict):
        raise ValueError("expected a JSON object")
    raw_id = str(record.get("id") or "").strip()
    title = " ".join(str(record.get("title") or "").split())
    if not raw_id:
        raise ValueError("missing 'id'")
    if not title:
        raise ValueError("missing 'title'")
    arxiv_id = parse_arxiv_id(raw_id)
    categories = record.get("categories") or []
    if isinstance(categories, str):
        categories = categories.split()
    published = _first_version_date(record.get("versions"))
    updated = record.get("update_date") or None
    return Paper(
        id=arxiv_id or raw_id,
        title=title,
        abstract=" ".join(str(record.get("abstract") or "").split()),
        authors=_authors(record),
        published=published,
        updated=updated,
        arxiv_categories=list(categories),
        year=(year_from_arxiv_id(arxiv_id) if arxiv_id else None) or _year(published or updated),
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else record.get("url"),
        sources=[SOURCE],
    )


def _authors(record: dict) -> list[str]:
    parsed = record.get("authors_parsed")
    if isinstance(parsed, list) and parsed:
        return [" ".join(part for part in (name[1], name[0]) if part) for name in parsed if name]
    authors = record.get("authors") or []
    if isinstance(authors, str):
        authors = authors.replace(" and ", ", ").split(",")
    return [a.strip() for a in authors if str(a).strip()]


def _first_version_date(versions) -> str | None:
    if not isinstance(versions, list) or not versions:
        return None
    try:
        return parsedate_to_datetime(versions[0]["created"]).date().isoformat()
    except (KeyError, TypeError, ValueError):
        return None


def _year(date: str | None) -> int | None:
    return int(date[:4]) if date and date[:4].isdigit() else None
