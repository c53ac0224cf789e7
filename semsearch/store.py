"""The paper store: one SQLite file holding paper metadata and each paper's embedding.

SQLite is the source of truth; the FAISS index is rebuilt from the stored embeddings, so a paper
whose text did not change is never embedded again.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from semsearch.errors import IndexDamaged
from semsearch.paper import Paper, appeared, embedding_text, normalize_title, parse_arxiv_id

_SCHEMA = """
CREATE TABLE IF NOT EXISTS papers (
    vec_id INTEGER PRIMARY KEY,         -- the paper's id in the vector index
    id TEXT NOT NULL UNIQUE,            -- versionless arXiv id, or a stable id of its source
    title TEXT NOT NULL,
    abstract TEXT NOT NULL DEFAULT '',
    authors TEXT NOT NULL DEFAULT '[]',
    published TEXT,
    updated TEXT,
    arxiv_categories TEXT NOT NULL DEFAULT '[]',
    survey_categories TEXT NOT NULL DEFAULT '[]',
    venue TEXT,
    year INTEGER,
    url TEXT,
    sources TEXT NOT NULL DEFAULT '[]',
    title_key TEXT NOT NULL,
    text_hash TEXT NOT NULL             -- of the text the model reads, to spot stale embeddings
);
CREATE INDEX IF NOT EXISTS papers_title_key ON papers(title_key);
CREATE TABLE IF NOT EXISTS embeddings (
    vec_id INTEGER PRIMARY KEY REFERENCES papers(vec_id),
    text_hash TEXT NOT NULL,
    vector BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS labels (          -- categories users confirmed (`semsearch label`), apart from the survey's
    vec_id INTEGER PRIMARY KEY REFERENCES papers(vec_id),
    category TEXT NOT NULL,
    labelled_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS list_labels (     -- categories users confirmed in a curated list (`label --taxonomy`)
    name TEXT NOT NULL,                  -- the list's taxonomy; its labels outlive a refresh, not a removal
    vec_id INTEGER NOT NULL REFERENCES papers(vec_id),
    category TEXT NOT NULL,
    labelled_at TEXT NOT NULL,
    PRIMARY KEY (name, vec_id)
);
CREATE TABLE IF NOT EXISTS artifacts (name TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS taxonomies (      -- curated lists added as taxonomies (`semsearch taxonomy add`)
    name TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    nodes TEXT NOT NULL                  -- JSON list of node paths, parents first
);
CREATE TABLE IF NOT EXISTS taxonomy_labels (
    name TEXT NOT NULL REFERENCES taxonomies(name),
    vec_id INTEGER NOT NULL REFERENCES papers(vec_id),
    category TEXT NOT NULL,
    PRIMARY KEY (name, vec_id, category)
);
CREATE TABLE IF NOT EXISTS predictions (     -- taxonomy suggestion for papers the survey does not label
    vec_id INTEGER PRIMARY KEY REFERENCES papers(vec_id),
    category TEXT NOT NULL,
    confidence REAL NOT NULL,
    in_scope INTEGER NOT NULL,
    leaf_probabilities BLOB              -- float32, one per taxonomy leaf in document order
);
CREATE TABLE IF NOT EXISTS paper_categories (  -- each paper's effective categories, derived at publish
    vec_id INTEGER NOT NULL REFERENCES papers(vec_id),
    rank INTEGER NOT NULL,               -- the survey's order of a paper's categories
    category TEXT NOT NULL,
    source TEXT NOT NULL,                -- survey | user | predicted
    PRIMARY KEY (vec_id, rank)
) WITHOUT ROWID;
"""

_JSON_FIELDS = ("authors", "arxiv_categories", "survey_categories", "sources")
_FIELDS = (
    "id", "title", "abstract", "authors", "published", "updated", "arxiv_categories",
    "survey_categories", "venue", "year", "url", "sources",
)  # fmt: skip


@dataclass
class Prediction:
    category: str
    confidence: float
    in_scope: bool
    leaf_probabilities: np.ndarray | None = None  # the classifier's chance of each leaf, in document order


# The one rule for a paper's categories: the survey's, else a user's label, else the classifier's
# prediction when in scope. Derived once per generation into `paper_categories`, which every reader
# (search hits, --category filters, counts, related work) reads.
_EFFECTIVE_CATEGORIES = """
SELECT p.vec_id, CAST(c.key AS INTEGER) AS rank, c.value AS category, 'survey' AS source
FROM papers AS p, json_each(p.survey_categories) AS c
UNION ALL
SELECT l.vec_id, 0, l.category, 'user'
FROM labels AS l JOIN papers AS p ON p.vec_id = l.vec_id WHERE p.survey_categories = '[]'
UNION ALL
SELECT r.vec_id, 0, r.category, 'predicted'
FROM predictions AS r JOIN papers AS p ON p.vec_id = r.vec_id LEFT JOIN labels AS l ON l.vec_id = r.vec_id
WHERE p.survey_categories = '[]' AND l.vec_id IS NULL AND r.in_scope = 1
"""


@dataclass
class PendingEmbedding:
    vec_id: int
    text: str
    text_hash: str


# What SQLite says of a file it cannot read as a database (garbage, truncated, gone): damage, told as
# one line, not a programming error. IntegrityError and ProgrammingError are bugs and stay as they are.
_DAMAGE = (sqlite3.OperationalError, sqlite3.DatabaseError)
SQLITE_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def damaged(path: Path, err: sqlite3.Error) -> IndexDamaged:
    """The error a reader gives for a papers.db that SQLite cannot read."""
    return IndexDamaged.at(path.parent.parent, f"{path} cannot be read ({err})")


class _Cursor(sqlite3.Cursor):
    """A cursor of a published papers.db: a damaged file raises IndexDamaged wherever SQLite notices
    it (preparing a query or fetching a row of it), so the CLI and the API say so in one line."""

    def _guard(self, call, *args):
        try:
            return call(*args)
        except SQLITE_BUGS:
            raise
        except _DAMAGE as err:
            raise damaged(self.connection.path, err) from None

    def execute(self, *args):
        return self._guard(super().execute, *args)

    def executemany(self, *args):
        return self._guard(super().executemany, *args)

    def fetchone(self):
        return self._guard(super().fetchone)

    def fetchmany(self, *args):
        return self._guard(super().fetchmany, *args)

    def fetchall(self):
        return self._guard(super().fetchall)

    def __next__(self):
        return self._guard(super().__next__)


class _Connection(sqlite3.Connection):
    path: Path

    def cursor(self, factory=_Cursor):
        return super().cursor(factory)

    def execute(self, *args):  # sqlite3's own execute would make a plain cursor
        return self.cursor().execute(*args)


def _node_paths(name: str, stored) -> list[str]:
    """A taxonomy's stored nodes (a JSON list of paths), their shape checked: a papers.db whose
    checksums were made to match held them as an object, or as no JSON at all, and every command
    naming the list failed with a traceback."""
    try:
        nodes = json.loads(stored)
    except (TypeError, ValueError, RecursionError):
        nodes = None
    if not (isinstance(nodes, list) and all(isinstance(node, str) and node for node in nodes)):
        raise IndexDamaged(
            f"papers.db: the nodes of taxonomy {name[:60]!r} are not a list of headings; rebuild the index"
        )
    return nodes


def _row_to_paper(row: sqlite3.Row) -> Paper:
    """A stored row as a paper, its shape checked: a papers.db whose checksums were made to match
    held authors as a JSON object, and every search that met the paper failed with a traceback."""
    values = {name: row[name] for name in _FIELDS}
    for name in _JSON_FIELDS:
        try:
            values[name] = json.loads(values[name])
        except (TypeError, ValueError, RecursionError):
            values[name] = None  # refused below, as any other shape that is not a paper's
    if not (
        all(isinstance(values[n], list) and all(isinstance(x, str) for x in values[n]) for n in _JSON_FIELDS)
        and all(isinstance(values[n], str) for n in ("id", "title", "abstract"))
        and all(values[n] is None or isinstance(values[n], str) for n in ("published", "updated", "venue", "url"))
        and (values["year"] is None or type(values["year"]) is int)
    ):
        raise IndexDamaged(f"papers.db: the record of {str(values['id'])[:80]!r} is not a paper's; rebuild the index")
    return Paper(**values)


def _appeared(paper_id: str, published: str | None) -> str | None:
    """`Paper.appeared` of a stored row, for SQL: one rule for the day a paper appeared."""
    return appeared(parse_arxiv_id(paper_id), published)


class Store:
    def __init__(self, path: Path, *, readonly: bool = False):
        self.path = path
        self.readonly = readonly
        if readonly:
            # A published generation never changes: every thread reads through its own connection
            # (so requests run in parallel), and SQLite may skip locking entirely.
            self._local = threading.local()
            self._connections: list[sqlite3.Connection] = []
            self._connections_lock = threading.Lock()
        else:
            self._db = sqlite3.connect(path, check_same_thread=False)
            self._db.row_factory = sqlite3.Row
            self._db.executescript(f"BEGIN; {_SCHEMA} COMMIT;")  # one transaction: one sync, not one per table
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(predictions)")}
            if "leaf_probabilities" not in columns:  # an index written before predictions kept them
                self._db.execute("ALTER TABLE predictions ADD COLUMN leaf_probabilities BLOB")
        self.model = self.get_meta("model", "")

    @property
    def db(self) -> sqlite3.Connection:
        if not self.readonly:
            return self._db
        connection = getattr(self._local, "db", None)
        if connection is None:
            if not self.path.is_file():  # SQLite would say only "unable to open database file"
                raise IndexDamaged.at(self.path.parent.parent, f"{self.path} is missing")
            try:
                connection = sqlite3.connect(
                    f"file:{self.path}?mode=ro&immutable=1", uri=True, check_same_thread=False, factory=_Connection
                )
            except _DAMAGE as err:
                raise damaged(self.path, err) from None
            connection.path = self.path
            connection.row_factory = sqlite3.Row
            if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'paper_categories'").fetchone():
                # An index published before the categories were stored: derive them on reading.
                connection.execute(f"CREATE TEMP VIEW paper_categories AS {_EFFECTIVE_CATEGORIES}")
            if not connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'list_labels'").fetchone():
                # An index published before labels of lists: it holds none.
                connection.execute("CREATE TEMP TABLE list_labels (name, vec_id, category, labelled_at)")
            self._local.db = connection
            with self._connections_lock:
                self._connections.append(connection)
        return connection

    def close(self) -> None:
        if not self.readonly:
            self._db.close()
            return
        with self._connections_lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def commit(self) -> None:
        self.db.commit()

    # --- metadata -----------------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def set_meta(self, key: str, value: str) -> None:
        # Writing the value a key already has is no change (an unchanged re-ingest publishes nothing).
        self.db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT(key) DO UPDATE SET value = excluded.value WHERE value != excluded.value",
            (key, value),
        )
        if key == "model":
            self.model = value

    # --- papers -------------------------------------------------------------------------------
    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM papers").fetchone()[0]

    def content_counts(self) -> dict[str, int]:
        """How many papers have an abstract, how many the survey labels, how many a user labelled,
        and how many others the classifier places in the taxonomy."""
        with_abstract = self.db.execute("SELECT count(*) FROM papers WHERE abstract != ''").fetchone()[0]
        by_source = dict(self.db.execute("SELECT source, count(DISTINCT vec_id) FROM paper_categories GROUP BY source"))
        return {
            "with_abstract": with_abstract,
            "survey_labelled": by_source.get("survey", 0),
            "user_labelled": by_source.get("user", 0),
            "predicted": by_source.get("predicted", 0),
        }

    def get(self, paper_id: str) -> Paper | None:
        row = self.db.execute("SELECT * FROM papers WHERE id = ?", (paper_id,)).fetchone()
        return _row_to_paper(row) if row else None

    def vec_id(self, paper_id: str) -> int | None:
        row = self.db.execute("SELECT vec_id FROM papers WHERE id = ?", (paper_id,)).fetchone()
        return row[0] if row else None

    def find(self, paper_id: str) -> int | None:
        """The vec_id of a paper by any form of its id (arXiv versions, `arXiv:` and URLs accepted)."""
        from semsearch.paper import parse_arxiv_id

        if not paper_id.strip().isprintable():
            return None  # no id holds a control character or a lone surrogate (SQLite cannot take one)
        for candidate in (paper_id.strip(), parse_arxiv_id(paper_id) or ""):
            vec_id = self.vec_id(candidate) if candidate else None
            if vec_id is not None:
                return vec_id
        return None

    def _rows_for(self, select: str, vec_ids: Iterable[int], column: str = "vec_id") -> Iterator[sqlite3.Row]:
        """Rows of `select ... WHERE vec_id IN (...)`, asked in chunks that SQLite accepts."""
        wanted = [int(v) for v in vec_ids]
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            yield from self.db.execute(f"{select} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk)

    def paper_numbers(self) -> tuple[int, int | None, int | None, int]:
        """How many papers, and their least, greatest and summed vec_ids: what a generation's vector
        and BM25 indexes must hold too (`Index`)."""
        count, least, most, total = self.db.execute(
            "SELECT count(*), min(vec_id), max(vec_id), coalesce(sum(vec_id), 0) FROM papers"
        ).fetchone()
        return count, least, most, total

    def papers_by_vec_id(self, vec_ids: Iterable[int]) -> dict[int, Paper]:
        return {row["vec_id"]: _row_to_paper(row) for row in self._rows_for("SELECT * FROM papers", vec_ids)}

    def iter_papers(self) -> Iterator[tuple[int, Paper]]:
        for row in self.db.execute("SELECT * FROM papers ORDER BY vec_id"):
            yield row["vec_id"], _row_to_paper(row)

    def put(self, paper: Paper, *, replacing: str | None = None) -> int:
        """Insert or update `paper` (keyed by id, or replacing the record `replacing`); returns its vec_id."""
        values = paper.to_dict()
        for name in _JSON_FIELDS:
            values[name] = json.dumps(values[name], ensure_ascii=False)
        values["title_key"] = normalize_title(paper.title)
        values["text_hash"] = paper.text_hash(self.model)
        key = replacing or paper.id
        existing = self.vec_id(key)
        columns = list(values)
        if existing is None:
            marks = ",".join("?" * len(columns))
            cursor = self.db.execute(
                f"INSERT INTO papers ({','.join(columns)}) VALUES ({marks})", [values[c] for c in columns]
            )
            return int(cursor.lastrowid)
        self.db.execute("DELETE FROM predictions WHERE vec_id = ?", (existing,))
        assignments = ",".join(f"{c} = ?" for c in columns)
        self.db.execute(f"UPDATE papers SET {assignments} WHERE vec_id = ?", [values[c] for c in columns] + [existing])
        return existing

    def vec_ids_where(
        self,
        *,
        year_from: int | None = None,
        year_to: int | None = None,
        categories: Iterable[str] = (),
        since: str | None = None,
    ) -> list[int]:
        """vec_ids of papers within the year range, under any of the given taxonomy paths, and that
        appeared on or after `since` (YYYY-MM-DD): by `Paper.appeared` (the first version's day, else
        the arXiv id's month), else by their last version's day, else by their year."""
        clauses, params = [], []
        if since is not None:
            self.db.create_function("appeared", 2, _appeared, deterministic=True)
            clauses.append(
                "(appeared(id, published) >= ? OR (appeared(id, published) IS NULL"
                " AND (updated >= ? OR (updated IS NULL AND year >= ?))))"
            )
            params += [since, since, int(since[:4])]
        if year_from is not None:
            clauses.append("year >= ?")
            params.append(year_from)
        if year_to is not None:
            clauses.append("year <= ?")
            params.append(year_to)
        paths = list(categories)
        if paths:  # under a node by the paper's effective category
            under = " OR ".join("(c.category = ? OR c.category LIKE ? ESCAPE '\\')" for _ in paths)
            clauses.append(f"EXISTS (SELECT 1 FROM paper_categories AS c WHERE c.vec_id = papers.vec_id AND ({under}))")
            for path in paths:
                escaped = path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                params += [path, escaped + "/%"]
        where = " AND ".join(clauses) or "1"
        return [row[0] for row in self.db.execute(f"SELECT vec_id FROM papers WHERE {where}", params)]

    def year_counts(self, vec_ids: Iterable[int]) -> dict[int, int]:
        """How many of these papers appeared in each year (papers without a year are left out)."""
        counts: dict[int, int] = {}
        for (year,) in self._rows_for("SELECT year FROM papers", vec_ids):
            if year is not None:
                counts[year] = counts.get(year, 0) + 1
        return dict(sorted(counts.items()))

    # --- embeddings ---------------------------------------------------------------------------
    def stale_embeddings(self, limit: int, after: int = -1) -> list[PendingEmbedding]:
        """Up to `limit` papers whose embedding is missing or was made from other text, from vec_id
        `after` on (as `unpredicted`)."""
        rows = self.db.execute(
            """SELECT p.vec_id, p.title, p.abstract, p.text_hash FROM papers AS p
               LEFT JOIN embeddings AS e ON e.vec_id = p.vec_id
               WHERE p.vec_id > ? AND (e.text_hash IS NULL OR e.text_hash != p.text_hash)
               ORDER BY p.vec_id LIMIT ?""",
            (after, limit),
        )
        return [
            PendingEmbedding(vec_id, embedding_text(title, abstract), text_hash)
            for vec_id, title, abstract, text_hash in rows
        ]

    def stale_count(self) -> int:
        return self.db.execute(
            """SELECT count(*) FROM papers AS p LEFT JOIN embeddings AS e ON e.vec_id = p.vec_id
               WHERE e.text_hash IS NULL OR e.text_hash != p.text_hash"""
        ).fetchone()[0]

    def put_embeddings(self, pending: list[PendingEmbedding], vectors: np.ndarray) -> None:
        rows = [
            (item.vec_id, item.text_hash, np.ascontiguousarray(vector, dtype=np.float32).tobytes())
            for item, vector in zip(pending, vectors, strict=True)
        ]
        self.db.executemany("INSERT OR REPLACE INTO embeddings (vec_id, text_hash, vector) VALUES (?, ?, ?)", rows)

    def has_embedding(self, vec_id: int, text_hash: str, vector: np.ndarray) -> bool:
        """Whether this very vector is stored for the paper's current text."""
        row = self.db.execute("SELECT text_hash, vector FROM embeddings WHERE vec_id = ?", (vec_id,)).fetchone()
        return row is not None and row[0] == text_hash and row[1] == np.asarray(vector, np.float32).tobytes()

    def embeddings_for(self, vec_ids: Iterable[int]) -> dict[int, np.ndarray]:
        rows = self._rows_for("SELECT vec_id, vector FROM embeddings", vec_ids)
        return {row[0]: self._vector(row[1]) for row in rows}

    def embeddings_held(self, vec_ids: Iterable[int]) -> dict[int, np.ndarray]:
        """`embeddings_for`, each one required: every published paper has its embedding, so one
        missing means papers.db is not as publish left it (related work and recommendations read
        them; a paper without one failed them with a traceback)."""
        vec_ids = list(vec_ids)
        found = self.embeddings_for(vec_ids)
        if lacking := [v for v in vec_ids if v not in found]:
            paper = self.papers_by_vec_id(lacking[:1]).get(lacking[0])
            raise IndexDamaged(
                f"papers.db: {paper.id[:80] if paper else lacking[0]!r} has no embedding; rebuild the index"
            )
        return found

    def vec_ids_with_title(self, title: str) -> list[int]:
        return self.vec_ids_with_title_key(normalize_title(title))

    def vec_ids_with_title_key(self, key: str, *, prefix: bool = False) -> list[int]:
        """Papers whose `normalize_title` key is `key`, or with `prefix` also begins with it and a
        word after (read off the key's index as a range, not a scan). An empty key is no title's."""
        if not key:
            return []
        rows = self.db.execute("SELECT vec_id FROM papers WHERE title_key = ?", (key,)).fetchall()
        if prefix:
            rows += self.db.execute(
                "SELECT vec_id FROM papers WHERE title_key > ? AND title_key < ?", (key + " ", key + "!")
            ).fetchall()
        return [row[0] for row in rows]

    def papers_with_title(self, title: str) -> list[Paper]:
        """Every record of a paper under this title (by normalised title), whatever its id."""
        return list(self.papers_by_vec_id(self.vec_ids_with_title(title)).values())

    def all_vec_ids(self) -> list[int]:
        return [row[0] for row in self.db.execute("SELECT vec_id FROM papers ORDER BY vec_id")]

    def embedding(self, vec_id: int) -> np.ndarray | None:
        row = self.db.execute("SELECT vector FROM embeddings WHERE vec_id = ?", (vec_id,)).fetchone()
        return self._vector(row[0]) if row else None

    def _vector(self, blob: bytes) -> np.ndarray:
        """A stored embedding; in a published generation, refused unless it is as long as the
        index's vectors (a blob cut short, checksums made to match, failed a related-work query with a
        numpy traceback)."""
        vector = np.frombuffer(blob, dtype=np.float32) if len(blob) % 4 == 0 else None
        if self.readonly:
            if vector is None or len(vector) != self._published_dimension:
                raise IndexDamaged(
                    f"papers.db: an embedding holds {len(blob)} bytes, not {self._published_dimension} numbers; "
                    "rebuild the index"
                )
        elif vector is None:
            raise IndexDamaged(f"{self.path}: an embedding holds {len(blob)} bytes, not whole numbers")
        return vector

    def iter_embeddings(self, batch: int = 10_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(vec_ids, vectors) in vec_id order, `batch` rows at a time, for building the vector index."""
        cursor = self.db.execute("SELECT vec_id, vector FROM embeddings ORDER BY vec_id")
        while rows := cursor.fetchmany(batch):
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.vstack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            yield ids, vectors

    def sample_embeddings(self, n: int) -> np.ndarray:
        """About n embeddings spread evenly over the store (to train quantisers)."""
        total = self.embedding_count()
        step = max(1, total // max(n, 1))
        rows = self.db.execute("SELECT vector FROM embeddings WHERE vec_id % ? = 0 LIMIT ?", (step, n)).fetchall()
        if len(rows) < min(n, total):  # vec_ids need not be dense: fall back to the first n
            rows = self.db.execute("SELECT vector FROM embeddings LIMIT ?", (n,)).fetchall()
        return np.vstack([np.frombuffer(r[0], dtype=np.float32) for r in rows])

    def stored_dimension(self) -> int | None:
        """The length of the stored embeddings (of one: they are all of the index's model), or None."""
        row = self.db.execute("SELECT length(vector) FROM embeddings LIMIT 1").fetchone()
        return None if row is None or row[0] is None else row[0] // 4

    def embedding_count(self) -> int:
        return self.db.execute("SELECT count(*) FROM embeddings").fetchone()[0]

    # --- artifacts and predictions ------------------------------------------------------------
    def get_artifact(self, name: str) -> bytes | None:
        row = self.db.execute("SELECT value FROM artifacts WHERE name = ?", (name,)).fetchone()
        return bytes(row[0]) if row else None

    def put_artifact(self, name: str, value: bytes) -> None:
        self.db.execute("INSERT OR REPLACE INTO artifacts (name, value) VALUES (?, ?)", (name, value))

    def remove_artifact(self, name: str) -> None:
        self.db.execute("DELETE FROM artifacts WHERE name = ?", (name,))

    def labelled_signature(self) -> list[tuple[str, str, str]]:
        """(id, categories, text hash) of every labelled paper: what the classifier is trained on."""
        rows = self.db.execute(
            """SELECT id, survey_categories, text_hash FROM papers WHERE survey_categories != '[]'
               UNION ALL
               SELECT p.id, 'user:' || l.category, p.text_hash FROM labels AS l JOIN papers AS p ON p.vec_id = l.vec_id
               WHERE p.survey_categories = '[]'
               ORDER BY 1"""
        )
        return [tuple(row) for row in rows]

    # --- user labels --------------------------------------------------------------------------
    def put_label(self, vec_id: int, category: str, when: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO labels (vec_id, category, labelled_at) VALUES (?, ?, ?)", (vec_id, category, when)
        )

    def label_of(self, vec_id: int, name: str | None = None) -> tuple[str, str] | None:
        """(category, labelled_at) of the user's label on a paper: in the survey's taxonomy, or with
        `name` in that curated list's; None when there is none."""
        if name is None:
            row = self.db.execute("SELECT category, labelled_at FROM labels WHERE vec_id = ?", (vec_id,)).fetchone()
        else:
            row = self.db.execute(
                "SELECT category, labelled_at FROM list_labels WHERE name = ? AND vec_id = ?", (name, vec_id)
            ).fetchone()
        return None if row is None else (row[0], row[1])

    def remove_label(self, vec_id: int) -> bool:
        return self.db.execute("DELETE FROM labels WHERE vec_id = ?", (vec_id,)).rowcount > 0

    def labels(self) -> list[dict]:
        """Every user label, oldest first; one in a curated list's taxonomy names it (`taxonomy`)."""
        rows = self.db.execute(
            """SELECT p.id, p.title, l.category, l.labelled_at, NULL FROM labels AS l
               JOIN papers AS p ON p.vec_id = l.vec_id
               UNION ALL
               SELECT p.id, p.title, l.category, l.labelled_at, l.name FROM list_labels AS l
               JOIN papers AS p ON p.vec_id = l.vec_id
               ORDER BY 4, 1, 5"""
        )
        return [
            {"id": r[0], "title": r[1], "category": r[2], "labelled_at": r[3]} | ({"taxonomy": r[4]} if r[4] else {})
            for r in rows
        ]

    def put_list_label(self, name: str, vec_id: int, category: str, when: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO list_labels (name, vec_id, category, labelled_at) VALUES (?, ?, ?, ?)",
            (name, vec_id, category, when),
        )

    def remove_list_label(self, name: str, vec_id: int) -> bool:
        return self.db.execute("DELETE FROM list_labels WHERE name = ? AND vec_id = ?", (name, vec_id)).rowcount > 0

    def forget_list_labels(self, name: str) -> int:
        """Drop the user's labels in the list `name`; how many there were."""
        return self.db.execute("DELETE FROM list_labels WHERE name = ?", (name,)).rowcount

    def list_user_labels(self, name: str) -> dict[int, str]:
        """The user's labels in the list `name`, on papers the list itself does not label (its own
        label stands, as the survey's does)."""
        rows = self.db.execute(
            """SELECT u.vec_id, u.category FROM list_labels AS u WHERE u.name = ? AND NOT EXISTS
               (SELECT 1 FROM taxonomy_labels AS t WHERE t.name = u.name AND t.vec_id = u.vec_id)
               ORDER BY u.vec_id""",
            (name,),
        )
        return dict(rows.fetchall())

    def survey_user_labels(self) -> dict[int, str]:
        """The user's labels in the survey's taxonomy that count: on papers the survey does not label
        (its own label stands)."""
        rows = self.db.execute(
            """SELECT l.vec_id, l.category FROM labels AS l JOIN papers AS p ON p.vec_id = l.vec_id
               WHERE p.survey_categories = '[]' ORDER BY l.vec_id"""
        )
        return dict(rows.fetchall())

    def survey_papers(self) -> dict[int, Paper]:
        """The papers the survey files (by vec_id), without embeddings."""
        rows = self.db.execute("SELECT * FROM papers WHERE survey_categories != '[]'")
        return {row["vec_id"]: _row_to_paper(row) for row in rows}

    def survey_labelled(self) -> list[tuple[Paper, np.ndarray, list[str]]]:
        """The papers the survey's classifier learns from (labelled by the survey or a user), with
        their embeddings and categories."""
        rows = self.db.execute(
            """SELECT p.*, e.vector, l.category AS user_category FROM papers AS p
               JOIN embeddings AS e ON e.vec_id = p.vec_id
               LEFT JOIN labels AS l ON l.vec_id = p.vec_id
               WHERE p.survey_categories != '[]' OR l.category IS NOT NULL ORDER BY p.id"""
        )
        return [
            (paper, self._vector(row["vector"]), paper.survey_categories or [row["user_category"]])
            for row in rows
            for paper in [_row_to_paper(row)]
        ]

    # --- taxonomies from curated lists ------------------------------------------------------------
    def put_taxonomy(self, name: str, source: str, nodes: list[str], labels: Iterable[tuple[int, str]]) -> None:
        """Store (or replace) the taxonomy `name`: its nodes and its papers' categories."""
        self.remove_taxonomy(name)
        self.db.execute(
            "INSERT INTO taxonomies (name, source, nodes) VALUES (?, ?, ?)", (name, source, json.dumps(nodes))
        )
        self.db.executemany(
            "INSERT OR IGNORE INTO taxonomy_labels (name, vec_id, category) VALUES (?, ?, ?)",
            [(name, vec_id, category) for vec_id, category in labels],
        )

    def remove_taxonomy(self, name: str) -> bool:
        self.db.execute("DELETE FROM taxonomy_labels WHERE name = ?", (name,))
        return self.db.execute("DELETE FROM taxonomies WHERE name = ?", (name,)).rowcount > 0

    def taxonomies(self) -> list[dict]:
        """Every added taxonomy: name, source, nodes and how many papers it labels."""
        rows = self.db.execute(
            """SELECT t.name, t.source, t.nodes, count(DISTINCT l.vec_id) FROM taxonomies AS t
               LEFT JOIN taxonomy_labels AS l ON l.name = t.name GROUP BY t.name ORDER BY t.name"""
        )
        return [{"name": n, "source": s, "nodes": _node_paths(n, nodes), "papers": c} for n, s, nodes, c in rows]

    def taxonomy(self, name: str) -> dict | None:
        return next((t for t in self.taxonomies() if t["name"] == name), None)

    def taxonomy_labels(self, name: str) -> dict[int, list[str]]:
        """Each paper a taxonomy labels, with its categories in it."""
        found: dict[int, list[str]] = {}
        for vec_id, category in self.db.execute(
            "SELECT vec_id, category FROM taxonomy_labels WHERE name = ? ORDER BY rowid", (name,)
        ):
            found.setdefault(vec_id, []).append(category)
        return found

    def taxonomy_papers(self, name: str) -> list[tuple[Paper, np.ndarray, list[str]]]:
        """The papers a taxonomy labels, with their embeddings and categories."""
        rows = self.db.execute(
            """SELECT p.*, e.vector, group_concat(l.category, char(31)) AS categories FROM taxonomy_labels AS l
               JOIN papers AS p ON p.vec_id = l.vec_id JOIN embeddings AS e ON e.vec_id = l.vec_id
               WHERE l.name = ? GROUP BY p.vec_id ORDER BY p.id""",
            (name,),
        )
        return [(_row_to_paper(row), self._vector(row["vector"]), row["categories"].split(chr(31))) for row in rows]

    def clear_predictions(self) -> None:
        self.db.execute("DELETE FROM predictions")

    def unpredicted(self, limit: int, after: int = -1) -> list[tuple[int, str, np.ndarray]]:
        """(vec_id, text, embedding) of unlabelled papers that have no prediction yet, from vec_id
        `after` on (a caller going through them in batches passes the last it saw: without it,
        each batch would scan again every paper already predicted)."""
        rows = self.db.execute(
            """SELECT p.vec_id, p.title, p.abstract, e.vector FROM papers AS p
               JOIN embeddings AS e ON e.vec_id = p.vec_id
               LEFT JOIN predictions AS r ON r.vec_id = p.vec_id
               WHERE p.vec_id > ? AND p.survey_categories = '[]' AND r.vec_id IS NULL
               ORDER BY p.vec_id LIMIT ?""",
            (after, limit),
        )
        return [
            (vec_id, embedding_text(title, abstract), np.frombuffer(vector, np.float32))
            for vec_id, title, abstract, vector in rows
        ]

    def _unlabelled_with_abstract(self, columns: str) -> str:
        return f"""SELECT {columns} FROM papers AS p LEFT JOIN labels AS l ON l.vec_id = p.vec_id
                   WHERE p.survey_categories = '[]' AND l.vec_id IS NULL AND p.abstract != ''"""

    def unlabelled_abstract_count(self) -> int:
        return self.db.execute(self._unlabelled_with_abstract("COUNT(*)")).fetchone()[0]

    def unlabelled_abstracts(self, limit: int) -> list[tuple[str, np.ndarray, str]]:
        """(text, embedding, abstract) of the papers with an abstract that nobody labelled: what
        scope learns its words from, and whose openings teach the question model
        (`classify.CorpusPaper`). Beyond `limit`, an evenly spaced sample by vec_id (the same one
        each time)."""
        vec_ids = [row[0] for row in self.db.execute(self._unlabelled_with_abstract("p.vec_id") + " ORDER BY p.vec_id")]
        if len(vec_ids) > limit:
            vec_ids = [vec_ids[i] for i in np.linspace(0, len(vec_ids) - 1, limit).round().astype(int)]
        papers, vectors = self.papers_by_vec_id(vec_ids), self.embeddings_for(vec_ids)
        held = [v for v in vec_ids if v in papers and v in vectors]
        return [(papers[v].embedding_text(), vectors[v], papers[v].abstract) for v in held]

    def put_predictions(self, rows: list[tuple[int, Prediction]]) -> None:
        self.db.executemany(
            """INSERT OR REPLACE INTO predictions (vec_id, category, confidence, in_scope, leaf_probabilities)
               VALUES (?, ?, ?, ?, ?)""",
            [
                (
                    vec_id,
                    p.category,
                    p.confidence,
                    int(p.in_scope),
                    None if p.leaf_probabilities is None else np.asarray(p.leaf_probabilities, np.float32).tobytes(),
                )
                for vec_id, p in rows
            ],
        )

    def derive_categories(self) -> None:
        """Store each paper's effective categories (`_EFFECTIVE_CATEGORIES`) for readers of this
        generation; `IndexWriter.publish` calls it after the last change to papers, labels and
        predictions."""
        self.db.execute("DELETE FROM paper_categories")
        self.db.execute(f"INSERT INTO paper_categories (vec_id, rank, category, source) {_EFFECTIVE_CATEGORIES}")

    def categories_for(self, vec_ids: Iterable[int], *, predicted: bool = True) -> dict[int, list[str]]:
        """The categories of each categorised paper among `vec_ids` (unless `predicted` is False,
        only labelled ones). Cheap: reads no text."""
        found = self.category_evidence(vec_ids)
        return {v: categories for v, (categories, source, _) in found.items() if predicted or source != "predicted"}

    def category_evidence(self, vec_ids: Iterable[int]) -> dict[int, tuple[list[str], str, np.ndarray | None]]:
        """Each categorised paper's categories, where they come from (survey, user or predicted) and,
        for a prediction, the classifier's chance of each leaf (None otherwise, or in older indexes)."""
        spread = "r.leaf_probabilities" if self.keeps_leaf_probabilities else "NULL"
        select = f"""SELECT c.vec_id, c.rank, c.category, c.source, {spread} FROM paper_categories AS c
                     LEFT JOIN predictions AS r ON r.vec_id = c.vec_id AND c.source = 'predicted'"""
        rows = sorted(self._rows_for(select, vec_ids, column="c.vec_id"), key=lambda row: (row[0], row[1]))
        found: dict[int, tuple[list[str], str, np.ndarray | None]] = {}
        for vec_id, _, category, source, leaf_probabilities in rows:
            if vec_id in found:
                found[vec_id][0].append(category)
            else:
                spread_of = None if leaf_probabilities is None else np.frombuffer(leaf_probabilities, dtype=np.float32)
                found[vec_id] = ([category], source, spread_of)
        return found

    @cached_property
    def _published_dimension(self) -> int | None:
        """`stored_dimension`, read once: a published generation's papers.db never changes."""
        return self.stored_dimension()

    @cached_property
    def keeps_leaf_probabilities(self) -> bool:
        """Whether predictions keep their leaf probabilities (a read-only older index may not)."""
        return "leaf_probabilities" in {row[1] for row in self.db.execute("PRAGMA table_info(predictions)")}

    def predictions(self, vec_ids: Iterable[int]) -> dict[int, Prediction]:
        rows = self._rows_for("SELECT vec_id, category, confidence, in_scope FROM predictions", vec_ids)
        return {row[0]: Prediction(row[1], row[2], bool(row[3])) for row in rows}
