"""Related work for a paper, and recommendations from papers a reader liked.

Related papers are the nearest by embedding, re-ranked with the taxonomy: a candidate gains
CATEGORY_BONUS × the chance that it sits in the paper's leaf (`search.leaf_distributions`: a
labelled paper's leaves, or the classifier's chance of each leaf for a predicted one). Measured
with `semsearch eval related`, that bonus lifts the share of related results in the same survey
leaf or reading-list topic from 0.54 (plain nearest neighbours) to 0.79; with one predicted
category per paper instead of its leaf distribution it was 0.70.

Every score shown is between 0 and 1 and falls down the list (`readable`): related work shows
(cosine + bonus) / (1 + CATEGORY_BONUS); with --diverse, the marginal relevance at the moment each
paper was picked, MMR_TRADE_OFF × its score + (1 - MMR_TRADE_OFF) × its novelty (1 - its cosine
to the closest paper above it), which never rises from one pick to the next; recommendations, the
cosine to their query (the separating direction and Rocchio's feedback, the liked papers' centroid
less ROCCHIO_DISLIKE of the disliked ones', each of length 1, summed). Negative cosines show as 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from semsearch.errors import NotFound, SemsearchError
from semsearch.index import Index
from semsearch.paper import Paper
from semsearch.requests_models import check_k
from semsearch.search import TWIN_ROOM, Hit, Searcher

CATEGORY_BONUS = 0.25  # about the cosine gap between a close and a loose neighbour
POOL = 1000  # nearest candidates re-ranked
MMR_TRADE_OFF = 0.7  # relevance vs novelty for --diverse
SAME_TEXT = 0.99  # cosine at which a text given to `related --text` is an indexed paper's own
BACKGROUND = 2000  # other papers standing in for "not liked" in recommendations
SVM_C = 0.1  # the linear SVM's error cost: soft, a few liked papers should not be fitted exactly
ROCCHIO_DISLIKE = 0.2  # the disliked papers' share against the liked ones' (SMART's 0.15 to 0.75)


def readable(score: float) -> float:
    """A score clipped to 0-1 (a cosine may be slightly negative, or over 1 by rounding)."""
    return min(1.0, max(0.0, float(score)))


class SharedName(NotFound):
    """A method's name that several papers carry: found, but not one paper (the message lists them)."""


