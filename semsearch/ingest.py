"""Ingestion: papers from any source → identity and survey facts → store → embeddings → published index."""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from semsearch.errors import (
    DiskFull,
    IndexUnwritable,
    NotFound,
    OutOfResources,
    PartialFailure,
    SemsearchError,
    is_disk_full,
    missing_file,
)
from semsearch.index import RESUME_PREFIX, UNWRITABLE, WATCH_LOCK, Index, IndexWriter, Manifest, lock_is_held
from semsearch.paper import Paper, counted, normalize_title
from semsearch.sources.survey import Survey, survey_of

BATCH = 512  # papers per store transaction and per call to the model
SURVEY_ID_PREFIX = "survey:"
TITLES_LOOKED_UP = "survey_titles_looked_up"  # store meta: survey titles already searched on arXiv


@dataclass
class IngestReport:
    read: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    embedded: int = 0
    embed_seconds: float = 0.0
    seconds: float = 0.0
    manifest: Manifest | None = None
    published: bool = False  # a run that changed nothing publishes nothing
    warnings: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # "file:line" of each malformed line skipped (jsonl)
    left_out: int = 0  # records a filter passed over (jsonl's --categories, --since), said beside "read"
    left_out_by: str = ""  # the filter's options, as the summary names them
    carried_over: int = 0  # papers an interrupted or failed run had staged, published by this one
    carried_from_watch: bool = False  # ... or that a watch running now had staged (it lets the lock go)

    def counts(self) -> dict:
        """What `ingest ... --json` prints, the same for every source: the run's counts, the papers
        the index holds after it, and the malformed lines skipped (the first 100 named)."""
        papers = self.manifest.count if self.manifest else 0
        run = {name: getattr(self, name) for name in ("read", "added", "updated", "unchanged", "embedded")}
        return run | {"papers": papers, "skipped": len(self.skipped), "skipped_lines": self.skipped[:100]}

    def summary(self) -> str:
        held = counted(self.manifest.count if self.manifest else "no", "paper")
        papers = counted(self.read, "paper")
        if self.left_out:  # "read 0 papers" alone read as an empty file
            papers += f" ({counted(self.left_out, 'record')} left out by {self.left_out_by})"
        read = f"read {papers}: {self.added} new, {self.updated} updated, {self.unchanged} unchanged; "
        if self.carried_over:  # else the index grew by more than this run's "new", unexplained
            source = (
                "the watch running now" if self.carried_from_watch else "an earlier run that stopped before publishing"
            )
            read += f"{self.carried_over} more new from {source}; "
        if not self.published and self.manifest is not None:
            return f"{read}nothing new: {self.manifest.generation} ({held}) is unchanged ({self.seconds:.1f}s)"
        return (
            f"{read}embedded {self.embedded} in {self.embed_seconds:.1f}s; index now holds {held} ({self.seconds:.1f}s)"
        )


