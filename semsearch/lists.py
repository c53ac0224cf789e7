"""Named taxonomies from curated lists: `semsearch taxonomy add|list|show|remove`.

Any curated markdown list (a field's "awesome list") becomes a taxonomy in the same index: its
headings are the nodes, its papers are fetched from arXiv (offline: titles, plus abstracts the
index already holds) and labelled under their headings, and a classifier of its own is trained
from them and saved beside the survey's. Node names stand in for the hand-written descriptions
the survey's taxonomy has; the out-of-scope descriptions are the survey's (kinds of LLM research
that no efficiency list covers).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from semsearch.errors import NotFound, SemsearchError
from semsearch.paper import Paper, normalize_title
from semsearch.sources.curated import CuratedList, parse_list
from semsearch.taxonomy import Taxonomy, load_taxonomy, subtree_counts

SURVEY = "survey"  # the built-in taxonomy's name
LIST_ID_PREFIX = "list:"  # ids of listed papers that have no arXiv id
MIN_NODE_PAPERS = 3
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,40}$")
FETCH_TIMEOUT = 30.0


def classifier_artifact(name: str) -> str:
    from semsearch.classify import CLASSIFIER_ARTIFACT

    return f"{CLASSIFIER_ARTIFACT}:{name}"


def read_source(source: str) -> str:
    """A list's markdown from a file or an http(s) URL (GitHub page URLs are read raw)."""
    if re.match(r"^https?://", source):
        import requests

        url = re.sub(
            r"^https://github\.com/([^/]+)/([^/]+)/?$",
            r"https://raw.githubusercontent.com/\1/\2/HEAD/README.md",
            source,
        )
        try:
            response = requests.get(url, timeout=FETCH_TIMEOUT, headers={"User-Agent": "semsearch"})
            response.raise_for_status()
        except requests.RequestException as err:
            reason = str(err).splitlines()[0][:160]
            raise SemsearchError(f"cannot fetch {source}: {reason}") from None
        return response.text
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise SemsearchError(f"cannot read {source}: {err.strerror if isinstance(err, OSError) else err}") from None


def list_taxonomy(nodes: list[str]) -> Taxonomy:
    """A taxonomy for a list: its nodes, each described by its path's names."""
    return Taxonomy(
        nodes=tuple(nodes),
        descriptions={node: node.replace("/", ", ") for node in nodes},
        out_of_scope=load_taxonomy().out_of_scope,
    )


def check_name(name: str) -> str:
    if name == SURVEY or not _NAME.match(name):
        raise SemsearchError(
            f"a taxonomy name is lower-case letters, digits, - and _ (and not {SURVEY!r}); got {name!r}"
        )
    return name


def _paper_id(title: str) -> str:
    return LIST_ID_PREFIX + hashlib.sha1(normalize_title(title).encode()).hexdigest()[:12]


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
    from semsearch.ingest import Ingest

    check_name(name)
    listed = parse_list(read_source(source))
    ingest = Ingest(index_dir=index_dir, progress=progress)
    with ingest:
        store = ingest.store
        if store.taxonomy(name) is not None and not replace:
            raise SemsearchError(f"the index already has a taxonomy {name!r}; add --replace to replace it")
        ingest.add(_with_abstracts(listed, store, offline, ingest.warn))
        labels = []
        for paper in listed.papers:
            vec_id = store.find(paper.arxiv_id or _paper_id(paper.title))
            if vec_id is not None:  # always, unless another record of it took its place
                labels += [(vec_id, category) for category in paper.categories]
        store.put_taxonomy(name, source, listed.nodes, labels)
        classifier = train_list_classifier(store, name, ingest.embedder().encode)
        store.put_artifact(classifier_artifact(name), classifier.to_bytes())
        store.commit()
        summary = describe(listed, name)
        if weak := summary["weak_nodes"]:
            ingest.warn(
                f"{len(weak)} nodes of {name!r} have fewer than {MIN_NODE_PAPERS} papers; suggestions there are weak"
            )
    return summary


def _with_abstracts(listed: CuratedList, store, offline: bool, warn: Callable[[str], None]) -> list[Paper]:
    fetched = _fetch([p.arxiv_id for p in listed.papers if p.arxiv_id], store, offline, warn)
    papers = []
    for paper in listed.papers:
        record = Paper(id=paper.arxiv_id or _paper_id(paper.title), title=paper.title, sources=["list"])
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


