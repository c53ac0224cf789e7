"""The index directory: published generations of (SQLite store + FAISS vectors + manifest).

Layout::

    index/
      CURRENT            name of the published generation, replaced atomically
      gen-000007/        an immutable generation: papers.db, vectors.faiss, manifest.json
      staging/           the generation being written (kept after a crash, resumed by the next writer)
      .lock              held by the one writer

Readers open the generation CURRENT names and never see a half-written one; a writer builds the
next generation in staging/ and publishes it with one rename. A crash or Ctrl-C leaves CURRENT
untouched, and the papers already embedded in staging/ are reused by the next run. A reader holds a
shared lock on its generation's `.readers` file for as long as it has it open, and a writer removes
an old generation only when it can take that lock exclusively: a server answering from an older
generation keeps it until its last request is done.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from semsearch.errors import SemsearchError
from semsearch.store import Store

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
DB_FILE, VECTORS_FILE, MANIFEST_FILE = "papers.db", "vectors.faiss", "manifest.json"
RESUME_PREFIX = "resume:"  # staging metadata: how far an interrupted ingest got; dropped at publish
READERS_FILE = ".readers"  # readers hold a shared lock on it; a writer retires only a generation nobody holds


def resolve_index_dir(option: str | Path | None = None) -> Path:
    """The directory asked for, else `$SEMSEARCH_INDEX`, else ./index (a flag beats the variable)."""
    return Path(option or os.environ.get("SEMSEARCH_INDEX") or "index")


@dataclass
class Manifest:
    format_version: int
    model: str
    dimension: int
    normalized: bool
    count: int
    index_type: str
    generation: str
    created_at: str

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(path.read_text())
            return cls(**{name: data[name] for name in cls.__dataclass_fields__})
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SemsearchError(f"unreadable manifest {path}: {err}") from None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def current_generation(directory: Path) -> str | None:
    try:
        name = (directory / "CURRENT").read_text().strip()
    except FileNotFoundError:
        return None
    return name or None


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Index:
    """A published generation opened for reading: manifest, paper store and vector index."""

    def __init__(self, directory: Path, generation_dir: Path, manifest: Manifest, store: Store, lease: int | None):
        self.directory = directory
        self.generation_dir = generation_dir
        self.manifest = manifest
        self.store = store
        self._lease = lease

    @cached_property
    def vectors(self):
        """The FAISS index of this generation, loaded on first use (`info` never needs it)."""
        from semsearch import vectors as vector_index

        path = self.generation_dir / VECTORS_FILE
        try:
            vectors = vector_index.load(path)
        except RuntimeError as err:  # FAISS's own message is a C++ stack location
            reason = str(err).strip().splitlines()[-1][:120]
            raise SemsearchError(f"index at {self.directory} is damaged: {path} cannot be read ({reason})") from None
        if vectors.d != self.manifest.dimension or vectors.ntotal != self.manifest.count:
            raise SemsearchError(
                f"index at {self.directory} is inconsistent: {vectors.ntotal} vectors of dimension {vectors.d}, "
                f"manifest says {self.manifest.count} of dimension {self.manifest.dimension}"
            )
        return vectors

    @classmethod
    def open(cls, directory: str | Path | None = None) -> Index:
        directory = resolve_index_dir(directory)
        for _ in range(3):  # a writer may retire the generation we just read about: look again
            generation = current_generation(directory)
            if generation is None:
                raise SemsearchError(
                    f"no index at {directory} (build one with `semsearch ingest survey`, or pass --index DIR)"
                )
            generation_dir = directory / generation
            try:
                return cls._open_generation(directory, generation_dir)
            except FileNotFoundError:
                continue
        raise SemsearchError(f"index at {directory} keeps changing under us; try again")

    @classmethod
    def _open_generation(cls, directory: Path, generation_dir: Path) -> Index:
        lease = _take_lease(generation_dir)
        try:
            return cls._read_generation(directory, generation_dir, lease)
        except BaseException:
            _drop_lease(lease)
            raise

    @classmethod
    def _read_generation(cls, directory: Path, generation_dir: Path, lease: int | None) -> Index:
        manifest_path = generation_dir / MANIFEST_FILE
        if not manifest_path.exists():
            raise FileNotFoundError(manifest_path)
        manifest = Manifest.read(manifest_path)
        if manifest.format_version != FORMAT_VERSION:
            raise SemsearchError(
                f"index at {directory} has format version {manifest.format_version}; this semsearch reads "
                f"version {FORMAT_VERSION}: rebuild it"
            )
        if not (generation_dir / VECTORS_FILE).exists():
            if lease is not None:  # we hold the generation: no writer is removing it, so it is damaged
                raise SemsearchError(f"index at {directory} is damaged: {generation_dir / VECTORS_FILE} is missing")
            raise FileNotFoundError(generation_dir / VECTORS_FILE)
        store = Store(generation_dir / DB_FILE, readonly=True)
        problems = []
        if store.get_meta("model") != manifest.model:
            problems.append(
                f"papers.db was embedded with {store.get_meta('model')!r}, manifest says {manifest.model!r}"
            )
        if store.count() != manifest.count:
            problems.append(f"{store.count()} papers, manifest says {manifest.count}")
        if problems:
            store.close()
            raise SemsearchError(f"index at {directory} is inconsistent: {'; '.join(problems)}")
        return cls(directory, generation_dir, manifest, store, lease)

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.generation_dir.rglob("*") if f.is_file())

    @cached_property
    def lexical(self):
        """The BM25 index of this generation, loaded (memory-mapped) on first use."""
        from semsearch.lexical import LexicalIndex

        lexical = LexicalIndex.load(self.generation_dir)
        if len(lexical.vec_ids) != self.manifest.count:
            raise SemsearchError(
                f"index at {self.directory} is inconsistent: {len(lexical.vec_ids)} papers in the lexical "
                f"index, manifest says {self.manifest.count}"
            )
        return lexical

    def close(self) -> None:
        self.store.close()
        _drop_lease(self._lease)
        self._lease = None


def _take_lease(generation_dir: Path) -> int | None:
    """A shared lock on the generation's readers file (None for a generation written without one)."""
    try:
        fd = os.open(generation_dir / READERS_FILE, os.O_RDONLY)
    except FileNotFoundError:
        if not generation_dir.exists():
            raise
        return None
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _drop_lease(fd: int | None) -> None:
    if fd is not None:
        os.close(fd)  # closing releases the lock


