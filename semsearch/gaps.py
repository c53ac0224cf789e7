"""`semsearch taxonomy gaps NAME`: topics a list has not named yet.

The in-scope papers of the index that the list does not hold are clustered (average linkage) by
the measure the list's classifier places papers with: the mean of their embeddings' cosine and of
their character n-gram TF-IDF cosine. How alike a group must be is learned from the list itself:
clustering stops where groups would be less alike than the list's own headings are (the TIGHTNESS
quantile of their papers' mean pairwise similarity), and no group grows past the list's largest
heading. A group of MIN_GROUP or more papers is a gap unless it fits a heading the list has: a
group whose papers are, for the spread of both (`affinity`), nearer a heading's papers than
halfway between one topic and a heading's most alike other heading (`ListShape.same_topic`) is
that heading's, not a new topic. A gap is named by its distinctive terms (c-TF-IDF
style: frequent in the group, rare in the rest and the list) and placed under the deepest heading
most of its papers sit under.

`semsearch eval gaps NAME` measures it on the list itself: each heading with MIN_EVAL_PAPERS or
more papers is left out in turn (its papers unlabelled, a classifier trained without it), and the
heading counts as recovered when one gap holds its papers with a Jaccard of at least 0.5. Its
control: half of each such heading's papers hidden while the heading stays; a gap that holds
them is a false gap (they fit a heading the list has).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np

from semsearch.errors import SemsearchError
from semsearch.paper import Paper

TIGHTNESS = 0.25  # a gap's papers are at least as alike as those of this quantile of the list's headings
MIN_GROUP = 3  # papers in a gap
MAX_POOL = 3000  # papers grouped at once (the closest to the list's scope first): clustering is quadratic
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


@lru_cache(maxsize=50_000)
def _terms(text: str) -> tuple[frozenset[str], dict[str, str]]:
    """A text's terms (stemmed words and adjacent pairs, stop words out) and how each was written."""
    words = [w.strip("-") for w in _WORD.findall(text.lower())]
    words = [w for w in words if len(w) > 2 and w not in STOPWORDS]
    stems = _stemmer().stemWords(words)
    written = dict(zip(stems, words, strict=True))
    pairs = {f"{a} {b}": f"{written[a]} {written[b]}" for a, b in zip(stems, stems[1:], strict=False) if a != b}
    return frozenset(stems) | frozenset(pairs), written | pairs


def _score(inside: int, n: int, outside: int, m: int) -> float:
    """How particular a term is to the n papers (in `inside` of them) against the m (in `outside`):
    its share in the first times a smoothed log ratio of the two shares."""
    share = inside / n
    return share * math.log((share + 0.01) / ((outside + 0.5) / (m + 1) + 0.01))


def distinctive_terms(
    group: Sequence[str], rest: Sequence[str], most: int = 3, *, everywhere: tuple[Counter, int] | None = None
) -> list[str]:
    """The terms most particular to `group`'s texts against `rest`'s, as the papers write them.
    `everywhere`, the term counts and number of the group's and the rest's texts together, spares
    counting the rest again for every group (then `rest` is not read)."""
    found = [_terms(t) for t in group]
    inside = Counter(term for terms, _ in found for term in terms)
    if everywhere is None:
        outside, m = Counter(term for text in rest for term in _terms(text)[0]), len(rest)
    else:
        outside, m = everywhere[0] - inside, everywhere[1] - len(group)
    spelled = {term: word for _, written in found for term, word in written.items()}
    n = len(group)
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


def similarity(classifier, texts: Sequence[str], vectors: np.ndarray) -> np.ndarray:
    """Pairwise similarity of papers as the list's classifier sees them: the mean of the
    embeddings' cosine and the character n-gram TF-IDF cosine (its kernel's measure)."""
    unit = _unit(np.asarray(vectors, dtype=np.float32))
    tfidf = classifier.tfidf.transform(texts)
    return _alike(unit, tfidf, unit, tfidf)


