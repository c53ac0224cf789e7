"""Named taxonomies from curated lists: `semsearch taxonomy add|list|show|remove`.

Any curated markdown list (a field's "awesome list") becomes a taxonomy in the same index: its
headings are the nodes, its papers are fetched from arXiv (offline: titles, plus abstracts the
index already holds) and labelled under their headings, and a classifier of its own is trained
from them and saved beside the survey's. Node names stand in for the hand-written descriptions
the survey's taxonomy has; the out-of-scope descriptions are the survey's (kinds of LLM research
that no efficiency list covers).

A refresh (`taxonomy refresh`, for the survey's list and for added lists) first works out what
would change. It is refused, unless forced, when it would remove more than a fifth of the list's
papers or when the new file shares fewer than half of the list's headings: a wrong file must not
wipe a taxonomy's labels. The labels a refresh replaces are kept in the index's metadata (the
survey's previous list as facts; an added list's previous nodes and labels by paper id), so
`taxonomy refresh --undo` restores them (and an undo of an undo redoes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from semsearch.errors import NotFound, SemsearchError, Unreachable, missing_file, network_reason
from semsearch.paper import Paper, counted, normalize_title, year_from_arxiv_id
from semsearch.sources.curated import CuratedList, ListedPaper, name_form, parse_list
from semsearch.taxonomy import Taxonomy, load_taxonomy, subtree_counts

SURVEY = "survey"  # the built-in taxonomy's name
LIST_ID_PREFIX = "list:"  # ids of listed papers that have no arXiv id
MIN_NODE_PAPERS = 3
_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")  # the whole name (fullmatch: `$` lets a final newline by)
FETCH_TIMEOUT = 30.0
MAX_REMOVED_SHARE = 0.2  # a refresh removing more of a list's papers than this needs --force
MIN_SHARED_HEADINGS = 0.5  # a file sharing fewer of the list's headings is not that list
SHOWN = 5  # titles shown for each kind of change
PREVIOUS_PREFIX = "taxonomy_previous:"  # index metadata: the labels a refresh replaced, for --undo


def classifier_artifact(name: str) -> str:
    from semsearch.classify import CLASSIFIER_ARTIFACT

    return f"{CLASSIFIER_ARTIFACT}:{name}"


def is_url(source: str) -> bool:
    return source[:8].lower().startswith(("http://", "https://"))


def public_source(source: str) -> str:
    """What the index records as a list's source, and shows: a URL without its user or query
    (which may hold a token), or a file's base name (a local path says nothing to an API client
    and tells it about the machine)."""
    if is_url(source):
        from urllib.parse import urlsplit

        parts = urlsplit(source)
        return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
    return Path(source).name


def read_source(source: str, *, offline: bool = False) -> str:
    """A list's markdown from a file or an http(s) URL (GitHub page URLs are read raw). With
    `offline`, a URL is refused rather than fetched. Either is refused past the parser's size limit
    before it is read whole."""
    from semsearch.sources.curated import MAX_CHARS

    too_large = f"cannot read {source}: larger than the {MAX_CHARS // 1_000_000} MB a list may be"
    if is_url(source):
        if offline:
            raise SemsearchError(f"--offline: not fetching {public_source(source)}; give the list as a file")
        import requests

        from semsearch.fetch import BoundedSession, BrokeOff, Overdue, TooLarge

        url = re.sub(
            r"^https://github\.com/([^/]+)/([^/]+)/?$",
            r"https://raw.githubusercontent.com/\1/\2/HEAD/README.md",
            source,
        )
        # The whole answer, headers included, gets FETCH_TIMEOUT (`BoundedSession`): requests' own
        # timeout bounds each read, and a server sending a byte now and then held the command for ever.
        try:
            with BoundedSession(FETCH_TIMEOUT, 4 * MAX_CHARS) as session:  # a character is at most four bytes
                response = session.get(url, headers={"User-Agent": "semsearch"})
                response.raise_for_status()
                return _decoded(response.content, response.headers.get("content-type"))
        except TooLarge:
            raise SemsearchError(too_large) from None
        except (Overdue, BrokeOff) as err:
            raise Unreachable(f"cannot fetch {public_source(source)}: {err}") from None
        except requests.RequestException as err:
            # A page that is not there is a wrong URL (exit 2); a host that does not answer, or asks
            # to be asked later (408, 429: GitHub's rate limit), not.
            status = err.response.status_code if isinstance(err, requests.HTTPError) and err.response is not None else 0
            error = SemsearchError if 400 <= status < 500 and status not in (408, 429) else Unreachable
            raise error(f"cannot fetch {public_source(source)}: {network_reason(err)}") from None
    path = Path(source)
    try:
        if path.stat().st_size > 4 * MAX_CHARS:
            raise SemsearchError(too_large)
        # Read up to the limit, whatever the size said: /dev/zero (or a pipe) says 0 and never ends,
        # and was read until memory ran out. Bytes decoded as they are keep the file's own line ends,
        # which a patch must match.
        with path.open("rb") as handle:
            raw = handle.read(4 * MAX_CHARS + 1)
        if len(raw) > 4 * MAX_CHARS:
            raise SemsearchError(too_large)
        return raw.decode("utf-8")
    except FileNotFoundError:
        raise missing_file(source) from None
    except (OSError, UnicodeDecodeError) as err:
        raise SemsearchError(f"cannot read {source}: {err.strerror if isinstance(err, OSError) else err}") from None


def _decoded(body: bytes, content_type: str | None) -> str:
    """A list's text in the charset its server names, else (none named, or one Python cannot read
    text with) UTF-8, Markdown's in practice: requests reads text/* without a charset as
    ISO-8859-1, which turned "Café" into "CafÃ©", and a name no codec has ended `taxonomy add`
    in a LookupError traceback."""
    from email.message import Message

    header = Message()
    header["content-type"] = content_type or ""
    named = header.get_param("charset")
    if isinstance(named, str) and named.lower().replace("_", "-") not in ("utf-8", "utf8"):
        try:
            return body.decode(named, errors="replace")
        except (LookupError, UnicodeError):  # unknown, not a text codec ("zlib"), or one refusing "replace"
            pass
    return body.decode("utf-8", errors="replace")


def list_taxonomy(nodes: list[str], name: str | None = None) -> Taxonomy:
    """A taxonomy for a list (added as `name`): its nodes, each described by its path's names."""
    return Taxonomy(
        nodes=tuple(nodes),
        descriptions={node: node.replace("/", ", ") for node in nodes},
        out_of_scope=load_taxonomy().out_of_scope,
        listed_by=f"semsearch taxonomy show {name}" if name else "semsearch taxonomy list",
    )