def _retire(generation_dir: Path) -> bool:
    """Remove an old generation unless a reader holds it; True when removed."""
    try:
        fd = os.open(generation_dir / READERS_FILE, os.O_RDONLY)
    except FileNotFoundError:
        fd = None
    try:
        if fd is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
        shutil.rmtree(generation_dir, ignore_errors=True)
        return True
    finally:
        _drop_lease(fd)


def index_model(directory: Path) -> str | None:
    """The model the published index at `directory` was built with, if there is one."""
    generation = current_generation(directory)
    if generation is None:
        return None
    return Manifest.read(directory / generation / MANIFEST_FILE).model


def build_lexical_index(store: Store, directory: Path) -> None:
    from semsearch.lexical import LexicalIndex, lexical_text
    from semsearch.taxonomy import load_taxonomy

    descriptions = load_taxonomy().descriptions
    vec_ids, texts = [], []
    for vec_id, paper in store.iter_papers():
        vec_ids.append(vec_id)
        texts.append(lexical_text(paper.title, paper.abstract, paper.survey_categories, descriptions))
    LexicalIndex.build(texts, vec_ids, directory)


class IndexWriter:
    """Exclusive writer: `with IndexWriter(dir, model) as w: ...w.store...; w.publish(dimension)`."""

    def __init__(
        self,
        directory: str | Path | None,
        model: str | None,
        *,
        lock_timeout: float | None = None,
        index_type: str | None = None,
    ):
        self.directory = resolve_index_dir(directory)
        self.requested_model = model
        self.requested_index_type = index_type
        if lock_timeout is None:
            lock_timeout = float(os.environ.get("SEMSEARCH_LOCK_TIMEOUT", "300"))
        self.lock_timeout = lock_timeout
        self.staging = self.directory / "staging"
        self._lock_fd: int | None = None
        self.store: Store | None = None
        self.model = ""
        self.resumed = False  # staging held an interrupted run's work: it differs from the published index

    # --- locking ------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.directory / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.lock_timeout
        told = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise SemsearchError(
                        f"another semsearch process (pid {holder}) is writing to {self.directory}; "
                        "try again when it has finished"
                    ) from None
                if not told:
                    log.warning("waiting for another writer (pid %s) to finish with %s…", holder, self.directory)
                    told = True
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> IndexWriter:
        self._acquire_lock()
        try:
            self._open_staging()
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(self, *exc) -> None:
        if self.store is not None:
            unchanged = not self.has_changes()
            self.store.commit()  # whatever was embedded is kept for the next run to resume from
            self.store.close()
            self.store = None
            if unchanged:  # nothing to resume from
                shutil.rmtree(self.staging, ignore_errors=True)
        self._release_lock()

    def has_changes(self) -> bool:
        """Whether staging differs from the published index: this run or an interrupted one wrote to it."""
        return self.resumed or self.store.db.total_changes > self._changes_at_open

    def _open_staging(self) -> None:
        from semsearch.embeddings import DEFAULT_MODEL

        base = current_generation(self.directory) or ""
        published_model = index_model(self.directory) if base else None
        if published_model and self.requested_model and self.requested_model != published_model:
            raise SemsearchError(
                f"index at {self.directory} was built with model {published_model!r}, not "
                f"{self.requested_model!r}; use another --index directory for another model"
            )
        self.model = published_model or self.requested_model or DEFAULT_MODEL
        db_path = self.staging / DB_FILE
        if db_path.exists():
            resumable = Store(db_path)
            same_base = resumable.get_meta("base_generation") == base
            same_model = resumable.get_meta("model") == self.model
            resumable.close()
            if not (same_base and same_model):
                shutil.rmtree(self.staging)
            self.resumed = same_base and same_model
        if not db_path.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
            if base:
                source = sqlite3.connect(f"file:{self.directory / base / DB_FILE}?mode=ro", uri=True)
                target = sqlite3.connect(db_path)
                source.backup(target)
                source.close()
                target.close()
        self.store = Store(db_path)
        self.store.set_meta("base_generation", base)
        self.store.set_meta("model", self.model)
        self._changes_at_open = self.store.db.total_changes  # asking for an index type counts as a change
        if self.requested_index_type:  # kept for later ingests into this index
            from semsearch.vectors import choose_index_type

            choose_index_type(self.requested_index_type, 0)  # refuse an unknown kind before any work
            self.store.set_meta("index_type", self.requested_index_type)
        self.store.commit()

    def published_manifest(self) -> Manifest | None:
        generation = current_generation(self.directory)
        return Manifest.read(self.directory / generation / MANIFEST_FILE) if generation else None

    def publish(self, dimension: int | None = None) -> Manifest:
        """Build the vector index from the staged embeddings and make this generation current."""
        from semsearch import vectors as vector_index

        assert self.store is not None, "publish() outside `with IndexWriter(...)`"
        store = self.store
        missing = store.stale_count()
        if missing:
            raise SemsearchError(f"{missing} papers have no embedding yet; nothing was published")
        dimension = dimension or int(store.get_meta("dimension") or 0)
        if not dimension:
            raise SemsearchError("the index is empty and no dimension is known; nothing was published")
        store.set_meta("dimension", str(dimension))
        store.derive_categories()
        count = store.embedding_count()
        kind = vector_index.choose_index_type(store.get_meta("index_type") or "auto", count)
        training = store.sample_embeddings(vector_index.training_size(count)) if kind != "flat" and count else None
        vectors = vector_index.build(store.iter_embeddings(), count, dimension, kind, training)
        store.commit()
        build_lexical_index(store, self.staging)

        existing = [p.name for p in self.directory.glob("gen-*")]
        number = max((int(name.split("-")[1]) for name in existing), default=0) + 1
        generation = f"gen-{number:06d}"
        manifest = Manifest(
            format_version=FORMAT_VERSION,
            model=self.model,
            dimension=dimension,
            normalized=True,
            count=int(vectors.ntotal),
            index_type=vector_index.kind_of(vectors),
            generation=generation,
            created_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        )
        store.set_meta("base_generation", "")  # staging is about to become a generation of its own
        store.db.execute("DELETE FROM meta WHERE key LIKE ?", (RESUME_PREFIX + "%",))
        store.commit()
        store.close()
        self.store = None
        vector_index.write(vectors, self.staging / VECTORS_FILE)
        manifest.write(self.staging / MANIFEST_FILE)
        (self.staging / READERS_FILE).touch()
        for path in self.staging.rglob("*"):
            if path.is_file():
                with open(path, "rb+") as handle:
                    os.fsync(handle.fileno())
        os.replace(self.staging, self.directory / generation)
        pointer = self.directory / "CURRENT.tmp"
        pointer.write_text(generation + "\n")
        with open(pointer, "rb+") as handle:
            os.fsync(handle.fileno())
        previous = current_generation(self.directory)
        os.replace(pointer, self.directory / "CURRENT")
        _fsync_dir(self.directory)
        for name in existing:
            if name not in (previous, generation):  # the previous one serves readers that just opened it
                _retire(self.directory / name)
        return manifest
