"""JSON Lines in the arXiv metadata-snapshot form, streamed one line at a time.

Every line is checked at the door against one schema (`Record`): the fields read are `id`,
`title`, `abstract`, and when present `authors` (string or list of strings), `authors_parsed`
(arXiv's [[last, first, suffix], ...]), `categories` (space-separated string or list),
`update_date`, `versions` ([{"created": date}, ...]), `doi`, `journal-ref`, `url` (http or https
only), `embedding` and `embedding_model`. A field of the wrong type makes the line malformed, named
by its line number and field, so a bad record is refused or reported, never stored half-read.
Fields not listed are ignored, so a real snapshot and smaller exports read the same way.
"""

from __future__ import annotations

import codecs
import gzip
import json
import re
import sys
import unicodedata
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from semsearch.errors import SemsearchError, missing_file
from semsearch.paper import Paper, parse_arxiv_id, split_lines, web_url, year_from_arxiv_id
from semsearch.requests_models import MAX_TITLE

T = TypeVar("T")

SOURCE = "jsonl"


class MalformedLine(SemsearchError):
    pass


class _Version(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    created: str | None = None


class Record(BaseModel):
    """One line of a JSON Lines file, as the engine reads it. Strict: a number is not a title, a
    list is not a date; null stands for absent."""

    model_config = ConfigDict(strict=True, extra="ignore", populate_by_name=True)

    id: str | int | None = None
    title: str | None = None
    abstract: str | None = None
    authors: str | list[str] | None = None
    authors_parsed: list[list[str]] | None = None
    categories: str | list[str] | None = None
    update_date: str | None = None
    versions: list[_Version] | None = None
    doi: str | None = None
    journal_ref: str | None = Field(None, alias="journal-ref")
    url: str | None = None
    embedding: list[float] | None = None
    embedding_model: str | None = None

    @field_validator("url")
    @classmethod
    def _web_only(cls, value: str | None) -> str | None:
        if value is not None and web_url(value) is None:
            raise ValueError("only http and https links to a host (no user name) are stored")
        return value

    @field_validator("update_date")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        """A date (a time after it is allowed): `--since` and `recommend --since` compare it as one."""
        if value is not None:
            try:  # YYYY-MM-DD itself: fromisoformat alone takes 20240101 and 2024-W01-1 too
                if not _DATED.fullmatch(value):
                    raise ValueError
                date.fromisoformat(value[:10])
            except ValueError:
                raise ValueError("not a date") from None
        return value


_EXPECTED = {  # what each field holds, for the one-line message
    "id": "a string",
    "title": "a string",
    "abstract": "a string",
    "authors": "a string or a list of strings",
    "authors_parsed": "a list of [last, first, suffix] string lists",
    "categories": "a space-separated string or a list of strings",
    "update_date": "a date string (YYYY-MM-DD)",
    "versions": 'a list of {"created": date string} objects',
    "doi": "a string",
    "journal-ref": "a string",
    "url": "an http(s) URL string",
    "embedding": "a list of numbers",
    "embedding_model": "a string",
}


def _json_type(value) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list", dict: "an object"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def check_record(record) -> Record:
    """The record as the schema reads it; a ValueError naming the field if it does not fit."""
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {_json_type(record)}")
    try:
        return Record.model_validate(record)
    except ValidationError as err:
        # A union field fails once per member; the deepest failure points at the culprit
        # (authors[2] rather than authors).
        worst = max(err.errors(), key=lambda e: len([p for p in e["loc"] if p not in _UNION_TAGS]))
        name = str(worst["loc"][0]) if worst["loc"] else "record"
        where = name + "".join(
            f"[{p}]" if isinstance(p, int) else f".{p}" for p in worst["loc"][1:] if p not in _UNION_TAGS
        )
        value = worst.get("input")
        if name == "url" and isinstance(value, str):
            raise ValueError(
                f"field 'url': only http and https links to a host (no user name) are stored, got {value[:40]!r}"
            ) from None
        if name == "update_date" and isinstance(value, str):
            raise ValueError(f"field 'update_date': expected a date string (YYYY-MM-DD), got {value[:40]!r}") from None
        raise ValueError(
            f"field {where!r}: expected {_EXPECTED.get(name, 'another type')}, got {_json_type(value)}"
        ) from None


_UNION_TAGS = {"str", "int", "list[str]", "list[list[str]]", "list[float]", "list[_Version]", "_Version"}


class Cursor:
    """Byte offset just past the last line read, so that an interrupted ingest can resume there."""

    def __init__(self, offset: int = 0, records: int = 0):
        self.offset = offset
        self.records = records  # non-blank lines read: a record's row in a --vectors file
        self.left_out = 0  # records this run's --categories / --since passed over


def check_readable(path: Path, *, read_once: bool = False) -> None:
    """Refuse a path that cannot be read as records, in one line. A device or a pipe (/dev/null,
    <(...)) passes only when it is to be `read_once` as it comes (`read_text`): elsewhere the file
    is read again (its first byte below, then whole; an ingest resumes it by its size), which only a
    regular file allows, and its first byte read here would be lost to the text."""
    if path.is_dir():
        raise SemsearchError(f"cannot read {path}: it is a directory")
    if not path.exists():
        raise missing_file(path)
    if not path.is_file():
        if read_once:
            return
        raise SemsearchError(f"cannot read {path}: not a regular file (save the records to a file first)")
    try:
        with _open(path, "rb") as handle:
            # The start of its first line only: a later line that is not UTF-8 is that line's fault,
            # named by its number as `read_jsonl` meets it (a file refused whole for a byte in its
            # first 8 KB, and a line further on garbled into U+FFFD without a word, before).
            codecs.getincrementaldecoder("utf-8")().decode(handle.readline(4096), final=False)
    except (OSError, UnicodeDecodeError) as err:
        raise SemsearchError(f"cannot read {path}: {err}") from None


BOM = "\ufeff"
_DATED = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)  # a time after it


