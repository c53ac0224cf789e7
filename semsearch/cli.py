"""The `semsearch` command: a thin layer over the Python API.

Heavy modules (torch, sentence-transformers, faiss) are imported inside the commands that need
them, so `semsearch --help` stays instant.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, TextIO

import typer

from semsearch.errors import DiskFull, NotFound, OutOfResources, OutputUnwritable, SemsearchError, is_disk_full
from semsearch.paper import counted as _count
from semsearch.paper import one_line, split_lines

app = typer.Typer(
    help="Semantic search, categories and related work for the efficient-LLM literature.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
ingest_app = typer.Typer(help="Add papers to the index (re-ingesting a paper updates it).", no_args_is_help=True)
app.add_typer(ingest_app, name="ingest")


FEW_QUERIES = 20  # an evaluation over fewer questions than this is noise, and says so


def _print_version(asked: bool) -> None:
    if asked:
        from importlib.metadata import version

        print(f"semsearch {version('semsearch')}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Semantic search, categories and related work for the efficient-LLM literature."""


IndexOption = Annotated[
    Path | None,
    typer.Option("--index", envvar="SEMSEARCH_INDEX", help="Index directory (else $SEMSEARCH_INDEX, else ./index)."),
]
ModelOption = Annotated[
    str | None,
    typer.Option("--model", help="sentence-transformers model name or path (default all-MiniLM-L6-v2)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
IngestJsonOption = Annotated[  # an ingest prints a summary line, no table
    bool, typer.Option("--json", help="Print the run's counts as JSON on stdout too (the summary stays on stderr).")
]
TaxonomyOption = Annotated[
    str | None,
    typer.Option(
        "--taxonomy", metavar="NAME", help="A taxonomy added with `semsearch taxonomy add` (default: survey)."
    ),
]


class OutputFormat(str, Enum):
    table = "table"
    json = "json"
    bibtex = "bibtex"


FormatOption = Annotated[
    OutputFormat | None, typer.Option("--format", help="table, json or bibtex (--json is short for json).")
]


def _json_or(fmt: Enum | None, as_json: bool) -> None:
    """--json with a --format other than json asks for two things; refused alike on every command."""
    if as_json and fmt is not None and fmt.value != "json":
        raise SemsearchError(f"--json asks for JSON and --format for {fmt.value}: give one")


def _format(fmt: OutputFormat | None, as_json: bool, batch: bool = False) -> OutputFormat:
    _json_or(fmt, as_json)
    if fmt is not None:
        return fmt
    return OutputFormat.json if as_json or batch else OutputFormat.table


def _emit(
    fmt: OutputFormat, header: dict, hits, explain: bool = False, mode: str = "hybrid", *, titled: bool = False
) -> None:
    """Print one answer: a table, one JSON object ({**header, "results": [...]}) or BibTeX entries.
    With `explain`, first what the question was taken for and what put the first results first.
    `titled` (one answer of a batch): a table is headed by what it answers."""
    from semsearch.search import explanation

    if explain and fmt is not OutputFormat.bibtex:
        header = {**header, "explanation": explanation(hits, mode)}
    if fmt is OutputFormat.json:
        _print_json({**header, "results": [hit.to_dict(explain) for hit in hits]})
    elif fmt is OutputFormat.bibtex:
        from semsearch.bibtex import to_bibtex

        print(to_bibtex(hit.paper for hit in hits), end="")
    else:
        if titled:
            print(next((f"{name}: {value}" for name, value in header.items() if value is not None), ""))
        if explain and header.get("explanation"):
            print(header["explanation"])
        _print_hits(hits, explain)


def _emit_batch(
    fmt: OutputFormat, answers: list[tuple[dict, list]], explain: bool = False, mode: str = "hybrid"
) -> None:
    """Print the answers of a batch, each as `_emit` does; as BibTeX, one bibliography: each paper
    once, its key unique in the file (an entry per answer repeated keys and papers)."""
    if fmt is not OutputFormat.bibtex:
        for header, hits in answers:
            _emit(fmt, header, hits, explain, mode, titled=True)
        return
    from semsearch.bibtex import to_bibtex

    papers = {hit.paper.id: hit.paper for _, hits in answers for hit in hits}
    print(to_bibtex(papers.values()), end="")


KOption = Annotated[int, typer.Option("-k", help="How many papers (1 to 100).")]  # checked by the request models
ProgressOption = Annotated[
    bool | None, typer.Option("--progress/--no-progress", help="Progress bar (default: when on a terminal).")
]


def _progress(flag: bool | None) -> bool:
    return _is_terminal(sys.stderr) if flag is None else flag


def _is_terminal(stream) -> bool:
    """Whether `stream` is a terminal; a stream that is missing (a cron job's closed fd 2: sys.stderr
    is None) or closed is not one. `None.isatty()` stopped every writer, exit 1, without a word."""
    try:
        return stream is not None and stream.isatty()
    except ValueError:  # closed
        return False


def _print_json(data) -> None:
    """UTF-8 as it is; to an output that cannot carry it (PYTHONIOENCODING=ascii, a latin-1 locale),
    JSON's own escapes, which read back as the same text (backslashreplace would give "\\U0001f600",
    not JSON)."""
    print(json.dumps(data, ensure_ascii=not _carries_unicode(sys.stdout)))


def _carries_unicode(stream) -> bool:
    import codecs

    try:
        return codecs.lookup(getattr(stream, "encoding", None) or "utf-8").name.startswith("utf")
    except LookupError:
        return False


class _Output:
    """sys.stdout while a command runs: a write that fails (not a closed pipe, which `main` answers
    apart) is an `OutputUnwritable`, so that an ENOSPC from `> file-on-a-full-disk` is not taken for
    the index's disk filling. Everything else is the stream's own."""

    def __init__(self, stream) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        return self._guarded(self._stream.write, text)

    def flush(self) -> None:
        self._guarded(self._stream.flush)

    def _guarded(self, operation, *args):
        try:
            return operation(*args)
        except BrokenPipeError:
            raise _OutputClosed from None  # not an OSError: click would make it exit 1 before `main` saw it
        except OSError as err:
            drop_output(self._stream)
            raise OutputUnwritable(err) from None

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class _OutputClosed(Exception):
    """The reader of stdout went away (`| head`): `main` exits 0 however much was printed. As a
    BrokenPipeError, click caught it first and exited 1 once the output outgrew a pipe's buffer."""


def drop_output(stream: TextIO) -> None:
    """Point `stream`'s file at /dev/null once it cannot be written (a closed pipe, a full disk), so
    the interpreter's flush at exit does not fail again ("Exception ignored ...", exit 120)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(devnull, stream.fileno())
    except (OSError, AttributeError, ValueError):  # no file behind it (a test's StringIO)
        pass
    finally:
        os.close(devnull)


def _survive_any_encoding() -> None:
    """Each character stdout or stderr cannot encode is written as an escape (`\\u203a`), not a
    UnicodeEncodeError: that crashed `search`, `export` and `watch` (after publishing, its digest
    unshown) with a traceback under PYTHONIOENCODING=ascii or a latin-1 locale. Set once, where the
    CLI is entered; a stream that is no text file (a test's StringIO) is left as it is."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure") and not _carries_unicode(stream):
            stream.reconfigure(errors="backslashreplace")


def _finish_ingest(report, as_json: bool = False) -> None:
    """The run's summary line on stderr; with --json its counts on stdout too (`IngestReport.counts`)."""
    print(report.summary(), file=sys.stderr)
    if as_json:
        _print_json(report.counts())


# --- ingest ---------------------------------------------------------------------------------------
@ingest_app.command("jsonl")
def ingest_jsonl_command(
    paths: Annotated[list[Path], typer.Argument(help="JSON Lines files (arXiv metadata-snapshot form; .gz ok).")],
    skip_malformed: Annotated[
        bool, typer.Option("--skip-malformed", help="Report malformed lines and go on (default: stop there).")
    ] = False,
    categories: Annotated[
        str | None, typer.Option("--categories", help="Keep only these arXiv categories, e.g. cs.CL,cs.LG.")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Keep papers updated on/after YYYY-MM-DD.")] = None,
    index_type: Annotated[
        str | None,
        typer.Option("--index-type", help="auto (default: exact up to 50k papers, then IVF-SQ8), flat, ivf, hnsw."),
    ] = None,
    vectors: Annotated[
        Path | None, typer.Option("--vectors", help="Precomputed vectors (.npy), one row per record, in order.")
    ] = None,
    vectors_model: Annotated[
        str | None, typer.Option("--vectors-model", help="The model that made --vectors (checked against the index's).")
    ] = None,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Embed on a Ray cluster (ray://HOST:10001, auto, or local for one on this machine); "
            "needs semsearch[ray].",
        ),
    ] = None,
    as_json: IngestJsonOption = False,
    index: IndexOption = None,
    model: ModelOption = None,
    progress: ProgressOption = None,
) -> None:
    """Ingest JSON Lines files, streamed in constant memory.

    Records may carry their own vectors (`embedding` with `embedding_model`), or --vectors gives
    them: nothing is then embedded.
    A line of the wrong shape stops the run, naming its line and field; with --skip-malformed it
    is skipped, and the skipped lines are counted at the end."""
    from semsearch.ingest import ingest_jsonl

    wanted = categories.split(",") if categories is not None else None  # checked as watch's are
    report = ingest_jsonl(
        paths,
        index_dir=index,
        model=model,
        skip_malformed=skip_malformed,
        categories=wanted,
        since=_check_date(since),
        progress=_progress(progress),
        index_type=index_type,
        vectors=vectors,
        vectors_model=vectors_model,
        ray_address=ray,
    )
    _finish_ingest(report)
    if report.skipped:
        shown = ", ".join(report.skipped[:5]) + (", …" if len(report.skipped) > 5 else "")
        print(f"skipped {_count(len(report.skipped), 'malformed line')}: {shown}", file=sys.stderr)
    if as_json:
        _print_json(report.counts())


@ingest_app.command("arxiv")
def ingest_arxiv_command(
    ids: Annotated[list[str] | None, typer.Option("--id", metavar="ID", help="arXiv id (repeatable).")] = None,
    query: Annotated[str | None, typer.Option("--query", help="arXiv search query, e.g. 'ti:quantization'.")] = None,
    max_results: Annotated[int, typer.Option("--max", min=1, max=10_000, help="Most papers for --query.")] = 100,
    as_json: IngestJsonOption = False,
    index: IndexOption = None,
    model: ModelOption = None,
    progress: ProgressOption = None,
) -> None:
    """Fetch papers from arXiv by id or by query ($SEMSEARCH_ARXIV_URL overrides the API URL)."""
    from semsearch.ingest import ingest_arxiv

    if not ids and not query:
        raise SemsearchError("give --id ID (repeatable) or --query QUERY")
    report = ingest_arxiv(ids or [], query, max_results, index_dir=index, model=model, progress=_progress(progress))
    _finish_ingest(report, as_json)


@ingest_app.command("survey")
def ingest_survey_command(
    offline: Annotated[bool, typer.Option("--offline", help="Titles only; do not ask arXiv for abstracts.")] = False,
    as_json: IngestJsonOption = False,
    index: IndexOption = None,
    model: ModelOption = None,
    progress: ProgressOption = None,
) -> None:
    """Index the survey's ~420 papers with their taxonomy categories (abstracts from arXiv when online)."""
    from semsearch.ingest import ingest_survey

    report = ingest_survey(index_dir=index, model=model, offline=offline, progress=_progress(progress))
    _finish_ingest(report, as_json)


def _check_date(value: str | None) -> str | None:
    from semsearch.requests_models import iso_day

    if value is not None and (day := iso_day(value)) is None:
        raise SemsearchError(f"invalid date {value!r}: expected YYYY-MM-DD")
    return None if value is None else day


# --- search -------------------------------------------------------------------------------------
def _read_lines(path: Path) -> list[tuple[int, str]]:
    """The non-blank lines of a --batch file ('-' is standard input) with their numbers; an
    unreadable file, or one with nothing to answer, is a user error (as for classify --batch)."""
    from semsearch.sources.jsonl import read_text

    numbered = enumerate(split_lines(read_text(path)), start=1)
    lines = [(number, line.strip()) for number, line in numbered if line.strip()]
    if not lines:
        raise SemsearchError(f"{path}: nothing to read")
    return lines


def _papers_named(paper_ids: Sequence[str], index=None) -> list:
    """The papers `--arxiv ID` (or a --batch line's lone "id") names, in order: the index's copy when
    it holds the abstract (no request, and the answer offline), else arXiv's, asked for all at once;
    the index's title alone when arXiv cannot be reached or does not know the paper (the offline
    index holds the survey's papers by title, and the docs' examples failed there)."""
    from semsearch.paper import parse_arxiv_id
    from semsearch.sources.arxiv import ArxivClient, ArxivUnavailable

    found = {p: v for p in paper_ids if index is not None and (v := index.store.find(p)) is not None}
    papers = index.store.papers_by_vec_id(list(found.values())) if found else {}
    held = {p: papers[v] for p, v in found.items()}
    asked = {p: parse_arxiv_id(p) for p in paper_ids if not (p in held and held[p].abstract)}
    unknown = [p for p, arxiv_id in asked.items() if arxiv_id is None and p not in held]
    if unknown:
        raise SemsearchError(f"no paper {', '.join(map(repr, unknown))} in the index, and not an arXiv id")
    fetched, why = {}, ""
    if wanted := list(dict.fromkeys(a for a in asked.values() if a)):
        try:
            result = ArxivClient().fetch_ids(wanted)
        except ArxivUnavailable as err:
            if any(p not in held for p in asked):
                raise
            logging.getLogger("semsearch").warning(
                "warning: %s; answered from the title the index holds", one_line(str(err))
            )
        else:
            fetched, why = {p.id: p for p in result.papers}, result.why_missing
    named = [fetched.get(asked.get(p)) or held.get(p) for p in paper_ids]
    if missing := [p for p, paper in zip(paper_ids, named, strict=True) if paper is None]:
        raise SemsearchError(f"arXiv has no paper {', '.join(missing)}{why}")
    return named


def _read_questions(path: Path, **options) -> list:
    """Each non-blank line's SearchRequest (the question with `options`); a refused one names its
    line, and is refused before any line is answered (a batch answers whole or prints nothing)."""
    from semsearch.requests_models import SearchRequest, parse
    from semsearch.search import check_query

    requests = []
    for number, line in _read_lines(path):
        try:
            requests.append(parse(SearchRequest, question=line, **options))
            check_query(requests[-1].question)  # "???": nothing to search by, the line's form too
        except SemsearchError as err:
            raise type(err)(f"{path}:{number}: {err}") from None
    return requests


def _print_hits(hits, explain: bool = False) -> None:
    if not hits:  # an empty box of headings read as output cut short
        print("no papers")
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    from semsearch.taxonomy import leaf_name

    table = Table(show_lines=False, expand=False)
    columns = [("#", "dim"), ("score", None), ("year", None), ("title", "bold"), ("category", "cyan"), ("id", "dim")]
    if explain:
        columns.append(("why", "dim"))
    for column, style in columns:
        table.add_column(column, style=style, overflow="fold")
    for rank, hit in enumerate(hits, start=1):
        paper = hit.paper
        category = ", ".join(leaf_name(c) for c in hit.categories)
        if hit.category_source == "predicted":
            category += " (predicted)"
        # Titles, headings and ids are data, not markup: rich read "[/dim]" in one as a tag, and failed
        # (and escaping shows a title's last backslash twice).
        row = [str(rank), f"{hit.score:.3f}", str(paper.year or ""), *map(Text, (paper.title, category, paper.id))]
        if explain and hit.evidence is not None:
            e = hit.evidence
            why = (
                "its arXiv id"
                if e.by_id
                else f"dense {e.dense:.2f}, bm25 {e.lexical:.1f} ({e.lexical_share:.0%} of best)"
            )
            if e.category:
                why += f", {escape(leaf_name(e.category))} fits the question {e.category_probability:.0%}"
            if e.named and not e.by_id:
                # Placed by name or pasted title, whatever its scores: said, or a named paper above
                # better-scored ones (or first, credited to the taxonomy) went unexplained.
                why += ", named by the question (its name or title)"
            elif e.beside_named:
                why += ", related work of the paper the question names (the question is a name alone)"
            elif e.direct:
                why += ", among the best direct matches (first for a question about one paper)"
            elif rank == 1 and e.taxonomy_weight > 0:
                why += f", taxonomy weighed {e.taxonomy_weight:.1f}"
            row.append(why)
        table.add_row(*row)
    # Off a terminal rich would wrap at 80 columns; give long titles room.
    Console(width=None if _is_terminal(sys.stdout) else 160).print(table)


@app.command()
def search(
    question: Annotated[str | None, typer.Argument(help="A question in plain words.")] = None,
    k: KOption = 10,
    batch: Annotated[
        Path | None,
        typer.Option("--batch", help="File with one question per line ('-' for stdin); JSON out unless --format."),
    ] = None,
    year_from: Annotated[int | None, typer.Option("--year-from", help="Only papers from this year on.")] = None,
    year_to: Annotated[int | None, typer.Option("--year-to", help="Only papers up to this year.")] = None,
    category: Annotated[
        str | None, typer.Option("--category", help="Only papers under this taxonomy node (path or name).")
    ] = None,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show why each hit ranks: dense, lexical, category evidence.")
    ] = False,
    mode: Annotated[str, typer.Option("--mode", help="hybrid (default), dense or lexical.")] = "hybrid",
    no_taxonomy: Annotated[
        bool, typer.Option("--no-taxonomy", help="Leave the taxonomy evidence out (hybrid mode).")
    ] = False,
    taxonomy_name: TaxonomyOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    index: IndexOption = None,
) -> None:
    """Ask a question; get the most relevant papers."""
    from semsearch.requests_models import SearchRequest, parse
    from semsearch.search import Filters, Searcher, check_query

    if question is None and batch is None:
        raise SemsearchError('give a question (semsearch search "how do I shrink the KV cache?") or --batch FILE')
    if question is not None and batch is not None:
        raise SemsearchError("give a question or --batch FILE, not both")
    output = _format(fmt, as_json, batch is not None)
    options = dict(k=k, year_from=year_from, year_to=year_to, category=category, taxonomy=taxonomy_name)
    requests = _read_questions(batch, **options) if batch else [parse(SearchRequest, question=question, **options)]
    first = requests[0]
    filters = Filters(first.year_from, first.year_to, first.category)
    searcher = Searcher(_open_index(index), mode=mode, taxonomy=not no_taxonomy, taxonomy_name=first.taxonomy)
    searcher.allowed_vec_ids(filters)  # refuse an unknown category before loading the model
    # A batch answers whole or prints nothing (exit 2), as related --batch: no output is half a file.
    answers = []
    for number, request in enumerate(requests, 1):
        try:
            echoed = {"query": check_query(request.question)}  # as read, as the API and MCP echo it
            answers.append((echoed, searcher.search(request.question, request.k, filters)))
        except NotFound as err:  # an arXiv id the index lacks
            if batch is None:
                raise
            raise NotFound(f"{batch}: question {number}: {err}; nothing printed") from None
    if batch is None:
        _emit(output, *answers[0], explain, mode)
    else:
        _emit_batch(output, answers, explain, mode)


@app.command()
def info(as_json: JsonOption = False, index: IndexOption = None) -> None:
    """What the index holds: papers, model, dimension, size on disk."""
    from semsearch.index import Index

    idx = Index.open(index)
    m = idx.manifest
    data = {
        "papers": m.count,
        **idx.store.content_counts(),
        "model": m.model,
        "dimension": m.dimension,
        "index_type": m.index_type,
        "size_bytes": idx.size_bytes(),
        "generation": m.generation,
        "created_at": m.created_at,
        "path": str(idx.directory.resolve()),
    }
    if as_json:
        _print_json(data)
    else:
        width = max(map(len, data))
        for key, value in data.items():
            print(f"{key:<{width}}  {value}")


# --- related work, recommendations, export ---------------------------------------------------------
def _read_ids(path: Path) -> list[str]:
    return [line for _, line in _read_lines(path)]


@app.command()
def related(
    paper_id: Annotated[str | None, typer.Argument(metavar="ID", help="A paper in the index.")] = None,
    text: Annotated[str | None, typer.Option("--text", help="Title and abstract of a paper not indexed.")] = None,
    arxiv_id: Annotated[
        str | None,
        typer.Option("--arxiv", help="A paper by arXiv id: the index's copy if it has the abstract, else arXiv's."),
    ] = None,
    batch: Annotated[
        Path | None, typer.Option("--batch", help="File of paper ids, one per line; JSON out unless --format.")
    ] = None,
    k: KOption = 10,
    diverse: Annotated[
        bool, typer.Option("--diverse", help="Re-rank for coverage (maximal marginal relevance).")
    ] = False,
    taxonomy_name: TaxonomyOption = None,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    index: IndexOption = None,
) -> None:
    """Papers related to one you know (never the paper itself or another version of it)."""
    from semsearch.related import RelatedFinder, SharedName
    from semsearch.requests_models import RelatedRequest, parse

    if sum(x is not None for x in (paper_id, text, arxiv_id, batch)) != 1:
        raise SemsearchError("give one of: ID, --text TEXT, --arxiv ID, --batch FILE")
    output = _format(fmt, as_json, batch is not None)
    request = parse(RelatedRequest, id=paper_id, text=text, k=k, diverse=diverse, taxonomy=taxonomy_name)
    k, taxonomy_name = request.k, request.taxonomy
    finder = RelatedFinder(_open_index(index), taxonomy_name=taxonomy_name)
    if batch is not None:
        ids = _read_ids(batch)
        for each in ids:
            parse(RelatedRequest, id=each)
        # Every id is checked before any answer is printed, and all unknown ones are named at once:
        # a batch either answers whole or prints nothing (exit 2), so no output is half a file.
        found, unknown = {}, []
        for each in ids:
            try:
                found[each] = finder.paper_id(each)
            except NotFound:
                unknown.append(each)
        if unknown:
            shown = ", ".join(repr(u) for u in unknown[:10]) + (
                f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""
            )
            raise NotFound(f"{batch}: {len(unknown)} of {len(ids)} ids are not in the index: {shown}; nothing printed")
        _emit_batch(output, [({"id": found[each]}, finder.related_to(found[each], k, diverse=diverse)) for each in ids])
    elif paper_id is not None:
        try:
            own_id = finder.paper_id(request.id)  # as parsed: read as UTF-8 under any locale
        except SharedName:
            raise  # the message lists the papers: no hint to add
        except NotFound as err:
            from semsearch.paper import parse_arxiv_id

            hint = "use --arxiv to fetch it from arXiv" if parse_arxiv_id(paper_id) else "give an id `search` shows"
            raise NotFound(f"{err} ({hint}, or a method's name such as GPTQ)") from None
        _emit(output, {"id": own_id}, finder.related_to(own_id, k, diverse=diverse))
    elif text is not None:
        _emit(output, {"id": None}, finder.related_to_text(request.text, "", k, diverse=diverse))
    else:
        from semsearch.sources.arxiv import validate_ids

        (paper,) = _papers_named(validate_ids([arxiv_id]), finder.index)
        hits = finder.related_to_text(paper.title, paper.abstract, k, diverse=diverse, paper_id=paper.id)
        _emit(output, {"id": paper.id}, hits)


@app.command()
def recommend(
    like: Annotated[
        list[str] | None, typer.Option("--like", metavar="ID", help="A paper you liked (repeatable).")
    ] = None,
    dislike: Annotated[
        list[str] | None, typer.Option("--dislike", metavar="ID", help="A paper you did not (repeatable).")
    ] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only papers from YYYY-MM-DD on.")] = None,
    k: KOption = 10,
    as_json: JsonOption = False,
    fmt: FormatOption = None,
    index: IndexOption = None,
) -> None:
    """What to read next, learned from papers you liked (and disliked)."""
    from semsearch.related import RelatedFinder
    from semsearch.requests_models import RecommendRequest, parse

    if not like:
        raise SemsearchError("give at least one paper you liked: --like ID (repeatable)")
    output = _format(fmt, as_json)
    request = parse(RecommendRequest, likes=like, dislikes=dislike or [], k=k, since=since)
    hits = RelatedFinder(_open_index(index)).recommend(request.likes, request.dislikes, request.k, since=request.since)
    _emit(output, {"likes": request.likes, "dislikes": request.dislikes}, hits)


@app.command()
def export(
    ids: Annotated[list[str], typer.Argument(metavar="ID", help="Papers in the index (also ID,ID).")],
    bibtex: Annotated[
        bool, typer.Option("--bibtex", help="BibTeX entries (the only form; accepted for clarity).")
    ] = False,
    index: IndexOption = None,
) -> None:
    """Citations for papers in the index, as BibTeX."""
    from semsearch.bibtex import split_ids, to_bibtex
    from semsearch.index import Index
    from semsearch.related import RelatedFinder
    from semsearch.requests_models import ExportRequest, parse

    print(to_bibtex(RelatedFinder(Index.open(index)).papers(parse(ExportRequest, ids=split_ids(ids)).ids)), end="")


@app.command()
def mcp(index: IndexOption = None) -> None:
    """Serve the library to assistants over the Model Context Protocol (stdio)."""
    from semsearch.mcp_server import serve_stdio

    serve_stdio(index_dir=index)


@app.command()
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Server processes.")] = 1,
    watch_every: Annotated[
        str | None, typer.Option("--watch-every", help="Also watch arXiv every INTERVAL (e.g. 24h), in the background.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", envvar="SEMSEARCH_TOKEN", help="Bearer token that writing endpoints (labels) require."),
    ] = None,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            metavar="NAME",
            help="Also answer requests whose Host header is NAME (repeatable); else only --host and loopback names.",
        ),
    ] = None,
    index: IndexOption = None,
) -> None:
    """A web page and a JSON API (OpenAPI docs at /docs) that follow the index as it is updated."""
    from semsearch.server import check_host_names, check_listen_host, check_token_given
    from semsearch.server import serve as run_server
    from semsearch.watch import watch_interval

    host = host.strip("[]")  # "[::1]", as a URL writes it, is the address ::1
    # '' (`--watch-every "$UNSET"`) is refused, not read as no watch: the server ran without one, silently
    seconds = watch_interval(watch_every) if watch_every is not None else None
    check_listen_host(host)  # before the default index is built, not after
    # typer reads SEMSEARCH_TOKEN='' as not set: refused here as an empty --token is
    check_token_given(token if token is not None else os.environ.get("SEMSEARCH_TOKEN"))
    check_host_names(allow_host or ())
    _open_index(index).close()  # the default index is built on first use
    run_server(
        host, port, index_dir=index, workers=workers, watch_seconds=seconds, token=token, allow_hosts=allow_host or ()
    )