def _alike(unit_a: np.ndarray, tfidf_a, unit_b: np.ndarray, tfidf_b) -> np.ndarray:
    """`similarity` between two sets of papers, given their unit embeddings and TF-IDF rows: one
    row per paper of a, one column per paper of b."""
    return (unit_a @ unit_b.T + tfidf_b.dot_rows(tfidf_a)) / 2.0


def _mean_alike(block: np.ndarray, same: bool) -> float:
    """Mean similarity of a block of pairs (leaving out each paper with itself when `same`)."""
    if not same:
        return float(block.mean())
    k = len(block)
    return float((block.sum() - np.trace(block)) / (k * (k - 1)))


@dataclass
class ListShape:
    """What the list's own headings say a heading is: how alike its papers are, how large it grows,
    and how alike two different headings are."""

    tightness: float  # the TIGHTNESS quantile of headings' mean pairwise similarity
    largest: int  # papers under the largest heading
    rows: list[list[int]]  # each heading's labelled papers (headings with MIN_GROUP or more)
    own: np.ndarray  # each heading's mean pairwise similarity
    same_topic: float  # affinity at or over which papers are one of the list's headings


def affinity(between: float, own_a: float, own_b: float) -> float:
    """How alike two groups are for their spread: their papers' mean similarity across, over the
    geometric mean of their own. Two samples of one topic score 1 whatever their sizes (a centre's
    cosine would fall with a small group's noise); two topics score less."""
    return between / max(math.sqrt(max(own_a, 1e-6) * max(own_b, 1e-6)), 1e-6)


def list_shape(classifier) -> ListShape | None:
    """The shape of the headings with MIN_GROUP or more labelled papers (None without two).
    `same_topic` sits halfway between 1 (one topic) and the affinity of a typical heading with
    its most alike other heading (the median over headings)."""
    rows = [r for r in _by_heading(classifier).values() if len(r) >= MIN_GROUP]
    if len(rows) < 2:
        return None
    n = len(classifier.labelled_ids)
    unit = _unit(classifier.labelled_vectors)
    lexical = classifier.train_tfidf.head(n)
    alike = _alike(unit, lexical, unit, lexical)
    own = np.array([_mean_alike(alike[np.ix_(r, r)], True) for r in rows])
    nearest = [
        max(affinity(_mean_alike(alike[np.ix_(a, b)], False), own[i], own[j]) for j, b in enumerate(rows) if j != i)
        for i, a in enumerate(rows)
    ]
    return ListShape(
        tightness=float(np.quantile(own, TIGHTNESS)),
        largest=max(len(r) for r in rows),
        rows=rows,
        own=own,
        same_topic=(1.0 + float(np.median(nearest))) / 2.0,
    )