def _cores() -> int:
    """The cores this process may run on: the encoder runs one batch on each."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _warn_stderr(message: str) -> None:
    logging.getLogger("semsearch.ingest").warning("warning: %s", message)


def _told(err: BaseException) -> SemsearchError | None:
    """A full disk, no file handles left or an index that cannot be written, as the error a person
    is shown (else None): the CLI and the API (507, 503) say it in one line, not a traceback or a 500."""
    code = getattr(err, "errno", None)
    if is_disk_full(err):
        return DiskFull.of(err)
    if exhausted := OutOfResources.of(err):
        return exhausted
    if code in UNWRITABLE or "readonly database" in str(err):
        reason = getattr(err, "strerror", None) or str(err)
        if getattr(err, "filename", None):
            reason = f"{err.filename}: {reason}"
        return IndexUnwritable.at(None, reason)
    return None


def _missing_folders(directory: Path) -> list[Path]:
    """`directory` and those of its parents that do not exist yet, deepest first."""
    return [folder for folder in (directory, *directory.parents) if not os.path.lexists(folder)]


def _remove_made(made: list[Path], *, export: Path, index_dir: Path) -> None:
    """Undo what a refused start made (`--ray` refused for its cluster): the encoder's `export` (87
    MB with the real model) or its marker, and a new index directory with its `.lock`, deepest first.
    The refusal stores nothing, and it left them behind. A folder something else was put in is kept:
    only the export, made whole by this run, is removed with what it holds (a folder was taken for
    it by its parent's name, `encoders`, and `--index encoders/idx` was removed whole)."""
    for path in sorted(made, key=lambda p: len(p.parts), reverse=True):
        try:
            if path.is_symlink() or not path.is_dir():
                path.unlink(missing_ok=True)
            elif path == export:
                shutil.rmtree(path)
            else:
                if path == index_dir:
                    (path / ".lock").unlink(missing_ok=True)
                path.rmdir()
        except OSError:
            pass


class Ingest:
    """`with Ingest(index_dir=index_dir) as ingest: ingest.add(papers)` stores, embeds and publishes.

    On leaving the block normally, or with a SemsearchError (bad input part-way, papers that
    never arrived), everything added so far is published before the error goes on. Any other
    exit (Ctrl-C, a crash) publishes nothing: the embedded papers wait in staging for the next run.
    """

    def __init__(
        self,
        *,
        index_dir: str | Path | None = None,
        model: str | None = None,
        progress: bool = True,
        warn: Callable[[str], None] = _warn_stderr,
        survey: Survey | None = None,
        index_type: str | None = None,
        ray_address: str | None = None,
        lock_timeout: float | None = None,
        prints_summary: bool = False,
    ):
        """`ray_address`: embed on a Ray cluster (`semsearch.cluster`; "local" starts one here).
        `prints_summary`: the caller shows `report.summary()`, which tells of papers an interrupted
        run had staged; else opening says it (a Ctrl-C'd label took effect with the next one, unsaid)."""
        self.writer = IndexWriter(index_dir, model, index_type=index_type, lock_timeout=lock_timeout)
        self.ray_address = ray_address
        self.survey = survey  # else, once the index is open, its own list (as refreshed, else the packaged one)
        self.progress = progress
        self._warn = warn
        self.report = IngestReport()
        self._prints_summary = prints_summary
        self._embedder = None
        self._bar = None
        self._to_come: int | None = 0  # papers a caller that embeds them itself still expects (None: unknown)
        self._started = 0.0
        self._pool = None  # one thread that runs the encoder while this one reads and stores (see _embed_ahead)
        self._ahead = None  # (future of vectors, the pending embeddings they are for, when it started)

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)
        self._warn(message)

    @property
    def store(self):
        return self.writer.store

    def __enter__(self) -> Ingest:
        self._started = time.perf_counter()
        made = _missing_folders(self.writer.directory) if self.ray_address else []
        self.writer.__enter__()
        if self.writer.resumed:
            published = self.writer.base_manifest.count if self.writer.base_manifest else 0
            self.report.carried_over = max(self.store.count() - published, 0)
            self.report.carried_from_watch = lock_is_held(self.writer.directory / WATCH_LOCK)
            if not self._prints_summary:
                papers = f" ({self.report.carried_over} papers)" if self.report.carried_over else ""
                who = "the watch running now has" if self.report.carried_from_watch else "an interrupted run had"
                self.warn(f"this change also publishes what {who} staged{papers}")
        if self.survey is None:
            self.survey = survey_of(self.store)
        if self.ray_address:  # the cluster reached before a paper is read: a refusal then stores nothing
            from semsearch.embeddings import encoder_dir

            export = encoder_dir(self.writer.model, index_dir=self.writer.directory)
            marker = export.with_name(export.name + ".unsupported")
            # lexists: a symbolic link to nothing (`encoders` on a disk not mounted) is there, not made here
            made += [f for f in (marker, export, export.parent) if not os.path.lexists(f)]
            try:
                self.embedder()
            except BaseException as err:  # `with` runs no __exit__ when __enter__ fails: the writer lets go here
                try:
                    self.writer.close_staging()
                    # Under the lock: removed once it was let go, the `.lock` a writer waiting on it then
                    # held was gone, and that writer's whole run was refused at publishing.
                    _remove_made(made, export=export, index_dir=self.writer.directory)
                finally:
                    self.writer.__exit__(type(err), err, err.__traceback__)
                raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            try:
                # A failed run publishes what it stored before failing (a source that broke part-way).
                if exc_type is None or issubclass(exc_type, SemsearchError):
                    self.finish()
            except BaseException as failed:  # finishing failed (a Ctrl-C while publishing): the writer is told
                exc_type, exc, tb = type(failed), failed, failed.__traceback__
                raise
            finally:
                if self._pool is not None:  # an interrupted run drops the batch in flight: embedded next run
                    self._pool.shutdown(wait=False, cancel_futures=True)
                if self._bar is not None:
                    self._bar.close()
                if hasattr(self._embedder, "close"):  # a Ray cluster's workers
                    self._embedder.close()
                self.writer.__exit__(exc_type, exc, tb)
                self.report.seconds = time.perf_counter() - self._started
        except (OSError, sqlite3.OperationalError) as err:
            told = _told(err)
            if told is None:
                raise
            raise told from None
        if exc is not None and (told := _told(exc)):  # the CLI and the API say it in one line
            raise told from None

    def finish(self) -> None:
        """The stages after storing, in order: embed what is stale, train the classifier and
        predict categories, export the encoder (if embedding did not already), publish. A run that
        changed nothing publishes nothing. Called when the `with` block ends (once: a published run
        is done)."""
        if self.writer.store is None or not self.store.count():
            return
        self.embed_stale()
        self.update_predictions()
        self.export_encoder()
        self.publish()

    def publish(self) -> None:
        if self.writer.has_changes():
            dimension = self._embedder.dimension if self._embedder else None
            self.report.manifest = self.writer.publish(dimension)
            self.report.published = True
        else:
            self.report.manifest = self.writer.published_manifest()

    # --- storing ------------------------------------------------------------------------------
    def add(self, papers: Iterable[Paper], checkpoint: Callable[[], None] | None = None) -> None:
        """Store papers as they come (a source failing part-way loses nothing it already gave).
        `checkpoint` records how far the source got, in the same transaction as the papers."""
        stored, storing = 0, False
        try:
            for paper in papers:
                storing = True  # the source has moved past this paper: stopped now, it is not stored
                self._put(paper)
                storing = False
                stored += 1
                if stored % BATCH == 0:
                    if checkpoint:
                        checkpoint()
                    self.store.commit()
                    self._embed_ahead()
        finally:
            if checkpoint and not storing:  # else the place of the last commit stands: resumed, it is read again
                checkpoint()
            self.store.commit()
        self.embed_stale()

    def put_whole(self, papers: Iterable[Paper]) -> None:
        """Store papers in the caller's transaction, committing nothing: for a change that lands
        whole or not at all with the rest of it (a list's refresh relabels papers it also adds).
        `add` commits as it goes, so a refresh killed while it embedded left its new labels staged
        without the rest, and the next writer (a label) published that mix. Embedded at `finish`."""
        for paper in papers:
            self._put(paper)

    def add_embedded(
        self, pairs: Iterable[tuple[Paper, np.ndarray]], checkpoint: Callable[[], None] | None = None
    ) -> None:
        """Store papers whose embeddings the caller already made (to classify them first, or made
        elsewhere); `checkpoint` as for `add`."""
        from semsearch.store import PendingEmbedding

        stored_count, storing = 0, False
        try:
            for paper, vector in pairs:
                storing = True  # as in `add`: the source has moved past this paper, not stored yet
                vec_id = self._put(paper)
                stored = self.store.papers_by_vec_id([vec_id])[vec_id]
                text_hash = stored.text_hash(self.writer.model)
                if stored.embedding_text() == paper.embedding_text() and not self.store.has_embedding(
                    vec_id, text_hash, vector
                ):  # else the merged text is embedded anew, or this vector is stored already
                    self.store.put_embeddings([PendingEmbedding(vec_id, "", text_hash)], vector[None, :])
                    self.store.set_meta("dimension", str(len(vector)))
                storing = False
                stored_count += 1
                if stored_count % BATCH == 0:
                    if checkpoint:
                        checkpoint()
                    self.store.commit()
        finally:
            # Stopped while storing a paper, the place of the last commit stands: that paper is read
            # again on resuming (it was skipped, never stored: one paper fewer in the index).
            if checkpoint and not storing:
                checkpoint()
            self.store.commit()
        self.embed_stale()

    def _put(self, paper: Paper) -> int:
        self.report.read += 1
        paper = self.survey.annotate(paper)
        existing, replacing = self.store.get(paper.id), None
        if existing is None:
            # A survey entry without an arXiv id and an arXiv record with the same title are one paper.
            for other in self.store.papers_with_title(paper.title):
                if paper.id.startswith(SURVEY_ID_PREFIX) or other.id.startswith(SURVEY_ID_PREFIX):
                    existing, replacing = other, other.id
                    break
        if existing is None:
            self.report.added += 1
            return self.store.put(paper)
        merged = existing.merged_with(paper)
        if merged.id.startswith(SURVEY_ID_PREFIX) and not existing.id.startswith(SURVEY_ID_PREFIX):
            merged = replace(merged, id=existing.id)
        if paper.sources == ["survey"] and "arxiv" in existing.sources and existing.url:
            # The survey's entry read again: an arXiv record's link stands over the list's, as in
            # `Survey.annotate` and the run that brought the record (the list's took its place on
            # the next `ingest survey`: 41 papers "updated", a generation published for nothing).
            merged = replace(merged, url=existing.url)
        if merged == existing:
            self.report.unchanged += 1
            return self.store.vec_id(existing.id)
        self.report.updated += 1
        return self.store.put(merged, replacing=replacing)

    # --- embedding ----------------------------------------------------------------------------
    def embedder(self):
        """The index's encoder: its ONNX export (made now if there is none yet), which embeds without
        torch; sentence-transformers for a model that cannot be exported."""
        if self._embedder is None:
            from semsearch.embeddings import embedder_for, encoder_dir

            self.export_encoder()
            if self.ray_address:
                from semsearch.cluster import RayEmbedder

                exported = encoder_dir(self.writer.model, index_dir=self.writer.directory)
                if not (exported / "encoder.json").exists():
                    raise SemsearchError(f"--ray runs the model's ONNX export, and {self.writer.model!r} has none")
                self._embedder = RayEmbedder(exported, self.ray_address)
            else:
                self._embedder = embedder_for(self.writer.model, index_dir=self.writer.directory, workers=_cores())
        return self._embedder

    def embed_stale(self) -> None:
        """Embed every stored paper whose embedding is missing or out of date, BATCH at a time (the
        batch already being embedded in the background first)."""
        self._collect()
        last = -1
        while pending := self.store.stale_embeddings(BATCH, after=last):
            last = pending[-1].vec_id
            self._show_progress()
            started = time.perf_counter()
            vectors = self.embedder().encode([item.text for item in pending])
            self._store_vectors(pending, vectors, started)

    def _embed_ahead(self) -> None:
        """Between two stored batches: keep the vectors of the batch embedded meanwhile, then start
        embedding the next stale batch in the background while this thread reads and stores the
        following papers. Reading, identity, survey facts and SQLite writes then cost no time
        beside the encoder (ONNX Runtime releases the GIL). A Ray cluster embeds in its own way."""
        self._collect()
        pending = self.store.stale_embeddings(BATCH, after=-1)
        if not pending:
            return
        embedder = self.embedder()
        if self.ray_address:
            self.embed_stale()
            return
        if self._pool is None:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(1, thread_name_prefix="semsearch-embed")
        self._show_progress()
        texts = [item.text for item in pending]
        self._ahead = (self._pool.submit(embedder.encode, texts), pending, time.perf_counter())

    def _collect(self) -> None:
        """Store the vectors of the batch embedded in the background, if one is (waiting for it)."""
        if self._ahead is None:
            return
        future, pending, started = self._ahead
        self._ahead = None
        self._store_vectors(pending, future.result(), started)

    def _show_progress(self, done: int = 0) -> None:
        """The bar (made on first use), `done` more papers along; its end is what is embedded, what
        is stale and what a caller that embeds papers itself still expects."""
        if self.progress and self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc="embedding", unit=" papers", file=sys.stderr, dynamic_ncols=True)
        if self._bar is not None:
            if done:
                self._bar.update(done)
            stale = self.store.stale_count()
            self._bar.total = None if self._to_come is None else self._bar.n + stale + self._to_come
            self._bar.refresh()

    def count_embedded(self, papers: int, seconds: float, *, to_come: int | None = None, passed: int = 0) -> None:
        """Count papers the caller embedded itself (a watch embeds each page to classify it before
        `add_embedded`) in the report and on the progress bar, as this run's own are; `to_come`:
        how many more it expects to look at (None: it cannot tell, and the bar shows no end);
        `passed`: papers it looked at and did not need to embed (placed before), which the bar
        moves past too."""
        self.report.embedded += papers
        self.report.embed_seconds += seconds
        self._to_come = to_come
        self._show_progress(done=papers + passed)

    def _store_vectors(self, pending, vectors: np.ndarray, started: float) -> None:
        self.report.embed_seconds += time.perf_counter() - started
        self.store.put_embeddings(pending, vectors)
        self.store.set_meta("dimension", str(vectors.shape[1]))
        self.store.commit()
        self.report.embedded += len(pending)
        if self._bar is not None:
            self._bar.update(len(pending))

    def export_encoder(self) -> None:
        """Once per index directory and model: the ONNX export that embeds papers and questions
        without torch."""
        from semsearch.embeddings import encoder_dir, export_onnx, is_current_export

        target = encoder_dir(self.writer.model, index_dir=self.writer.directory)
        # A model whose architecture cannot be exported is marked, so later ingests need not load it.
        unsupported = target.with_name(target.name + ".unsupported")
        if is_current_export(target) or unsupported.exists():
            return
        try:
            exported = export_onnx(self.writer.model, index_dir=self.writer.directory)
        except SemsearchError:
            raise  # the model cannot be loaded at all (or the disk is full): said once, by the error
        except Exception as err:  # noqa: BLE001 - embedding and questions still work, only slower
            reason = str(err).strip().splitlines()[0][:200] if str(err).strip() else type(err).__name__
            self.warn(f"could not export the fast encoder ({reason}); sentence-transformers embeds instead")
            return
        if exported is None:
            try:
                unsupported.parent.mkdir(parents=True, exist_ok=True)
                unsupported.write_text("sentence-transformers embeds: the model's architecture is not exported\n")
            except OSError:  # only spares later ingests a load (`encoders` linked to a folder not there)
                pass

    # --- taxonomy predictions -----------------------------------------------------------------
    def update_predictions(self) -> None:
        """Retrain the taxonomy classifier when the labelled papers changed, or the abstracts scope
        learns its words from grew by a quarter (`scope_corpus_grew`), then predict a category for
        every unlabelled paper that has none yet."""
        from semsearch.classify import (
            CLASSIFIER_ARTIFACT,
            MAX_WORD_SCOPE_PAPERS,
            TaxonomyClassifier,
            labelled_fingerprint,
            labelled_papers,
            load_saved,
        )
        from semsearch.store import Prediction
        from semsearch.taxonomy import load_taxonomy

        taxonomy = load_taxonomy()
        signature = self.store.labelled_signature()
        if not signature:
            return
        fingerprint = labelled_fingerprint(signature, taxonomy, self.writer.model)
        corpus_size = self.store.unlabelled_abstract_count()
        learned_from = self.store.get_meta("scope_corpus_papers", "0") or "0"
        trained_on = int(learned_from) if learned_from.isdigit() else 0  # an edited count: learn again
        unchanged = fingerprint == self.store.get_meta("classifier_fingerprint") and not scope_corpus_grew(
            trained_on, corpus_size
        )
        classifier = load_saved(self.store) if unchanged else None  # None too when the saved one is damaged
        if classifier is not None and not self.store.unpredicted(1):
            return  # nothing to retrain, nothing to predict
        if classifier is None:
            embed = TextVectors(self.store, self.writer.model, self.embedder().encode)
            corpus = self.store.unlabelled_abstracts(MAX_WORD_SCOPE_PAPERS)
            classifier = TaxonomyClassifier.train(
                labelled_papers(self.store.survey_labelled()), taxonomy, embed, corpus=corpus
            )
            embed.save()
            self.store.put_artifact(CLASSIFIER_ARTIFACT, classifier.to_bytes())
            self.store.set_meta("classifier_fingerprint", fingerprint)
            self.store.set_meta("scope_corpus_papers", str(corpus_size))
            self.store.clear_predictions()
            self.store.commit()
        last = -1
        while batch := self.store.unpredicted(BATCH, after=last):
            last = batch[-1][0]
            vec_ids, texts, vectors = zip(*batch, strict=True)
            results = classifier.classify(texts, np.vstack(vectors), explain=False)
            self.store.put_predictions(
                [
                    (v, Prediction(r.category, r.confidence, r.in_scope, r.leaf_probabilities))
                    for v, r in zip(vec_ids, results, strict=True)
                ]
            )
            self.store.commit()