def _open(path: Path, mode: str = "rt"):
    if path.suffix == ".gz":
        return gzip.open(path, mode, encoding="utf-8") if "t" in mode else gzip.open(path, mode)
    return path.open(mode, encoding="utf-8") if "t" in mode else path.open(mode)


@contextmanager
def _reading(path: Path, mode: str = "rt"):
    """The file open for reading (`_open`); a .gz file cut short or damaged is a file that cannot be
    read, said in one line (gzip raises EOFError, which the CLI took for an interrupt)."""
    try:
        with _open(path, mode) as handle:
            yield handle
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise SemsearchError(f"cannot read {path}: the compressed file is damaged or ends early ({err})") from None


MAX_TEXT_CHARS = 64 << 20  # questions, batches, labels, expected categories: a few MB at most


def read_text(path: Path | str) -> str:
    """A small input file's text: '-' is standard input, a pipe (`<(...)` in a shell) or a device is
    read as it comes, a regular file as `_reading` opens it (gzip too). At most MAX_TEXT_CHARS:
    `search --batch /dev/zero` (or `yes | ... --batch -`) was read until memory ran out."""
    path = Path(path)
    try:
        if str(path) == "-":
            text = sys.stdin.read(MAX_TEXT_CHARS + 1)
        else:
            check_readable(path, read_once=True)
            with _reading(path, "rt") as handle:
                text = handle.read(MAX_TEXT_CHARS + 1)
    except (OSError, UnicodeDecodeError) as err:
        raise SemsearchError(f"cannot read {path}: {err.strerror if isinstance(err, OSError) else err}") from None
    if len(text) > MAX_TEXT_CHARS:
        raise SemsearchError(f"cannot read {path}: larger than {MAX_TEXT_CHARS >> 20} MB")
    return text


