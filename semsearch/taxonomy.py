"""The survey's taxonomy: the node tree, our description of each node, and how users name nodes."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache, cached_property
from importlib.resources import files

import numpy as np

from semsearch.errors import SemsearchError
from semsearch.sources.curated import name_form
from semsearch.sources.survey import load_survey


def leaf_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def node_at(path: str, depth: int) -> str:
    """The node's ancestor at `depth` (1: top level), or the node itself when it is not deeper."""
    return "/".join(path.split("/")[:depth])


def ancestors(path: str) -> list[str]:
    """The node's ancestors, nearest first: a/b/c → [a/b, a]."""
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(len(parts) - 1, 0, -1)]


def is_under(path: str, node: str) -> bool:
    """Whether `path` is `node` or lies below it."""
    return path == node or path.startswith(node + "/")


def subtree_counts(category_lists) -> dict[str, int]:
    """How many papers sit under each node, given each paper's categories (a paper counts once a node)."""
    counts: dict[str, int] = {}
    for categories in category_lists:
        for node in {a for c in categories for a in [c, *ancestors(c)]}:
            counts[node] = counts.get(node, 0) + 1
    return counts


@dataclass(frozen=True)
class Taxonomy:
    nodes: tuple[str, ...]  # document order
    descriptions: dict[str, str]
    out_of_scope: tuple[str, ...]  # kinds of LLM research outside the taxonomy, described in our words
    # Questions a practitioner might ask for a leaf's methods, in their words (ours, not the survey's).
    questions: dict[str, tuple[str, ...]] = field(default_factory=dict)
    listed_by: str = "semsearch taxonomy"  # the command that shows its nodes, for an unknown one's hint

    def children(self, path: str | None) -> list[str]:
        depth = 0 if path is None else path.count("/") + 1
        prefix = "" if path is None else path + "/"
        return [n for n in self.nodes if n.count("/") == depth and n.startswith(prefix)]

    @cached_property
    def leaves(self) -> list[str]:
        return [n for n in self.nodes if not self.children(n)]

    @cached_property
    def leaf_counts(self) -> dict[str, int]:
        """How many leaves each node holds (a leaf holds itself)."""
        return subtree_counts([leaf] for leaf in self.leaves)

    @cached_property
    def _node_spreads(self) -> dict[str, np.ndarray]:
        leaves = self.leaves
        spreads = {}
        for node in self.nodes:
            under = np.array([is_under(leaf, node) for leaf in leaves], dtype=np.float32)
            spreads[node] = under / under.sum()
        return spreads

    def leaf_spread(self, categories: Sequence[str]) -> np.ndarray:
        """A paper filed under `categories` as the chance of each leaf (document order): each category
        holds an equal share, spread evenly over its leaves, since a paper filed at an inner node
        ("Quantization", a coarse label) is equally likely in any leaf under it. The chance that two
        papers (or a paper and a question) sit in the same leaf is the dot product of their spreads:
        1 for one leaf, 1/n for a leaf and a node of n leaves above it, 0 across branches."""
        known = [self._node_spreads[c] for c in categories if c in self._node_spreads]
        return np.mean(known, axis=0) if known else np.zeros(len(self.leaves), dtype=np.float32)

    def described(self, path: str) -> str:
        """The text that stands for a node: its name and our description of it."""
        return f"{leaf_name(path)}. {self.descriptions[path]}"

    def resolve(self, name: str) -> str:
        return resolve_node(name, self.nodes, listed_by=self.listed_by)

    def tree(self, counts: dict[str, int] | None = None, labelled: dict[str, int] | None = None) -> list[dict]:
        """Nested {"path", "name", "description", "papers", "labelled", "children"}: how many papers
        sit in each subtree, and how many of them are labelled (the rest are predicted there)."""
        counts = counts or {}
        labelled = counts if labelled is None else labelled

        def build(path: str) -> dict:
            kids = [build(child) for child in self.children(path)]
            return {
                "path": path,
                "name": leaf_name(path),
                "description": self.descriptions[path],
                "papers": counts.get(path, 0),
                "labelled": labelled.get(path, 0),
                "children": kids,
            }

        return [build(root) for root in self.children(None)]


def index_tree(store=None) -> list[dict]:
    """The tree with paper counts: of an index's papers (labelled by the survey or a user, or
    predicted there in scope), or without an index of the survey's own list."""
    taxonomy = load_taxonomy()
    if store is None:
        counts = subtree_counts(p.survey_categories for p in load_survey().papers)
        return taxonomy.tree(counts)
    vec_ids = store.all_vec_ids()
    return taxonomy.tree(
        subtree_counts(store.categories_for(vec_ids).values()),
        labelled=subtree_counts(store.categories_for(vec_ids, predicted=False).values()),
    )


@cache
def load_taxonomy() -> Taxonomy:
    raw = json.loads(files("semsearch").joinpath("data/taxonomy.json").read_text(encoding="utf-8"))
    nodes = load_survey().nodes
    missing = [n for n in nodes if not raw["nodes"].get(n)]
    if missing:
        raise SemsearchError(f"taxonomy descriptions missing for {missing}")
    return Taxonomy(
        nodes=nodes,
        descriptions=dict(raw["nodes"]),
        out_of_scope=tuple(raw["out_of_scope"]),
        questions={leaf: tuple(asked) for leaf, asked in raw.get("questions", {}).items() if leaf in nodes},
    )


class UnknownCategory(SemsearchError):
    """A name no node of the taxonomy has (bad input to a search; a feed's address naming nothing)."""


def resolve_node(name: str, nodes: tuple[str, ...] | None = None, *, listed_by: str = "semsearch taxonomy") -> str:
    """The full node path meant by `name`: a full path, or a node's last segment (any case; as
    written first, for a list whose headings differ only in case). `listed_by`: the command that
    shows the nodes, for the hint."""
    nodes = nodes if nodes is not None else load_survey().nodes
    # Both sides in the form list headings are now read in (`name_form`): a list added before keeps
    # its headings as they were typed ("Cafe\u0301").
    # A path as semsearch shows it ("A › B": classify, digests, gaps) is the path "A/B".
    given = re.sub(r"\s*›\s*", "/", name_form(name)).strip().strip("/")
    wanted = given.lower()
    forms = [(node, name_form(node), name_form(leaf_name(node))) for node in nodes]
    for candidates in (
        [node for node, path, _ in forms if path == given],
        [node for node, path, _ in forms if path.lower() == wanted],
        [node for node, _, leaf in forms if leaf == given],
        [node for node, _, leaf in forms if leaf.lower() == wanted],
    ):
        if len(candidates) == 1:
            return candidates[0]
        if len(candidates) > 1:
            raise SemsearchError(f"category {name!r} is ambiguous: " + "; ".join(candidates))
    close = difflib.get_close_matches(name, [leaf_name(n) for n in nodes], n=3, cutoff=0.5)
    hint = f" (did you mean: {', '.join(close)}?)" if close else f" (see `{listed_by}`)"
    raise UnknownCategory(f"unknown category {name!r}{hint}")