class RelatedFinder:
    def __init__(
        self, index: Index, embedder=None, *, searcher: Searcher | None = None, taxonomy_name: str | None = None
    ):
        self.index = index
        self.searcher = searcher or Searcher(index, embedder, taxonomy_name=taxonomy_name)

    @property
    def store(self):
        return self.index.store

    def resolve(self, paper_id: str) -> int:
        """The vec_id of an indexed paper, by id (arXiv versions and URLs accepted), or by the name
        its title gives its method when one paper has it ("GPTQ": many survey papers have no arXiv
        id here, and their ids are long)."""
        vec_id = self.store.find(paper_id)
        if vec_id is not None:
            return vec_id
        from semsearch.search import names_in

        try:
            hits = self.searcher.search(paper_id, 3) if names_in(paper_id) else []
        except SemsearchError:  # not even a question: no name either
            hits = []
        named = [h for h in hits if h.evidence is not None and h.evidence.named]
        if len(named) == 1:
            return named[0].vec_id
        if named:
            ids = ", ".join(h.paper.id for h in named)
            raise SharedName(f"{paper_id!r} names {len(named)} papers in the index ({ids}); give one of their ids")
        raise NotFound(f"no paper {paper_id!r} in the index")

    def papers(self, ids: Sequence[str]) -> list[Paper]:
        """The papers named, in the order named, each once however it was named (`2306.00978`,
        `arXiv:2306.00978v2`, `AWQ`): what `export` cites."""
        vec_ids = list(dict.fromkeys(self.resolve(i) for i in ids))
        papers = self.store.papers_by_vec_id(vec_ids)
        return [papers[v] for v in vec_ids]

    def paper_id(self, paper_id: str) -> str:
        """The indexed paper's own id for any way of naming it (`arXiv:2306.00978v2`, `GPTQ`)."""
        vec_id = self.resolve(paper_id)
        return self.store.papers_by_vec_id([vec_id])[vec_id].id

    # --- related ------------------------------------------------------------------------------
    def related_to(self, paper_id: str, k: int = 10, *, diverse: bool = False) -> list[Hit]:
        return self.related_to_vec_id(self.resolve(paper_id), k, diverse=diverse)

    def related_to_vec_id(
        self, vec_id: int, k: int = 10, *, diverse: bool = False, allowed: np.ndarray | None = None
    ) -> list[Hit]:
        """Related work of an indexed paper, among the `allowed` vec_ids if given (a search's filters);
        without the taxonomy (`Searcher.use_taxonomy` off), the plain nearest papers."""
        paper = self.store.papers_by_vec_id([vec_id])[vec_id]
        exclude = {vec_id, *self.store.vec_ids_with_title(paper.title)}
        filed = self.searcher.leaf_distributions([vec_id]).get(vec_id) if self.searcher.use_taxonomy else None
        spread = None if filed is None else filed[1]
        vector = self.store.embeddings_held([vec_id])[vec_id]
        return self._rank(vector, spread, exclude, k, diverse, paper=paper, allowed=allowed)

    def related_to_text(
        self, title: str, abstract: str, k: int = 10, *, diverse: bool = False, paper_id: str | None = None
    ) -> list[Hit]:
        """Related papers for a paper not in the index (its own record, if indexed, is left out)."""
        from semsearch.paper import embedding_text

        text = embedding_text(title, abstract)
        vector = self.searcher.embed_paper(text)
        classifier = self.searcher.classifier
        spread = None
        if classifier is not None:
            placed = classifier.classify([text], vector, explain=False)[0]
            spread = placed.leaf_probabilities if placed.in_scope else None
        exclude = set(self.store.vec_ids_with_title(title))
        if paper_id and (own := self.store.vec_id(paper_id)) is not None:
            exclude.add(own)
        # A text that is an indexed paper's own (pasted title and abstract) is that paper: left out
        # as `related ID` leaves it out. Nothing but the same text comes this close.
        exclude.update(v for v, cosine in self.searcher.nearest(vector, 3) if cosine >= SAME_TEXT)
        own = Paper(id=paper_id or "", title=title)
        return self._rank(vector[0], spread, exclude, k, diverse, paper=own)

    def _rank(
        self,
        vector,
        spread: np.ndarray | None,
        exclude: set[int],
        k: int,
        diverse: bool,
        *,
        paper: Paper,
        allowed: np.ndarray | None = None,
    ) -> list[Hit]:
        """Nearest papers, each gaining CATEGORY_BONUS × the chance that it shares a leaf with the
        paper (`spread`: the paper's chance of each leaf; None when it has no category), each paper
        once and other records of `paper` itself left out (`papers_held`: a survey's entry and the
        PDF-read copy of it came back as its first related paper)."""
        check_k(k)
        nearest = self.searcher.nearest(vector[None, :], POOL + len(exclude), allowed)
        ranked = [(v, s) for v, s in nearest if v not in exclude]
        if spread is not None:
            filed = self.searcher.leaf_distributions([v for v, _ in ranked])

            def bonus(vec_id: int) -> float:
                return CATEGORY_BONUS * float(filed[vec_id][1] @ spread) if vec_id in filed else 0.0

            ranked = sorted(((v, s + bonus(v)) for v, s in ranked), key=lambda item: -item[1])
        scale = 1.0 + (CATEGORY_BONUS if spread is not None else 0.0)  # the most a cosine plus its bonus can be
        ranked = [(v, readable(s / scale)) for v, s in ranked]
        pool = ranked[: max(5 * k, 50)] if diverse else ranked[: TWIN_ROOM * (k + 1)]
        left_out = self.searcher.papers_held([paper])
        hits = self.searcher.hits(pool, len(pool) if diverse else k, left_out=left_out, allowed=allowed)
        return self._diversify(hits, k) if diverse else hits

    def _diversify(self, hits: list[Hit], k: int) -> list[Hit]:
        """Maximal marginal relevance: each next pick trades relevance against similarity to picks.
        Each hit's score becomes its value when picked, shifted into 0-1 (see the module's note):
        a candidate's value only falls as picks accumulate, so the picked values fall too."""
        if not hits:
            return []
        vectors = self.store.embeddings_for(h.vec_id for h in hits)
        matrix = np.vstack([vectors[h.vec_id] for h in hits])
        relevance = np.array([h.score for h in hits])
        first = int(np.argmax(relevance))
        chosen, gains = [first], [MMR_TRADE_OFF * relevance[first] + (1 - MMR_TRADE_OFF)]  # nothing above it: novel
        closest = matrix @ matrix[first]
        while len(chosen) < min(k, len(hits)):
            value = MMR_TRADE_OFF * relevance + (1 - MMR_TRADE_OFF) * (1 - np.clip(closest, 0.0, 1.0))
            value[chosen] = -np.inf
            pick = int(np.argmax(value))
            chosen.append(pick)
            gains.append(float(value[pick]))
            closest = np.maximum(closest, matrix @ matrix[pick])
        picked = [hits[i] for i in chosen]
        for hit, gain in zip(picked, gains, strict=True):  # pragma: no mutate (equal lengths by construction)
            hit.score = readable(gain)
        return picked

    # --- recommendations ----------------------------------------------------------------------
    def recommend(
        self, likes: Sequence[str], dislikes: Sequence[str] = (), k: int = 10, *, since: str | None = None
    ) -> list[Hit]:
        """Papers to read next, in the spirit of arxiv-sanity: a linear SVM separates the liked papers
        from the disliked ones and a sample of all others, and its weight vector, with the liked
        papers' centroid (less a little of the disliked ones'), is the query."""
        check_k(k)
        if not likes:
            raise SemsearchError("give at least one --like ID")
        # Each paper once however often, or however, it is named ("2306.00978", "AWQ"): twice, it
        # weighed twice in the SVM and the centroid, and the list leaned towards it.
        liked = list(dict.fromkeys(self.resolve(i) for i in likes))
        named = {i: self.resolve(i) for i in dislikes}
        if both := [i for i, v in named.items() if v in set(liked)]:
            raise SemsearchError(f"a paper is liked and disliked at once: {', '.join(map(repr, both[:5]))}")
        disliked = list(dict.fromkeys(named.values()))
        chosen = set(liked) | set(disliked)
        others = [v for v in self.store.all_vec_ids() if v not in chosen]
        rng = np.random.default_rng(0)
        background = rng.choice(others, size=min(BACKGROUND, len(others)), replace=False).tolist() if others else []
        rows = [*liked, *disliked, *background]
        vectors = self.store.embeddings_held(rows)
        features = np.vstack([vectors[v] for v in rows])
        labels = np.array([1] * len(liked) + [0] * (len(disliked) + len(background)))
        # Rocchio's feedback: the liked papers' centroid, a little away from the disliked ones'.
        feedback = _unit(features[: len(liked)].mean(axis=0))
        if disliked:
            feedback -= ROCCHIO_DISLIKE * _unit(features[len(liked) : len(liked) + len(disliked)].mean(axis=0))
        if labels.min() == labels.max():
            scores_query = feedback  # nothing else in the index to separate from
        else:
            weights = np.ones(len(rows))
            weights[len(liked) : len(liked) + len(disliked)] = 5.0  # an explicit "no" counts more than silence
            direction = separating_direction(features, labels, weights)
            # What sets the liked papers apart from the rest, and the liked papers themselves, in equal
            # parts: alone, the direction drifts from one or two likes (an exemplar against 2,000
            # others), below their plain centroid (docs/evaluation.md, "Recommendations").
            scores_query = (_unit(direction) + _unit(feedback)).astype(np.float32)
        # Unit length, so each paper's score is its cosine to the query: 0-1 once negatives show as 0.
        scores_query = _unit(scores_query)
        allowed = None
        if since:
            allowed = np.asarray([v for v in self.store.vec_ids_where(since=since) if v not in chosen], np.int64)
        ranked = self.searcher.nearest(scores_query[None, :], TWIN_ROOM * k + len(chosen), allowed)
        left_out = self.searcher.papers_held(self.store.papers_by_vec_id(chosen).values())  # and their other records
        pool = [(v, readable(s)) for v, s in ranked if v not in chosen]
        return self.searcher.hits(pool, k, left_out=left_out, allowed=allowed)  # `since` holds for what is shown


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-12)


