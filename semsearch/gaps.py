"""`semsearch taxonomy gaps NAME`: topics a list has not named yet.

The in-scope papers of the index that the list does not hold are gathered by the terms they share
and the list's own papers seldom use (stemmed words and word pairs at least LIST_RATIO times more
common among them than in the list), the most particular term first; papers on the same topic
that do not use the word join when they are closer to the group than to any heading's papers. A
group of MIN_GROUP or more papers is a topic the list has not named: a gap. It is named by its
distinctive terms (frequent in the group, rare elsewhere) and placed under the deepest heading
most of its papers sit under. Embedding clusters alone did not separate them: inside a focused
list (all of it about KV caches) every paper is close to every other; words still tell
"quantization" from "merging".

`semsearch eval gaps NAME` measures it on the list itself: each heading with MIN_EVAL_PAPERS or
more papers is left out in turn (its papers unlabelled, a classifier trained without it), and the
heading counts as recovered when one gap holds its papers with a Jaccard of at least 0.5.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from semsearch.errors import SemsearchError
from semsearch.paper import Paper

COHESION = 0.25  # a gap's papers are at least as close together as those of this quantile of headings
LIST_RATIO = 4.0  # a gap's term is at least this many times more common among its papers than the list's
MIN_GROUP = 3  # papers in a gap
MAX_POOL = 3000  # papers grouped at once (the least fitting first): clustering is quadratic
MIN_EVAL_PAPERS = 8
RECOVERED = 0.5  # Jaccard of a gap's papers with a left-out heading's
_WORD = re.compile(r"[a-z][a-z0-9\-]{2,}")
STOPWORDS = frozenset(
    """the and for with from via into over under large language models model llm llms efficient efficiency
    towards toward using based new are can its our their this that than more less not all one two when
    what how why which while your you via study approach method methods framework paper learning neural
    network networks deep transformer transformers via through across beyond without within propose proposed
    achieve achieves achieving results result demonstrate demonstrates significantly significant tasks task
    performance improve improves improved show shows better between both such these also while only fast
    designed available output accuracy reduce reduces reducing size original baselines baseline existing
    however furthermore novel simple effective state-of-the-art experiments extensive outperforms""".split()
)


@dataclass
class Gap:
    name: str
    terms: list[str]
    parent: str  # the heading it would sit under ("" for the top level)
    papers: list[Paper]

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "terms": self.terms,
            "parent": self.parent,
            "papers": [{"id": p.id, "title": p.title} for p in self.papers],
        }


@cache
def _stemmer():
    import Stemmer

    return Stemmer.Stemmer("english")


def _terms(text: str) -> tuple[set[str], dict[str, str]]:
    """A text's terms (stemmed words and adjacent pairs, stop words out) and how each was written."""
    words = [w.strip("-") for w in _WORD.findall(text.lower())]
    words = [w for w in words if len(w) > 2 and w not in STOPWORDS]
    stems = _stemmer().stemWords(words)
    written = dict(zip(stems, words, strict=True))
    pairs = {f"{a} {b}": f"{written[a]} {written[b]}" for a, b in zip(stems, stems[1:], strict=False) if a != b}
    return set(stems) | set(pairs), written | pairs


def _score(inside: int, n: int, outside: int, m: int) -> float:
    """How particular a term is to the n papers (in `inside` of them) against the m (in `outside`):
    its share in the first times a smoothed log ratio of the two shares."""
    share = inside / n
    return share * math.log((share + 0.01) / ((outside + 0.5) / (m + 1) + 0.01))


def distinctive_terms(group: Sequence[str], rest: Sequence[str], most: int = 3) -> list[str]:
    """The terms most particular to `group`'s texts against `rest`'s, as the papers write them."""
    found = [_terms(t) for t in group]
    inside = Counter(term for terms, _ in found for term in terms)
    outside = Counter(term for text in rest for term in _terms(text)[0])
    spelled = {term: word for _, written in found for term, word in written.items()}
    n, m = len(group), len(rest)
    ranked = sorted(
        (t for t, c in inside.items() if c >= min(2, n)),
        key=lambda t: (-_score(inside[t], n, outside[t], m), -t.count(" "), t),
    )
    chosen: list[str] = []
    for (
        term
    ) in ranked:  # a pair (first among equals) covers its words: "kv cache" rather than "kv", "cache" and "kv cache"
        if any(set(term.split()) & set(c.split()) for c in chosen):
            continue
        chosen.append(term)
        if len(chosen) == most:
            break
    return [spelled.get(t, t) for t in chosen]