def labelled_papers(store, name: str):
    """The taxonomy's papers as the classifier trains on them."""
    from semsearch.classify import labelled_papers as training_papers

    return training_papers(store.taxonomy_papers(name))


def train_list_classifier(store, name: str, embed: Callable[[list[str]], np.ndarray]):
    from semsearch.classify import TaxonomyClassifier

    found = store.taxonomy(name)
    return TaxonomyClassifier.train(labelled_papers(store, name), list_taxonomy(found["nodes"]), embed)


def taxonomy_for(store, name: str | None) -> Taxonomy:
    """The taxonomy called `name` in the index (the survey's when None or "survey")."""
    if name in (None, SURVEY):
        return load_taxonomy()
    found = store.taxonomy(name)
    if found is None:
        raise NotFound(f"no taxonomy {name!r} in the index (see `semsearch taxonomy list`)")
    return list_taxonomy(found["nodes"])


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
    return [survey, *store.taxonomies()]


def remove_list(name: str, *, index_dir: str | Path | None = None) -> None:
    from semsearch.ingest import Ingest

    check_name(name)
    with Ingest(index_dir=index_dir, progress=False) as ingest:
        if not ingest.store.remove_taxonomy(name):
            raise NotFound(f"no taxonomy {name!r} in the index")
        ingest.store.db.execute("DELETE FROM artifacts WHERE name = ?", (classifier_artifact(name),))


# --- the survey's own list, as its authors maintain it -----------------------------------------------
def refresh_survey(
    source: str | None = None,
    *,
    index_dir: str | Path | None = None,
    offline: bool = False,
    progress: bool = False,
) -> dict:
    """Read the survey's maintained list (its GitHub README, or a file), relabel the index's papers
    by it (new papers fetched from arXiv), retrain and publish; what changed, counted."""
    from dataclasses import replace as replaced

    from semsearch.ingest import Ingest
    from semsearch.sources.survey import SURVEY_LIST_META, SURVEY_LIST_URL, survey_facts, survey_from_facts

    facts = survey_facts(read_source(source or SURVEY_LIST_URL), source or SURVEY_LIST_URL)
    fresh = survey_from_facts(facts)
    ingest = Ingest(index_dir=index_dir, progress=progress)
    with ingest:
        store, old = ingest.store, ingest.survey
        key = lambda paper: paper.arxiv_id or normalize_title(paper.title)  # noqa: E731
        before = {key(p): set(p.survey_categories) for p in old.papers}
        after = {key(p): set(p.survey_categories) for p in fresh.papers}
        changes = {
            "added": sorted(after.keys() - before.keys()),
            "removed": sorted(before.keys() - after.keys()),
            "moved": sorted(k for k in after.keys() & before.keys() if after[k] != before[k]),
            "nodes_added": [n for n in fresh.nodes if n not in old.nodes],
            "nodes_removed": [n for n in old.nodes if n not in fresh.nodes],
        }
        ingest.survey = fresh
        new_papers = [p for p in fresh.papers if key(p) in changes["added"] or key(p) in changes["moved"]]
        fetched = _fetch([p.arxiv_id for p in new_papers if p.arxiv_id], store, offline, ingest.warn)
        ingest.add(p.merged_with(fetched[p.arxiv_id]) if p.arxiv_id in fetched else p for p in new_papers)
        for paper in old.papers:  # no longer listed: no longer the survey's
            if key(paper) in changes["removed"]:
                for stored in [store.get(paper.id), *store.papers_with_title(paper.title)]:
                    if stored is not None and stored.survey_categories:
                        store.put(replaced(stored, survey_categories=[]))
        store.set_meta(SURVEY_LIST_META, json.dumps(facts, ensure_ascii=False))
        store.commit()
    return {name: len(value) for name, value in changes.items()} | {"papers": len(fresh.papers), "changes": changes}


def _fetch(ids: list[str], store, offline: bool, warn: Callable[[str], None]) -> dict[str, Paper]:
    """The papers with these arXiv ids that the index holds without an abstract, from arXiv."""
    from semsearch.sources.arxiv import ArxivClient, ArxivUnavailable

    ids = [i for i in ids if not ((stored := store.get(i)) and stored.abstract)]
    if not ids:
        return {}
    if offline:
        warn(f"offline: {len(ids)} papers are indexed on their titles (run again online for abstracts)")
        return {}
    try:
        return {p.id: p for p in ArxivClient().fetch_ids(ids).papers}
    except ArxivUnavailable as err:
        warn(f"{err}; indexing titles only (run again online to add abstracts)")
        return {}
