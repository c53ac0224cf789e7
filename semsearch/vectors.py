"""The FAISS index: which kind for how many papers, how to build it, load it and search it.

- flat: exact inner-product search over float32 vectors. Cheap up to a few hundred thousand papers
  (1.5 KB a paper for 384 dimensions) and the default below AUTO_FLAT_LIMIT.
- ivf: an inverted file of 8-bit scalar-quantised vectors (IVF-SQ8): 1 byte a dimension, the lists
  memory-mapped from disk, NPROBE lists searched per question. The default above the limit.
- hnsw: a graph over 8-bit quantised vectors; fastest to query, slowest to build.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from semsearch.errors import DiskFull, IndexDamaged, SemsearchError

INDEX_TYPES = ("auto", "flat", "ivf", "hnsw")
AUTO_FLAT_LIMIT = 50_000
NPROBE = 48
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 96
TRAINING_SAMPLE = 100_000
# Arrays up to this size are read into memory, larger ones memory-mapped: a mapped file truncated
# in place under a server (`rsync --inplace`) ends the process with SIGBUS before the reload tick
# can find the damage, and a copy of tens of MB costs milliseconds (the lexical arrays use it too).
MAP_ABOVE_BYTES = 256 << 20


def choose_index_type(requested: str, count: int) -> str:
    if requested not in INDEX_TYPES:
        raise SemsearchError(f"unknown index type {requested!r} (choose from {', '.join(INDEX_TYPES)})")
    if requested != "auto":
        return requested
    return "flat" if count <= AUTO_FLAT_LIMIT else "ivf"


def ivf_lists(count: int) -> int:
    """About 4·√n inverted lists (a power of two), and never more than the data can train."""
    lists = 2 ** round(math.log2(max(4 * math.sqrt(max(count, 1)), 1)))
    return max(1, min(lists, count // 39 or 1))


def training_size(count: int) -> int:
    """Enough vectors to train IVF_LISTS centroids (FAISS asks for 39 a centroid), at least the usual sample."""
    return min(count, max(TRAINING_SAMPLE, 40 * ivf_lists(count)))


def build(
    batches: Iterator[tuple[np.ndarray, np.ndarray]],
    count: int,
    dimension: int,
    index_type: str,
    training: np.ndarray | None = None,
):
    """A FAISS index of `count` vectors fed as (ids, vectors) batches; `training` samples them for
    the quantised kinds (IVF centroids, scalar-quantiser ranges)."""
    import faiss

    kind = choose_index_type(index_type, count)
    if kind == "flat" or count == 0:
        index = faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
    elif kind == "ivf":
        quantizer = faiss.IndexFlatIP(dimension)
        index = faiss.IndexIVFScalarQuantizer(
            quantizer, dimension, ivf_lists(count), faiss.ScalarQuantizer.QT_8bit, faiss.METRIC_INNER_PRODUCT
        )
        index.train(training)
        index.nprobe = NPROBE
    else:
        graph = faiss.IndexHNSWSQ(dimension, faiss.ScalarQuantizer.QT_8bit, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        graph.train(training)
        graph.hnsw.efSearch = HNSW_EF_SEARCH
        index = faiss.IndexIDMap2(graph)
    for ids, vectors in batches:
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    return index


def kind_of(index) -> str:
    if isinstance(index, FlatVectors):
        return "flat"
    import faiss

    inner = faiss.downcast_index(index.index) if hasattr(index, "id_map") else index
    if isinstance(inner, faiss.IndexIVF):
        return "ivf"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "flat"


def ids_of(index) -> np.ndarray | None:
    """The ids (vec_ids) an index holds, where they are at hand: a flat index's, an id map's, the
    places of one without a map; None for IVF's, kept in its inverted lists."""
    if isinstance(index, FlatVectors):
        return index.ids
    if hasattr(index, "id_map"):
        import faiss

        return faiss.vector_to_array(index.id_map)
    return None if kind_of(index) == "ivf" else np.arange(index.ntotal)  # without a map, ids are places


def write(index, path: Path) -> None:
    import faiss

    try:
        # Through a Python file: FAISS's own writer reports a full disk at close on stderr only,
        # leaving a truncated file behind; Python's raises OSError (ENOSPC).
        with open(path, "wb") as handle:
            faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))
    except RuntimeError as err:  # FAISS's message is a C++ assertion; the reason is at its end
        if "No space left" in str(err):
            raise DiskFull() from None
        reason = str(err).strip().splitlines()[-1][-160:]
        raise SemsearchError(f"cannot write {path}: {reason}") from None