def check_name(name: str) -> str:
    if name == SURVEY or not _NAME.fullmatch(name):
        raise SemsearchError(
            f"a taxonomy name is lower-case letters, digits, - and _ (and not {SURVEY!r}); got {name!r}"
        )
    return name


def _paper_id(title: str) -> str:
    return LIST_ID_PREFIX + hashlib.sha1(normalize_title(title).encode()).hexdigest()[:12]


def indexed_as(store, paper: ListedPaper) -> int | None:
    """The index's record of a listed paper: by its arXiv id; else, for an item without an arXiv
    link, any record of its title (one with an arXiv id first). Such an item became a record of
    its own beside the index's, and a search showed the paper twice."""
    if paper.arxiv_id:
        return store.find(paper.arxiv_id)
    same = store.vec_ids_with_title(paper.title)
    if not same:
        return None
    records = store.papers_by_vec_id(same)
    return min(same, key=lambda v: (v not in records or not records[v].arxiv_id, v))


def _listed_key(store, paper: ListedPaper) -> str:
    """A listed paper's key in a refresh's plan, as `_list_labels` keys the labels stored."""
    vec_id = indexed_as(store, paper) if store is not None else None
    record = store.papers_by_vec_id([vec_id]).get(vec_id) if vec_id is not None else None
    if record is not None:
        return record.arxiv_id or record.id
    return paper.arxiv_id or _paper_id(paper.title)


def _existing(*, index_dir: str | Path | None) -> Path:
    """The index a list is added to, refreshed in or removed from: it must exist (a mistyped
    --index made a new one holding the list alone, without a word)."""
    from semsearch.index import Index

    return Index.existing(index_dir)


def add_list(
    name: str,
    source: str,
    *,
    index_dir: str | Path | None = None,
    offline: bool = False,
    replace: bool = False,
    progress: bool = False,
) -> dict:
    """Make the curated list at `source` the taxonomy `name` of the index; a summary of it."""
    check_name(name)
    index_dir = _existing(index_dir=index_dir)  # before the list is fetched
    markdown = read_source(source, offline=offline)
    listed = parse_list(markdown)
    return _put_list(
        name,
        source,
        listed,
        index_dir=index_dir,
        offline=offline,
        replace=replace,
        progress=progress,
        markdown=markdown,
        added=True,
    )