def scope_corpus_grew(trained_on: int, now: int) -> bool:
    """Whether the classifier should learn scope's words again: the index holds enough abstracts
    for the first time, or a quarter more than it was trained with (a day's watch does not retrain;
    a new corpus does)."""
    from semsearch.classify import MIN_WORD_SCOPE_PAPERS

    return now >= MIN_WORD_SCOPE_PAPERS and (trained_on < MIN_WORD_SCOPE_PAPERS or now >= 1.25 * trained_on)


class TextVectors:
    """`encode` that remembers, in the store, the vectors of the texts it embedded. Training the
    classifier embeds the taxonomy's own texts (node descriptions, scope anchors, example questions:
    ~270): once per index and model, not again at each ingest that changes a labelled paper."""

    ARTIFACT = "text_vectors"

    def __init__(self, store, model: str, encode: Callable[[list[str]], np.ndarray]):
        self.store, self.model, self.encode = store, model, encode
        self.known: dict[str, np.ndarray] = {}
        self.used: dict[str, np.ndarray] = {}
        saved = store.get_artifact(self.ARTIFACT)
        if saved:
            import io

            with np.load(io.BytesIO(saved), allow_pickle=False) as arrays:
                self.known = dict(zip(arrays["keys"].tolist(), arrays["vectors"], strict=True))

    def _key(self, text: str) -> str:
        import hashlib

        return hashlib.sha256(f"{self.model}\0{text}".encode()).hexdigest()

    def __call__(self, texts: list[str]) -> np.ndarray:
        keys = [self._key(text) for text in texts]
        missing = {key: text for key, text in zip(keys, texts, strict=True) if key not in self.known}
        if missing:
            self.known.update(zip(missing, self.encode(list(missing.values())), strict=True))
        self.used.update((key, self.known[key]) for key in keys)
        return np.vstack([self.known[key] for key in keys]) if keys else self.encode([])

    def save(self) -> None:
        """Keep the vectors of the texts this training used (a text the taxonomy dropped goes)."""
        import io

        buffer = io.BytesIO()
        keys = list(self.used)
        vectors = np.vstack(list(self.used.values())) if keys else np.zeros((0, 0), dtype=np.float32)
        np.savez(buffer, keys=np.array(keys, dtype=str), vectors=vectors.astype(np.float32))
        self.store.put_artifact(self.ARTIFACT, buffer.getvalue())