def _parent(classifier, probabilities: np.ndarray) -> str:
    """The deepest inner heading that holds the group's papers with mean probability over a half."""
    inner = [n for n in classifier.nodes if n not in set(classifier.leaves)]
    if not inner:
        return ""
    mean = np.mean([[row[n] for n in inner] for row in classifier.node_probabilities(probabilities)], axis=0)
    held = [(n.count("/"), p, n) for n, p in zip(inner, mean, strict=True) if p > 0.5]
    return max(held)[2] if held else ""


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _by_heading(classifier) -> dict[str, list[int]]:
    by_leaf: dict[str, list[int]] = {}
    for row, categories in enumerate(classifier.labelled_categories):
        for category in categories:
            by_leaf.setdefault(category, []).append(row)
    return by_leaf


def _heading_centroids(classifier) -> np.ndarray | None:
    """The mean vector of each heading's papers (unit length), from the classifier's labelled papers."""
    by_leaf = _by_heading(classifier)
    if not by_leaf:
        return None
    vectors = classifier.labelled_vectors
    return _unit(np.vstack([vectors[rows].mean(axis=0) for rows in by_leaf.values()]))


def _cohesion(vectors: np.ndarray) -> float:
    """How close a group's papers are to their centre (mean cosine)."""
    unit = _unit(vectors)
    return float((unit @ _unit(unit.mean(axis=0))).mean())


def _typical_cohesion(classifier) -> float:
    """How close the papers of a typical heading are (the COHESION quantile over its headings)."""
    cohesion = [
        _cohesion(classifier.labelled_vectors[rows])
        for rows in _by_heading(classifier).values()
        if len(rows) >= MIN_GROUP
    ]
    return float(np.quantile(cohesion, COHESION)) if cohesion else 0.0


def find_gaps(classifier, papers: Sequence[Paper], vectors: np.ndarray, *, context: Sequence[str] = ()) -> list[Gap]:
    """The gaps among `papers` (not in the list): its in-scope papers gathered by the terms they
    share and the list's papers (`context`, their texts) seldom use, most particular first; each
    paper joins one gap at most."""
    if not len(papers):
        return []
    vectors = np.asarray(vectors, dtype=np.float32)
    inside = np.flatnonzero(classifier.scope_scores(vectors) >= classifier.scope_threshold)
    if len(inside) > MAX_POOL:  # the closest to the list's scope first
        inside = inside[np.argsort(-classifier.scope_scores(vectors[inside]), kind="stable")[:MAX_POOL]]
    texts = [p.embedding_text() for p in papers]
    titles = [p.title for p in papers]  # a list's papers are mostly known by title: words of the same kind
    terms = {int(i): _terms(titles[i])[0] for i in inside}
    listed = Counter(term for text in context for term in _terms(text)[0])
    m, left = max(len(context), 1), set(terms)
    headings = _heading_centroids(classifier)
    cohesive = _typical_cohesion(classifier)
    tried: set[str] = set()
    gaps = []
    while len(left) >= MIN_GROUP:
        counts = Counter(term for i in left for term in terms[i])
        n = len(left)
        scored = [
            (_score(c, n, listed[t], m), t)
            for t, c in counts.items()
            if c >= MIN_GROUP and c / n >= LIST_RATIO * (listed[t] + 0.5) / m and t not in tried
        ]
        if not scored:
            break
        _, term = max(scored)
        members = [i for i in left if term in terms[i]]
        tried.add(term)
        if _cohesion(vectors[members]) < cohesive:  # a word shared by papers on many topics (a name, "new")
            continue
        # Papers on the same topic that do not use the word: closer to the group than to any heading.
        centroid = _unit(vectors[members].mean(axis=0))
        rest = sorted(left - set(members))
        if rest and headings is not None:
            near = _unit(vectors[rest]) @ centroid
            members += [
                i for i, s, h in zip(rest, near, (_unit(vectors[rest]) @ headings.T).max(axis=1), strict=True) if s > h
            ]
        members = sorted(members)
        left -= set(members)
        chosen = set(members)
        rest = [titles[i] for i in range(len(titles)) if i not in chosen] + list(context)
        name_terms = distinctive_terms([titles[i] for i in members], rest)
        probabilities = classifier.probabilities(classifier.leaf_scores([texts[i] for i in members], vectors[members]))
        gaps.append(
            Gap(
                name=" / ".join(name_terms) if name_terms else term,
                terms=name_terms,
                parent=_parent(classifier, probabilities),
                papers=[papers[i] for i in members],
            )
        )
    return gaps