# --- watching arXiv, labels -------------------------------------------------------------------------
class DigestFormat(str, Enum):
    markdown = "markdown"
    json = "json"
    html = "html"


@app.command()
def watch(
    categories: Annotated[
        str, typer.Option("--categories", help="arXiv categories to watch, comma-separated.")
    ] = "cs.CL,cs.LG,cs.AI",
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Start a window at YYYY-MM-DD, UTC (default: 4 days before the last watch, else a day ago)."
        ),
    ] = None,
    keep_all: Annotated[bool, typer.Option("--keep-all", help="Ingest out-of-scope papers too.")] = False,
    digest_format: Annotated[
        DigestFormat | None, typer.Option("--format", help="Digest form: markdown (default), json or html.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="The digest as JSON (short for --format json).")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", help="Write the digest to FILE (default, or -, stdout).")
    ] = None,
    min_confidence: Annotated[
        float, typer.Option("--min-confidence", min=0.0, max=1.0, help="Leave less certain papers out of the digest.")
    ] = 0.0,
    max_results: Annotated[
        int, typer.Option("--max", min=1, max=50_000, help="Most papers to read; the next watch goes on from there.")
    ] = 10_000,
    every: Annotated[
        str | None, typer.Option("--every", help="Keep watching every INTERVAL (e.g. 24h) until Ctrl-C.")
    ] = None,
    site: Annotated[
        str | None,
        typer.Option(
            "--site",
            envvar="SEMSEARCH_SITE",
            help="Where `semsearch serve` runs, as an http(s) address, for the digest's 'view in semsearch' "
            "links (default: port 8000 of this machine; '' for none).",
        ),
    ] = None,
    taxonomy_name: TaxonomyOption = None,
    index: IndexOption = None,
    progress: ProgressOption = None,
) -> None:
    """New arXiv papers since the last watch, placed in the taxonomy; the in-scope ones are ingested.

    Each finished watch's digest is also kept in the index directory (`digests/`)."""
    from semsearch.sources.arxiv import check_categories
    from semsearch.watch import SITE, paper_view, render_digest, watch_interval
    from semsearch.watch import watch as run_watch

    _json_or(digest_format, as_json)
    digest_format = DigestFormat.json if as_json else digest_format or DigestFormat.markdown
    view = paper_view(SITE if site is None else site)  # a wrong address is found out now, not after fetching
    wanted = check_categories(categories.split(","))
    seconds = watch_interval(every) if every is not None else None  # '' refused, as --watch-every ''
    if seconds is not None and since is not None:
        raise SemsearchError("--every watches on from the last watch; run once with --since first")
    if output is not None and str(output) == "-":  # stdout, as tools read "-"; it wrote a file named "-"
        output = None
    if output is not None:  # found out now, not after a watch's fetching
        from semsearch.index import check_outside_index

        if not output.parent.is_dir():
            raise SemsearchError(f"cannot write {output}: there is no directory {output.parent}")
        check_outside_index(output, "--output", index_dir=index)
        if output.is_dir():  # '', '.' or a folder: found after the watch had asked arXiv and published
            raise SemsearchError(f"cannot write {output}: it is a directory; name a file")

    def report_watch(report) -> None:
        digest = render_digest(report, digest_format.value, min_confidence, paper_view=view)
        if output is not None:
            # Again now: a link made while the watch ran (minutes; days with --every) led into the index.
            check_outside_index(output, "--output", index_dir=index)
            try:
                output.write_text(digest, encoding="utf-8")
            except OSError as err:
                raise SemsearchError(f"cannot write {output}: {err}") from None
        else:
            print(digest, end="" if digest.endswith("\n") else "\n", flush=True)
        print(report.summary(), file=sys.stderr)

    if seconds is None:
        report_watch(
            run_watch(
                wanted,
                _check_date(since),
                index_dir=index,
                keep_all=keep_all,
                progress=_progress(progress),
                max_results=max_results,
                taxonomy_name=taxonomy_name,
            )
        )
        return
    import threading

    from semsearch.watch import watch_every

    def done(report, error) -> None:
        from datetime import datetime, timedelta, timezone

        moment = datetime.now(timezone.utc) + timedelta(seconds=seconds)
        then = f"{moment.day} {moment:%b %Y %H:%M:%S} UTC"  # as the watched window reads
        if error is not None:
            print(f"watch failed: {error}; it resumes at {then} (in {every})", file=sys.stderr)
        else:
            report_watch(report)
            print(f"next watch at {then} (in {every}; Ctrl-C stops)", file=sys.stderr)

    watch_every(
        seconds, threading.Event(), wanted, on_done=done, index_dir=index, keep_all=keep_all,
        max_results=max_results, taxonomy_name=taxonomy_name,
    )  # fmt: skip


