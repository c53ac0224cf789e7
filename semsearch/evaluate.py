"""Evaluation harnesses behind `semsearch eval ...`: numbers to choose methods by, not tests."""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np

from semsearch.classify import SCOPE_THRESHOLD, TaxonomyClassifier, fit_temperature, labelled_papers, softmax
from semsearch.errors import SemsearchError
from semsearch.index import Index
from semsearch.paper import Paper, normalize_title, parse_arxiv_id
from semsearch.sources.jsonl import read_records
from semsearch.taxonomy import is_under, leaf_name, load_taxonomy, node_at, resolve_node


def expected_calibration_error(confidence: np.ndarray, correct: np.ndarray, bins: int = 10) -> float:
    """Mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    error = 0.0
    for b in range(bins):
        mask = which == b
        if mask.any():
            error += mask.mean() * abs(correct[mask].mean() - confidence[mask].mean())
    return float(error)


def evaluate_classifier(
    index: Index, embedder, taxonomy=None, papers=None, outside_vectors: np.ndarray | None = None
) -> dict:
    """Leave-one-out over a taxonomy's labelled papers (each classified with itself removed): the
    survey's by default, or `taxonomy` with its `papers`. With `outside_vectors` (papers outside
    the taxonomy), also the scope AUROC of its papers against those."""
    taxonomy = taxonomy or load_taxonomy()
    papers = labelled_papers(index.store.survey_labelled()) if papers is None else papers
    if len(papers) < 10:
        raise SemsearchError("too few labelled papers to evaluate; run `semsearch ingest survey` first")
    classifier = TaxonomyClassifier.train(papers, taxonomy, embedder.encode)
    scores, truth = classifier.loo_scores, classifier.loo_truth
    leaves = classifier.leaves
    order = np.argsort(-scores, axis=1)
    true_sets = [set(p.categories) for p in papers]
    top1 = np.array([leaves[order[i, 0]] in true_sets[i] for i in range(len(papers))])
    top3 = np.array([any(leaves[j] in true_sets[i] for j in order[i, :3]) for i in range(len(papers))])
    level3 = np.array(
        [node_at(leaves[order[i, 0]], 3) in {node_at(c, 3) for c in true_sets[i]} for i in range(len(papers))]
    )

    # Calibration, cross-fitted: the temperature is fit on one half and judged on the other.
    halves = np.array([zlib.crc32(p.id.encode()) % 2 for p in papers])
    confidence = np.zeros(len(papers))
    for half in (0, 1):
        fit, judge = halves != half, halves == half
        temperature = fit_temperature(scores[fit], truth[fit])
        confidence[judge] = softmax(scores[judge], temperature).max(axis=1)

    # What the user sees: the leaf found top-down, which may differ from the most probable leaf.
    probabilities = classifier.probabilities(scores)
    first = [classifier.suggest(p, walk)[0] for p, walk in zip(probabilities, classifier.path(scores), strict=True)]
    first_right = np.array([any(is_under(c, s.category) for c in true_sets[i]) for i, s in enumerate(first)])
    left_out_scope = classifier.scope_scores(classifier.labelled_vectors, exclude_self=True)
    in_scope = classifier.calibrated_scope(left_out_scope, [p.text for p in papers]) >= SCOPE_THRESHOLD
    with_abstract = np.array([p.has_abstract for p in papers])

    # Baseline for reference: distance-weighted 10-nearest-neighbour vote on embeddings alone.
    vectors = classifier.labelled_vectors
    similar = vectors @ vectors.T
    np.fill_diagonal(similar, -np.inf)
    knn_top1 = []
    for i in range(len(papers)):
        votes = np.zeros(len(leaves))
        for j in np.argsort(-similar[i])[:10]:
            votes += max(similar[i, j], 0.0) * taxonomy.leaf_spread(papers[j].categories)
        knn_top1.append(leaves[int(votes.argmax())] in true_sets[i])

    return {
        "papers": len(papers),
        "with_abstract": int(with_abstract.sum()),
        "leaf_top1": float(top1.mean()),
        "leaf_top3": float(top3.mean()),
        "level3_top1": float(level3.mean()),
        "ece": expected_calibration_error(confidence, top1.astype(float)),
        "mean_confidence": float(confidence.mean()),
        "suggestion_precision": float(first_right.mean()),
        "in_scope_share": float(in_scope.mean()),
        "in_scope_share_with_abstract": float(in_scope[with_abstract].mean()) if with_abstract.any() else None,
        "knn_baseline_top1": float(np.mean(knn_top1)),
    } | (_scope_auroc(classifier, outside_vectors) if outside_vectors is not None else {})


def _scope_auroc(classifier, outside_vectors: np.ndarray) -> dict:
    """How well scope separates the labelled papers (each left out) from papers outside."""
    inside = classifier.scope_scores(classifier.labelled_vectors, exclude_self=True)
    outside = classifier.scope_scores(outside_vectors)
    scores = np.concatenate([inside, outside])
    return {"outside_papers": len(outside), "scope_auroc": auroc(scores, np.arange(len(scores)) < len(inside))}


def read_expected(path) -> list[dict]:
    """New papers with the node(s) each belongs under, from JSON Lines {"id", "expected"} (the
    paper's text is then the index's) or {"id", "title", "abstract", "expected"}. `expected` is a
    node name or path, a list of them, or null for a paper outside the taxonomy."""

    def parse(record: dict) -> dict:
        title = " ".join((record.get("title") or "").split())
        abstract = " ".join((record.get("abstract") or "").split())
        if not (title or record.get("id")) or not isinstance(record.get("id", ""), str):
            raise ValueError
        expected = record["expected"]
        expected = [expected] if isinstance(expected, str) else expected
        return {
            "id": record.get("id"),
            "title": title,
            "abstract": abstract,
            "expected": [resolve_node(node) for node in expected] if expected else None,
        }

    return read_records(path, parse, "a JSON object with an 'id' (or a 'title') and 'expected'")


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive outscores a random negative (ties
    half), from the positives' rank sum (Mann-Whitney). Ranked in numpy: scipy.stats alone takes a
    second to import, longer than any evaluation it would serve."""
    positive = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    _, group, size = np.unique(np.asarray(scores, dtype=float), return_inverse=True, return_counts=True)
    last_rank = np.cumsum(size)  # 1-based rank of each group of equal scores' last member
    ranks = (last_rank - (size - 1) / 2)[group]  # tied scores share their ranks' mean
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def balanced_accuracy(predicted: Sequence[bool], truth: np.ndarray) -> float:
    """Mean of the true-positive and true-negative rates (nan when a class is missing)."""
    predicted, truth = np.asarray(predicted, dtype=bool), np.asarray(truth, dtype=bool)
    if truth.all() or not truth.any():
        return float("nan")
    return float((predicted[truth].mean() + (~predicted[~truth]).mean()) / 2)