class FlatVectors:
    """A flat inner-product index read from FAISS's own file with numpy (mapped when large): exact
    search needs no FAISS, whose import was ~40 ms of a question from a fresh process. It answers
    as FAISS's flat search does: the k best scores, id -1 where fewer match. Of rows tied in score,
    the earlier come first (FAISS's heap may pick and order tied rows otherwise: real embeddings
    hardly ever tie)."""

    def __init__(self, matrix: np.ndarray, ids: np.ndarray):
        self.matrix, self.ids = matrix, ids
        self.ntotal, self.d = matrix.shape

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        scores = np.asarray(queries, dtype=np.float32) @ self.matrix.T
        if not np.isfinite(scores).all():  # a question's vector is finite: a stored one is not a vector
            raise IndexDamaged("vectors.faiss holds values that are not numbers; rebuild the index")
        if allowed is not None:
            scores[:, ~np.isin(self.ids, allowed)] = -np.inf
        k = min(k, self.ntotal)
        kth = np.partition(scores, self.ntotal - k, axis=1)[:, self.ntotal - k]  # each query's k-th best
        best = np.empty((len(scores), k), dtype=np.int64)
        for row, (row_scores, threshold) in enumerate(zip(scores, kth, strict=True)):
            candidates = np.flatnonzero(row_scores >= threshold)  # every row tied with the k-th too
            best[row] = candidates[np.lexsort((candidates, -row_scores[candidates]))][:k]
        values = np.take_along_axis(scores, best, axis=1)
        missing = ~np.isfinite(values)
        return np.where(missing, np.finfo(np.float32).min, values), np.where(missing, -1, self.ids[best])


# FAISS's file of IndexIDMap2(IndexFlatIP): "IxM2" and a header, "IxFI" and a header, the vectors
# (a count of 4-byte words, then the words), the ids (a count, then int64s). A header: d (int32),
# ntotal (int64), two int64 placeholders, is_trained (1 byte), metric (int32; 0 is inner product).
_HEADER = struct.Struct("<4siqqq?i")


def _read_flat(path: Path) -> FlatVectors | None:
    """The flat index at `path` as numpy arrays, or None for anything else (FAISS reads that)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(2 * _HEADER.size + 8)
        size = path.stat().st_size
    except OSError:
        return None
    if len(head) < 2 * _HEADER.size + 8:
        return None
    outer, inner = _HEADER.unpack_from(head, 0), _HEADER.unpack_from(head, _HEADER.size)
    (words,) = struct.unpack_from("<Q", head, 2 * _HEADER.size)
    dimension, count = inner[1], inner[2]
    offset = 2 * _HEADER.size + 8
    if (
        (outer[0], inner[0]) != (b"IxM2", b"IxFI")
        or outer[6] != 0
        or inner[6] != 0
        or (outer[1], outer[2]) != (dimension, count)
        or words != dimension * count
        or size != offset + 4 * words + 8 + 8 * count
    ):
        return None
    with open(path, "rb") as handle:
        handle.seek(offset + 4 * words)
        (id_count,) = struct.unpack("<Q", handle.read(8))
        if id_count != count:
            return None
        ids = np.frombuffer(handle.read(8 * count), dtype="<i8")
    if count == 0:
        return FlatVectors(np.zeros((0, dimension), dtype=np.float32), ids)
    if 4 * words > MAP_ABOVE_BYTES:
        return FlatVectors(np.memmap(path, dtype="<f4", mode="r", offset=offset, shape=(count, dimension)), ids)
    with open(path, "rb") as handle:
        handle.seek(offset)
        matrix = np.fromfile(handle, dtype="<f4", count=words)
    if len(matrix) != words:  # changed since its size was read
        return None
    return FlatVectors(matrix.reshape(count, dimension), ids)


def load(path: Path):
    """Read an index, memory-mapping what FAISS allows (IVF lists, flat codes); a flat index is read
    with numpy alone (FlatVectors), into memory up to MAP_ABOVE_BYTES."""
    flat = _read_flat(path)
    if flat is not None:
        return flat
    import faiss

    try:
        index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP | faiss.IO_FLAG_READ_ONLY)
    except RuntimeError:
        index = faiss.read_index(str(path))
    kind = kind_of(index)
    if kind == "ivf":
        faiss.extract_index_ivf(index).nprobe = NPROBE
    elif kind == "hnsw":
        faiss.downcast_index(index.index).hnsw.efSearch = HNSW_EF_SEARCH
    return index


def search(index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the k best matches, optionally only among `allowed` ids."""
    if isinstance(index, FlatVectors):
        return index.search(queries, k, allowed)
    import faiss

    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed is None:
        return index.search(queries, k)
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
    kind = kind_of(index)
    if kind == "ivf":
        params = faiss.SearchParametersIVF(sel=selector, nprobe=NPROBE)
    elif kind == "hnsw":
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(HNSW_EF_SEARCH, k))
    else:
        params = faiss.SearchParameters(sel=selector)
    return index.search(queries, k, params=params)
