"""The survey's taxonomy: node paths and how users name them."""

from __future__ import annotations

import difflib

from semsearch.errors import SemsearchError
from semsearch.sources.survey import load_survey


def leaf_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def resolve_node(name: str, nodes: tuple[str, ...] | None = None) -> str:
    """The full node path meant by `name`: a full path, or a node's last segment (any case)."""
    nodes = nodes if nodes is not None else load_survey().nodes
    wanted = name.strip().strip("/").lower()
    for node in nodes:
        if node.lower() == wanted:
            return node
    by_leaf = [node for node in nodes if leaf_name(node).lower() == wanted]
    if len(by_leaf) == 1:
        return by_leaf[0]
    if len(by_leaf) > 1:
        raise SemsearchError(f"category {name!r} is ambiguous: " + "; ".join(by_leaf))
    close = difflib.get_close_matches(name, [leaf_name(n) for n in nodes], n=3, cutoff=0.5)
    hint = f" (did you mean: {', '.join(close)}?)" if close else " (see `semsearch taxonomy`)"
    raise SemsearchError(f"unknown category {name!r}{hint}")