@contextmanager
def _as_readers_see_it(writer):
    """The published index's store, read-only (None for a new index): what readers see, where
    staging may also hold an interrupted run's half-done change. A change judges by it whether a
    list is there and what it replaces (kept for --undo): judged by staging, a Ctrl-C'd refresh run
    again kept its own half-done labels as the ones replaced, and --undo never gave the list back."""
    from semsearch.index import DB_FILE
    from semsearch.store import Store

    if writer.base_manifest is None:
        yield None
        return
    published = Store(writer.directory / writer.base_manifest.generation / DB_FILE, readonly=True)
    try:
        yield published
    finally:
        published.close()


def _replaced(writer, name: str) -> tuple[str | None, str | None]:
    """(the list `name` as readers see it now, for --undo (None when it is not there); the one
    its last refresh replaced)."""
    import sqlite3

    with _as_readers_see_it(writer) as published:
        if published is None:
            return None, None
        try:
            return _snapshot_list(published, name), published.get_meta(PREVIOUS_PREFIX + name)
        except sqlite3.OperationalError:  # an index from before lists were added holds none
            return None, None


def _put_list(
    name: str,
    source: str,
    listed: CuratedList,
    *,
    index_dir: str | Path | None,
    offline: bool,
    replace: bool,
    progress: bool,
    markdown: str | None = None,
    unchanged: bool = False,
    added: bool = False,
) -> dict:
    """Store `listed` as the taxonomy `name` (its papers fetched, its classifier trained); the labels
    it replaces are kept for `--undo`, unless the refresh is `unchanged` and keeps the undo of the
    last one that changed something (`_keeps_undo`). Its README (`markdown`) is kept too: `taxonomy
    propose` writes its patch against it. `added` (`taxonomy add`, --replace or not): a list of its
    own, of which no paper was taken out (`keep_readme`)."""
    from semsearch.ingest import Ingest

    ingest = Ingest(index_dir=index_dir, progress=progress)
    with ingest:
        store = ingest.store
        kept = _replaced(ingest.writer, name)[0]
        # Judged by what readers see: an interrupted `taxonomy add` of it, staged, is gone on with.
        if store.taxonomy(name) is not None and not replace and kept is not None:
            raise SemsearchError(f"the index already has a taxonomy {name!r}; add --replace to replace it")
        keep_undo = _keeps_undo(store, name, unchanged)
        if kept is not None and not keep_undo:
            store.set_meta(PREVIOUS_PREFIX + name, kept)
        if markdown is not None:
            keep_readme(ingest.writer, name, markdown, keep_previous=keep_undo, added=added)
        # The list's papers, nodes, labels and README in one transaction: a kill while its papers
        # are embedded leaves the whole list staged (or none of it) for the next writer to publish,
        # never a README or papers without the list. Its classifier, trained once they are embedded,
        # is dropped meanwhile: one trained on the replaced list's nodes must not answer for these.
        ingest.put_whole(_with_abstracts(listed, store, offline, ingest.warn, later=_refresh_command(name, source)))
        labels = []
        for paper in listed.papers:
            vec_id = indexed_as(store, paper)
            if vec_id is not None:  # always, unless another record of it took its place
                labels += [(vec_id, category) for category in paper.categories]
        store.put_taxonomy(name, public_source(source), listed.nodes, labels)
        store.remove_artifact(classifier_artifact(name))
        store.commit()
        ingest.embed_stale()
        save_list_classifier(store, name, ingest.embedder().encode)
        store.commit()
        summary = describe(listed, name) | {"papers": len({vec_id for vec_id, _ in labels})}
        if unread := listed.unread:  # an item left out without a word looked like a paper lost
            first = unread[0] if len(unread[0]) <= 100 else unread[0][:99] + "…"
            ingest.warn(
                f"{counted(len(unread), 'item')} of {name!r} not read as "
                f"{'a paper' if len(unread) == 1 else 'papers'} (a link, but no arXiv link and no bold title), "
                f"e.g. {first!r}"
            )
        if weak := summary["weak_nodes"]:
            ingest.warn(
                f"{counted(len(weak), 'node')} of {name!r} "
                f"{'has' if len(weak) == 1 else 'have'} fewer than {MIN_NODE_PAPERS} papers; suggestions there are weak"
            )
    return summary