def read_records(path: Path, parse: Callable[[dict], T], expected: str, *, array: bool = False) -> list[T]:
    """`parse` applied to each JSON object of a small JSON Lines file ('-': standard input):
    questions, labels, papers to classify, expected categories. A line it cannot take is one error
    naming the file and line (`expected` says what a line should hold). Papers to index, which can
    be millions, are streamed by `read_jsonl` instead. With `array`, the file may also be one JSON
    array of those objects (what `labels --json` prints), an item it cannot take named by number."""
    text = read_text(path).removeprefix(BOM)  # what some editors put before the first line
    # Each entry: where it is (said in an error), the entry, and whether it is JSON text still to read.
    if array and text.lstrip().startswith("[") and isinstance(items := _json_or_none(text), list):
        entries = [(f"{path}: item {number}", item, False) for number, item in enumerate(items, start=1)]
    else:
        lines = enumerate(split_lines(text), start=1)
        entries = [(f"{path}:{number}", line, True) for number, line in lines if line.strip()]
    rows = []
    for where, entry, encoded in entries:
        try:
            record = json.loads(entry) if encoded else entry
            if not isinstance(record, dict):
                raise ValueError
            rows.append(parse(record))
        except SemsearchError as err:
            raise SemsearchError(f"{where}: {err}") from None
        except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
            raise SemsearchError(f"{where}: expected {expected}") from None
    if not rows:
        raise SemsearchError(f"{path}: nothing to read")
    return rows