def knn_vote(classifier: TaxonomyClassifier, vectors: np.ndarray, k: int = 10) -> list[tuple[list[str], float, float]]:
    """The baseline a classifier must beat: each of the k nearest labelled papers votes for its leaves
    with its cosine. Per paper: leaves by votes (best three), the winner's share of the votes, and
    the mean cosine of the k neighbours (its scope score)."""
    similar = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ classifier.labelled_vectors.T
    results = []
    for row in similar:
        votes: dict[str, float] = {}
        nearest = np.argsort(-row)[:k]
        for j in nearest:
            for category in classifier.labelled_categories[j]:
                votes[category] = votes.get(category, 0.0) + max(float(row[j]), 0.0)
        ranked = sorted(votes, key=votes.get, reverse=True)
        total = sum(votes.values()) or 1.0
        results.append((ranked[:3], votes[ranked[0]] / total, float(row[nearest].mean())))
    return results


def texts_and_vectors(index: Index, records: list[dict], embedder) -> tuple[list[str], np.ndarray]:
    """The text and vector of each record: the index's for id-only rows, else embedded now."""
    from semsearch.paper import embedding_text

    store = index.store
    texts: list[str] = []
    vectors: list[np.ndarray | None] = []
    for record in records:
        vec_id = store.find(record["id"]) if record["id"] and not record["title"] else None
        if vec_id is not None:
            paper = store.papers_by_vec_id([vec_id])[vec_id]
            texts.append(paper.embedding_text())
            vectors.append(store.embedding(vec_id))
        elif record["title"]:
            texts.append(embedding_text(record["title"], record["abstract"]))
            vectors.append(None)
        else:
            raise SemsearchError(f"paper {record['id']!r} is not in the index and its line gives no title")
    missing = [i for i, v in enumerate(vectors) if v is None]
    for i, vector in zip(missing, embedder.encode([texts[i] for i in missing]), strict=True):
        vectors[i] = vector
    return texts, np.vstack(vectors).astype(np.float32)