def _refresh_command(name: str, source: str) -> str:
    """The command that reads the list `name` again and fetches what its papers lack."""
    import shlex

    return (
        f"taxonomy refresh --taxonomy {name}"
        if is_url(source)
        else (f"taxonomy refresh {shlex.quote(source)} --taxonomy {name}")
    )


def _with_abstracts(
    listed: CuratedList, store, offline: bool, warn: Callable[[str], None], *, later: str
) -> list[Paper]:
    fetched = _fetch([p.arxiv_id for p in listed.papers if p.arxiv_id], store, offline, warn, later=later)
    papers = []
    for paper in listed.papers:
        if indexed_as(store, paper) is not None:
            # The index holds it: labelled there, its record kept (the list's title for an arXiv
            # link may be another name of the work, and renamed the paper), filled in from arXiv.
            papers += [fetched[paper.arxiv_id]] if paper.arxiv_id in fetched else []
            continue
        # The year its arXiv id says, as `ingest jsonl` reads one (offline, nothing else tells it).
        year = year_from_arxiv_id(paper.arxiv_id) if paper.arxiv_id else None
        record = Paper(id=paper.arxiv_id or _paper_id(paper.title), title=paper.title, year=year, sources=["list"])
        papers.append(record.merged_with(fetched[paper.arxiv_id]) if paper.arxiv_id in fetched else record)
    return papers


def describe(listed: CuratedList, name: str) -> dict:
    papers_under = subtree_counts(p.categories for p in listed.papers)
    return {
        "name": name,
        "nodes": listed.nodes,
        "papers": len(listed.papers),
        "with_arxiv_id": sum(1 for p in listed.papers if p.arxiv_id),
        "weak_nodes": [leaf for leaf in listed.leaves() if papers_under.get(leaf, 0) < MIN_NODE_PAPERS],
    }


def user_labels(store, name: str) -> dict[int, str]:
    """The user's labels in the list `name` that count (`label --taxonomy`): on papers the list does
    not label itself, under a heading it still has (a refresh may have renamed one)."""
    found = store.taxonomy(name)
    nodes = set(found["nodes"]) if found else set()
    return {vec_id: category for vec_id, category in store.list_user_labels(name).items() if category in nodes}


def effective_labels(store, name: str, users: dict[int, str] | None = None) -> dict[int, list[str]]:
    """Each paper's categories in the list `name`: the list's own, else the user's label (`users`,
    when the caller has read them already)."""
    users = user_labels(store, name) if users is None else users
    return store.taxonomy_labels(name) | {vec_id: [category] for vec_id, category in users.items()}


def labelled_papers(store, name: str):
    """The taxonomy's papers as the classifier trains on them: the list's, and the user's labels."""
    from semsearch.classify import labelled_papers as training_papers

    labelled = user_labels(store, name)
    papers, vectors = store.papers_by_vec_id(labelled), store.embeddings_for(labelled)
    by_user = [(papers[v], vectors[v], [category]) for v, category in labelled.items() if v in papers and v in vectors]
    return training_papers(store.taxonomy_papers(name) + by_user)


def train_list_classifier(store, name: str, embed: Callable[[list[str]], np.ndarray]):
    from semsearch.classify import TaxonomyClassifier

    found = store.taxonomy(name)
    return TaxonomyClassifier.train(labelled_papers(store, name), list_taxonomy(found["nodes"]), embed)


def save_list_classifier(store, name: str, embed: Callable[[list[str]], np.ndarray]) -> None:
    """Train the list's classifier on its papers and labels as they stand, and keep it in the index."""
    store.put_artifact(classifier_artifact(name), train_list_classifier(store, name, embed).to_bytes())


def taxonomy_for(store, name: str | None) -> Taxonomy:
    """The taxonomy called `name` in the index (the survey's when None or "survey")."""
    if name in (None, SURVEY):
        return load_taxonomy()
    found = store.taxonomy(name)
    if found is None:
        raise NotFound(f"no taxonomy {name!r} in the index (see `semsearch taxonomy list`)")
    return list_taxonomy(found["nodes"], name)


def classifier_for_taxonomy(store, name: str | None, embed: Callable[[list[str]], np.ndarray]):
    """The classifier of the taxonomy `name` (the survey's when None or "survey")."""
    from semsearch.classify import classifier_for, load_saved

    if name in (None, SURVEY):
        return classifier_for(store, load_taxonomy(), embed)
    taxonomy_for(store, name)  # refuses an unknown name
    return load_saved(store, classifier_artifact(name)) or train_list_classifier(store, name, embed)


