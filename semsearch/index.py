"""The index directory: published generations of (SQLite store + FAISS vectors + manifest).

Layout::

    index/
      CURRENT            name of the published generation, replaced atomically
      gen-000007/        an immutable generation: papers.db, vectors.faiss, lexical/, manifest.json
                         (with a checksum of each file), .verified (when they were last checked)
      staging/           the generation being written (kept after a crash, resumed by the next writer)
      .lock              held by the one writer

Readers open the generation CURRENT names and never see a half-written one; a writer builds the
next generation in staging/ and publishes it with one rename. A crash or Ctrl-C leaves CURRENT
untouched, and the papers already embedded in staging/ are reused by the next run. A reader holds a
shared lock on its generation's `.readers` file for as long as it has it open, and a writer removes
an old generation only when it can take that lock exclusively: a server answering from an older
generation keeps it until its last request is done.

A damaged file is never used silently: the manifest records a blake2b checksum of every file of its
generation, checked the first time the generation is opened. What was checked is remembered in
`.verified` (each file's size, mtime, ctime and inode), so later opens compare stat() only and hash
again only a file whose stat changed (a read-only index remembers it for the process only). A
damaged generation is not served: readers fall back to the newest intact older one, with a warning.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import sqlite3
import stat
import tempfile
import threading
import time
from collections.abc import Collection
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

from semsearch.errors import (
    DiskFull,
    IndexBusy,
    IndexDamaged,
    IndexUnwritable,
    OutOfResources,
    SemsearchError,
    no_room,
)
from semsearch.store import Store
from semsearch.vectors import INDEX_TYPES

log = logging.getLogger(__name__)
FORMAT_VERSION = 1
DB_FILE, VECTORS_FILE, MANIFEST_FILE = "papers.db", "vectors.faiss", "manifest.json"
RESUME_PREFIX = "resume:"  # staging metadata: how far an interrupted ingest got; dropped at publish
READERS_FILE = ".readers"  # readers hold a shared lock on it; a writer retires only a generation nobody holds
STAMP_FILE = ".verified"  # the stat() of each file when its checksum was last found right
UNHASHED = (READERS_FILE, STAMP_FILE, MANIFEST_FILE)  # a generation's files that its manifest does not hash
GENERATION_NAME = re.compile(r"gen-[0-9]{6,12}")  # all CURRENT may hold: a generation inside the directory
_verified: dict[str, dict[str, list[int]]] = {}  # generation (or export) dir -> stamp, for this process


class GenerationDamaged(IndexDamaged):
    """One generation is damaged; an older intact one may answer instead."""

    def __init__(self, directory: Path, generation: str, reason: str, *, missing: bool = False):
        self.generation, self.reason = generation, reason
        self.what = f"{generation} is {'missing' if missing else 'damaged'} ({reason})"
        super().__init__(f"index at {directory}: {self.what}")


def no_index_at(directory: Path) -> SemsearchError:
    """Named in full, with the command that builds it there: a relative `--index idx` typed in
    another directory was "no index at idx (build one with `semsearch ingest survey`)", which
    builds ./index, where `--index idx` does not look."""
    import shlex

    where = Path(os.path.abspath(directory))
    for parent in where.parents:  # `--index idx/gen-000001`: a level too deep, not an index to build
        if (parent / "CURRENT").is_file():
            return SemsearchError(f"no index at {where}: it is inside the index at {parent}; pass --index {parent}")
    return SemsearchError(
        f"no index at {where} (build one with `semsearch ingest survey --index {shlex.quote(str(where))}`, "
        "or pass --index DIR)"
    )


def resolve_index_dir(option: str | Path | None = None) -> Path:
    """The directory asked for, else `$SEMSEARCH_INDEX`, else ./index (a flag beats the variable).
    An existing file there is a wrong argument (`--index papers.jsonl`), not a damaged index."""
    directory = Path(option or os.environ.get("SEMSEARCH_INDEX") or "index")
    if directory.is_symlink() and not directory.exists():
        raise SemsearchError(f"{directory} is a symbolic link to nothing ({os.readlink(directory)})")
    for place in (directory, *directory.parents):  # the nearest part of the path that exists
        if place.exists():
            if not place.is_dir():
                under = "" if place == directory else f" (in the path {directory})"
                raise SemsearchError(
                    f"{place} is a file, not an index directory{under}; --index and $SEMSEARCH_INDEX name a directory"
                )
            break
    return directory


def check_outside_index(path: Path, option: str, *, index_dir: str | Path | None = None) -> None:
    """A file the user names for writing (`watch --output`) may not lie in the index directory, through
    symbolic links or not: `--output IDX/CURRENT` (or .lock, a generation's papers.db) overwrote the
    index's own file, and every reader then found the index damaged. Nor may it be one of the index's
    files under another name (a hard link elsewhere to IDX/CURRENT): a path is not where a file is,
    so the file is known by its device and inode."""
    directory = resolve_index_dir(index_dir).resolve()
    target = path.resolve()
    if target == directory or directory in target.parents:
        raise SemsearchError(f"{option} {path}: is inside the index directory {directory}; name a file outside it")
    try:
        found = target.stat()
    except OSError:  # not there yet (or unreadable, which writing it will say): no file of the index
        return
    if found.st_nlink > 1 and stat.S_ISREG(found.st_mode):  # one name only: no other name in the index
        linked = _files_by_inode(directory).get((found.st_dev, found.st_ino))
        if linked is not None:
            raise SemsearchError(
                f"{option} {path}: is a hard link to {linked}, a file of the index directory {directory}; "
                "name a file outside it"
            )


def _files_by_inode(directory: Path) -> dict[tuple[int, int], str]:
    """Each regular file under `directory` (symbolic links not followed), by (device, inode): its
    path in the directory."""
    found = {}
    for folder, _, names in os.walk(directory):
        for name in names:
            try:
                status = os.lstat(os.path.join(folder, name))
            except OSError:  # gone meanwhile (a writer retiring a generation)
                continue
            if stat.S_ISREG(status.st_mode):
                found.setdefault((status.st_dev, status.st_ino), os.path.relpath(os.path.join(folder, name), directory))
    return found


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
    files: dict[str, str] | None = None  # path in the generation -> blake2b; None in older indexes

    @classmethod
    def read(cls, path: Path) -> Manifest:
        try:
            data = json.loads(read_small_file(path))
            fields = {name: data[name] for name in cls.__dataclass_fields__ if name != "files"}
            kinds = {"format_version": int, "dimension": int, "count": int, "normalized": bool}
            for name, value in fields.items():  # `"1"` was "format version 1; this semsearch reads version 1"
                if type(value) is not kinds.get(name, str):
                    raise ValueError(
                        f"{name!r} is {type(value).__name__} {str(value)[:40]!r}, not {kinds.get(name, str).__name__}"
                    )
            files = data.get("files")
            if files is not None and not (isinstance(files, dict) and all(isinstance(v, str) for v in files.values())):
                raise ValueError("'files' is not a map of file names to checksums")
            if files is not None and not files:  # a manifest of generation files always has some
                raise ValueError("'files' lists no file, so its checksums would check nothing")
            if files and any(name.startswith("/") or ".." in name.split("/") for name in files):
                raise ValueError("'files' names a file outside the generation")  # never read what it points to
            return cls(**fields, files=files)
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise SemsearchError(f"unreadable manifest {path}: {err}") from None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")


def current_generation(directory: Path) -> str | None:
    """The generation CURRENT names (None when there is no CURRENT and no generation: no index yet).
    CURRENT may name only a generation inside `directory`: anything else (a path, `..`, bytes that
    are not UTF-8, nothing) is damage, never followed. So is a missing CURRENT beside generations: taken
    for a new index, the next writer would publish one paper and retire every generation there."""
    try:
        # Never through a link: a CURRENT linked to a file elsewhere had its first line quoted in the
        # error, which `/api/health` shows anyone.
        fd = os.open(directory / "CURRENT", os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, or a pipe read would wait on for ever
                raise IndexDamaged.at(directory, "CURRENT cannot be read (it is not a file)")
            raw = os.read(fd, 4096)
        finally:
            os.close(fd)
    except FileNotFoundError:
        newest = max(_generation_names(directory), key=_number, default=None)
        if newest is None:
            return None
        raise IndexDamaged.at(
            directory, f"CURRENT is missing; write the name of a generation into it (the newest here is {newest})"
        ) from None
    except OSError as err:
        why = "it is a symbolic link, which semsearch never makes" if err.errno == errno.ELOOP else err.strerror
        raise IndexDamaged.at(directory, f"CURRENT cannot be read ({why})") from None
    try:
        name = raw.decode("utf-8").strip()
    except UnicodeDecodeError:
        name = None
    if name is not None and GENERATION_NAME.fullmatch(name):
        return name
    # Quoted only when it reads like a name: CURRENT may share its inode with any file (a hard link).
    looks_like_a_name = name is not None and re.fullmatch(r"[\w.-]{1,40}", name)
    shown = repr(name) if looks_like_a_name else f"{len(raw)} bytes that name no generation"
    newest = max(_generation_names(directory), key=_number, default=None)
    hint = f"; write the name of a generation into it (the newest here is {newest})" if newest else ""
    raise IndexDamaged.at(directory, f"CURRENT must name a generation (gen-NNNNNN), not {shown}{hint}")


def _number(generation: str) -> int:
    return int(generation.split("-")[1])


def _generation_names(directory: Path) -> list[str]:
    """The generations here: folders of this index, never a link (an index handed over with
    `gen-000009` linked to another index's generation had a writer adopt it and delete its files)."""
    return [
        p.name
        for p in directory.glob("gen-*")
        if GENERATION_NAME.fullmatch(p.name) and p.is_dir() and not p.is_symlink()
    ]


# --- integrity --------------------------------------------------------------------------------
SMALL_FILE_LIMIT = 1 << 20  # a manifest, a stamp, an export's settings: a few KB each


def read_small_file(path: Path, limit: int = SMALL_FILE_LIMIT) -> str:
    """The text of one of an index's small JSON files, read only when it is a regular file of at most
    `limit` bytes: one replaced by a FIFO blocked every reader for ever, and one linked to /dev/zero
    was read until memory ran out (12 GB in 30 s). OSError otherwise, as for a missing file."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO does not block the open
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        if info.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit:,} bytes")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(errno.EFBIG, f"larger than {limit:,} bytes")
    return data.decode("utf-8")


def file_digest(path: Path) -> str:
    """blake2b of a file: fast, in the standard library, and no one can pass damage off as intact."""
    digest = hashlib.blake2b()
    with open(path, "rb") as handle:  # (hashlib.file_digest is Python 3.11+; we support 3.10)
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def digest_files(generation_dir: Path) -> dict[str, str]:
    """The checksum of every file of a generation (not its lock, stamp or manifest), by relative path."""
    return {
        path.relative_to(generation_dir).as_posix(): file_digest(path)
        for path in sorted(generation_dir.rglob("*"))
        if path.is_file() and path.relative_to(generation_dir).as_posix() not in UNHASHED
    }


class NotAFile(Exception):
    """A file of a generation or an export that is a folder, a FIFO or a device: damage."""


def _stats(generation_dir: Path, names: list[str]) -> dict[str, list[int]]:
    stats = {}
    for name in names:
        st = (generation_dir / name).stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the hash for ever, /dev/zero never end it
            raise NotAFile(name)
        # ctime and inode too: `touch -r` can put an mtime back, nothing in user space sets a ctime.
        stats[name] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    return stats


def _read_stamp(generation_dir: Path) -> dict | None:
    try:
        return json.loads(read_small_file(generation_dir / STAMP_FILE))
    except (OSError, ValueError):
        return None


def _write_stamp(generation_dir: Path, stats: dict[str, list[int]]) -> None:
    """Remember a verification for later processes; an index we cannot write is verified again by
    each process (this one remembers it in memory)."""
    temporary = generation_dir / f"{STAMP_FILE}.{os.getpid()}.{threading.get_ident()}"
    try:
        temporary.write_text(json.dumps(stats))
        os.replace(temporary, generation_dir / STAMP_FILE)
    except OSError:
        try:
            temporary.unlink(missing_ok=True)
        except OSError:
            pass  # a read-only file system: nothing was written


def reseal(generation_dir: Path) -> None:
    """Record a generation's checksums anew, for a tool or test that rewrote it in place on purpose
    (anything else that changes a published generation is damage)."""
    manifest = Manifest.read(generation_dir / MANIFEST_FILE)
    manifest.files = digest_files(generation_dir)
    manifest.write(generation_dir / MANIFEST_FILE)
    _verified.pop(str(generation_dir.resolve()), None)


def verify_generation(
    directory: Path, generation_dir: Path, manifest: Manifest, only: Collection[str] | None = None
) -> None:
    """Raise GenerationDamaged unless every file the manifest lists (or those of them in `only`) is
    there with its checksum. A file is hashed only when its stat() differs from the one recorded
    when it was last found intact; a manifest without checksums (an index written before they were
    kept) is taken as it is."""
    if manifest.files is None:
        return
    wanted = {name: digest for name, digest in manifest.files.items() if only is None or name in only}
    damage = damaged_files(generation_dir, wanted, MANIFEST_FILE)
    if damage:
        raise GenerationDamaged(directory, generation_dir.name, damage)


def damaged_files(folder: Path, wanted: dict[str, str], anchor: str) -> str | None:
    """What is wrong with the files of `folder` that `wanted` lists by checksum ("x is missing", "x
    checksum mismatch"), or None. A file is hashed only when its stat() differs from the one recorded
    when it was last found intact; a change to `anchor` (the file the checksums come from) voids that
    record. Generations and the encoder exports use it."""
    try:
        stats = _stats(folder, [anchor, *wanted])
    except FileNotFoundError as err:
        return f"{Path(err.filename).relative_to(folder).as_posix()} is missing"
    except NotAFile as err:
        return f"{err} is not a file"
    key = str(folder.resolve())
    known = _verified.get(key) or _read_stamp(folder)
    if not isinstance(known, dict) or known.get(anchor) != stats[anchor]:
        known = {}  # another manifest: what was checked against the old one proves nothing
    changed = [name for name in wanted if known.get(name) != stats[name]]
    for name in changed:
        try:
            found = file_digest(folder / name)
        except OSError as err:
            return f"{name}: {err.strerror}"
        if found != wanted[name]:
            return f"{name} checksum mismatch"
    if changed or key not in _verified:
        verified = {**known, **stats}
        if changed or not known:
            _write_stamp(folder, verified)
        _verified[key] = verified
    return None


def fsync_dir(path: Path) -> None:
    """Make a rename inside `path` durable (the directory entry, not only the file's bytes)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _file_mode() -> int:
    """The mode a new file gets here (0666 less the umask), as SQLite and FAISS make theirs: the umask
    can only be read by setting it, so once, on import, before any thread could make a file meanwhile."""
    umask = os.umask(0o022)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


def write_atomically(target: Path, data: bytes) -> None:
    """Write `target` whole or not at all: a temp file beside it, fsync, rename, fsync the folder,
    so neither a kill nor a power cut leaves a half-written file under the real name."""
    handle, staging = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        os.fchmod(handle, FILE_MODE)  # as the index's other files: mkstemp's 0600 kept a server run as another user out
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(staging, target)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise
    try:
        fsync_dir(target.parent)
    except OSError:
        pass  # a folder that cannot be opened or synced (some filesystems): the rename is done


class Index:
    """A published generation opened for reading: manifest, paper store and vector index."""

    def __init__(self, directory: Path, generation_dir: Path, manifest: Manifest, store: Store, lease: int | None):
        self.directory = directory
        self.generation_dir = generation_dir
        self.manifest = manifest
        self.store = store
        self._lease = lease
        self.integrity: str | None = None  # set when a damaged newer generation was passed over

    @cached_property
    def vectors(self):
        """The FAISS index of this generation, loaded on first use (`info` never needs it)."""
        from semsearch import vectors as vector_index

        path = self.generation_dir / VECTORS_FILE
        try:
            vectors = vector_index.load(path)
        except RuntimeError as err:  # FAISS's own message is a C++ stack location
            reason = str(err).strip().splitlines()[-1][:120]
            raise IndexDamaged.at(self.directory, f"{path} cannot be read ({reason})") from None
        kind = vector_index.kind_of(vectors)
        if getattr(vectors, "metric_type", 0) != 0:  # FAISS's METRIC_INNER_PRODUCT: scores are cosines
            raise IndexDamaged.at(self.directory, f"{path} does not rank by inner product (cosine)")
        if (vectors.d, vectors.ntotal, kind) != (
            self.manifest.dimension,
            self.manifest.count,
            self.manifest.index_type,
        ):
            raise IndexDamaged(
                f"index at {self.directory} is inconsistent: {vectors.ntotal} vectors of dimension {vectors.d} "
                f"({kind}), manifest says {self.manifest.count} of dimension {self.manifest.dimension} "
                f"({self.manifest.index_type})"
            )
        self._check_paper_numbers(vector_index.ids_of(vectors), VECTORS_FILE)
        return vectors

    def _check_paper_numbers(self, ids, what: str) -> None:
        """Refuse a vector or BM25 index whose papers (their vec_ids: `ids`, None when the kind keeps
        them out of reach) are not papers.db's: one whose ids were changed (its checksums made to
        match) answered with other papers, or dropped its hits, without a word. Compared by count,
        least, greatest and sum, and each once: SQLite and numpy sum them in C."""
        import numpy as np

        if ids is None:
            return
        ids = np.asarray(ids, dtype=np.int64)
        found = (len(ids), int(ids.min()), int(ids.max()), int(ids.sum())) if len(ids) else (0, None, None, 0)
        if found != self.store.paper_numbers() or len(np.unique(ids)) != len(ids):
            raise IndexDamaged.at(self.directory, f"{self.generation_dir / what} holds other papers than papers.db")

    @staticmethod
    def existing(directory: str | Path | None = None) -> Path:
        """The index directory, refused when no index is there: for changes to papers an index
        holds (a label), which a mistyped --index must not meet with an empty new index."""
        directory = resolve_index_dir(directory)
        if current_generation(directory) is None:
            raise no_index_at(directory)
        return directory

    @classmethod
    def open(cls, directory: str | Path | None = None, *, fall_back: bool = True) -> Index:
        """The published generation; if it is damaged, the newest intact older one (with a warning,
        and `integrity` saying so), unless `fall_back` is False."""
        directory = resolve_index_dir(directory)
        for _ in range(3):  # a writer may retire the generation we just read about: look again
            generation = current_generation(directory)
            if generation is None:
                raise no_index_at(directory)
            generation_dir = directory / generation
            try:
                return cls._open_generation(directory, generation_dir)
            except FileNotFoundError as err:
                if current_generation(directory) != generation:
                    continue  # a writer published and retired it meanwhile
                if generation_dir.is_dir():
                    damage = GenerationDamaged(directory, generation, f"{Path(err.filename).name} is missing")
                else:
                    damage = GenerationDamaged(directory, generation, "CURRENT names it", missing=True)
            except GenerationDamaged as err:
                damage = err
            if not fall_back:
                raise damage
            return cls.fall_back(directory, damage)
        raise SemsearchError(f"index at {directory} keeps changing under us; try again")

    @classmethod
    def fall_back(cls, directory: Path, damage: GenerationDamaged) -> Index:
        """The newest intact generation older than the damaged one (publish keeps the one before)."""
        damaged = _number(damage.generation)
        older = sorted((n for n in _generation_names(directory) if _number(n) < damaged), key=_number)
        for name in reversed(older):
            try:
                index = cls._open_generation(directory, directory / name)
            except (FileNotFoundError, GenerationDamaged):
                continue
            index.integrity = f"{damage.what}; serving {name}"
            log.warning("warning: index at %s: %s", directory, index.integrity)
            return index
        raise IndexDamaged(f"{damage}; no intact older generation to fall back to (rebuild the index)")

    @classmethod
    def _open_generation(cls, directory: Path, generation_dir: Path) -> Index:
        lease = _take_lease(generation_dir)
        try:
            return cls._read_generation(directory, generation_dir, lease)
        except GenerationDamaged:
            _drop_lease(lease)
            raise
        except IndexDamaged as err:  # papers.db cannot be read: this generation is damaged
            _drop_lease(lease)
            reason = err.damage.replace(f"{generation_dir}/", "")
            raise GenerationDamaged(directory, generation_dir.name, reason) from None
        except BaseException:
            _drop_lease(lease)
            raise

    @classmethod
    def _read_generation(cls, directory: Path, generation_dir: Path, lease: int | None) -> Index:
        manifest_path = generation_dir / MANIFEST_FILE
        if not manifest_path.exists():
            raise FileNotFoundError(errno.ENOENT, "missing", str(manifest_path))
        try:
            manifest = Manifest.read(manifest_path)
        except SemsearchError as err:
            raise GenerationDamaged(directory, generation_dir.name, str(err)) from None
        verify_generation(directory, generation_dir, manifest)
        if manifest.format_version != FORMAT_VERSION:
            raise SemsearchError(
                f"index at {directory} has format version {manifest.format_version}; this semsearch reads "
                f"version {FORMAT_VERSION}: rebuild it"
            )
        if not (generation_dir / VECTORS_FILE).exists():
            if lease is not None:  # we hold the generation: no writer is removing it, so it is damaged
                raise GenerationDamaged(directory, generation_dir.name, f"{VECTORS_FILE} is missing")
            raise FileNotFoundError(errno.ENOENT, "missing", str(generation_dir / VECTORS_FILE))
        store = Store(generation_dir / DB_FILE, readonly=True)
        problems = []
        if store.get_meta("model") != manifest.model:
            problems.append(
                f"papers.db was embedded with {store.get_meta('model')!r}, manifest says {manifest.model!r}"
            )
        if store.count() != manifest.count:
            problems.append(f"{store.count()} papers, manifest says {manifest.count}")
        stored, said = store.stored_dimension(), manifest.dimension
        if isinstance(said, bool) or stored not in (None, said):  # JSON's true is 1 to Python
            problems.append(f"papers.db holds {stored}-d vectors, manifest says {said!r}")
        if manifest.index_type not in INDEX_TYPES or manifest.index_type == "auto":  # `info` shows it unloaded
            problems.append(f"the manifest names no kind of vector index ({manifest.index_type!r})")
        if manifest.generation != generation_dir.name:  # `info` shows it: a copied manifest must not pass
            problems.append(f"the manifest is {manifest.generation}'s")
        if problems:
            store.close()
            raise GenerationDamaged(directory, generation_dir.name, f"inconsistent: {'; '.join(problems)}")
        return cls(directory, generation_dir, manifest, store, lease)

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.generation_dir.rglob("*") if f.is_file())

    @cached_property
    def lexical(self):
        """The BM25 index of this generation, loaded on first use."""
        from semsearch.lexical import LexicalIndex

        try:
            lexical = LexicalIndex.load(self.generation_dir)
        except (OSError, ValueError, EOFError) as err:  # missing or garbled files of an unverified index
            if exhausted := OutOfResources.of(err):
                raise exhausted from None
            raise IndexDamaged.at(self.directory, f"{self.generation_dir / 'lexical'} cannot be read ({err})") from None
        if len(lexical.vec_ids) != self.manifest.count:
            raise IndexDamaged(
                f"index at {self.directory} is inconsistent: {len(lexical.vec_ids)} papers in the lexical "
                f"index, manifest says {self.manifest.count}"
            )
        self._check_paper_numbers(lexical.vec_ids, "lexical")
        return lexical

    def close(self) -> None:
        self.store.close()
        _drop_lease(self._lease)
        self._lease = None


UNWRITABLE = (errno.EROFS, errno.EACCES, errno.EPERM)  # the errnos of an index that cannot be written


def take_lock(path: Path, timeout: float | None, doing: str, who: str = "writer") -> int:
    """An exclusive lock on `path` (created), waited for up to `timeout` seconds (None:
    $SEMSEARCH_LOCK_TIMEOUT), else IndexBusy naming the holder's pid (written into the file) and
    what it is `doing`."""
    timeout = _lock_timeout() if timeout is None else timeout
    deadline = time.monotonic() + timeout
    while True:
        fd = _lock_file(path, deadline, doing, who)
        if fd is None:  # the directory was removed between its making and the opening: made again
            continue
        # The file waited on may have been removed meanwhile (a refused start undoing the directory it
        # made, `ingest._remove_made`): its lock guards nothing, so the file now there is locked instead.
        try:
            there = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            there = None
        ours = os.fstat(fd)
        if there is not None and (there.st_dev, there.st_ino) == (ours.st_dev, ours.st_ino):
            break
        drop_lock(fd)
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _lock_file(path: Path, deadline: float, doing: str, who: str) -> int | None:
    """The file at `path` (made if missing), locked: `take_lock`'s wait. None when its directory was
    removed as it was opened (a refused start undoing the directory it made), to be tried again."""
    made = False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        made = True
        # Never through a symbolic link: an index handed over with `.lock` linked to a file elsewhere
        # had that file overwritten with a pid by the first writer.
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    except OSError as err:  # read-only, no permission, or a directory nothing can be made in (/proc)
        if made and err.errno == errno.ENOENT and time.monotonic() < deadline:
            return None
        if err.errno == errno.ELOOP:
            raise SemsearchError(f"{path} is a symbolic link, which semsearch never makes; remove it") from None
        raise IndexUnwritable.at(path.parent, err.strerror) from None
    status = os.fstat(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_nlink > 1:  # a hard link writes into the file it shares
        os.close(fd)
        raise SemsearchError(f"{path} is not a file semsearch made (a pipe, a device or a hard link); remove it")
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            # A server's own writers (a label, its watch) queue too: named as this process, not another.
            ours = holder == str(os.getpid())
            held_by = "this process's other" if ours else "another"
            if time.monotonic() >= deadline:
                os.close(fd)
                raise IndexBusy(
                    f"{held_by} semsearch {'writer' if ours else 'process'} (pid {holder}) is "
                    f"{doing} {path.parent}; try again when it has finished"
                ) from None
            if not told:
                log.warning("waiting for %s %s (pid %s) to finish with %s…", held_by, who, holder, path.parent)
                told = True
            time.sleep(0.05)
    return fd


WATCH_LOCK = ".watch.lock"  # held by the one watch of an index (semsearch.watch), beside the writer's .lock


def lock_is_held(path: Path) -> bool:
    """Whether someone holds the lock at `path` (`take_lock`) now; no file is no lock. Asked by
    taking it for an instant, never waiting (a holder in this process counts too)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # closing the descriptor lets go of the instant's lock
    return False


def drop_lock(fd: int | None) -> None:
    """Release a lock `take_lock` gave (None: none held); returns None, the fd's new value."""
    if fd is not None:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _lock_timeout() -> float:
    """$SEMSEARCH_LOCK_TIMEOUT: how long a writer waits for another (seconds, 300 when unset or
    empty, as every SEMSEARCH_ variable set to nothing means its default)."""
    raw = os.environ.get("SEMSEARCH_LOCK_TIMEOUT", "").strip() or "300"
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds >= 0 or seconds == float("inf"):
        raise SemsearchError(f"SEMSEARCH_LOCK_TIMEOUT must be a number of seconds, not {raw!r}")
    return seconds


def _take_lease(generation_dir: Path) -> int | None:
    """A shared lock on the generation's readers file (None for a generation written without one)."""
    try:
        # O_NONBLOCK: a .readers replaced by a FIFO blocked the open, so every reader, for ever.
        fd = os.open(generation_dir / READERS_FILE, os.O_RDONLY | os.O_NONBLOCK)
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
        fd = os.open(generation_dir / READERS_FILE, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO would block
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
        self.lock_timeout = lock_timeout if lock_timeout is not None else _lock_timeout()
        self.staging = self.directory / "staging"
        self._lock_fd: int | None = None
        self.store: Store | None = None
        self.model = ""
        self.resumed = False  # staging held an interrupted run's work: it differs from the published index
        # What stopping now leaves, for Ctrl-C's message: None (nothing opened), "nothing", "staged", "published".
        self.leaves: str | None = None
        self.base_manifest: Manifest | None = None  # of the generation this one is built on
        self._bookkeeping = 0  # changes that record progress (how far a file was read), not content

    # --- locking ------------------------------------------------------------------------------
    def _acquire_lock(self) -> None:
        self._lock_fd = take_lock(self.directory / ".lock", self.lock_timeout, "writing to")

    def _release_lock(self) -> None:
        self._lock_fd = drop_lock(self._lock_fd)

    def _check_lock_is_ours(self) -> None:
        """Refuse to publish unless `.lock` is still the file this writer locked: one removed as
        "stale" while it ran let a second writer in, and both published from one staging folder
        (CURRENT then named a generation without its papers.db). What is staged stays, to resume."""
        path = self.directory / ".lock"
        try:
            ours = os.fstat(self._lock_fd)
            there = os.stat(path)
            same = (ours.st_dev, ours.st_ino) == (there.st_dev, there.st_ino)
        except (OSError, TypeError):
            same = False
        if not same:
            raise IndexBusy(
                f"{path} was removed or replaced while this process held it, so another writer may be "
                "running; nothing was published (what was staged is kept): run again once no other "
                "semsearch process writes to the index"
            )

    @contextmanager
    def released(self):
        """Other writers let in for a while (a watch waiting on arXiv): what is staged is committed
        and left for them, and when the lock is back, staging is opened afresh — theirs to publish
        with their own change (a label), or still ours. A label posted meanwhile waited out the
        whole watch and got a 503."""
        had_changes = self.has_changes()
        self.store.commit()
        self.store.close()
        self.store = None
        self._release_lock()
        try:
            yield
        except Exception:
            self._take_back(had_changes)  # a failure publishes what was staged, as any writer's does
            raise
        # Ctrl-C (no Exception) leaves at once: staging waits for the next run, not for another writer.
        self._take_back(had_changes)

    def _take_back(self, had_changes: bool) -> None:
        self._acquire_lock()
        self._bookkeeping = 0  # counted on the connection just closed
        self._open_staging()
        # Our own staging found again is not an interrupted run's work: it differs from the published
        # index only if it did before (else a failed watch published an unchanged generation each time).
        self.resumed = self.resumed and had_changes

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> IndexWriter:
        self._acquire_lock()
        try:
            self._open_staging()
        except OSError as err:
            self._release_lock()
            if err.errno not in UNWRITABLE:
                raise
            # A folder made immutable (`chattr +i`), or read-only to this user, once .lock is there:
            # said as take_lock says it, not as a bare "[Errno 1] Operation not permitted: 'idx/staging'".
            raise IndexUnwritable.at(self.directory, err.strerror) from None
        except BaseException:
            self._release_lock()
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close_staging()
        if isinstance(exc, KeyboardInterrupt):  # Ctrl-C's message says what waits (cli._interrupted)
            exc.index_left = self.leaves
        self._release_lock()

    def close_staging(self) -> None:
        """What `__exit__` does before it lets go of the lock: staging committed and closed (removed
        when it holds nothing to resume). The lock is still held, for what must be undone under it."""
        if self.store is not None:
            unchanged = not self.has_changes()
            self.store.commit()  # whatever was embedded is kept for the next run to resume from
            self.store.close()
            self.store = None
            if unchanged:  # nothing to resume from
                shutil.rmtree(self.staging, ignore_errors=True)
            self.leaves = "nothing" if unchanged else "staged"

    def has_changes(self) -> bool:
        """Whether staging differs from the published index: this run or an interrupted one wrote to it
        (recording how far a source was read is no change: an unchanged re-ingest publishes nothing)."""
        return self.resumed or self.store.db.total_changes - self._bookkeeping > self._changes_at_open

    def note_progress(self, key: str, value: str) -> None:
        """Record in staging how far a source got (resume state), without counting as a change."""
        before = self.store.db.total_changes
        self.store.set_meta(key, value)
        self._bookkeeping += self.store.db.total_changes - before

    def _open_staging(self) -> None:
        from semsearch.embeddings import DEFAULT_MODEL

        self.resumed = False
        base, published_model = "", None
        current = current_generation(self.directory)
        if current is not None:
            base, self.base_manifest = self._base(current)
            published_model = self.base_manifest.model
        self._adopt_unpublished(base)
        self._drop_staging_not_ours()
        if published_model and self.requested_model and self.requested_model != published_model:
            raise SemsearchError(
                f"index at {self.directory} was built with model {published_model!r}, not "
                f"{self.requested_model!r}; use another --index directory for another model"
            )
        self.model = published_model or self.requested_model or DEFAULT_MODEL
        db_path = self.staging / DB_FILE
        if db_path.exists():
            try:
                resumable = Store(db_path)
                same_base = resumable.get_meta("base_generation") == base
                same_model = resumable.get_meta("model") == self.model
                resumable.close()
            except sqlite3.DatabaseError as err:  # damaged leftovers: start over from the published index
                log.warning("warning: %s cannot be read (%s); starting over from the published index", db_path, err)
                same_base = same_model = False
            if not (same_base and same_model):
                shutil.rmtree(self.staging)
            self.resumed = same_base and same_model
        if not db_path.exists():
            shutil.rmtree(self.staging, ignore_errors=True)
            self.staging.mkdir(parents=True)
            if base:
                source = sqlite3.connect(f"file:{self.directory / base / DB_FILE}?mode=ro", uri=True)
                target = sqlite3.connect(db_path)
                try:
                    source.backup(target)
                except sqlite3.DatabaseError as err:  # damaged after it was verified, or no room for the copy
                    if room := no_room(err):
                        target.close()
                        shutil.rmtree(self.staging, ignore_errors=True)  # a part copy holds no work
                        raise DiskFull(
                            f"{room[0]}: there is no room to copy the index into staging/ to change it "
                            f"(nothing was changed; {room[1]})"
                        ) from None
                    raise IndexDamaged.at(self.directory, f"{base}/{DB_FILE}: {err}") from None
                finally:
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

    def _base(self, current: str) -> tuple[str, Manifest]:
        """The generation to build on: the published one when its papers.db is intact (its vector
        and BM25 files are rebuilt from it anyway, which repairs them), else the newest intact one."""
        generation_dir = self.directory / current
        try:
            manifest = Manifest.read(generation_dir / MANIFEST_FILE)
            if manifest.format_version == FORMAT_VERSION:
                verify_generation(self.directory, generation_dir, manifest, only=[DB_FILE])
                if (generation_dir / DB_FILE).is_file():
                    return current, manifest
        except SemsearchError:  # unreadable manifest, damaged papers.db: look for an intact one
            pass
        published = Index.open(self.directory)  # warns when it passes over a damaged generation
        published.close()
        return published.generation_dir.name, published.manifest

    def _drop_staging_not_ours(self) -> None:
        """staging/ as semsearch leaves it is a folder of files and folders. A symbolic link in its
        place or in it (an index handed over) would have this writer write where the link points:
        such a staging/ is dropped, with a warning (it only spares an interrupted run's work)."""
        staging = self.staging
        if not (staging.is_symlink() or staging.exists()):
            return
        not_a_folder = staging.is_symlink() or not staging.is_dir()
        odd = not_a_folder or any(
            not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))
            for folder, folders, files in os.walk(staging)
            for mode in (os.lstat(os.path.join(folder, name)).st_mode for name in folders + files)
        )
        if odd:
            log.warning("warning: %s held a link or a file semsearch never makes; dropped", staging)
            if not_a_folder:
                staging.unlink()
            else:
                shutil.rmtree(staging)

    def _adopt_unpublished(self, base: str) -> None:
        """A writer killed after renaming staging to its generation, before CURRENT named it, left a
        whole generation nobody reads: it becomes staging again, so its embeddings are not redone."""
        if self.staging.exists() or not base:
            return
        for name in _generation_names(self.directory):
            if _number(name) <= _number(base):
                continue
            db_path = self.directory / name / DB_FILE
            try:
                with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as db:
                    row = db.execute("SELECT value FROM meta WHERE key = 'base_generation'").fetchone()
                db.close()
            except sqlite3.Error:
                continue
            if row and row[0] == base:
                os.replace(self.directory / name, self.staging)
                for leftover in (MANIFEST_FILE, VECTORS_FILE, READERS_FILE, STAMP_FILE):
                    (self.staging / leftover).unlink(missing_ok=True)
                return

    def published_manifest(self) -> Manifest | None:
        """The manifest of the generation this writer builds on (None for a new index)."""
        return self.base_manifest

    def publish(self, dimension: int | None = None) -> Manifest:
        """Build the vector index from the staged embeddings and make this generation current."""
        from semsearch import vectors as vector_index

        assert self.store is not None, "publish() outside `with IndexWriter(...)`"
        self._check_lock_is_ours()  # before the sources' resume state is cleared below; again before the rename
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
        number = max(map(_number, existing), default=0) + 1
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
        # base_generation stays: until CURRENT names the new generation, a writer killed in here left
        # staging (or the renamed generation) that the next run resumes from, embeddings and all.
        store.db.execute("DELETE FROM meta WHERE key LIKE ?", (RESUME_PREFIX + "%",))
        store.commit()
        store.close()
        self.store, self.leaves = None, "staged"
        vector_index.write(vectors, self.staging / VECTORS_FILE)
        manifest.files = digest_files(self.staging)
        manifest.write(self.staging / MANIFEST_FILE)
        (self.staging / READERS_FILE).touch()
        for path in self.staging.rglob("*"):
            if path.is_file():
                with open(path, "rb+") as handle:
                    os.fsync(handle.fileno())
        _write_stamp(self.staging, _stats(self.staging, [MANIFEST_FILE, *manifest.files]))  # hashed just now
        self._check_lock_is_ours()
        previous = current_generation(self.directory)  # before the new generation sits beside it
        os.replace(self.staging, self.directory / generation)
        # Under a name of its own (never a `CURRENT.tmp` left there, which could link to a file elsewhere).
        write_atomically(self.directory / "CURRENT", (generation + "\n").encode())
        self.leaves = "published"
        for name in existing:
            if name not in (previous, generation):  # the previous one serves readers that just opened it
                _retire(self.directory / name)
        return manifest