@app.command()
def label(
    paper_id: Annotated[str, typer.Argument(metavar="ID", help="A paper in the index.")],
    category: Annotated[str | None, typer.Argument(help="Taxonomy node (path or name).")] = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the paper's label.")] = False,
    taxonomy_name: TaxonomyOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print {"id", "category", "in_effect"} as POST /api/labels answers.')
    ] = False,
    index: IndexOption = None,
) -> None:
    """Confirm a paper's category; your labels train later suggestions.

    They are kept apart from the survey's labels, or a list's: with --taxonomy NAME,
    `taxonomy propose NAME` then writes the paper under it."""
    from semsearch.index import Index
    from semsearch.ingest import labelled
    from semsearch.related import RelatedFinder

    if remove and category is not None:
        raise SemsearchError("give a CATEGORY or --remove, not both")
    if not remove and category is None:
        raise SemsearchError("give a CATEGORY, or --remove")
    if category is not None:  # the limits of POST /api/labels and of `labels import`, which read its export
        from semsearch.requests_models import LabelRequest, parse

        parse(LabelRequest, id=paper_id, category=category, taxonomy=taxonomy_name)
    try:
        answer = labelled(paper_id, None if remove else category, taxonomy=taxonomy_name, index_dir=index)
    except NotFound:  # named as related work names it ("GPTQ"), as POST /api/labels takes it: by its own id
        idx = Index.open(index)
        try:
            paper_id = RelatedFinder(idx).paper_id(paper_id)
        finally:
            idx.close()
        answer = labelled(paper_id, None if remove else category, taxonomy=taxonomy_name, index_dir=index)
    print(f"{paper_id}: {'label removed' if remove else answer['category']}", file=sys.stderr)
    if as_json:
        _print_json(answer)