def listed_taxonomies(store) -> list[dict]:
    """The survey's and every added taxonomy: name, nodes, how many papers each labels."""
    survey = {"name": SURVEY, "nodes": list(load_taxonomy().nodes), "papers": store.content_counts()["survey_labelled"]}
    added = [
        row | {"source": public_source(row["source"] or "")} for row in store.taxonomies()
    ]  # older indexes kept paths
    return [survey, *added]


def remove_list(name: str, *, index_dir: str | Path | None = None) -> dict:
    """Remove the list `name` (its papers stay). Returns what went: the list as `taxonomy list` shows
    it ({"name", "source", "nodes", "papers"}) and "labels_removed", the user's labels in it."""
    from semsearch.ingest import Ingest

    check_name(name)
    with Ingest(index_dir=_existing(index_dir=index_dir), progress=False) as ingest:
        removed = next((t for t in ingest.store.taxonomies() if t["name"] == name), None)
        if not ingest.store.remove_taxonomy(name):
            raise NotFound(f"no taxonomy {name!r} in the index")
        # a refresh keeps them (put_taxonomy); a removal does not
        removed["labels_removed"] = ingest.store.forget_list_labels(name)
        ingest.store.remove_artifact(classifier_artifact(name))
        from semsearch.propose import README_META, REMOVED_META

        for key in (PREVIOUS_PREFIX, README_PREVIOUS, README_META, REMOVED_META, REMOVED_PREVIOUS):
            ingest.store.db.execute("DELETE FROM meta WHERE key = ?", (key + name,))
    return removed


# --- refreshing a list, safely -------------------------------------------------------------------
def _plan(
    before: dict[str, tuple[str, set[str]]], after: dict[str, tuple[str, set[str]]], old_nodes, new_nodes
) -> dict:
    """What replacing the labels `before` by `after` (key -> (title, categories)) changes."""
    changes = {
        "added": sorted(after.keys() - before.keys()),
        "removed": sorted(before.keys() - after.keys()),
        "moved": sorted(k for k in after.keys() & before.keys() if after[k][1] != before[k][1]),
        "nodes_added": [n for n in new_nodes if n not in set(old_nodes)],
        "nodes_removed": [n for n in old_nodes if n not in set(new_nodes)],
    }
    titles = {
        kind: [(before.get(k) or after[k])[0] for k in changes[kind][:SHOWN]] for kind in ("added", "removed", "moved")
    }
    return {"changes": changes, "titles": titles, "before": len(before), "papers": len(after)}


def _listed_under_another_key(
    before: dict[str, tuple[str, set[str]]], after: dict[str, tuple[str, set[str]]]
) -> dict[str, str]:
    """New key -> old key of each paper a list gives now under another key than before (its arXiv
    id then, only its title now, or the other way round), found by its title: the same paper, not
    one removed and one added (REST was both on every survey refresh)."""
    by_title = {normalize_title(title): old for old, (title, _) in before.items() if old not in after}
    return {
        new: by_title[normalize_title(title)]
        for new, (title, _) in after.items()
        if new not in before and normalize_title(title) in by_title
    }


def undo_command(name: str | None) -> str:
    """The command that undoes the last refresh of taxonomy `name` (None: the survey's)."""
    return "`taxonomy refresh --undo`" if name in (None, SURVEY) else f"`taxonomy refresh {name} --undo`"


def _refusal(name: str, plan: dict, old_nodes, new_nodes) -> str | None:
    """Why a refresh looks like a mistake, if it does: a file that is not this list, or one that
    would take away more than a fifth of its papers."""
    # A heading wherever it moved, in the form names are read in (a list added before kept "Cafe\u0301").
    leaf = lambda node: name_form(node.rsplit("/", 1)[-1]).lower()  # noqa: E731
    old_names, new_names = {leaf(n) for n in old_nodes}, {leaf(n) for n in new_nodes}
    shared = len(old_names & new_names)
    if old_names and shared < MIN_SHARED_HEADINGS * len(old_names):
        other = " or --taxonomy NAME for a list added with `taxonomy add`," if name == SURVEY else ""
        return (
            f"refresh refused: the file shares {shared} of the {len(old_names)} headings of {name!r}, so it does "
            f"not look like that list (check the file,{other} or add --force to take it anyway)"
        )
    removed, before = len(plan["changes"]["removed"]), plan["before"]
    if before and removed > MAX_REMOVED_SHARE * before:
        return (
            f"refresh refused: it would remove {removed} of the {before} papers of {name!r}, more than a fifth "
            f"(see them with --dry-run; add --force to apply it; {undo_command(name)} restores the labels)"
        )
    return None