def _json_or_none(text: str):
    """The file as one JSON value; None when it is not one (then read, and refused, line by line)."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def count_records(path: Path) -> int:
    """How many records (lines that are not blank) a JSON Lines file holds."""
    with _reading(path, "rb") as handle:
        return sum(1 for raw, _ in _lines(handle) if raw is None or raw.strip())


def first_record(path: Path) -> dict | None:
    """The first record of a JSON Lines file (None if it has none or it is not an object)."""
    with _reading(path, "rb") as handle:
        for raw, _ in _lines(handle):
            if raw is None:  # too long to be a record: read_jsonl says so
                return None
            if raw.strip():
                try:
                    record = json.loads(raw.removeprefix(BOM.encode()))
                except (ValueError, RecursionError):
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
    skipped: list[int] | None = None,
) -> Iterator[Paper]:
    """Yield the papers in `path`; a malformed line stops the stream, or is reported and skipped.
    With a cursor, reading starts at its offset and the cursor follows each line read. With
    `with_vectors`, yield (paper, record) pairs instead, for a precomputed embedding (`embedding`,
    `embedding_model`) or the record's place in the file (`cursor.records` counts the records).
    The numbers of the lines skipped as malformed are appended to `skipped`."""
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
        with _reading(path, "rb") as handle:
            line_number = _seek(handle, cursor.offset)
            position = cursor.offset
            for raw, size in _lines(handle):
                # The cursor passes a line only once it is handed over, filtered out or reported:
                # a line that stops the run is read again (and stops it again) by the next run.
                position += size
                line_number += 1
                if bar is not None:
                    bar.update(size)
                if raw is None:
                    raw, too_long = b" ", ValueError(f"longer than {MAX_LINE_BYTES >> 20} MB: no record is that long")
                else:
                    too_long = None
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:  # malformed below, as any line that is not a record
                    line, bad = raw.decode("utf-8", errors="replace"), err
                else:
                    bad = None
                if line_number == 1:
                    line = line.removeprefix(BOM)
                if not line.strip() and too_long is None:
                    cursor.offset = position
                    continue
                ordinal = cursor.records  # the record's row in a --vectors file
                try:
                    if too_long is not None:
                        raise too_long
                    if bad is not None:  # stored as U+FFFD, a Latin-1 title was garbled without a word
                        raise ValueError(f"not UTF-8 text (byte 0x{raw[bad.start]:02x} at column {bad.start + 1})")
                    record = json.loads(line)
                    paper = paper_from_record(record)
                except (ValueError, RecursionError) as err:
                    message = f"{path}:{line_number}: {err}"
                    if not skip_malformed:
                        raise MalformedLine(message + " (use --skip-malformed to continue past such lines)") from None
                    warn(message)
                    if skipped is not None:
                        skipped.append(line_number)
                    cursor.offset, cursor.records = position, ordinal + 1
                    continue
                cursor.offset, cursor.records = position, ordinal + 1
                if (categories and not categories.intersection(paper.arxiv_categories)) or (
                    since and (paper.updated or paper.published or "") < since
                ):
                    cursor.left_out += 1
                    continue
                yield ((paper, {**record, "_line": line_number, "_ordinal": ordinal}) if with_vectors else paper)
    finally:
        if bar is not None:
            bar.close()


MAX_LINE_BYTES = 4 << 20  # a record with 5,000 authors and a 4,096-d vector is well under 1 MB


def _lines(handle) -> Iterator[tuple[bytes | None, int]]:
    """Each line's bytes (None for a line over MAX_LINE_BYTES) and its size in the file. A line
    is read whole only up to the bound: a .gz of 1.5 MB, one line of 1.5 GB, held 9 GB for 41 s
    before it was refused (by SQLite, as a string too big)."""
    while raw := handle.readline(MAX_LINE_BYTES + 1):
        if len(raw) <= MAX_LINE_BYTES or raw.endswith(b"\n"):
            yield raw, len(raw)
            continue
        size = len(raw)
        while raw and not raw.endswith(b"\n"):  # the rest of the line, passed over a piece at a time
            raw = handle.readline(1 << 20)
            size += len(raw)
        yield None, size


def _seek(handle, offset: int) -> int:
    """Move to byte `offset` (a line start); how many lines lie before it, so that a resumed run
    still names lines by their number."""
    lines, left = 0, offset
    while left:
        chunk = handle.read(min(left, 1 << 20))
        if not chunk:
            break
        lines += chunk.count(b"\n")
        left -= len(chunk)
    return lines


def paper_from_record(record) -> Paper:
    """The paper a record describes; a ValueError naming the field when the record is malformed."""
    checked = check_record(record)
    # An id is shown as it is (a table, a link): in one Unicode form, an arXiv id in full-width
    # digits read as the arXiv id it is, and nothing that moves a terminal's cursor or hides.
    raw_id = unicodedata.normalize("NFKC", str(checked.id if checked.id is not None else "")).strip()
    title = " ".join((checked.title or "").split())
    if not raw_id:
        raise ValueError("missing 'id'")
    if not raw_id.isprintable():
        raise ValueError("field 'id': holds a control, line-break or invisible character")
    if not title:
        raise ValueError("missing 'title'")
    if len(title) > MAX_TITLE:  # what every door takes; a PDF's text run on is not a title
        raise ValueError(f"field 'title': longer than {MAX_TITLE:,} characters")
    arxiv_id = parse_arxiv_id(raw_id)
    categories = checked.categories or []
    if isinstance(categories, str):
        categories = categories.split()
    published = _first_version_date(checked.versions)
    updated = checked.update_date or None
    return Paper(
        id=arxiv_id or raw_id,
        title=title,
        abstract=" ".join((checked.abstract or "").split()),
        authors=_authors(checked),
        published=published,
        updated=updated,
        arxiv_categories=list(categories),
        year=(year_from_arxiv_id(arxiv_id) if arxiv_id else None) or _year(published or updated),
        url=f"https://arxiv.org/abs/{arxiv_id}" if arxiv_id else checked.url,
        sources=[SOURCE],
    )


def _authors(record: Record) -> list[str]:
    parsed = record.authors_parsed
    if parsed:
        return [" ".join(part for part in (name[1:2] + name[:1]) if part) for name in parsed if name]
    authors = record.authors or []
    if isinstance(authors, str):
        authors = authors.replace(" and ", ", ").split(",")
    return [a.strip() for a in authors if a.strip()]


def _first_version_date(versions: list[_Version] | None) -> str | None:
    if not versions or not versions[0].created:
        return None
    try:
        return parsedate_to_datetime(versions[0].created).date().isoformat()
    except (TypeError, ValueError, OverflowError):
        return None  # a date in another form: the record is kept, without its first version's date


def _year(date: str | None) -> int | None:
    return int(date[:4]) if date and date[:4].isascii() and date[:4].isdigit() else None