labels_app = typer.Typer(help="Your labels: export them (the default), or import them into an index.")
app.add_typer(labels_app, name="labels")


def _export_labels(index: Path | None, as_json: bool) -> None:
    """JSON Lines (a label a line: streams, appends); with --json one array of the same objects."""
    from semsearch.index import Index

    rows = Index.open(index).store.labels()
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        _print_json(row)


LabelsJsonOption = Annotated[
    bool, typer.Option("--json", help="One JSON array of the labels instead of a line each (import reads both).")
]


@labels_app.callback(invoke_without_command=True)
def labels(ctx: typer.Context, as_json: LabelsJsonOption = False, index: IndexOption = None) -> None:
    """Export your labels as JSON Lines: {"id", "title", "category", "labelled_at"}."""
    if ctx.invoked_subcommand is None:  # `semsearch labels` alone is `labels export`
        _export_labels(index, as_json)


def _with_labels_options(ctx: typer.Context, as_json: bool, index: Path | None) -> tuple[bool, Path | None]:
    """--json and --index given before the command (`labels --json export`), which `labels` read
    and its command never saw: the export was JSON Lines of ./index, silently."""
    given = ctx.parent.params if ctx.parent is not None else {}
    return as_json or bool(given.get("as_json")), index or given.get("index")


@labels_app.command("export")
def labels_export(ctx: typer.Context, as_json: LabelsJsonOption = False, index: IndexOption = None) -> None:
    """Print your labels as JSON Lines, {"id", "title", "category", "labelled_at"}.

    A list's label carries its "taxonomy" too. `semsearch labels` alone does the same."""
    as_json, index = _with_labels_options(ctx, as_json, index)
    _export_labels(index, as_json)


@labels_app.command("import")
def labels_import(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(metavar="FILE", help="Labels as `semsearch labels` exports them.")],
    as_json: Annotated[
        bool, typer.Option("--json", help='Print the counts {"imported", "already_held", "not_in_index"}.')
    ] = False,
    index: IndexOption = None,
) -> None:
    """Put exported labels back (e.g. into a rebuilt index); they train later suggestions."""
    from semsearch.ingest import import_labels

    as_json, index = _with_labels_options(ctx, as_json, index)
    report = import_labels(path, index_dir=index)
    missing = report["not_in_index"]
    papers = "is for a paper" if missing == 1 else "are for papers"
    note = f"; {missing} {papers} not in the index (ingest them, then import again)" if missing else ""
    held = f"; {report['already_held']} the index held already" if report["already_held"] else ""
    print(f"imported {_count(report['imported'], 'label')}{held}{note}", file=sys.stderr)
    if as_json:
        _print_json(report)