def clusters(alike: np.ndarray, tightness: float, largest: int) -> list[list[int]]:
    """Average-linkage clusters of the rows of a similarity matrix: merged while two groups'
    papers are on average at least `tightness` alike, and none larger than `largest` (a group
    past it is split where the tree splits it)."""
    from scipy.cluster.hierarchy import linkage, to_tree
    from scipy.spatial.distance import squareform

    if len(alike) < 2:
        return [list(range(len(alike)))]
    distance = np.clip(1.0 - (alike + alike.T) / 2.0, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    root = to_tree(linkage(squareform(distance, checks=False), method="average"))
    found, stack = [], [root]
    while stack:
        node = stack.pop()
        if node.is_leaf() or (node.dist <= 1.0 - tightness and node.count <= largest):
            found.append(sorted(node.pre_order()))
        else:
            stack += [node.right, node.left]
    return sorted(found, key=lambda group: (-len(group), group[0]))


def fits_a_heading(shape: ListShape, own: float, to_labelled: np.ndarray) -> bool:
    """Whether a group (its papers' mean pairwise similarity `own`, their similarities to the
    list's labelled papers `to_labelled`) is as alike one of the list's headings as a heading is
    to itself: then they are that heading's papers, not a topic it lacks."""
    return any(
        affinity(float(to_labelled[:, rows].mean()), own, heading) >= shape.same_topic
        for rows, heading in zip(shape.rows, shape.own, strict=True)
    )


def find_gaps(classifier, papers: Sequence[Paper], vectors: np.ndarray, *, context: Sequence[str] = ()) -> list[Gap]:
    """The gaps among `papers` (not in the list): clusters of its in-scope papers as alike as the
    list's headings, that fit none of them; the largest first. `context` is the list's papers'
    titles, the rest a gap's name is told apart from."""
    from semsearch.classify import SCOPE_THRESHOLD

    shape = list_shape(classifier)
    if not len(papers) or shape is None:
        return []
    vectors = np.asarray(vectors, dtype=np.float32)
    texts = [p.embedding_text() for p in papers]
    scope = classifier.scope_probabilities(texts, vectors)
    inside = np.flatnonzero(scope >= SCOPE_THRESHOLD)
    if len(inside) > MAX_POOL:  # the closest to the list's scope first
        inside = inside[np.argsort(-scope[inside], kind="stable")[:MAX_POOL]]
    if len(inside) < MIN_GROUP:
        return []
    titles = [p.title for p in papers]  # a list's papers are mostly known by title: words of the same kind
    pool_texts = [texts[i] for i in inside]
    unit, tfidf = _unit(vectors[inside]), classifier.tfidf.transform(pool_texts)  # once: the costly part
    alike = _alike(unit, tfidf, unit, tfidf)
    n = len(classifier.labelled_ids)
    to_labelled = _alike(unit, tfidf, _unit(classifier.labelled_vectors), classifier.train_tfidf.head(n))
    found = [
        group
        for group in clusters(alike, shape.tightness, shape.largest)
        if len(group) >= MIN_GROUP
        and not fits_a_heading(shape, _mean_alike(alike[np.ix_(group, group)], True), to_labelled[group])
    ]
    if not found:
        return []
    everywhere = (Counter(t for text in [*titles, *context] for t in _terms(text)[0]), len(titles) + len(context))
    placed = np.unique(np.concatenate(found))  # the pool's papers in some gap, in pool order
    scores = np.zeros((len(inside), len(classifier.leaves)))
    scores[placed] = classifier.leaf_scores([pool_texts[i] for i in placed], vectors[inside[placed]])
    gaps = []
    for group in found:
        members = [int(inside[i]) for i in group]
        terms = distinctive_terms([titles[i] for i in members], (), everywhere=everywhere)
        probabilities = classifier.probabilities(scores[group])
        gaps.append(
            Gap(
                name=" / ".join(terms) if terms else titles[members[0]],
                terms=terms,
                parent=_parent(classifier, probabilities),
                papers=[papers[i] for i in members],
            )
        )
    return gaps


def on_the_lists_topic(
    classifier, own: Sequence, papers: Sequence[Paper], vectors: np.ndarray, others: Sequence, embed
) -> tuple[list[Paper], np.ndarray]:
    """Of `papers`, those in the list's scope and near its own topic (`propose.on_topic`, as high
    as 9 in 10 of the list's papers `own`, against `others`, the rest of the field; Candidates):
    a curated list's classifier calls in scope all efficient-LLM work, and a KV-cache list's gaps
    were speculative decoding, pruning and quantization, the other lists' topics."""
    from semsearch.classify import SCOPE_THRESHOLD
    from semsearch.propose import Candidate, on_topic

    if not len(papers):
        return list(papers), vectors
    scope = classifier.scope_probabilities([p.embedding_text() for p in papers], np.asarray(vectors, np.float32))
    inside = np.flatnonzero(scope >= SCOPE_THRESHOLD)
    near = on_topic(own, [Candidate(papers[i], vectors[i]) for i in inside], others, embed).near
    kept = inside[near]
    return [papers[i] for i in kept], vectors[kept]


def field_sample(papers: Sequence[Paper], vectors: np.ndarray, size: int | None = None) -> list:
    """Up to `size` of `papers` (seeded) as Candidates: the rest of the field, for `on_topic`."""
    from semsearch.propose import TOPIC_BACKGROUND, Candidate

    size = TOPIC_BACKGROUND if size is None else size
    picked = sorted(np.random.default_rng(0).choice(len(papers), size=min(size, len(papers)), replace=False))
    return [Candidate(papers[i], vectors[i]) for i in picked]


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
    """{"taxonomy", "gaps": [...], "papers": how many unlisted papers were looked at}, once per
    index generation (see `propose.per_generation`)."""
    from semsearch.lists import taxonomy_for
    from semsearch.propose import per_generation

    taxonomy_for(index.store, name)
    return per_generation(
        index,
        ("gaps", name, since),
        lambda: _gaps_for(index, name, since=since, embedder=embedder, classifier=classifier),
    )


def _gaps_for(index, name: str, *, since: str | None, embedder, classifier) -> dict:
    from semsearch.lists import SURVEY
    from semsearch.propose import Candidate, classifier_of, embed_fn

    classifier = classifier or classifier_of(index, name, embedder)
    papers, vectors = unlisted(index.store, name, since=since)
    found = find_gaps(classifier, papers, vectors, context=classifier.labelled_titles)
    if name != SURVEY and found:  # the survey's classifier already judges the survey's topic
        own = [Candidate(paper, vector) for paper, vector, _ in index.store.taxonomy_papers(name)]
        everything, all_vectors = unlisted(index.store, name) if since else (papers, vectors)
        near, _ = on_the_lists_topic(
            classifier, own, papers, vectors, field_sample(everything, all_vectors), embed_fn(index, embedder)
        )
        found = by_the_lists_topic(found, {p.id for p in near})
    return {"taxonomy": name, "papers": len(papers), "gaps": [g.to_dict() for g in found]}


def by_the_lists_topic(gaps: list[Gap], near: set[str]) -> list[Gap]:
    """The gaps whose papers are most often near the list's own topic first (then the largest).
    A KV-cache list's first gaps were speculative decoding and pruning, the other lists' topics:
    all efficient-LLM work, in its classifier's scope. Kept to the near papers before grouping,
    the gaps were on topic, but a heading left out was found again far less often (kv 4 of 5 → 2,
    specdec 5 of 7 → 4: a new heading's papers are, by being new, less like the list's)."""
    share = {id(g): sum(p.id in near for p in g.papers) / len(g.papers) for g in gaps}
    return sorted(gaps, key=lambda g: (-share[id(g)], -len(g.papers)))


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
    from semsearch.classify import labelled_papers
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
        best, named = _best_gap(_without(taxonomy, leaf), kept, freed, cached)
        # The control: half of the heading's papers hidden, the heading kept. They fit it: no gap.
        members = sorted((p for p in labelled if leaf in p.categories), key=lambda p: p.id)
        hidden = {p.id for p in members[::2]}
        false, _ = _best_gap(taxonomy, [p for p in labelled if p.id not in hidden], members[::2], cached)
        results.append(
            {
                "heading": leaf,
                "papers": len(freed),
                "best_jaccard": round(best, 3),
                "gap": named,
                "held_in_jaccard": round(false, 3),
            }
        )
    recovered = sum(r["best_jaccard"] >= RECOVERED for r in results)
    false_gaps = sum(r["held_in_jaccard"] >= RECOVERED for r in results)
    return {
        "taxonomy": name,
        "headings": len(results),
        "recovered": recovered,
        "share": recovered / len(results),
        "false_gaps": false_gaps,
        "false_share": false_gaps / len(results),
        "by_heading": results,
    }


def _best_gap(taxonomy, kept, pool, embed) -> tuple[float, str]:
    """Train on `kept`, look for gaps among `pool` alone: the best Jaccard of a gap with the pool,
    and that gap's name."""
    from semsearch.classify import TaxonomyClassifier

    classifier = TaxonomyClassifier.train(kept, taxonomy, embed)
    papers = [Paper(id=p.id, title=p.title, abstract=p.text[len(p.title) + 2 :]) for p in pool]
    target = {p.id for p in pool}
    gaps = find_gaps(classifier, papers, np.vstack([p.embedding for p in pool]), context=[p.title for p in kept])
    scored = [(_jaccard(target, {p.id for p in g.papers}), g.name) for g in gaps]
    return max(scored, key=lambda s: s[0], default=(0.0, ""))


def _relabelled(paper, categories: list[str]):
    from dataclasses import replace

    return replace(paper, categories=categories)


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 0.0