# --- one function per source: the Python API behind `semsearch ingest ...` ---------------------
def ingest_jsonl(
    paths: Sequence[str | Path],
    *,
    index_dir: str | Path | None = None,
    model: str | None = None,
    skip_malformed: bool = False,
    categories: Iterable[str] | None = None,
    since: str | None = None,
    progress: bool = True,
    index_type: str | None = None,
    precomputed: bool = False,
    vectors: str | Path | None = None,
    vectors_model: str | None = None,
    ray_address: str | None = None,
) -> IngestReport:
    """Stream JSON Lines files into the index. With `precomputed` (or when the first record has
    one), each record carries its vector (`embedding`, and `embedding_model` naming the model that
    made it), so nothing is embedded here; with `vectors`, an .npy
    file holds them row by row, aligned with the records, made by `vectors_model`. Vectors are
    checked against the index's model and dimension, so another model's are refused. With
    `ray_address`, papers are embedded on that Ray cluster ("local": one started here). Given,
    `categories` must name one at least, each as arXiv spells it: an empty filter kept everything
    and a misspelt one nothing, both without a word."""
    from semsearch.sources.arxiv import check_categories
    from semsearch.sources.jsonl import Cursor, check_readable, first_record, read_jsonl

    if categories is not None:
        categories = set(check_categories(categories))
    if vectors_model is not None and vectors is None:  # it would be dropped, the papers embedded here
        raise SemsearchError("--vectors-model names the model that made --vectors: give --vectors FILE too")
    files = [Path(p) for p in paths]
    for path in files:
        check_readable(path)
    matrix = _vector_file(vectors, files) if vectors is not None else None
    firsts = {path: first_record(path) or {} for path in files} if matrix is None else {}
    precomputed = precomputed or any("embedding" in first for first in firsts.values())
    ingest = Ingest(
        index_dir=index_dir,
        model=model,
        progress=progress,
        index_type=index_type,
        ray_address=ray_address,
        prints_summary=True,
    )
    with ingest:
        check = VectorCheck(ingest) if precomputed or matrix is not None else None
        if matrix is not None:
            check(vectors_model, matrix.shape[1], str(vectors))  # before anything is stored
        elif check is not None:
            for path, first in firsts.items():  # another model's vectors: refused before anything is stored
                embedding = first.get("embedding")
                check(first.get("embedding_model"), len(embedding) if isinstance(embedding, list) else 0, f"{path}:1")
        # The filter as a set prints it, in one order for every process (a set's own order is its
        # process's string hashing: a rerun, in another order, missed the place an interrupted one left).
        wanted = "{" + ", ".join(map(repr, sorted(categories))) + "}" if categories is not None else None
        for path in files:
            # An interrupted run left its place in the file (same file: same size and mtime, same filter).
            stat = path.stat()
            key = f"{RESUME_PREFIX}{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}:{wanted}:{since}"
            offset, records = (int(x) for x in (ingest.store.get_meta(key) or "0:0").split(":"))
            cursor = Cursor(offset, records)
            skipped_lines: list[int] = []
            if cursor.offset:
                ingest.warn(f"resuming {path} at byte {cursor.offset:,}, where an interrupted ingest stopped")
            stream = read_jsonl(
                path,
                skip_malformed=skip_malformed,
                warn=ingest.warn,
                categories=categories,
                since=since,
                cursor=cursor,
                progress=progress,
                with_vectors=check is not None,
                skipped=skipped_lines,
            )
            checkpoint = lambda key=key, cursor=cursor: ingest.writer.note_progress(  # noqa: E731
                key, f"{cursor.offset}:{cursor.records}"
            )
            if check is None:
                ingest.add(stream, checkpoint=checkpoint)
            else:
                ingest.add_embedded(check.pairs(stream, matrix, path), checkpoint=checkpoint)
            ingest.report.skipped += [f"{path}:{line}" for line in skipped_lines]
            ingest.report.left_out += cursor.left_out
        given = [option for option, value in (("--categories", categories), ("--since", since)) if value]
        ingest.report.left_out_by = " and ".join(given)
    return ingest.report