# --- taxonomy and classification ----------------------------------------------------------------
eval_app = typer.Typer(help="Evaluate semsearch on the index's own labelled papers.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


def _open_index(index: Path | None):
    """The index asked for. The default one (no --index, no $SEMSEARCH_INDEX) is built from the
    bundled survey on first use, so that a newcomer's first question gets an answer."""
    from semsearch.index import Index, current_generation, resolve_index_dir

    default = resolve_index_dir(None) if index is None else None
    if default is not None and current_generation(default) is None:
        from semsearch.ingest import ingest_survey

        print(
            f"first run: building the index in {default.resolve()} from the survey's papers (once; abstracts "
            "from arXiv when it can be reached)",
            file=sys.stderr,
        )
        print(ingest_survey(index_dir=default, progress=_progress(None)).summary(), file=sys.stderr)
    return Index.open(index)


def _open_index_if_any(index: Path | None):
    """The index, or None when none was named and ./index holds none (the survey's own facts answer
    then). One named (--index, $SEMSEARCH_INDEX) must be there: a mistyped one showed the survey's
    bare tree without a word; and damage is said, not passed over."""
    from semsearch.index import Index, current_generation, resolve_index_dir

    if index is None and current_generation(resolve_index_dir(None)) is None:
        return None
    return Index.open(Index.existing(index))


taxonomy_app = typer.Typer(help="The survey's taxonomy, and curated lists added as taxonomies.")
app.add_typer(taxonomy_app, name="taxonomy")


def _print_tree(tree: list[dict], title: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.tree import Tree

    root = Tree(f"[bold]{escape(title)}[/bold]")

    def add(branch, nodes):
        for node in nodes:
            predicted = node["papers"] - node["labelled"]
            count = f"{node['labelled']} + {predicted} predicted" if predicted else str(node["papers"])
            add(branch.add(f"{escape(node['name'])} [dim]({count})[/dim]"), node["children"])

    add(root, tree)
    Console().print(root)


@taxonomy_app.callback(invoke_without_command=True)
def taxonomy(ctx: typer.Context, as_json: JsonOption = False, index: IndexOption = None) -> None:
    """The survey's taxonomy as a tree, with how many papers sit under each node."""
    if ctx.invoked_subcommand is not None:
        return
    from semsearch.taxonomy import index_tree

    indexed = _open_index_if_any(index)  # counts what the index holds, else the survey's own list
    tree = index_tree(indexed.store if indexed else None)
    if as_json:
        _print_json(tree)
    else:
        _print_tree(tree, "Efficient LLMs survey taxonomy")


@taxonomy_app.command("add")
def taxonomy_add(
    name: Annotated[str, typer.Argument(help="A short name: lower-case letters, digits, - and _.")],
    source: Annotated[str, typer.Argument(metavar="FILE|URL", help="The list's markdown (a README).")],
    offline: Annotated[bool, typer.Option("--offline", help="Do not fetch abstracts from arXiv.")] = False,
    replace: Annotated[bool, typer.Option("--replace", help="Replace a taxonomy of the same name.")] = False,
    as_json: Annotated[
        bool,
        typer.Option(
            "--json", help='Print the summary as JSON, {"name", "nodes", "papers", "with_arxiv_id", "weak_nodes"}.'
        ),
    ] = False,
    index: IndexOption = None,
    progress: ProgressOption = None,
) -> None:
    """Make a curated markdown list a taxonomy of the index: its headings are nodes, its papers labels."""
    from semsearch.lists import add_list

    summary = add_list(name, source, index_dir=index, offline=offline, replace=replace, progress=_progress(progress))
    if as_json:
        _print_json(summary)
    else:
        print(
            f"taxonomy {name!r}: {_count(len(summary['nodes']), 'node')}, {_count(summary['papers'], 'paper')} "
            f"({summary['with_arxiv_id']} with an arXiv id)",
            file=sys.stderr,
        )


@taxonomy_app.command("refresh")
def taxonomy_refresh(
    source: Annotated[
        str | None,
        typer.Argument(
            metavar="FILE|URL|NAME",
            help="The list to read (default: the survey's GitHub README); with --undo, the taxonomy's name.",
        ),
    ] = None,
    taxonomy_name: Annotated[
        str | None,
        typer.Option("--taxonomy", metavar="NAME", help="Refresh this added list (default: the survey's)."),
    ] = None,
    offline: Annotated[
        bool, typer.Option("--offline", help="Never touch the network: no abstracts fetched, a URL refused.")
    ] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only print what would change.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Apply even a refresh that removes over a fifth of the list or looks unlike it."),
    ] = False,
    undo: Annotated[bool, typer.Option("--undo", help="Restore the labels the last refresh replaced.")] = False,
    as_json: JsonOption = False,
    index: IndexOption = None,
    progress: ProgressOption = None,
) -> None:
    """Follow a list as its authors maintain it: relabel, add new papers, retrain.

    A refresh that would remove more than a fifth of the list's papers, or a file unlike the
    list, is refused unless --force; --undo puts the previous labels back."""
    from semsearch.lists import refresh_list, undo_command, undo_refresh

    if undo:
        if source is not None and taxonomy_name is not None:
            raise SemsearchError("--undo takes the taxonomy's name, not a file: `taxonomy refresh NAME --undo`")
        if dry_run or force:
            raise SemsearchError("--undo goes without --dry-run and --force")
        report = undo_refresh(taxonomy_name or source, index_dir=index, progress=_progress(progress))
        if as_json:
            _print_json(report)
        else:
            print(
                f"restored the previous labels of {taxonomy_name or source or 'survey'!r}: it lists {report['papers']} "
                f"papers again ({undo_command(taxonomy_name or source)} once more redoes)",
                file=sys.stderr,
            )
        return
    report = refresh_list(
        taxonomy_name,
        source,
        index_dir=index,
        offline=offline,
        progress=_progress(progress),
        force=force,
        dry_run=dry_run,
    )
    if as_json:
        _print_json(report)
        return
    for name in ("added", "removed", "moved", "nodes_added", "nodes_removed"):
        shown = report["titles"].get(name) or report["changes"][name][:5]
        more = f", … ({report[name] - len(shown)} more)" if report[name] > len(shown) else ""
        print(f"{name.replace('_', ' '):<14} {report[name]:>4}  {'; '.join(shown)}{more}")
    list_name = taxonomy_name or "the survey"
    if report["applied"]:
        undo_hint = undo_command(taxonomy_name)
        if report["unchanged"]:  # the undo kept is the last change's
            said = f"is unchanged: {report['papers']} papers ({undo_hint} goes back before the last change)"
        else:
            said = f"now lists {report['papers']} papers ({undo_hint} goes back)"
        print(f"{list_name} {said}", file=sys.stderr)
    else:
        print(f"dry run: nothing changed ({list_name} would list {report['papers']} papers)", file=sys.stderr)
        if report["refused"]:  # what the run itself would answer
            print(f"without --dry-run: {report['refused']}", file=sys.stderr)


@taxonomy_app.command("list")
def taxonomy_list(as_json: JsonOption = False, index: IndexOption = None) -> None:
    """The index's taxonomies: the survey's and the lists added."""
    from semsearch.index import Index
    from semsearch.lists import listed_taxonomies

    rows = listed_taxonomies(Index.open(index).store)
    if as_json:
        _print_json(rows)  # what /api/taxonomies answers: a list's `source` too
        return
    for row in rows:
        print(f"{row['name']:<20} {len(row['nodes']):>4} nodes {row['papers']:>6} papers  {row.get('source', '')}")


@taxonomy_app.command("show")
def taxonomy_show(
    name: Annotated[str, typer.Argument(help="A taxonomy added from a list (`taxonomy list`), or survey.")],
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """One taxonomy as a tree, with how many papers it labels under each node."""
    from semsearch.index import Index
    from semsearch.service import taxonomy_tree

    tree = taxonomy_tree(Index.open(index).store, name)
    if as_json:
        _print_json(tree)
    else:
        _print_tree(tree, name)


@taxonomy_app.command("remove")
def taxonomy_remove(
    name: Annotated[str, typer.Argument(help="The taxonomy added from a list (`taxonomy list`).")],
    as_json: Annotated[
        bool,
        typer.Option("--json", help='Print what was removed: {"name", "source", "nodes", "papers", "labels_removed"}.'),
    ] = False,
    index: IndexOption = None,
) -> None:
    """Remove an added taxonomy (its papers stay in the index)."""
    from semsearch.lists import SURVEY, remove_list

    if name.strip().lower() == SURVEY:
        raise SemsearchError(
            "the survey's taxonomy is built in and cannot be removed (only lists added with `taxonomy add` can)"
        )
    removed = remove_list(name, index_dir=index)
    print(f"taxonomy {name!r} removed", file=sys.stderr)
    if as_json:
        _print_json(removed)


ListOption = Annotated[
    str | None,
    typer.Option(
        "--list",
        metavar="FILE|URL",
        help="The list's README to write against (default: the one kept when the list was added or refreshed).",
    ),
]
SinceOption = Annotated[
    str | None, typer.Option("--since", metavar="DATE", help="Only papers that appeared on or after YYYY-MM-DD.")
]


@taxonomy_app.command("propose")
def taxonomy_propose(
    name: Annotated[str, typer.Argument(help="The taxonomy: survey, or a list added with `taxonomy add`.")],
    list_file: ListOption = None,
    since: SinceOption = None,
    ids: Annotated[
        list[str] | None, typer.Option("--ids", metavar="ID…", help="Only these papers (repeat, or comma-separated).")
    ] = None,
    min_confidence: Annotated[
        float | None,
        typer.Option("--min-confidence", metavar="X", help="Papers placed less surely are listed apart (0.35)."),
    ] = None,
    offline: Annotated[bool, typer.Option("--offline", help="Never fetch the list's README.")] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help='Print [{"id", "title", "node", "confidence", "line", "unsure"}].')
    ] = False,
    index: IndexOption = None,
) -> None:
    """The index's in-scope papers that the list lacks, as a unified diff against its README.

    The diff writes them in the list's own line format (for a pull request); unsure papers are
    listed apart on stderr."""
    from semsearch.bibtex import split_ids
    from semsearch.index import Index
    from semsearch.propose import Proposal, ProposeRequest, propose_for, readme_for, text_report
    from semsearch.requests_models import parse

    request = parse(ProposeRequest, taxonomy=name, since=since, ids=split_ids(ids), min_confidence=min_confidence)
    idx = Index.open(index)
    markdown, filename = readme_for(idx.store, name, list_file, offline=offline)
    found = propose_for(idx, request, markdown, filename)
    if as_json:
        _print_json(found["proposals"])
        return
    from semsearch.lists import SURVEY
    from semsearch.sources.curated import parse_list

    proposals = [Proposal(**p) for p in found["proposals"]]
    for line in text_report(proposals, request.min_confidence, parse_list(markdown).heading_lines):
        print(line, file=sys.stderr)
    sure = len(proposals) - found["unsure"]
    print(found["patch"], end="")
    edge = "" if request.taxonomy == SURVEY else ", or at the edge of the list's topic"  # the survey's is its scope
    print(
        f"{_count(sure, 'paper')} proposed, {found['unsure']} unsure "
        f"(under --min-confidence {request.min_confidence}{edge})",
        file=sys.stderr,
    )
    if found["removed"] and not request.ids:
        shown = ", ".join(found["removed"][:5]) + (", …" if len(found["removed"]) > 5 else "")
        print(
            f"not proposed again: {_count(len(found['removed']), 'paper')} the list took out ({shown}); "
            "--ids proposes one",
            file=sys.stderr,
        )