def _planned(name: str, plan: dict, old_nodes, new_nodes, *, force: bool, dry_run: bool) -> dict | None:
    """A dry run's report (saying whether the run itself would be refused), else None once the
    refresh is safe or forced; an unsafe one is refused here."""
    refusal = None if force else _refusal(name, plan, old_nodes, new_nodes)
    if dry_run:
        return _report(plan, applied=False) | {"refused": refusal}
    if refusal:
        raise SemsearchError(refusal)
    return None


def _report(plan: dict, applied: bool) -> dict:
    counts = {kind: len(keys) for kind, keys in plan["changes"].items()}
    return counts | {
        "papers": plan["papers"], "applied": applied, "unchanged": _unchanged(plan), "changes": plan["changes"],
        "titles": plan["titles"],
    }  # fmt: skip


def _unchanged(plan: dict) -> bool:
    """Whether a refresh changes no label and no node: run again (twice by mistake, or a daily
    cron), it took the place of the refresh that had changed them, and `--undo` lost that one."""
    return not any(plan["changes"].values())


def _keeps_undo(store, name: str, unchanged: bool) -> bool:
    """Whether a refresh leaves the kept undo as it is: it changes no label and no node, and an
    earlier refresh left an undo (else it keeps its own, which changes nothing: `--undo` answers)."""
    return unchanged and store.get_meta(PREVIOUS_PREFIX + name) is not None


def _open_published(directory: str | Path | None):
    """The published index, to plan a refresh from (read only), or None when there is none yet."""
    from semsearch.index import Index

    try:
        return Index.open(directory)
    except SemsearchError:
        return None