def _vector_file(path: str | Path, files: list[Path]):
    try:
        matrix = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise missing_file(path) from None
    except (OSError, ValueError) as err:
        raise SemsearchError(f"cannot read vectors from {path}: {err}") from None
    if matrix.ndim != 2:
        raise SemsearchError(f"{path}: expected a 2-d array of vectors, got shape {matrix.shape}")
    if len(files) != 1:
        raise SemsearchError("--vectors goes with one JSON Lines file, whose records its rows follow")
    from semsearch.sources.jsonl import count_records

    records = count_records(files[0])  # rows and records must pair up whole, checked before anything is stored
    if records != len(matrix):
        raise SemsearchError(f"{path} has {len(matrix):,} rows for the {records:,} records of {files[0]}")
    return matrix


class VectorCheck:
    """Precomputed vectors are accepted only from the index's model, at its dimension."""

    def __init__(self, ingest: Ingest):
        self.ingest = ingest
        published = ingest.writer.published_manifest()
        self._dimension = published.dimension if published else None

    @property
    def dimension(self) -> int:
        if self._dimension is None:  # a new index: the model's own dimension
            self._dimension = int(self.ingest.store.get_meta("dimension") or 0) or self.ingest.embedder().dimension
        return self._dimension

    def __call__(self, model: str | None, dimension: int, where: str) -> None:
        if not model:
            raise SemsearchError(
                f"{where}: precomputed vectors must name their model (embedding_model, --vectors-model)"
            )
        if model != self.ingest.writer.model:
            raise SemsearchError(f"{where}: vectors made with {model!r}; the index uses {self.ingest.writer.model!r}")
        if dimension != self.dimension:
            raise SemsearchError(f"{where}: {dimension}-d vectors; the index's model gives {self.dimension}-d ones")

    def pairs(self, stream, matrix, path: Path):
        for paper, record in stream:
            where = f"{path}:{record['_line'] or record['_ordinal'] + 1}"
            if matrix is not None:
                if record["_ordinal"] >= len(matrix):
                    raise SemsearchError(f"{where}: the vectors file has only {len(matrix)} rows")
                vector = np.asarray(matrix[record["_ordinal"]], dtype=np.float64)
            else:
                if not isinstance(record.get("embedding"), list):
                    raise SemsearchError(f"{where}: no 'embedding' (every record needs one)")
                vector = np.asarray(record["embedding"], dtype=np.float64)
                self(record.get("embedding_model"), len(vector), where)
            yield paper, unit_vector(vector, where)