def evaluate_new_papers(index: Index, records: list[dict], embedder=None) -> dict:
    """How suggestions fare on papers outside the labelled set, against a plain kNN vote: first
    suggestion at or under the expected node (top-1), any of three (top-3), first suggestion in the
    expected second-level branch, scope AUROC (in-taxonomy against out-of-scope papers), and the
    calibration (ECE) of the confidence on the in-taxonomy papers; then top-1 by branch."""
    from semsearch.classify import classifier_for
    from semsearch.embeddings import embedder_for

    store = index.store
    embedder = embedder or embedder_for(index.manifest.model, index_dir=index.directory)
    texts, matrix = texts_and_vectors(index, records, embedder)
    classifier = classifier_for(store, load_taxonomy(), embedder.encode)
    if classifier is None:
        raise SemsearchError("the index has no labelled papers to classify with")

    ours = classifier.classify(texts, matrix, explain=False)
    knn = knn_vote(classifier, matrix)
    expected = [r["expected"] for r in records]
    engines = {
        "semsearch": score_suggestions(
            expected,
            [[s.category for s in c.suggestions] for c in ours],
            [c.confidence for c in ours],
            [c.scope for c in ours],
            [c.in_scope for c in ours],
        ),
        "kNN vote": score_suggestions(
            expected, [ranked for ranked, _, _ in knn], [share for _, share, _ in knn], [near for _, _, near in knn]
        ),
    }
    inside = sum(bool(e) for e in expected)
    report: dict = {"papers": len(records), "in_taxonomy": inside, "out_of_scope": len(records) - inside}
    by_branch: dict[str, dict] = {}
    for name, scores in engines.items():
        for branch, (count, top1) in scores.pop("top1_by_branch").items():
            by_branch.setdefault(branch, {"papers": count})[name] = top1
        report[name] = scores
    report["top1_by_branch"] = dict(sorted(by_branch.items()))
    return report


def score_suggestions(
    expected: Sequence[list[str] | None],
    suggested: Sequence[Sequence[str]],
    confidence: Sequence[float],
    scope: Sequence[float],
    in_scope: Sequence[bool] | None = None,
) -> dict:
    """Scores of one engine's suggestions (best first) against the expected nodes (None: outside the
    taxonomy). A suggestion is right at or under an expected node; `confidence` is judged against
    the first suggestion being right, `scope` (higher: more likely inside) by AUROC, and the
    verdicts `in_scope` (when the engine gives them) by balanced accuracy: the mean of the share of
    papers inside kept and the share outside turned away, which a verdict of "all in" cannot game."""
    inside = np.array([bool(e) for e in expected])
    rows = np.flatnonzero(inside)

    def right(node: str, i: int) -> bool:
        return any(is_under(node, e) for e in expected[i])

    def measured(value: float) -> float | None:
        """None for a figure these papers cannot give (none inside; or no paper outside to judge
        scope by): JSON has no NaN."""
        return None if np.isnan(value) else float(value)

    def mean(values) -> float | None:
        return float(np.mean(values)) if len(values) else None

    top1 = np.array([right(suggested[i][0], i) for i in rows], dtype=float)
    branches = [node_at(expected[i][0], 2) for i in rows]
    first_confidence = np.asarray(confidence, dtype=float)[rows]
    return {
        "node_top1": mean(top1),
        "node_top3": mean([any(right(s, i) for s in suggested[i][:3]) for i in rows]),
        "branch_top1": mean([any(node_at(suggested[i][0], 2) == node_at(e, 2) for e in expected[i]) for i in rows]),
        "scope_auroc": measured(auroc(np.asarray(scope, dtype=float), inside)),
        "scope_balanced_accuracy": measured(balanced_accuracy(in_scope, inside)) if in_scope is not None else None,
        "ece": expected_calibration_error(first_confidence, top1) if len(rows) else None,
        "mean_confidence": mean(first_confidence),
        "top1_by_branch": {
            b: (branches.count(b), float(np.mean([t for t, o in zip(top1, branches, strict=True) if o == b])))
            for b in set(branches)
        },
    }


