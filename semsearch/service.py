"""A long-running reader of one index: what `semsearch serve` and `semsearch mcp` answer with.

The models are loaded once. The service follows the index: when an ingest, watch or label
publishes a new generation, `refresh` loads it beside the old one and swaps it in; requests already
running finish on the old one, which is closed when its last request is done (and only then may a
writer remove it). Each answer is the JSON the HTTP API returns, so the API and the MCP tools
cannot drift apart. Requests may run in parallel: SQLite is read through a connection per thread,
and FAISS, ONNX Runtime and the classifier are only read.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RELOAD_SECONDS = 1.0
LABEL_LOCK_SECONDS = 10.0  # how long a label request waits for another writer before a 503
SESSION_THREADS = 1  # per question: concurrent requests use the cores better than one request split
log = logging.getLogger("semsearch.service")


@dataclass
class Generation:
    """One published generation, loaded, with the requests now using it."""

    index: object
    searcher: object
    finder: object
    users: int = 0
    retired: bool = False
    by_taxonomy: dict = field(default_factory=dict)  # a list's name -> (searcher, finder), made on first use

    @property
    def name(self) -> str:
        return self.index.generation_dir.name

    def under(self, taxonomy: str | None):
        """(searcher, finder) for the taxonomy `taxonomy` (the survey's when None)."""
        from semsearch.lists import SURVEY

        if taxonomy in (None, SURVEY):
            return self.searcher, self.finder
        if taxonomy not in self.by_taxonomy:
            from semsearch.related import RelatedFinder
            from semsearch.search import Searcher

            searcher = Searcher(self.index, self.searcher.embedder, taxonomy_name=taxonomy)
            self.by_taxonomy[taxonomy] = (searcher, RelatedFinder(self.index, searcher=searcher))
        return self.by_taxonomy[taxonomy]


def web_url(url: str | None) -> str | None:
    """`url` if the papers' one link rule (`paper.web_url`) admits it and it parses as a URL: an
    index written before ingest applied that rule may hold `javascript:` links, and the page puts
    what it is given into href."""
    from urllib.parse import urlsplit

    from semsearch.paper import web_url as admitted

    if admitted(url) is None:
        return None
    try:
        urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        return None
    return url


def hit_json(hit, *, explain: bool = False, details: bool = False) -> dict:
    """A hit as the API gives it; `details` adds what a page shows (authors, venue, abstract)."""
    data = hit.to_dict(explain)
    data["url"] = web_url(data.get("url"))
    if details:
        data.update(
            authors=hit.paper.authors, venue=hit.paper.venue, abstract=hit.paper.abstract, published=hit.paper.published
        )
    return data


def taxonomy_tree(store, name: str | None = None) -> list[dict]:
    """The tree of the taxonomy `name` with how many papers sit under each node: the survey's
    (None or "survey") counts labelled and predicted papers; a list's, the papers it labels. What
    `taxonomy show NAME --json` prints."""
    from semsearch.lists import SURVEY, taxonomy_for
    from semsearch.taxonomy import index_tree, subtree_counts

    if name in (None, SURVEY):
        return index_tree(store)
    taxonomy = taxonomy_for(store, name)  # NotFound for a name the index does not hold
    return taxonomy.tree(subtree_counts(categories for _, _, categories in store.taxonomy_papers(name)))


def on_github(url: str) -> bool:
    """Whether `url` is on GitHub by its host: one with "github.com" in its path or query, or in
    another host's name, was shown as the paper's code."""
    from urllib.parse import urlsplit

    try:
        host = (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return False
    return host == "github.com" or host.endswith(".github.com")


def arxiv_links(paper) -> dict:
    arxiv_id = paper.arxiv_id
    links = (
        {"arxiv": f"https://arxiv.org/abs/{arxiv_id}", "pdf": f"https://arxiv.org/pdf/{arxiv_id}"} if arxiv_id else {}
    )
    url = web_url(paper.url)
    if url and on_github(url):
        links["code"] = url
    elif url and not arxiv_id:
        links["page"] = url
    return links


def node_closeness(store, vec_ids: list[int]) -> list[float]:
    """Each paper's closeness to the node it is listed under (0-1): the cosine of its embedding to
    the mean of the node's papers, so the papers most typical of the node come first."""
    import numpy as np

    from semsearch.related import readable

    if not vec_ids:
        return []
    vectors = store.embeddings_for(vec_ids)
    matrix = np.vstack([vectors[v] for v in vec_ids]).astype(np.float32)
    centre = matrix.mean(axis=0)
    centre /= max(float(np.linalg.norm(centre)), 1e-12)
    return [readable(s) for s in matrix @ centre]


class Service:
    """The generation that answers requests, swapped for the newest published one by `refresh`."""

    def __init__(self, *, index_dir: str | Path | None = None):
        import faiss

        from semsearch.index import Index

        faiss.omp_set_num_threads(SESSION_THREADS)
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()
        self.current = self._load(Index.open(index_dir), embedder=None)
        self.directory = self.current.index.directory
        self.reload_error: str | None = None
        self._unloadable: str | None = None
        self.integrity: str | None = self.current.index.integrity  # a damaged generation passed over
        self.unusable: str | None = None  # the generation serving was damaged under us, and none is intact
        self._gone = False  # ... because the index is not there (moved, deleted): not damage

    # --- following the index ------------------------------------------------------------------
    @staticmethod
    def _load(index, embedder) -> Generation:
        from semsearch.related import RelatedFinder
        from semsearch.search import Searcher

        try:
            if embedder is None:
                from semsearch.embeddings import embedder_for

                embedder = embedder_for(index.manifest.model, index_dir=index.directory, threads=SESSION_THREADS)
            searcher = Searcher(index, embedder)
            # Everything a request needs is loaded now, not by the first request (nor in two threads at once).
            for name, owner in (("classifier", searcher), ("vectors", index), ("lexical", index)):
                getattr(owner, name)
        except BaseException:
            index.close()
            raise
        return Generation(index, searcher, RelatedFinder(index, searcher=searcher))

    @contextmanager
    def use(self) -> Iterator[Generation]:
        from semsearch.errors import IndexDamaged

        with self._lock:
            if self.unusable:
                raise IndexDamaged(self.unusable)
            generation = self.current
            generation.users += 1
        try:
            yield generation
        finally:
            with self._lock:
                generation.users -= 1
                done = generation.retired and generation.users == 0
            if done:
                generation.index.close()

    def refresh(self) -> bool:
        """Load and swap in the newest published generation, if it is newer, else check the one
        serving (`_recheck`); True when swapped. A generation that cannot be loaded leaves the
        current one serving (`reload_error` says why) and is not tried again. One refresh at a time:
        the reload thread and a label's request both refresh, and a check of a generation a
        concurrent swap had just retired found it "missing"."""
        with self._refreshing:
            return self._refresh()

    def _refresh(self) -> bool:
        from semsearch.errors import SemsearchError
        from semsearch.index import Index, current_generation

        try:
            newest = current_generation(self.directory)
        except SemsearchError as err:  # a damaged CURRENT: keep serving, say why in /api/health
            if self.reload_error != str(err):
                log.warning("semsearch: %s; still serving %s", err, self.current.name)
            self.reload_error = str(err)
            return False
        if newest == self.current.name:  # CURRENT reads again, naming what is served: a past error of
            self.reload_error = None  # reading it (out of open files, a save half done) is over
        if newest in (None, self.current.name, self._unloadable):
            return self._recheck()
        try:
            index = Index.open(self.directory)
            if index.integrity is not None:  # the newest is damaged (Index.open fell back, warned): never swapped in
                damage = index.integrity.rsplit("; serving ", 1)[0]
                index.close()
                self._unloadable, self.reload_error = newest, damage
                self.integrity = f"{damage}; serving {self.current.name}"
                return False
            same_model = index.manifest.model == self.current.index.manifest.model
            fresh = self._load(index, self.current.searcher.embedder if same_model else None)
        except Exception as err:  # noqa: BLE001 - keep answering from what works
            self._unloadable = newest
            self.reload_error = f"{newest}: {err}"
            log.warning("semsearch: cannot load %s; still serving %s", self.reload_error, self.current.name)
            return False
        self._swap(fresh)
        self.reload_error = self.integrity = None
        return True

    def _swap(self, fresh: Generation) -> None:
        with self._lock:
            old, self.current = self.current, fresh
            old.retired = True
            done = old.users == 0
            self.unusable, self._gone = None, False
        if done:
            old.index.close()

    def _recheck(self) -> bool:
        """Check the generation serving again: the stat() of each file, a changed one hashed. A file
        changed in place under a running server (a disk fault, `rsync --inplace`, an editor) changed
        its answers while health said ok; a fresh process refused it. A damaged one is replaced by the
        newest intact older generation, as a fresh open chooses; with none, every request is refused
        (503) until an intact one is published. True when another generation was swapped in."""
        from semsearch.index import GenerationDamaged, Index, verify_generation

        live = self.current.index
        # Not damage, and nothing to fall back to: the index moved away or deleted, or an empty folder
        # made in its place. Looked at again each tick (a stat), so it answers again once it is back.
        if not live.generation_dir.is_dir() and not any(self.directory.glob("gen-*")):
            gone = f"the index directory {self.directory} is gone (moved or deleted); answering again once it is back"
            with self._lock:
                self.unusable = self.integrity = gone
            self._gone = True
            return False
        if self.unusable and not self._gone:  # damaged, nothing intact: checked again after a publish
            return False
        try:
            verify_generation(live.directory, live.generation_dir, live.manifest)
            if self.unusable:  # back as it was
                with self._lock:
                    self.unusable = self.integrity = None
                self._gone = False
            return False
        except GenerationDamaged as err:
            damage = err
        except OSError:  # its files cannot be looked at now (permissions): the next tick asks again
            return False
        log.warning("semsearch: %s under the running server", damage.what)
        try:
            index = Index.fall_back(self.directory, damage)  # the choice Index.open makes
            fresh = self._load(index, self.current.searcher.embedder)
        except Exception as err:  # noqa: BLE001 - nothing intact to load: refuse rather than answer wrongly
            with self._lock:
                self.unusable = str(err)
            self.integrity = str(err)
            return False
        self._swap(fresh)
        self.integrity = index.integrity
        return True

    def follow(self, interval: float = RELOAD_SECONDS) -> threading.Event:
        """Refresh every `interval` seconds in a daemon thread until the returned event is set."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.wait(interval):
                try:
                    self.refresh()
                except Exception as err:  # noqa: BLE001 - a stat() refused, say: the next tick tries again
                    self.reload_error = f"{type(err).__name__}: {err}"
                    log.warning("semsearch: reloading failed: %s", self.reload_error)

        threading.Thread(target=loop, name="semsearch-reload", daemon=True).start()
        return stop

    # --- answers ------------------------------------------------------------------------------
    watch_status: Callable[[], dict] | None = None  # set by `serve --watch-every`: what the watcher last did

    def health(self) -> dict:
        if self.unusable:  # answers nothing until an intact generation is published
            return {"status": "degraded", "integrity": self.unusable, "generation": self.current.name}
        with self.use() as live:
            manifest = live.index.manifest
            answer = {"status": "ok", "papers": manifest.count, "model": manifest.model, "generation": live.name}
        if self.reload_error:
            answer["reload_error"] = self.reload_error
        if self.watch_status is not None:
            answer["watch"] = self.watch_status()
        if self.integrity:
            answer["integrity"] = self.integrity
        if self.reload_error or self.integrity or answer.get("watch", {}).get("state") in ("dead", "failing"):
            answer["status"] = "degraded"  # still answering, but a monitor that reads only `status` should know
        return answer

    def overview(self) -> dict:
        """What the index holds, for a person: counts, the last watch and what it found."""
        from semsearch.watch import LAST_WATCH, digest_json

        with self.use() as live:
            store = live.index.store
            counts = {"papers": live.index.manifest.count, **store.content_counts()}
            last_watch = store.get_meta(LAST_WATCH)
        digest = digest_json(index_dir=self.directory)
        return {**counts, "last_watch": last_watch, "new_papers": digest["groups"] if digest else {}}

    def search(
        self,
        question: str,
        k: int = 10,
        *,
        year_from: int | None = None,
        year_to: int | None = None,
        category: str | None = None,
        explain: bool = False,
        details: bool = False,
        taxonomy: str | None = None,
    ) -> dict:
        from semsearch.search import Filters, check_query, explanation

        with self.use() as live:
            searcher = live.under(taxonomy)[0]
            hits = searcher.search(question, k, Filters(year_from, year_to, category))
        answer = {"query": check_query(question)}
        if explain:  # in words: what the question was taken for, what put the first results first
            answer["explanation"] = explanation(hits, searcher.mode)
        return answer | {"results": [hit_json(h, explain=explain, details=details) for h in hits]}

    def classify(
        self, title: str | None, abstract: str | None, taxonomy: str | None = None, *, paper_id: str | None = None
    ) -> dict:
        """Where a paper belongs; with the path of the first suggestion, each node's probability. A
        paper the index holds may be named by `paper_id` instead of its text (the index's text)."""
        from semsearch.classify import classify_texts

        with self.use() as live:
            searcher, finder = live.under(taxonomy)
            item = (paper_id, title, abstract)
            if title is None:
                vec_id = finder.resolve(paper_id)
                paper = live.index.store.papers_by_vec_id([vec_id])[vec_id]
                item = (paper.id, paper.title, paper.abstract)
            result = classify_texts(live.index, [item], live.searcher.embedder, searcher.classifier)[0]
        return result.answer(searcher.classifier)  # carries `scope`, the calibrated probability `in_scope` thresholds

    def related(
        self, paper_id: str, k: int = 10, *, diverse: bool = False, details: bool = False, taxonomy: str | None = None
    ) -> dict:
        with self.use() as live:
            finder = live.under(taxonomy)[1]
            own_id = finder.paper_id(paper_id)
            hits = finder.related_to(own_id, k, diverse=diverse)
        return {"id": own_id, "results": [hit_json(h, details=details) for h in hits]}

    def recommend(
        self,
        likes: Sequence[str],
        dislikes: Sequence[str] = (),
        k: int = 10,
        since: str | None = None,
        *,
        details: bool = False,
    ) -> dict:
        with self.use() as live:
            hits = live.finder.recommend(list(likes), list(dislikes), k, since=since)
        return {
            "likes": list(likes),
            "dislikes": list(dislikes),
            "results": [hit_json(h, details=details) for h in hits],
        }

    def papers_under(
        self, category: str, limit: int = 50, *, details: bool = False, taxonomy: str | None = None
    ) -> dict:
        """Papers under a taxonomy node (labelled there by the survey or a user, or predicted there;
        for a taxonomy from a list, labelled there by the list)."""
        from semsearch.search import TWIN_ROOM, Filters

        with self.use() as live:
            searcher = live.under(taxonomy)[0]
            node = searcher.resolve_category(category)
            allowed = searcher.allowed_vec_ids(Filters(category=node))
            vec_ids = allowed.tolist()
            closeness = node_closeness(live.index.store, vec_ids)
            ranked = sorted(zip(vec_ids, closeness, strict=True), key=lambda pair: -pair[1])
            hits = searcher.hits(ranked[: TWIN_ROOM * limit], limit, allowed=allowed)
        return {"category": node, "results": [hit_json(h, details=details) for h in hits]}

    def paper(self, paper_id: str) -> dict:
        """One paper whole: abstract, authors, links, its categories (with the classifier's
        confidence when predicted) and its BibTeX."""
        from semsearch.bibtex import to_bibtex

        with self.use() as live:
            hit = live.searcher.hits([(live.finder.resolve(paper_id), 1.0)])[0]
        data = hit_json(hit, details=True)
        data.pop("score")
        data.update(
            links=arxiv_links(hit.paper),
            confidence=round(hit.prediction.confidence, 4) if data["category_source"] == "predicted" else None,
            bibtex=to_bibtex([hit.paper]),
        )
        return data

    def taxonomies(self) -> list[dict]:
        """The survey's taxonomy and those added from lists: name, nodes, papers (and a list's source)."""
        from semsearch.lists import listed_taxonomies

        with self.use() as live:
            return listed_taxonomies(live.index.store)

    def taxonomy(self, taxonomy: str | None = None) -> list[dict]:
        """The taxonomy `taxonomy` as a tree with its counts (the survey's when None); an unknown
        name is NotFound, as for search."""
        with self.use() as live:
            return taxonomy_tree(live.index.store, taxonomy)

    def trends(self, categories: Sequence[str], taxonomy: str | None = None) -> dict:
        """Papers per year under each node, of the survey's taxonomy or of `taxonomy` (a list's):
        the papers a search filtered by that node would consider (`allowed_vec_ids`)."""
        from semsearch.search import Filters

        with self.use() as live:
            searcher = live.under(taxonomy)[0]
            nodes = [searcher.resolve_category(c) for c in categories]
            store = live.index.store
            counted = {
                node: store.year_counts(searcher.allowed_vec_ids(Filters(category=node)).tolist()) for node in nodes
            }
        return {"trends": {node: {str(year): n for year, n in years.items()} for node, years in counted.items()}}

    def export(self, ids: Sequence[str]) -> str:
        from semsearch.bibtex import to_bibtex

        with self.use() as live:
            return to_bibtex(live.finder.papers(ids))

    def label(self, paper_id: str, category: str, taxonomy: str | None = None) -> dict:
        """Confirm a paper's category (a user label, in the survey's taxonomy or a list's): published,
        then served."""
        from semsearch.ingest import labelled

        with self.use() as live:
            vec_id = live.finder.resolve(paper_id)  # 404 before taking the writer's lock
            paper_id = live.index.store.papers_by_vec_id([vec_id])[vec_id].id  # labelled by its own id
        # A request does not wait minutes for a writer (a watch fetching from a slow arXiv holds the
        # lock): 503 after LABEL_LOCK_SECONDS, try again.
        answer = labelled(
            paper_id, category, taxonomy=taxonomy, index_dir=self.directory, lock_timeout=LABEL_LOCK_SECONDS
        )
        self.refresh()
        return answer

    def _watched(self, taxonomy: str | None) -> str | None:
        """The kind of watch whose digests are asked for: the survey's (None), else a list the index holds."""
        from semsearch.errors import NotFound
        from semsearch.lists import SURVEY

        if taxonomy in (None, SURVEY):
            return None
        with self.use() as live:
            if live.index.store.taxonomy(taxonomy) is None:
                raise NotFound(f"no taxonomy {taxonomy!r} in the index")
        return taxonomy

    def digests(self, taxonomy: str | None = None) -> dict:
        """The readable digests of the survey's watch (or a list's), newest first, and the files of
        its folder skipped (with why)."""
        from semsearch.watch import scan_digests

        listed, skipped = scan_digests(index_dir=self.directory, taxonomy=self._watched(taxonomy))
        return {"digests": listed, "skipped": skipped}

    def digest(self, name: str | None, taxonomy: str | None = None) -> dict:
        """One digest (the newest readable one when `name` is None); 404 for a name not of the digest
        form or not there, or when no watch has kept one yet; 422 for a damaged file."""
        from semsearch.errors import NotFound
        from semsearch.watch import digest_json

        found = digest_json(name, index_dir=self.directory, taxonomy=self._watched(taxonomy))
        if found is None:
            raise NotFound("no digest yet: run `semsearch watch`, or serve with --watch-every 24h")
        return found

    # --- giving back to the lists: proposals, gaps, feeds ----------------------------------------------
    def propose(self, request) -> dict:
        """`taxonomy propose` against the README the index kept for the list (never fetched here)."""
        from semsearch.propose import propose_for, readme_for

        with self.use() as live:
            searcher = live.under(request.taxonomy)[0]
            markdown, filename = readme_for(live.index.store, request.taxonomy, offline=True)
            return propose_for(live.index, request, markdown, filename, classifier=searcher.classifier)

    def gaps(self, taxonomy: str, since: str | None = None) -> dict:
        from semsearch.gaps import gaps_for

        with self.use() as live:
            searcher = live.under(taxonomy)[0]
            return gaps_for(live.index, taxonomy, since=since, classifier=searcher.classifier)

    def node_feed(self, category: str, taxonomy: str | None, base_url: str) -> bytes:
        """The Atom feed of the newest papers under a node."""
        from semsearch.feeds import node_feed
        from semsearch.lists import SURVEY
        from semsearch.search import Filters

        with self.use() as live:
            searcher = live.under(taxonomy)[0]
            node = searcher.resolve_category(category)
            vec_ids = searcher.allowed_vec_ids(Filters(category=node)).tolist()
            papers = live.index.store.papers_by_vec_id(vec_ids).values()
        return node_feed(taxonomy or SURVEY, node, papers, base_url)

    def digests_feed(self, base_url: str, taxonomy: str | None = None) -> bytes:
        """The Atom feed of the digests with papers (the newest first; damaged ones left out). They
        are read as the feed takes them, up to its MAX_ENTRIES: taken before the quiet ones were
        left out, 50 quiet days of a daily watch left the feed empty. A quiet one is not read."""
        import json

        from semsearch.errors import NotFound
        from semsearch.feeds import digests_feed
        from semsearch.watch import DamagedDigest, load_digest, render_digest, scan_digests

        kind = self._watched(taxonomy)  # once: asked again for each digest, it was 50 lookups a feed

        def with_papers():
            for listed in scan_digests(index_dir=self.directory, taxonomy=kind)[0]:
                if not listed["papers"]:
                    continue
                try:
                    report = load_digest(listed["name"], index_dir=self.directory, taxonomy=kind)
                except (DamagedDigest, NotFound):
                    continue
                digest = json.loads(render_digest(report, "json"))
                yield digest | {"name": listed["name"], "papers": listed["papers"], "revised": report.revised}

        return digests_feed(with_papers(), base_url, kind)