@taxonomy_app.command("gaps")
def taxonomy_gaps(
    name: Annotated[str, typer.Argument(help="The taxonomy: survey, or a list added with `taxonomy add`.")],
    since: SinceOption = None,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Topics the list has not named: groups of its missing in-scope papers that fit no heading.

    Each comes with a suggested name, the heading it would sit under, and its papers."""
    from semsearch.gaps import gaps_for
    from semsearch.index import Index
    from semsearch.propose import ProposeRequest
    from semsearch.requests_models import parse

    request = parse(ProposeRequest, taxonomy=name, since=since)
    found = gaps_for(Index.open(index), request.taxonomy, since=request.since)
    if as_json:
        _print_json(found)
        return
    for gap in found["gaps"]:
        parent = gap["parent"].replace("/", " › ") or "(top level)"
        print(f"{gap['name']}  [{len(gap['papers'])} papers, under {parent}]")
        for paper in gap["papers"]:
            print(f"    {paper['id']}  {paper['title']}")
    print(f"{len(found['gaps'])} gaps among {found['papers']} papers the list lacks", file=sys.stderr)


def _classify_inputs(title, abstract, arxiv_id, batch, taxonomy, index=None) -> list[tuple[str | None, str, str]]:
    """(id, title, abstract) triples from exactly one of the three input forms, each read through
    the ClassifyRequest the HTTP API and the MCP tool use; a --batch line may name a paper by its
    "id" alone, as --arxiv does (all such papers fetched at once)."""
    from semsearch.requests_models import ClassifyRequest, parse
    from semsearch.sources.arxiv import validate_ids

    forms = [title is not None or abstract is not None, arxiv_id is not None, batch is not None]
    if sum(forms) != 1:
        raise SemsearchError("give --title and --abstract, or --arxiv ID, or --batch FILE")

    def checked(paper_id: str | None, title, abstract) -> tuple[str | None, str | None, str | None]:
        request = parse(ClassifyRequest, id=paper_id, title=title, abstract=abstract, taxonomy=taxonomy)
        return request.id, request.title, request.abstract

    def text_of(paper) -> tuple[str | None, str, str]:
        if not paper.abstract:  # held by its title alone (offline): placed on it, as the index places it
            return paper.id, checked(None, paper.title, paper.title)[1], ""
        return checked(paper.id, paper.title, paper.abstract)

    if arxiv_id is not None:
        return [text_of(p) for p in _papers_named(validate_ids([arxiv_id]), _open_index_if_any(index))]
    if batch is None:
        return [checked(None, title, abstract)]
    from semsearch.sources.jsonl import read_records

    def paper(record: dict) -> tuple[str | None, str | None, str | None]:
        paper_id = record.get("id")
        if paper_id is not None and not isinstance(paper_id, str):  # echoed back: a string or nothing
            raise SemsearchError(f"id: expected a string, got {type(paper_id).__name__}")
        return checked(paper_id, record.get("title"), record.get("abstract"))

    items = read_records(batch, paper, 'a JSON object with "title" and "abstract", or an "id"')
    named = list(dict.fromkeys(paper_id for paper_id, title, _ in items if title is None))
    papers = _papers_named(named, _open_index_if_any(index)) if named else []
    found = dict(zip(named, map(text_of, papers), strict=True))
    return [found[item[0]] if item[1] is None else item for item in items]


@app.command()
def classify(
    title: Annotated[str | None, typer.Option("--title", help="The paper's title.")] = None,
    abstract: Annotated[str | None, typer.Option("--abstract", help="The paper's abstract.")] = None,
    arxiv_id: Annotated[
        str | None,
        typer.Option("--arxiv", help="A paper by arXiv id: the index's copy if it has the abstract, else arXiv's."),
    ] = None,
    batch: Annotated[
        Path | None,
        typer.Option(
            "--batch",
            help='JSON Lines of {"id", "title", "abstract"}, or {"id"} alone (read as --arxiv reads it); JSON out.',
        ),
    ] = None,
    taxonomy_name: TaxonomyOption = None,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Suggest where a paper belongs in the survey's taxonomy (or say it is out of scope)."""
    from semsearch.classify import classify_texts
    from semsearch.embeddings import embedder_for
    from semsearch.lists import classifier_for_taxonomy

    items = _classify_inputs(title, abstract, arxiv_id, batch, taxonomy_name, index)
    idx = _open_index(index)
    embedder = embedder_for(idx.manifest.model, index_dir=idx.directory)
    classifier = classifier_for_taxonomy(idx.store, taxonomy_name, embedder.encode)
    results = classify_texts(idx, items, embedder, classifier)
    for result in results:
        if as_json or batch:
            _print_json(result.answer(classifier))
        else:
            _print_classification(result)


def _print_classification(result) -> None:
    from rich.console import Console
    from rich.markup import escape

    from semsearch.taxonomy import leaf_name

    console = Console()
    best = result.suggestions[0]
    verdict = "in scope" if result.in_scope else "[red]out of scope[/red]: closer to other kinds of research"
    console.print(f"[bold]{escape(best.category.replace('/', ' › '))}[/bold]")
    console.print(f"confidence {result.confidence:.2f}, scope {result.scope:.2f}: {verdict}")
    console.print("alternatives:")
    for suggestion in result.suggestions[1:]:
        console.print(f"  {suggestion.score:.2f}  {escape(suggestion.category.replace('/', ' › '))}")
    console.print("closest labelled papers:")
    for n in result.neighbours:
        shown = escape(", ".join(map(leaf_name, n.categories)))
        console.print(f"  {n.similarity:.2f}  {escape(n.title)}  [dim]({shown})[/dim]")


@eval_app.command("classify")
def eval_classify(
    papers: Annotated[
        Path | None,
        typer.Option(
            "--papers",
            help='Judge new papers instead: JSON Lines of {"id", "expected"} (text from the index) or '
            '{"id", "title", "abstract", "expected"}; expected: node name(s), or null outside the taxonomy.',
        ),
    ] = None,
    taxonomy_name: TaxonomyOption = None,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Leave-one-out accuracy and calibration of category suggestions on the labelled papers.

    With --taxonomy NAME, of that taxonomy; its scope is then judged against the papers that
    --papers marks as outside (expected null)."""
    from semsearch.index import Index
    from semsearch.lists import SURVEY

    if taxonomy_name not in (None, SURVEY):
        _print_report(_evaluate_list(Index.open(index), taxonomy_name, papers), as_json)
        return
    if papers is not None:
        from semsearch.evaluate import evaluate_new_papers, read_expected

        records = read_expected(papers)
        report = evaluate_new_papers(Index.open(index), records)
        if as_json:
            _print_json(report)
        else:
            _print_new_papers_report(report)
        return
    from semsearch.embeddings import embedder_for
    from semsearch.evaluate import evaluate_classifier

    idx = Index.open(index)
    _print_report(evaluate_classifier(idx, embedder_for(idx.manifest.model, index_dir=idx.directory)), as_json)


def _evaluate_list(idx, name: str, papers: Path | None) -> dict:
    from semsearch.embeddings import embedder_for
    from semsearch.evaluate import evaluate_classifier, read_expected, texts_and_vectors
    from semsearch.lists import labelled_papers, taxonomy_for

    taxonomy = taxonomy_for(idx.store, name)
    embedder = embedder_for(idx.manifest.model, index_dir=idx.directory)
    outside = None
    if papers is not None:
        rows = [r for r in read_expected(papers) if r["expected"] is None]
        outside = texts_and_vectors(idx, rows, embedder)[1] if rows else None
    return evaluate_classifier(idx, embedder, taxonomy, labelled_papers(idx.store, name), outside)


def _print_new_papers_report(report: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    engines = [name for name, value in report.items() if isinstance(value, dict) and "node_top1" in value]
    console = Console(width=None if _is_terminal(sys.stdout) else 160)  # off a terminal: no wrapped headers
    console.print(
        f"{report['papers']} papers: {report['in_taxonomy']} in the taxonomy, {report['out_of_scope']} outside it"
    )
    title = "first suggestion at or under the expected node (top-1), any of three (top-3)"
    table = Table(title=title, title_justify="left")
    columns = ["engine", "top-1", "top-3", "branch top-1", "scope AUROC", "scope bal. acc.", "ECE", "mean confidence"]
    for column in columns:
        table.add_column(column)
    for name in engines:
        r = report[name]
        keys = ("node_top1", "node_top3", "branch_top1", "scope_auroc", "scope_balanced_accuracy", "ece")
        values = [r[key] for key in (*keys, "mean_confidence")]
        table.add_row(name, *("–" if v is None else f"{v:.3f}" for v in values))
    console.print(table)
    table = Table(title="top-1 by expected branch", title_justify="left")
    for column in ["branch", "papers", *engines]:
        table.add_column(column)
    for branch, row in report["top1_by_branch"].items():
        table.add_row(branch, str(row["papers"]), *(f"{row[name]:.3f}" for name in engines))
    console.print(table)


TopicsOption = Annotated[
    Path | None,
    typer.Option("--topics", help="JSON Lines with `id` and `topics` (reading-list topics as more relevance labels)."),
]


def _topics(path: Path | None) -> dict[str, set[str]]:
    """Reading-list topics: evaluation labels only, never used for ranking."""
    from semsearch.evaluate import read_topics

    return read_topics(path) if path is not None else {}


@eval_app.command("propose")
def eval_propose(
    old: Annotated[Path, typer.Argument(metavar="OLD.md", help="The list's README as it was.")],
    new: Annotated[Path, typer.Argument(metavar="NEW.md", help="The same list later.")],
    min_confidence: Annotated[
        float | None, typer.Option("--min-confidence", metavar="X", help="As `taxonomy propose` (0.35).")
    ] = None,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """How `taxonomy propose` would have filed the papers a list added between two versions.

    The first suggestion and top three at or under the maintainers' heading, and how many it
    would have written."""
    from semsearch.embeddings import embedder_for
    from semsearch.index import Index
    from semsearch.lists import read_source
    from semsearch.propose import ProposeRequest, evaluate_propose
    from semsearch.requests_models import parse

    request = parse(ProposeRequest, taxonomy="eval", min_confidence=min_confidence)
    old_text, new_text = read_source(str(old), offline=True), read_source(str(new), offline=True)
    idx = Index.open(index)
    embedder = embedder_for(idx.manifest.model, index_dir=idx.directory)
    report = evaluate_propose(idx.store, old_text, new_text, embedder.encode, min_confidence=request.min_confidence)
    _print_report(report, as_json)


@eval_app.command("gaps")
def eval_gaps(
    name: Annotated[str, typer.Argument(help="The taxonomy: survey, or a list added with `taxonomy add`.")],
    min_papers: Annotated[int, typer.Option("--min-papers", min=2, help="Leave out headings this large.")] = 8,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Leave each heading with --min-papers or more papers out in turn: is it found again as a gap?

    Found again means a gap whose papers have a Jaccard similarity of 0.5 or more with the heading's."""
    from semsearch.embeddings import embedder_for
    from semsearch.gaps import evaluate_gaps
    from semsearch.index import Index
    from semsearch.propose import ProposeRequest
    from semsearch.requests_models import parse

    request = parse(ProposeRequest, taxonomy=name)
    idx = Index.open(index)
    embedder = embedder_for(idx.manifest.model, index_dir=idx.directory)
    report = evaluate_gaps(idx, request.taxonomy, embedder.encode, min_papers=min_papers)
    if as_json:
        _print_json(report)
        return
    for row in report["by_heading"]:
        mark = "found" if row["best_jaccard"] >= 0.5 else "     "
        print(f"{mark} {row['best_jaccard']:.2f} {row['papers']:>4}  {row['heading']}  <- {row['gap'] or '-'}")
    print(f"{report['recovered']} of {report['headings']} headings recovered ({report['share']:.2f})")
    print(f"{report['false_gaps']} of {report['headings']} false gaps (half a heading hidden, the heading kept)")


@eval_app.command("related")
def eval_related(
    topics: TopicsOption = None,
    k: Annotated[int, typer.Option("-k", min=1, max=100, help="Related papers judged per paper (P@k).")] = 5,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Share of related papers that share a survey leaf or a reading-list topic (P@k)."""
    from semsearch.evaluate import evaluate_related
    from semsearch.index import Index

    labels = _topics(topics)
    report = evaluate_related(Index.open(index), labels, k)
    if report["queries"] < FEW_QUERIES:
        print(
            f"warning: only {report['queries']} survey papers with an abstract to ask about: the figure says little "
            "(`semsearch ingest survey` online, or `ingest jsonl` of their abstracts, gives more)",
            file=sys.stderr,
        )
    _print_report(report, as_json)


@eval_app.command("search")
def eval_search(
    queries: Annotated[
        list[Path], typer.Option("--queries", metavar="FILE", help="Question file(s), JSON Lines; repeatable.")
    ],
    topics: TopicsOption = None,
    as_json: JsonOption = False,
    index: IndexOption = None,
) -> None:
    """Compare semsearch with its own dense-only and BM25-only modes on question files."""
    from semsearch.evaluate import evaluate_search, read_questions, targets_with_abstract, unanswered
    from semsearch.index import Index
    from semsearch.search import Searcher

    labels = _topics(topics)
    files = [(query_file, *read_questions(query_file)) for query_file in queries]
    idx = Index.open(index)
    hybrid = Searcher(idx)
    searchers = {
        "semsearch (hybrid + taxonomy)": hybrid,
        "hybrid, no taxonomy": Searcher(idx, hybrid.embedder, taxonomy=False),
        "dense only": Searcher(idx, hybrid.embedder, mode="dense"),
        "BM25 only": Searcher(idx, hybrid.embedder, mode="lexical"),
    }
    papers = [paper for _, paper in idx.store.iter_papers()]
    report = {}
    for query_file, kind, rows in files:
        title = f"{query_file.name} ({kind}, {len(rows)} questions"
        if kind == "known-item":
            title += f"; {targets_with_abstract(papers, rows).sum()} targets with an abstract"
            if missing := int((~targets_with_abstract(papers, rows, abstract=False)).sum()):
                title += f"; {missing} not in the index"  # a miss whatever the ranking: said, not hidden
                logging.getLogger("semsearch").warning(
                    f"warning: {query_file.name}: {missing} of {len(rows)} targets are not in the index "
                    "(each counts as a miss; ingest them first)"
                )
        elif unjudged := unanswered(papers, rows, labels):
            title += f"; {len(unjudged)} with no relevant paper in the index"
            lines = ", ".join(str(n + 1) for n in unjudged)
            logging.getLogger("semsearch").warning(
                f"warning: {query_file.name}: {len(unjudged)} of {len(rows)} questions have no relevant paper in the "
                f"index (line{'s' if len(unjudged) > 1 else ''} {lines}; each scores 0: ingest its papers, or give "
                "--topics for its reading-list topics)"
            )
        report[title + ")"] = evaluate_search(idx, rows, kind, labels, searchers)
    if as_json:
        _print_json(report)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    for title, results in report.items():
        table = Table(title=escape(title), title_justify="left")  # it holds a file's name
        metrics = list(next(iter(results.values())))
        for column in ["engine", *metrics]:
            table.add_column(column)
        for name, scores in results.items():
            table.add_row(name, *("–" if scores[m] is None else f"{scores[m]:.3f}" for m in metrics))
        Console().print(table)


def _print_report(report: dict, as_json: bool) -> None:
    if as_json:
        _print_json(report)
        return
    for key, value in report.items():
        shown = f"{value:.3f}" if isinstance(value, float) else "n/a (none to measure)" if value is None else value
        print(f"{key:<32} {shown}")


# --- entry point --------------------------------------------------------------------------------
class _Stderr(logging.Handler):
    """The library's warnings and notes, one line each on whatever stderr is now."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr)


@functools.cache
def _command():
    """The click command behind `app`, built once: typer reads every command's signature to build
    it, which a process calling `main` many times (tests, the MCP's host) need not repeat."""
    command = typer.main.get_command(app)
    _untyped_flags(command)
    _flowing_help(command)
    invoke = command.invoke

    def invoke_keeping_ctrl_c(ctx):
        try:
            return invoke(ctx)
        except KeyboardInterrupt as err:
            raise _Interrupted from err

    command.invoke = invoke_keeping_ctrl_c
    return command


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill`, `timeout`, a service manager's stop) taken as Ctrl-C is: the command stops
    where it stands, keeps what it staged and says so in one line, exit 143. At its default it
    ended a writer without a word and dropped the batch being embedded."""


def terminate(signum, frame) -> None:
    """SIGTERM's handler in the `semsearch` command (`_stop_on_sigterm`)."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated


def _stop_on_sigterm() -> None:
    """For the `semsearch` command only (a program calling `main` keeps its own SIGTERM), and not
    when the caller set SIGTERM aside (ignored: it stays so). Answered once, as Ctrl-C is; SIGKILL
    still ends an impatient wait."""
    import signal

    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, terminate)


class _Interrupted(Exception):
    """Ctrl-C carried past typer, which turns a KeyboardInterrupt into a silent exit 130 when
    `main` runs it in non-standalone mode: `main` says what was kept."""


def _untyped_flags(command) -> None:
    """On/off options (--json, --diverse, --help) show no `<bool>` in help: they take no value,
    and typer would print a type as if they did. An empty metavar is what its help shows instead."""
    help_option = command.get_help_option(command.context_class(command))  # made once, then cached
    for param in [*command.params, help_option]:
        if param is not None and param.param_type_name == "option" and getattr(param, "is_flag", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _untyped_flags(sub)


def _flowing_help(command) -> None:
    """Each paragraph of a command's help on one line, for the terminal to wrap: typer's rich mode
    keeps the docstring's line breaks, and a terminal narrower than the source showed a ragged line
    and a fragment ("… or a file unlike the" / "list, is refused …")."""
    if command.help:
        command.help = "\n\n".join(" ".join(paragraph.split()) for paragraph in command.help.split("\n\n"))
    for sub in getattr(command, "commands", {}).values():
        _flowing_help(sub)


EMBEDDING_COMMANDS = (("ingest",), ("watch",), ("taxonomy", "add"), ("taxonomy", "refresh"))


def _interrupted(args: list[str], index_left: str | None = None) -> str:
    """What Ctrl-C leaves, as the index's writer tells it (`index_left`, its `leaves`; None when no
    writer was open: nothing written): nothing, a change published, or work staged, which the next
    command that writes to the index publishes (a command that embeds also resumes from it)."""
    if index_left == "nothing":
        return "interrupted; nothing was changed"
    if index_left == "published":
        return "interrupted; the change was published"
    if index_left != "staged":
        return "interrupted"
    words = tuple(a for a in args if not a.startswith("-"))
    if any(words[: len(command)] == command for command in EMBEDDING_COMMANDS):
        return (
            "interrupted; the papers read so far are kept, with any already embedded: the next run resumes from "
            "them, and the next command that writes to the index publishes them (delete staging/ to drop them)"
        )
    return (
        "interrupted; a change it had begun waits in the index's staging/ and is published by the next "
        "command that writes to the index (delete staging/ to drop it)"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; errors become one line on stderr and an exit code, never a traceback."""
    _fill_closed_descriptors()
    _survive_any_encoding()
    library = logging.getLogger("semsearch")
    if not any(isinstance(h, _Stderr) for h in library.handlers):
        library.addHandler(_Stderr())
        library.setLevel(logging.INFO)
        library.propagate = False
    _warm_question_encoder(sys.argv[1:] if argv is None else list(argv))
    stdout, stderr = sys.stdout, sys.stderr
    # Started with fd 1 closed (`>&-`): as >/dev/null; the flush below failed on None (a traceback, exit 1).
    sys.stdout = _Output(stdout if stdout is not None else open(os.devnull, "w", encoding="utf-8"))
    if stderr is None:  # started with fd 2 closed (`2>&-`): as 2>/dev/null; print(file=None) wrote errors to stdout
        sys.stderr = open(os.devnull, "w", encoding="utf-8")  # for the run; closed after it
    try:
        result = _command().main(args=argv, prog_name="semsearch", standalone_mode=False)
        sys.stdout.flush()  # a write that fails, fails here, said as such, not at the interpreter's exit
    except typer.Abort:
        _interrupt_answered()
        print("interrupted", file=sys.stderr)
        return 130
    except typer.Exit as done:
        return done.exit_code
    except SemsearchError as err:  # on one line: another library's message (Ray's) can hold several
        print(f"error: {one_line(str(err))}", file=sys.stderr)
        return err.exit_code
    except (KeyboardInterrupt, _Interrupted) as err:
        stop = err.__cause__ if isinstance(err, _Interrupted) else err
        args = sys.argv[1:] if argv is None else list(argv)
        return _stopped(stop, _interrupted(args, getattr(stop, "index_left", None)))
    except (BrokenPipeError, _OutputClosed):
        drop_output(stdout)
        return 0
    except (OSError, sqlite3.DatabaseError) as err:
        if is_disk_full(err):
            err = DiskFull.of(err)  # one message for no room to write, wherever it was noticed
        elif exhausted := OutOfResources.of(err):
            print(f"error: {exhausted}", file=sys.stderr)
            return exhausted.exit_code
        elif not _damaged_or_unwritable(err):
            raise
        print(f"error: {one_line(str(err))}", file=sys.stderr)  # a file the library did not name: still one line
        return 2
    except typer.TyperException as err:  # usage errors (an unknown option, "-k nan"): one line too
        if type(err).__name__ == "NoArgsIsHelpError":  # `semsearch`, `semsearch ingest`: the help asked for
            err.show()
            return getattr(err, "exit_code", 2)
        command = getattr(getattr(err, "ctx", None), "command_path", None) or "semsearch"
        print(f"error: {_field_refusal(err) or f'{err.format_message()} (see {command} --help)'}", file=sys.stderr)
        return getattr(err, "exit_code", 2)
    finally:
        if stdout is None:
            sys.stdout.close()
        if stderr is None:
            sys.stderr.close()
        sys.stdout, sys.stderr = stdout, stderr
    return result if isinstance(result, int) else 0


def _fill_closed_descriptors() -> None:
    """/dev/null in place of a closed fd 1 or 2 (`>&-`, `2>&-`, a daemon's start), before any file is
    opened: the first file opened took the free number, and with `>&-` that was the index's .lock,
    where anything written to fd 1 (a library's print, a server's worker) would have gone."""
    for fd in (1, 2):
        try:
            os.fstat(fd)
        except OSError:
            null = os.open(os.devnull, os.O_WRONLY)
            if null != fd:  # a lower one was closed too (fd 0): the lowest free number was given
                os.dup2(null, fd)
                os.close(null)


def _field_refusal(err: typer.TyperException) -> str | None:
    """A value the request models check at every door (`-k ten`, `--year-from x`), refused in
    their words, the field named ("k: Input should be a valid integer, ..."), as HTTP and MCP
    refuse it (the CLI alone said "Invalid value for '-k': ..."); None for any other usage error."""
    from semsearch.requests_models import FIELD_NAMES

    name = getattr(getattr(err, "param", None), "name", None)
    return f"{name}: {err.message}" if type(err) is typer.BadParameter and name in FIELD_NAMES else None


def _warm_question_encoder(args: list[str]) -> None:
    """`semsearch search QUESTION` from a fresh process: the question's encoder starts loading on
    the other core before typer parses the arguments (embeddings.warm_up). Only a peek at --index:
    typer still parses everything, and a wrong guess costs a session loaded in the background."""
    if args[:1] != ["search"] or {"--help", "lexical", "--mode=lexical"} & set(args):
        return
    option = next((value for flag, value in zip(args, args[1:], strict=False) if flag == "--index"), None)
    option = next((a.removeprefix("--index=") for a in args if a.startswith("--index=")), option)
    from semsearch.embeddings import warm_up
    from semsearch.index import resolve_index_dir

    try:
        directory = resolve_index_dir(option)
    except SemsearchError:
        return  # a wrong --index: the command itself says so, in one line
    warm_up(index_dir=directory)


def _damaged_or_unwritable(err: Exception) -> bool:
    from semsearch.index import UNWRITABLE
    from semsearch.store import SQLITE_BUGS

    if isinstance(err, sqlite3.DatabaseError):  # not a database, malformed, read-only, cannot open
        return not isinstance(err, SQLITE_BUGS)
    return getattr(err, "errno", None) in UNWRITABLE


def run(argv: list[str] | None = None) -> None:
    """The `semsearch` command, whose process ends with its answer: once Ctrl-C has been answered,
    another is ignored (`main`)."""
    global _A_COMMAND
    _A_COMMAND = True
    _stop_on_sigterm()
    try:
        code = main(argv)
    except KeyboardInterrupt as err:  # before `main` could answer it: while it set the streams up, or warmed the model
        code = _stopped(err, _interrupted([], "nothing"))
    sys.exit(code)


def _stopped(stop: BaseException, said: str) -> int:
    """Say what a stop left (`said`, in Ctrl-C's words) and give its exit code: SIGTERM's
    ("terminated", 143) or Ctrl-C's (130). Later stops are ignored (`_interrupt_answered`)."""
    _interrupt_answered()
    if isinstance(stop, Terminated):
        print("terminated" + said.removeprefix("interrupted"), file=sys.stderr)
        return 143
    print(said, file=sys.stderr)
    return 130


_A_COMMAND = False  # run as the `semsearch` command, not called by a program that keeps running


def _interrupt_answered() -> None:
    """After the first Ctrl-C of the command, the next ones are ignored: they came while the
    interpreter joined an embedding thread on the way out, and printed twelve lines of "Exception
    ignored in threading" under the one-line answer (an attacker's pass). A program calling `main`
    keeps its own Ctrl-C."""
    if _A_COMMAND:
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)