def unit_vector(vector: np.ndarray, where: str) -> np.ndarray:
    """`vector` scaled to length 1, as float32. Scaled by its largest entry first: a vector of
    1e30s (or 1e-25s) is a direction like any other, but its float32 length overflows (or
    underflows), which printed numpy's warnings and called it zero or not finite."""
    if not np.isfinite(vector).all():
        raise SemsearchError(f"{where}: the vector is not finite")
    largest = float(np.abs(vector).max(initial=0.0))
    if largest == 0.0:
        raise SemsearchError(f"{where}: the vector is zero")
    scaled = vector / largest
    return (scaled / np.linalg.norm(scaled)).astype(np.float32)


def ingest_arxiv(
    ids: Sequence[str] = (),
    query: str | None = None,
    max_results: int = 100,
    *,
    index_dir: str | Path | None = None,
    model: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """Fetch papers by id or by an arXiv query; what arrived is stored even when some ids fail."""
    from semsearch.sources.arxiv import ArxivClient, validate_ids

    wanted = validate_ids(ids)  # bad ids are refused before anything is fetched or written
    client = ArxivClient()
    ingest = Ingest(index_dir=index_dir, model=model, progress=progress, prints_summary=True)
    with ingest:
        if wanted:
            result = client.fetch_ids(wanted, on_papers=ingest.add)
            if result.missing:
                raise PartialFailure(
                    f"could not get {len(result.missing)} of {len(wanted)} ids from arXiv{result.why_missing}: "
                    + " ".join(result.missing)
                )
        if query:
            ingest.add(client.search(query, max_results))
    return ingest.report


def ingest_survey(
    *,
    index_dir: str | Path | None = None,
    model: str | None = None,
    offline: bool = False,
    progress: bool = True,
) -> IngestReport:
    """The survey's papers with their categories; online, with abstracts from arXiv where known."""
    from semsearch.sources.arxiv import ArxivClient, ArxivUnavailable

    ingest = Ingest(index_dir=index_dir, model=model, progress=progress, prints_summary=True)
    with ingest:
        survey = ingest.survey  # the index's: as `taxonomy refresh` last read the list, else the packaged one
        by_id: dict[str, Paper] = {}
        by_title: dict[str, Paper] = {}  # normalised title -> arXiv record
        if not offline:
            # Only ask arXiv for what we lack: a later online run fills in what an offline run left out.
            need = [
                p.arxiv_id
                for p in survey.papers
                if p.arxiv_id and not ((stored := ingest.store.get(p.arxiv_id)) and stored.abstract)
            ]
            # The survey lists some papers without an arXiv id: those are looked up by exact title,
            # once (a title arXiv does not have is not asked for again).
            looked_up = set(json.loads(ingest.store.get_meta(TITLES_LOOKED_UP, "[]")))
            titles = [
                p.title
                for p in survey.papers
                if not p.arxiv_id
                and normalize_title(p.title) not in looked_up
                and not any(s.abstract for s in ingest.store.papers_with_title(p.title))
            ]
            client = ArxivClient()
            try:
                if need:
                    result = client.fetch_ids(need)
                    by_id = {p.id: p for p in result.papers}
                    if result.missing:
                        ingest.warn(
                            f"{len(result.missing)} survey papers did not arrive from arXiv{result.why_missing} and "
                            "are indexed on their titles; run `semsearch ingest survey` again to retry"
                        )
                if titles:
                    by_title = client.find_titles(titles)
                    looked_up.update(map(normalize_title, titles))
                    ingest.store.set_meta(TITLES_LOOKED_UP, json.dumps(sorted(looked_up)))
            except ArxivUnavailable as err:
                ingest.warn(
                    f"{err}; indexing survey titles only (`semsearch ingest survey` online adds their abstracts)"
                )

        def with_abstract(paper: Paper) -> Paper:
            found = by_id.get(paper.id) or by_title.get(normalize_title(paper.title))
            return paper.merged_with(found) if found else paper

        ingest.add(with_abstract(p) for p in survey.papers)
    return ingest.report


def label_counts(survey_categories, node: str) -> bool:
    """Whether a user's label places its paper: a survey label (or, in a curated list, the list's own)
    stands over it (store's _EFFECTIVE_CATEGORIES, lists.effective_labels), unless it says the same."""
    return not survey_categories or node in survey_categories


def label_paper(
    paper_id: str,
    category: str | None,
    *,
    taxonomy: str | None = None,
    index_dir: str | Path | None = None,
    lock_timeout: float | None = None,
) -> str | None:
    """Confirm a paper's category (None removes the label); labels join the classifier's training
    set at once. Returns the full node path. With `taxonomy`, a curated list's (`taxonomy add`): the
    label trains that list's classifier, places the paper when searching by the list, and `taxonomy
    propose` writes the paper under it. `lock_timeout`: how long to wait for another writer
    ($SEMSEARCH_LOCK_TIMEOUT when None)."""
    return labelled(paper_id, category, taxonomy=taxonomy, index_dir=index_dir, lock_timeout=lock_timeout)["category"]


def labelled(
    paper_id: str,
    category: str | None,
    *,
    taxonomy: str | None = None,
    index_dir: str | Path | None = None,
    lock_timeout: float | None = None,
) -> dict:
    """`label_paper`, answered as every door answers it (POST /api/labels, `label --json`): {"id": the
    paper's own id, "category": the node path (None once removed), "in_effect": whether it places the
    paper (False when the survey, or the list, files it otherwise)}, and "taxonomy" for a list's."""
    from semsearch.lists import SURVEY
    from semsearch.taxonomy import resolve_node

    if taxonomy not in (None, SURVEY):
        return _label_in_list(paper_id, category, taxonomy, index_dir=index_dir, lock_timeout=lock_timeout)
    node = resolve_node(category) if category is not None else None
    with Ingest(index_dir=Index.existing(index_dir), progress=False, lock_timeout=lock_timeout) as ingest:
        vec_id = ingest.store.find(paper_id)
        if vec_id is None:
            raise NotFound(f"no paper {paper_id!r} in the index")
        paper = ingest.store.papers_by_vec_id([vec_id])[vec_id]
        in_effect = False
        if node is None:
            if not ingest.store.remove_label(vec_id):
                raise SemsearchError(f"paper {paper_id!r} has no label to remove")
        else:
            ingest.store.put_label(vec_id, node, _now())
            survey = paper.survey_categories
            if not (in_effect := label_counts(survey, node)):  # stored, not used while the survey labels the paper
                _warn_stderr(
                    f"{paper_id} is labelled by the survey ({'; '.join(survey)}), which stands: your label is "
                    "kept, and counts if the survey stops labelling it"
                )
    return {"id": paper.id, "category": node, "in_effect": in_effect}


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _label_in_list(
    paper_id: str, category: str | None, name: str, *, index_dir: str | Path | None, lock_timeout: float | None
) -> dict:
    """`labelled` in the curated list `name`; its classifier is trained again at once."""
    from semsearch.lists import save_list_classifier, taxonomy_for

    with Ingest(index_dir=Index.existing(index_dir), progress=False, lock_timeout=lock_timeout) as ingest:
        store = ingest.store
        taxonomy = taxonomy_for(store, name)
        node = taxonomy.resolve(category) if category is not None else None
        vec_id = store.find(paper_id)
        if vec_id is None:
            raise NotFound(f"no paper {paper_id!r} in the index")
        own_id, in_effect = store.papers_by_vec_id([vec_id])[vec_id].id, False
        if node is None:
            if not store.remove_list_label(name, vec_id):
                raise SemsearchError(f"paper {paper_id!r} has no label in {name!r} to remove")
        else:
            store.put_list_label(name, vec_id, node, _now())
            listed = store.taxonomy_labels(name).get(vec_id, [])
            if not (in_effect := label_counts(listed, node)):
                _warn_stderr(
                    f"{paper_id} is listed in {name!r} ({'; '.join(listed)}), which stands: your label is kept, "
                    "and counts if the list stops listing it there"
                )
            elif not store.papers_by_vec_id([vec_id])[vec_id].arxiv_id:
                _warn_stderr(
                    f"{paper_id} has no arXiv id: the list's classifier and search by it use your label, but "
                    "`taxonomy propose` cannot write a line for it"
                )
        save_list_classifier(store, name, ingest.embedder().encode)
    return {"id": own_id, "category": node, "in_effect": in_effect, "taxonomy": name}


def _list_node(taxonomy, category: str, name: str, path: str | Path) -> tuple[str, bool]:
    """The node of the list `taxonomy` (added as `name`) a label names, and whether it waits: a
    heading the list does not have now (a refresh renamed or dropped it; the label was exported
    waiting) is kept as given, and counts if the heading comes back."""
    from semsearch.taxonomy import UnknownCategory

    try:
        return taxonomy.resolve(category), False
    except UnknownCategory:
        return category.strip().strip("/"), True
    except SemsearchError as err:  # ambiguous: which one is meant cannot be told
        raise SemsearchError(f"{path}: a label in {name!r}: {err} (nothing stored)") from None


def import_labels(path: str | Path, *, index_dir: str | Path | None = None) -> dict:
    """Labels exported with `semsearch labels` ({"id", "category", "labelled_at"} per line, and
    "taxonomy" for a curated list's; or one array of them, as `labels --json` prints) put back, e.g.
    into a rebuilt index; papers the index lacks are counted and left out. A list's labels need the
    list added first (`taxonomy add`)."""
    from functools import cache

    from semsearch.lists import SURVEY, save_list_classifier, taxonomy_for
    from semsearch.requests_models import LabelRecord, parse
    from semsearch.sources.jsonl import read_records
    from semsearch.taxonomy import resolve_node

    def read(record: dict) -> tuple[str, str, str, str | None]:
        label = parse(LabelRecord, **record)
        name = None if label.taxonomy in (None, SURVEY) else label.taxonomy
        node = resolve_node(label.category) if name is None else label.category  # a list's: once it is open
        return label.id, node, label.labelled_at, name

    rows = read_records(Path(path), read, 'a JSON object with "id" and "category"', array=True)
    index_dir = Index.existing(index_dir)
    imported, held, missing, standing, waiting, listed_otherwise = 0, 0, 0, 0, 0, 0
    with Ingest(index_dir=index_dir, progress=False) as ingest:
        store, retrain = ingest.store, set()

        @cache
        def listed(name: str) -> tuple:
            """The list `name` as a taxonomy, and the papers it files itself: read once an import."""
            try:
                return taxonomy_for(store, name), store.taxonomy_labels(name)
            except NotFound:
                raise NotFound(
                    f"{path}: a label in {name!r}, a list the index does not hold: add it first (nothing stored)"
                ) from None

        # Every line's node is resolved before anything is written: a refused one stores nothing.
        rows = [
            (paper_id, *(_list_node(listed(name)[0], node, name, path) if name else (node, False)), when, name)
            for paper_id, node, when, name in rows
        ]
        for paper_id, node, waits, when, name in rows:
            vec_id = store.find(paper_id)
            if vec_id is None:
                missing += 1
                continue
            # A label the index holds already is left as it is, its time too: an export imported
            # again rewrote every label (stamping those without a time anew) and published a new
            # generation for a run that changed nothing.
            if (stored := store.label_of(vec_id, name)) is not None and stored[0] == node and when in (None, stored[1]):
                held += 1
                continue
            when = when or _now()
            if name is None:
                store.put_label(vec_id, node, when)
                standing += not label_counts(store.papers_by_vec_id([vec_id])[vec_id].survey_categories, node)
            else:
                store.put_list_label(name, vec_id, node, when)
                listed_otherwise += not label_counts(listed(name)[1].get(vec_id, []), node)
                waiting += waits
                retrain.add(name)
            imported += 1
        for name in sorted(retrain):  # each list's classifier learns its labels at once, as with `label`
            save_list_classifier(store, name, ingest.embedder().encode)
    if standing:  # as `label` says for one
        _warn_stderr(
            f"{standing} of the imported labels are on papers the survey labels otherwise, which stands: they "
            "are kept, and count if the survey stops labelling them"
        )
    if waiting:
        _warn_stderr(
            f"{waiting} of the imported labels name a heading their list does not have now: kept, waiting, and they "
            "count if the list has that heading again (a typo? `semsearch taxonomy show NAME` shows its headings)"
        )
    if listed_otherwise:
        _warn_stderr(
            f"{listed_otherwise} of the imported labels are on papers their list lists otherwise, which stands: "
            "they are kept, and count if the list stops listing them there"
        )
    return {"imported": imported, "already_held": held, "not_in_index": missing}