def refresh_list(
    name: str | None,
    source: str | None = None,
    *,
    index_dir: str | Path | None = None,
    offline: bool = False,
    progress: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> dict:
    """Re-read the list `name` (the survey's when None or "survey") from `source` (its URL by
    default), and relabel by it when that is safe (or forced); what would or did change."""
    index_dir = _existing(index_dir=index_dir)  # before the list is fetched
    if name in (None, SURVEY):
        return refresh_survey(
            source, index_dir=index_dir, offline=offline, progress=progress, force=force, dry_run=dry_run
        )
    check_name(name)
    index = _open_published(index_dir)
    try:
        found = index.store.taxonomy(name) if index else None
        if found is None:
            raise NotFound(f"no taxonomy {name!r} in the index (add it with `semsearch taxonomy add`)")
        if source is None:
            if not is_url(found["source"] or ""):
                raise SemsearchError(f"{name!r} was read from a file: give the file to refresh it from")
            source = found["source"]
        markdown = read_source(source, offline=offline)
        listed = parse_list(markdown)
        before = _list_labels(index.store, name)
        after: dict[str, tuple[str, set[str]]] = {}
        for paper in listed.papers:  # two items of one indexed paper (two names of it) label it once
            _, categories = after.setdefault(_listed_key(index.store, paper), (paper.title, set()))
            categories.update(paper.categories)
    finally:
        if index is not None:
            index.close()
    plan = _plan(before, after, found["nodes"], listed.nodes)
    if (dry := _planned(name, plan, found["nodes"], listed.nodes, force=force, dry_run=dry_run)) is not None:
        return dry
    _put_list(
        name, source, listed, index_dir=index_dir, offline=offline, replace=True, progress=progress, markdown=markdown,
        unchanged=_unchanged(plan),
    )  # fmt: skip
    return _report(plan, applied=True)


def _list_labels(store, name: str) -> dict[str, tuple[str, set[str]]]:
    labels = store.taxonomy_labels(name)
    papers = store.papers_by_vec_id(list(labels))
    return {(paper.arxiv_id or paper.id): (paper.title, set(labels[vec_id])) for vec_id, paper in papers.items()}


def _snapshot_list(store, name: str) -> str | None:
    """The taxonomy's source, nodes and labels (by paper id), as JSON, for `--undo`."""
    found = store.taxonomy(name)
    if found is None:
        return None
    labels = store.taxonomy_labels(name)
    papers = store.papers_by_vec_id(list(labels))
    pairs = [[papers[v].id, category] for v, categories in labels.items() for category in categories]
    return json.dumps({"source": found["source"], "nodes": found["nodes"], "labels": pairs}, ensure_ascii=False)


def undo_refresh(name: str | None, *, index_dir: str | Path | None = None, progress: bool = False) -> dict:
    """Put back the labels the last refresh (or add --replace) of `name` replaced; the replaced
    ones are kept in turn, so undoing again redoes."""
    from semsearch.ingest import Ingest

    index_dir = _existing(index_dir=index_dir)  # a mistyped --index is no index, not one never refreshed
    if name in (None, SURVEY):
        index = _open_published(index_dir)
        previous = index.store.get_meta(PREVIOUS_PREFIX + SURVEY) if index else None
        if index:
            index.close()
        if previous is None:
            raise SemsearchError("nothing to undo: the survey's list was never refreshed in this index")
        return _apply_survey(json.loads(previous), index_dir=index_dir, offline=True, progress=progress, undo=True)
    check_name(name)
    with Ingest(index_dir=index_dir, progress=progress) as ingest:
        store = ingest.store
        current, previous = _replaced(ingest.writer, name)
        if current is None:
            raise NotFound(f"no taxonomy {name!r} in the index")
        if previous is None:
            raise SemsearchError(f"nothing to undo: {name!r} was not refreshed or replaced in this index")
        kept = json.loads(previous)
        labels = [
            (vec_id, category) for paper_id, category in kept["labels"] if (vec_id := store.find(paper_id)) is not None
        ]
        store.put_taxonomy(name, kept["source"], kept["nodes"], labels)
        store.set_meta(PREVIOUS_PREFIX + name, current)
        keep_readme(ingest.writer, name, None, undo=True)
        save_list_classifier(store, name, ingest.embedder().encode)
        store.commit()
    return {"name": name, "nodes": len(kept["nodes"]), "papers": len({v for v, _ in labels}), "applied": True}


def refresh_survey(
    source: str | None = None,
    *,
    index_dir: str | Path | None = None,
    offline: bool = False,
    progress: bool = False,
    force: bool = False,
    dry_run: bool = False,
) -> dict:
    """Read the survey's maintained list (its GitHub README, or a file) and, when safe (or forced),
    relabel the index's papers by it (new papers fetched from arXiv), retrain and publish; what
    would or did change."""
    from semsearch.sources.survey import SURVEY_LIST_URL, survey_facts

    index_dir = _existing(index_dir=index_dir)
    where = source or SURVEY_LIST_URL
    markdown = read_source(where, offline=offline)
    facts = survey_facts(markdown, public_source(where))
    return _apply_survey(
        facts,
        index_dir=index_dir,
        offline=offline,
        progress=progress,
        force=force,
        dry_run=dry_run,
        markdown=markdown,
    )


def _apply_survey(
    facts: dict,
    *,
    index_dir: str | Path | None,
    offline: bool,
    progress: bool,
    force: bool = True,
    dry_run: bool = False,
    undo: bool = False,
    markdown: str | None = None,
) -> dict:
    """Make `facts` the survey's list in the index; the list it replaces is kept for `--undo` (an
    undo fetches nothing: it puts labels back on papers the index already holds)."""
    from dataclasses import replace as replaced

    from semsearch.ingest import Ingest
    from semsearch.sources.survey import SURVEY_LIST_META, survey_from_facts, survey_of

    fresh = survey_from_facts(facts)
    key = lambda paper: paper.arxiv_id or normalize_title(paper.title)  # noqa: E731
    index = _open_published(index_dir)
    old = survey_of(index.store if index else None)
    if index:
        index.close()
    before = {key(p): (p.title, set(p.survey_categories)) for p in old.papers}
    after = {key(p): (p.title, set(p.survey_categories)) for p in fresh.papers}
    aliases = _listed_under_another_key(before, after)
    after = {aliases.get(k, k): entry for k, entry in after.items()}
    plan = _plan(before, after, old.nodes, fresh.nodes)
    if (dry := _planned(SURVEY, plan, old.nodes, fresh.nodes, force=force, dry_run=dry_run)) is not None:
        return dry
    changes = plan["changes"]
    ingest = Ingest(index_dir=index_dir, progress=progress)
    with ingest:
        store, old = ingest.store, ingest.survey
        with _as_readers_see_it(ingest.writer) as published:
            previous = (published.get_meta(SURVEY_LIST_META) if published else None) or _packaged_facts()
        ingest.survey = fresh
        touched = set(changes["added"]) | set(changes["moved"]) | set(aliases)  # a paper relinked takes its new key
        new_papers = [p for p in fresh.papers if key(p) in touched]
        fetched = (
            {}
            if undo
            else _fetch(
                [p.arxiv_id for p in new_papers if p.arxiv_id], store, offline, ingest.warn, later="ingest survey"
            )
        )
        # Stored uncommitted, with the relabelling below: the refresh lands in one transaction (embedded
        # at publish), so a kill meanwhile never leaves half of it staged for the next writer to publish.
        ingest.put_whole(p.merged_with(fetched[p.arxiv_id]) if p.arxiv_id in fetched else p for p in new_papers)
        gone = set(changes["removed"])
        # A paper listed now under another key (by its title, where the old list had its arXiv id,
        # or the other way round) is still listed: its record, merged with the new entry above,
        # keeps the label (REST lost it on a refresh, and again on the undo).
        listed = set(after) | {normalize_title(p.title) for p in fresh.papers}
        for paper in old.papers:  # no longer listed: no longer the survey's
            if key(paper) in gone:
                for stored in [store.get(paper.id), *store.papers_with_title(paper.title)]:
                    still = stored is not None and (key(stored) in listed or normalize_title(stored.title) in listed)
                    if stored is not None and stored.survey_categories and not still:
                        store.put(replaced(stored, survey_categories=[]))
        keep_undo = not undo and _keeps_undo(store, SURVEY, _unchanged(plan))
        if not keep_undo:
            store.set_meta(PREVIOUS_PREFIX + SURVEY, previous)
        store.set_meta(SURVEY_LIST_META, json.dumps(facts, ensure_ascii=False))
        keep_readme(ingest.writer, SURVEY, markdown, undo=undo, keep_previous=keep_undo)
        store.commit()
    return _report(plan, applied=True)


README_PREVIOUS = "list_markdown_previous:"  # the README a refresh replaced, put back by --undo
REMOVED_PREVIOUS = "list_removed_previous:"  # the record of papers taken out that went with it


def keep_readme(
    writer, name: str, markdown: str | None, *, undo: bool = False, keep_previous: bool = False, added: bool = False
) -> None:
    """Keep the list's README as read (for `taxonomy propose`) with the record of the papers its
    maintainers took out, and the pair they replace (as readers see it); an undo swaps the pairs
    back. `keep_previous`: the pair kept for `--undo` stays (a refresh that changed no label).
    `added`: a list put under the name (`taxonomy add --replace`), not a new version of the one
    there: its record starts empty (the first list's papers it lacks were never taken out of it)."""
    from semsearch.propose import README_META, REMOVED_META, recorded_removals

    with _as_readers_see_it(writer) as published:
        seen = published or writer.store
        current = (seen.get_meta(README_META + name), seen.get_meta(REMOVED_META + name))
        previous = (seen.get_meta(README_PREVIOUS + name), seen.get_meta(REMOVED_PREVIOUS + name))
    new = previous if undo else (markdown, "[]" if added else recorded_removals(current[1], current[0], markdown))
    kept = [(README_META, new[0]), (REMOVED_META, new[1])]
    if not keep_previous:
        kept += [(README_PREVIOUS, current[0]), (REMOVED_PREVIOUS, current[1])]
    for prefix, value in kept:
        if value is None:
            writer.store.db.execute("DELETE FROM meta WHERE key = ?", (prefix + name,))
        else:
            writer.store.set_meta(prefix + name, value)


def _packaged_facts() -> str:
    from importlib.resources import files

    return files("semsearch").joinpath("data/survey.json").read_text(encoding="utf-8")


def _fetch(ids: list[str], store, offline: bool, warn: Callable[[str], None], *, later: str) -> dict[str, Paper]:
    """The papers with these arXiv ids that the index holds without an abstract, from arXiv. Those
    left without one are said, with the command (`later`) that brings their abstracts: "run again"
    had named `taxonomy add`, which run again is refused, the name being taken."""
    from semsearch.sources.arxiv import ArxivClient, ArxivUnavailable

    ids = [i for i in ids if not ((stored := store.get(i)) and stored.abstract)]
    if not ids:
        return {}
    remedy = f"`semsearch {later}` online adds {'its abstract' if len(ids) == 1 else 'their abstracts'}"
    if offline:
        warn(
            f"offline: 1 paper is indexed on its title ({remedy})"
            if len(ids) == 1
            else f"offline: {len(ids)} papers are indexed on their titles ({remedy})"
        )
        return {}
    try:
        return {p.id: p for p in ArxivClient().fetch_ids(ids).papers}
    except ArxivUnavailable as err:
        warn(f"{err}; indexing titles only ({remedy})")
        return {}