def read_topics(path) -> dict[str, set[str]]:
    """Evaluation labels only: the reading-list topics of each paper id (never used for ranking)."""

    def parse(row: dict) -> tuple[str, set[str]]:
        topics = row.get("topics") or []
        if not isinstance(topics, list) or not all(isinstance(topic, str) for topic in topics):
            raise TypeError  # a bare string would be read as a set of its characters
        return str(row["id"]), set(topics)

    return dict(read_records(path, parse, "a JSON object with an 'id' and its 'topics' (a list of names)"))


def share_a_category(one: Paper, other: Paper, topics: dict[str, set[str]]) -> bool:
    """Whether two papers share a survey leaf or a reading-list topic: related work's relevance."""
    same_leaf = set(one.survey_categories) & set(other.survey_categories)
    return bool(same_leaf or topics.get(one.id, set()) & topics.get(other.id, set()))


def evaluate_related(index: Index, topics: dict[str, set[str]], k: int = 5) -> dict:
    """For each survey paper with an abstract: the share of its top-k related papers that share a
    survey leaf or a reading-list topic with it. Compared with plain nearest neighbours."""
    import time

    from semsearch.related import RelatedFinder

    finder = RelatedFinder(index)
    store = index.store
    queries = [(v, p) for v, p in store.iter_papers() if p.survey_categories and p.abstract]
    if not queries:
        raise SemsearchError(
            "no survey paper with an abstract in the index to evaluate with (an offline index holds their titles"
            " only: `semsearch ingest survey` online adds the abstracts)"
        )

    ours, plain, latencies = [], [], []
    for vec_id, paper in queries:
        started = time.perf_counter()
        hits = finder.related_to(paper.id, k)
        latencies.append((time.perf_counter() - started) * 1000)
        ours.append(np.mean([share_a_category(paper, h.paper, topics) for h in hits]))
        nearest = finder.searcher.nearest(store.embedding(vec_id)[None, :], k + 1)
        baseline = finder.searcher.hits([(v, s) for v, s in nearest if v != vec_id][:k])
        plain.append(np.mean([share_a_category(paper, h.paper, topics) for h in baseline]))
    latencies.sort()
    return {
        "queries": len(queries),
        f"precision_at_{k}": float(np.mean(ours)),
        f"plain_nearest_precision_at_{k}": float(np.mean(plain)),
        "uses_topics": bool(topics),
        "latency_ms_p50": latencies[len(latencies) // 2],
        "latency_ms_max": latencies[-1],
    }


# --- search ---------------------------------------------------------------------------------------
def ndcg_at(relevances: list[int], total_relevant: int, k: int = 10) -> float:
    """Binary-relevance nDCG@k: DCG of the ranking over the DCG of a perfect one."""
    dcg = sum(rel / np.log2(rank + 2) for rank, rel in enumerate(relevances[:k]))
    ideal = sum(1.0 / np.log2(rank + 2) for rank in range(min(k, total_relevant)))
    return float(dcg / ideal) if ideal else 0.0


def reciprocal_rank(relevances: list[int], k: int = 10) -> float:
    return next((1.0 / (rank + 1) for rank, rel in enumerate(relevances[:k]) if rel), 0.0)


def read_questions(path) -> tuple[str, list[dict]]:
    """Questions from JSON Lines, and their kind: "known-item" (they name a `title`, and may name an
    `arxiv_id`) or "topical" (they name survey `categories`, reading-list `topics`, or both). A line
    the harness would misread is refused with its number rather than scored 0: a category that is
    no node (misspelt; a full path or any case is the node), labels given as a bare string, none at
    all, or a question of the other kind than the file's first (one kind to a file)."""
    kinds: list[str] = []

    def strings(row: dict, key: str) -> list[str]:
        value = row.get(key) or []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise TypeError
        return value

    def parse(row: dict) -> dict:
        if not isinstance(row["query"], str) or not row["query"].strip():
            raise ValueError
        kind = "known-item" if "title" in row else "topical"
        if kind == "known-item":
            if not (isinstance(row["title"], str) and row["title"].strip()):
                raise ValueError
            given = row.get("arxiv_id") or ""
            if not isinstance(given, str):
                raise TypeError
            if given:  # in any form a door takes it: matched against the index's bare ids
                if not (arxiv_id := parse_arxiv_id(given)):
                    raise SemsearchError(f"not an arXiv id: {given!r}")
                row = {**row, "arxiv_id": arxiv_id}
        else:
            # Relevance compares node names with a paper's path segments: each one held as its leaf.
            row = {**row, "categories": [leaf_name(resolve_node(name)) for name in strings(row, "categories")]}
            if not (row["categories"] or strings(row, "topics")):
                raise ValueError
        kinds.append(kind)
        if kind != kinds[0]:
            raise SemsearchError(f"a {kind} question in a file of {kinds[0]} questions (one kind to a file)")
        return row

    expected = "a JSON object with a 'query' and either a 'title' or 'categories' or 'topics' (lists of names)"
    rows = read_records(path, parse, expected)
    return kinds[0], rows


def is_target(question: dict, paper) -> int:
    """Whether `paper` is the one a known-item question is after: same arXiv id, else same title."""
    if question.get("arxiv_id") and paper.arxiv_id == question["arxiv_id"]:
        return 1
    return int(normalize_title(paper.title) == normalize_title(question["title"]))


def targets_with_abstract(papers: list, questions: list[dict], *, abstract: bool = True) -> np.ndarray:
    """For each known-item question, whether the index holds its target's abstract (else it knows
    the title alone, as for survey papers whose abstract only arXiv could supply); with `abstract`
    False, whether it holds its target at all."""
    held = [p for p in papers if p.abstract or not abstract]
    ids = {p.arxiv_id for p in held if p.arxiv_id}
    titles = {normalize_title(p.title) for p in held}  # is_target's rule, indexed once
    found = [q.get("arxiv_id") in ids or normalize_title(q["title"]) in titles for q in questions]
    return np.array(found, dtype=bool)


def is_relevant(question: dict, paper: Paper, topics: dict[str, set[str]]) -> int:
    """Whether `paper` answers a topical question: one of its survey category paths holds a node the
    question names, or it carries a reading-list topic the question names."""
    nodes = set(question.get("categories") or [])
    by_path = any(nodes & set(path.split("/")) for path in paper.survey_categories)
    return int(by_path or bool(set(question.get("topics") or []) & topics.get(paper.id, set())))


def relevant_counts(papers: list[Paper], questions: list[dict], topics: dict[str, set[str]]) -> list[int]:
    """How many of `papers` answer each topical question (nDCG's ideal ranking counts them)."""
    return [sum(is_relevant(question, p, topics) for p in papers) for question in questions]


def unanswered(papers: list[Paper], questions: list[dict], topics: dict[str, set[str]]) -> list[int]:
    """The topical questions (their places in `questions`) that no paper of `papers` answers: each
    scores 0 whatever the ranking."""
    return [n for n, total in enumerate(relevant_counts(papers, questions, topics)) if not total]


def evaluate_search(index: Index, questions: list[dict], kind: str, topics: dict[str, set[str]], searchers) -> dict:
    """Scores of each named searcher on one question file (relevance rules of ../shared/README.md).

    Topical: a paper is relevant when one of its survey category paths contains a named node, or
    one of its reading-list topics is named; nDCG@10, P@10, MRR@10. Known-item: the paper with the
    question's arXiv id or title; success@3 and MRR@10, and success@3 apart for targets whose
    abstract the index holds and for those it knows by title alone."""
    papers = [p for _, p in index.store.iter_papers()]

    groups = {}
    if kind == "known-item":
        with_abstract = targets_with_abstract(papers, questions)
        groups = {"s@3 abstract": with_abstract, "s@3 title only": ~with_abstract}

    if kind == "topical":
        totals = relevant_counts(papers, questions, topics)

    results = {}
    for name, searcher in searchers.items():
        rows = []
        for number, question in enumerate(questions):
            hits = searcher.search(question["query"], 10)
            if kind == "topical":
                rel = [is_relevant(question, h.paper, topics) for h in hits]
                rows.append((ndcg_at(rel, totals[number]), sum(rel) / 10.0, reciprocal_rank(rel)))
            else:
                rel = [is_target(question, h.paper) for h in hits]
                rows.append((float(any(rel[:3])), reciprocal_rank(rel)))
        means = np.mean(rows, axis=0).tolist()
        keys = ("ndcg@10", "p@10", "mrr@10") if kind == "topical" else ("success@3", "mrr@10")
        results[name] = dict(zip(keys, means, strict=True))
        success = np.array([row[0] for row in rows])
        for key, members in groups.items():
            results[name][key] = float(success[members].mean()) if members.any() else None
    return results