def separating_direction(features: np.ndarray, labels: np.ndarray, sample_weight: np.ndarray) -> np.ndarray:
    """The weight vector of a linear SVM separating `labels` 1 from 0: scikit-learn's
    `LinearSVC(C=SVM_C, class_weight="balanced")` problem (squared hinge loss; the bias a feature of
    constant 1 under the same penalty; each paper's cost C × its class's weight × its own, each class
    weighing half of all), solved here by Newton's method in numpy. The problem is strictly convex,
    so the answer is the same, without the second that importing scikit-learn took on every
    `recommend`."""
    x = np.hstack([np.asarray(features, dtype=np.float64), np.ones((len(features), 1))])
    y = np.where(np.asarray(labels) == 1, 1.0, -1.0)
    weight = np.asarray(sample_weight, dtype=np.float64)
    # "balanced" as scikit-learn weighs it: each class's papers together weigh half of all.
    liked_share = float(weight[y > 0].sum()) / float(weight.sum())
    cost = SVM_C * weight / (2 * np.where(y > 0, liked_share, 1 - liked_share))

    def objective(w: np.ndarray) -> float:
        slack = np.maximum(0.0, 1.0 - y * (x @ w))
        return 0.5 * float(w @ w) + float(cost @ slack**2)

    w, tolerance = np.zeros(x.shape[1]), None
    for _ in range(100):
        slack = 1.0 - y * (x @ w)
        active = slack > 0  # the papers inside the margin or on the wrong side: only they cost
        gradient = w - 2.0 * x[active].T @ (cost[active] * y[active] * slack[active])
        size = float(np.linalg.norm(gradient))
        tolerance = 1e-8 * size if tolerance is None else tolerance
        if size <= tolerance:
            break
        hessian = np.eye(len(w)) + 2.0 * (x[active].T * cost[active]) @ x[active]
        step = np.linalg.solve(hessian, -gradient)
        current, scale = 0.5 * float(w @ w) + float(cost[active] @ slack[active] ** 2), 1.0  # objective(w)
        while objective(w + scale * step) > current + 1e-4 * scale * float(gradient @ step) and scale > 1e-10:
            scale /= 2  # backtrack: the squared hinge's Hessian changes where a paper crosses its margin
        w = w + scale * step
    return w[:-1]