# --- the command -----------------------------------------------------------------------------------
def unlisted(store, name: str, *, since: str | None = None) -> tuple[list[Paper], np.ndarray]:
    """The index's papers the taxonomy does not label (that appeared on or after `since`)."""
    from semsearch.lists import SURVEY
    from semsearch.propose import paper_date

    if name == SURVEY:
        held = {vec_id for vec_id, paper in store.iter_papers() if paper.survey_categories}
    else:
        held = set(store.taxonomy_labels(name))
    papers = {v: p for v, p in store.iter_papers() if v not in held and (since is None or paper_date(p) >= since)}
    vectors = store.embeddings_for(papers)
    kept = [v for v in papers if v in vectors]
    if not kept:
        return [], np.zeros((0, 1), dtype=np.float32)
    return [papers[v] for v in kept], np.vstack([vectors[v] for v in kept])


def gaps_for(index, name: str, *, since: str | None = None, embedder=None, classifier=None) -> dict:
    """{"taxonomy", "gaps": [...], "papers": how many unlisted papers were looked at}."""
    from semsearch.lists import taxonomy_for
    from semsearch.propose import classifier_of

    taxonomy_for(index.store, name)
    classifier = classifier or classifier_of(index, name, embedder)
    papers, vectors = unlisted(index.store, name, since=since)
    found = find_gaps(classifier, papers, vectors, context=classifier.labelled_titles)
    return {"taxonomy": name, "papers": len(papers), "gaps": [g.to_dict() for g in found]}


# --- leaving each heading out ----------------------------------------------------------------------
def _without(taxonomy, leaf: str):
    from semsearch.taxonomy import Taxonomy

    return Taxonomy(
        nodes=tuple(n for n in taxonomy.nodes if n != leaf),
        descriptions={n: d for n, d in taxonomy.descriptions.items() if n != leaf},
        out_of_scope=taxonomy.out_of_scope,
        questions={n: q for n, q in taxonomy.questions.items() if n != leaf},
    )


def evaluate_gaps(
    index, name: str, embed: Callable[[list[str]], np.ndarray], *, min_papers: int = MIN_EVAL_PAPERS
) -> dict:
    """Each leaf heading with `min_papers` or more papers left out in turn: is it found as a gap?"""
    from semsearch.classify import TaxonomyClassifier, labelled_papers
    from semsearch.lists import SURVEY, taxonomy_for

    store = index.store
    taxonomy = taxonomy_for(store, name)
    rows = store.survey_labelled() if name == SURVEY else store.taxonomy_papers(name)
    labelled = labelled_papers(rows)
    memo: dict[str, np.ndarray] = {}

    def cached(texts: list[str]) -> np.ndarray:  # descriptions are embedded once, not once a heading
        missing = [t for t in dict.fromkeys(texts) if t not in memo]
        if missing:
            memo.update(zip(missing, embed(missing), strict=True))
        return np.vstack([memo[t] for t in texts]) if texts else np.zeros((0, 1), dtype=np.float32)

    counts = Counter(c for p in labelled for c in set(p.categories))
    headings = [leaf for leaf in taxonomy.leaves if counts[leaf] >= min_papers]
    if not headings:
        raise SemsearchError(f"no heading of {name!r} has {min_papers} or more papers")
    results = []
    for leaf in headings:
        kept, freed = [], []
        for paper in labelled:
            rest = [c for c in paper.categories if c != leaf]
            if rest:
                kept.append(paper if len(rest) == len(paper.categories) else _relabelled(paper, rest))
            else:
                freed.append(paper)
        classifier = TaxonomyClassifier.train(kept, _without(taxonomy, leaf), cached)
        pool = [Paper(id=p.id, title=p.title, abstract=p.text[len(p.title) + 2 :]) for p in freed]
        vectors = np.vstack([p.embedding for p in freed])
        target = {p.id for p in freed}
        gaps = find_gaps(classifier, pool, vectors, context=[p.title for p in kept])
        best = max((_jaccard(target, {p.id for p in g.papers}) for g in gaps), default=0.0)
        named = next((g.name for g in gaps if _jaccard(target, {p.id for p in g.papers}) == best), "")
        results.append({"heading": leaf, "papers": len(target), "best_jaccard": round(best, 3), "gap": named})
    recovered = sum(r["best_jaccard"] >= RECOVERED for r in results)
    return {
        "taxonomy": name,
        "headings": len(results),
        "recovered": recovered,
        "share": recovered / len(results),
        "by_heading": results,
    }


def _relabelled(paper, categories: list[str]):
    from dataclasses import replace

    return replace(paper, categories=categories)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0
