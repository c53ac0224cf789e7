"""Answering questions: dense and lexical retrieval, fused, with the taxonomy as evidence.

Ranking (mode "hybrid", the default), chosen with `semsearch eval search` (docs/evaluation.md):

1. candidates: the nearest papers by embedding and the best by BM25 (CANDIDATES of each);
2. fused score = DENSE_WEIGHT · cosine + (1 − DENSE_WEIGHT) · BM25 / (best BM25 for this question):
   a convex combination of scores on comparable scales, which keeps how much better the best
   matches are (rank fusion would throw that away, and with it known-item questions);
3. taxonomy evidence: the classifier reads the question (request words dropped, and with the model
   that has also seen our example questions) and gives a probability to each leaf of the
   taxonomy; a paper gains TAXONOMY_WEIGHT × the chance that it sits in the question's leaf: the
   dot product of the question's leaf probabilities with the paper's (`leaf_distributions`: its
   labelled leaves, or for a paper the survey does not label, the classifier's chance of each leaf,
   kept at ingest). Crediting a predicted paper with its whole distribution rather than its one
   predicted leaf does not bet everything on a guess that is wrong a third of the time;
4. what kind of question it is: a logistic model gives the chance that the question describes one
   paper (`one_paper_probability`) from how it is put (asked as a question, or stated; its length;
   whether it asks for a paper in the singular) and what it finds (how far its best direct match
   stands out, how peaked its leaf distribution is, how rare its words are, how near it is to an
   example question, a node description or a labelled paper). When that chance is one half or more
   the question is taken for one about a single paper: its DIRECT_FIRST best direct matches come
   first, ordered by their own match and the share of the question's distinctive words in their
   title (TITLE_SHARE_WEIGHT: a paper is recalled by its title's rarer words), and the taxonomy
   ranks the rest (the question's category, predicted with confidence, would otherwise bury the
   paper asked about under its labelled neighbours).
   Otherwise the taxonomy weighs TAXONOMY_WEIGHT, and a best direct match that stands out of the
   question's own scores (its lead over the next at least STANDS_OUT of the spread of the first ten)
   keeps third place: a new paper asked for by a few of its title's words is not buried under the
   labelled papers of its kind. The model is fitted on questions made from the corpus itself, never
   on an evaluation set (`scripts/eval_question_kind.py --form --paper-requests`): sentences and
   spans of abstracts asked about their own paper (inverse cloze; a third of them put as requests
   for one paper, "Which paper says that ...?") against the taxonomy's example questions and node
   names. It replaced a hand-set gate (the best direct match kept the first place when it led the
   next by 0.05), which recognised few described papers (docs/evaluation.md, "One ranking for both
   kinds of question"). What the question was taken for is in `--explain`;
5. a paper the question names: a method's name is the one word before its title's colon ("GPTQ:
   Accurate Post-Training Quantization ..."). When the question holds that word as a name (typed
   with a capital inside it or a digit, "QLoRA", "H2O", or as all the question says, "reformer
   paper"), the paper comes first, whatever the rest says (`named_papers`); in a question of more
   than NAMED_WORDS words, where a name is often the context of the paper described, second unless
   it stood first already. Its meaning is a name, not a topic: by meaning and words "GPTQ" was
   nearer "GPT Understands, Too". A question that is a paper's title (TITLE_WORDS words or more,
   compared as `normalize_title` keys), or from TITLE_PREFIX_WORDS words the beginning of one, puts
   that paper first (`titled_papers`), and a question that is an arXiv id asks for that paper alone.
   A question that is nothing but a name ("GPTQ", "the GPTQ paper") has no other words to rank the
   rest by: the named paper's related work follows it (`beside_named`).

Every score shown is between 0 and 1 and falls down the list: the fused score here, the cosine
(floored at 0) in dense mode, BM25 relative to the question's best match in lexical mode. Each
paper is shown once in every mode, by the survey's record where it has one (`Searcher.hits`: a
survey entry known by its title and the PDF-read arXiv copy of it are one paper).
"""

from __future__ import annotations

import heapq
import re
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from semsearch.errors import IndexDamaged, NotFound, SemsearchError
from semsearch.index import Index
from semsearch.lexical import STOPWORDS, question_terms, strip_request, tokenize
from semsearch.paper import Paper, TitlesHeld, normalize_title, one_line, parse_arxiv_id, same_paper_titles
from semsearch.requests_models import MAX_ABSTRACT, MAX_QUESTION, MAX_TITLE, SEARCHABLE, check_k
from semsearch.store import Prediction
from semsearch.taxonomy import UnknownCategory, is_under, load_taxonomy, resolve_node

MAX_PAPER_CHARS = MAX_TITLE + MAX_ABSTRACT  # a title and an abstract, as classify takes them
MODES = ("hybrid", "dense", "lexical")
CANDIDATES = 200
DENSE_WEIGHT = 0.7
TAXONOMY_WEIGHT = 2.0
# The question-kind model (step 4): features in this order, fitted by
# `python scripts/eval_question_kind.py --form --paper-requests --readers-voice --needs` on 769
# questions made from the dev index's own papers and taxonomy (survey offline +
# ../shared/data/arxiv_topics.jsonl); no evaluation question was used.
QUESTION_FEATURES = (
    "lead", "stands_out", "top", "agree", "peak", "specificity", "like_asked", "like_described", "like_paper",
    "asks", "words", "a_paper", "first_person",
)  # fmt: skip
ONE_PAPER_COEFFICIENTS = np.array(
    [0.8500, 1.9094, -0.7962, 0.1446, -1.1433, 0.6438, -0.5100, -1.4286, -0.8380, -4.3112, 3.1929, 5.6731, -4.3864]
)
ONE_PAPER_BIAS = -5.2919
ONE_PAPER = 0.5  # the chance of a question about one paper from which its best direct matches come first
DIRECT_FIRST = 3  # how many: the first screen a user reads
STANDS_OUT = 0.5  # a best direct match leading the next by half the spread of the first ten stays on it
ONE_PAPER_NOUN = re.compile(r"\b(paper|article|preprint|publication)\b", re.I)  # singular: "papers" is a kind of work
# The asker's own words, as typed in lower case too; not "i.e." nor the shouted "US".
FIRST_PERSON = re.compile(
    r"\b(?:[Ii](?!\.e\.)|[Ii]'m|[Ii]'ve|[Ii]'d|[Mm]y|[Mm]e|[Mm]ine|[Ww]e|[Ww]e're|[Ww]e've|[Ww]e'd|[Oo]urs?|[Uu]s)\b"
)
INTERROGATIVE = re.compile(
    r"^\W*(how|what|which|why|where|when|who|whom|whose|is|are|can|could|should|would|do|does|did|any)\b", re.I
)
NAMED_WORDS = 3  # a longer question (request words aside) gives a paper it names the second place
NAME_LOOKUP = 20  # the question's best matches by BM25, and by meaning, searched for a paper it names
TITLE_WORDS = 4  # a question of this many words or more that is a paper's title puts the paper first
TITLE_SHARE_WEIGHT = 0.2  # what the question's words in a title add to a first-screen direct match
TITLE_PREFIX_WORDS = 6  # ... and from this many, one that a paper's title begins with
COMMON_NAME_SHARE = 0.01  # a name typed in lower case that more of the papers hold is read as a word
TWIN_ROOM = 2  # k papers are shown from TWIN_ROOM × k ranked: other records of a paper are left out
TWIN_READ = 10  # ... of which k + TWIN_READ are read first
_NAME = re.compile(r"\w[\w.+()-]*")
DISTRIBUTION_CACHE = 500_000  # papers whose leaf distribution a searcher keeps (~200 B each)
_UNREAD = object()


@dataclass
class Evidence:
    """Why a hit ranks where it does (`semsearch search --explain`)."""

    dense: float = 0.0
    lexical: float = 0.0  # raw BM25
    lexical_share: float = 0.0  # BM25 relative to the best match for the question
    category: str | None = None  # the paper's category that matched the question
    category_probability: float = 0.0  # chance that the paper sits in the question's leaf
    direct: bool = False  # the best direct match of a question taken for one about a single paper
    known_item: bool = False  # the question was taken for one about a single paper
    one_paper: float = 0.0  # the chance, by the question-kind model, that it asks about one paper
    taxonomy_weight: float = 0.0  # what the category evidence weighed for this question
    named: bool = False  # the question names this paper (step 5)
    title_share: float = 0.0  # of the question's words (by IDF), the share its title holds (step 4)
    by_id: bool = False  # the question is this paper's arXiv id: no match was scored
    beside_named: bool = False  # the question is a name alone: ranked by nearness to the named paper

    @property
    def question(self) -> str:
        """What the question was taken for. "not judged" where no kind was told (dense or lexical
        mode, `--no-taxonomy`, no labelled paper): it read "a kind of work" there, a claim never made."""
        if self.by_id:
            return "an arXiv id"
        if self.taxonomy_weight == 0:
            return "not judged"
        return "one paper" if self.known_item else "a kind of work"

    @property
    def direct_score(self) -> float:
        """Dense and lexical evidence only."""
        return DENSE_WEIGHT * self.dense + (1 - DENSE_WEIGHT) * self.lexical_share

    def to_dict(self) -> dict:
        return {
            "dense": round(self.dense, 4),
            "lexical": round(self.lexical, 4),
            "lexical_share": round(self.lexical_share, 4),
            "category": self.category,
            "category_probability": round(self.category_probability, 4),
            "direct": self.direct,
            "question": self.question,
            "one_paper": round(self.one_paper, 4),
            "taxonomy_weight": round(self.taxonomy_weight, 4),
            "named": self.named,
            "title_share": round(self.title_share, 4),
            "beside_named": self.beside_named,
        }


@dataclass
class Hit:
    paper: Paper
    score: float
    prediction: Prediction | None = None  # the classifier's, for papers the survey does not label
    vec_id: int | None = None
    evidence: Evidence | None = None
    categories: list[str] = field(default_factory=list)  # as stored for the taxonomy searched
    category_source: str | None = None  # survey, user, predicted, or a list's label ("list")
    ranked_as: int | None = None  # the record whose match ranked it (another, when the survey's is shown)

    def to_dict(self, explain: bool = False) -> dict:
        data = {
            "id": self.paper.id,
            "title": self.paper.title,
            "score": round(float(self.score), 6),
            "year": self.paper.year,
            "categories": self.categories,
            "category_source": self.category_source,
            "url": self.paper.link(),
        }
        if explain and self.evidence is not None:
            data["explain"] = self.evidence.to_dict()
        return data


@dataclass
class Filters:
    year_from: int | None = None
    year_to: int | None = None
    category: str | None = None

    def __post_init__(self) -> None:
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise SemsearchError(f"no year is both from {self.year_from} and to {self.year_to}")

    def active(self) -> bool:
        return any(value is not None for value in (self.year_from, self.year_to, self.category))


def fused_score(evidence: Evidence, weight: float = TAXONOMY_WEIGHT) -> float:
    """The hybrid ranking score of one paper for one question, between 0 and 1: its direct match
    and, weighing `weight` against it, the chance that it sits where the question points."""
    return min(max((evidence.direct_score + weight * evidence.category_probability) / (1 + weight), 0.0), 1.0)


def stands_out(evidence: dict[int, Evidence]) -> float:
    """How far the best direct match leads the next, as a share of the spread of the first ten
    direct scores: 1 when the rest are level, near 0 when it is one of a crowd. Free of the scale
    of the scores, which differs from question to question."""
    direct = heapq.nlargest(10, (e.direct_score for e in evidence.values())) or [0.0]
    top, second, tenth = direct[0], direct[min(1, len(direct) - 1)], direct[-1]
    return (top - second) / (top - tenth) if top > tenth else 0.0


def first_screen_score(e: Evidence) -> float:
    """How a best direct match of a question about one paper ranks among the first DIRECT_FIRST:
    its own match, and the question's words found in its title. Which papers are first is left to
    the match alone: with title words choosing them too, a described paper with an abstract fell
    out of the first three (known items with an abstract 0.875 → 0.833, docs/evaluation.md)."""
    return e.direct_score + TITLE_SHARE_WEIGHT * e.title_share


def rank_hybrid(
    evidence: dict[int, Evidence], k: int, weight: float = TAXONOMY_WEIGHT, one_paper: float = 0.0
) -> list[tuple[int, float]]:
    """(vec_id, fused score) of the best k. A question whose chance of asking about one paper
    (`one_paper`) is ONE_PAPER or more gets its DIRECT_FIRST best direct matches first, by their own
    match, and below them the taxonomy's ranking as for any question: the paper asked about is
    among the first, and a request for a kind of work taken for one about a paper still gets that
    kind of work below. Any other question keeps its best direct match on the first screen (third
    place, if lower) when it stands out of the question's own scores (`stands_out` ≥ STANDS_OUT):
    a new paper named by its title's words is not buried under labelled papers of its kind.
    Papers placed by their own match are marked `Evidence.direct`. Scores fall down the list."""
    known = weight > 0 and one_paper >= ONE_PAPER
    for e in evidence.values():
        e.known_item, e.one_paper, e.taxonomy_weight = known, one_paper, weight
    scored = sorted(((v, fused_score(e, weight)) for v, e in evidence.items()), key=lambda item: -item[1])
    if weight <= 0 or not evidence:
        return scored[:k]
    if known:
        first = sorted(evidence, key=lambda v: -evidence[v].direct_score)[:DIRECT_FIRST]
        first.sort(key=lambda v: -first_screen_score(evidence[v]))
        ranked = []
        for v in first:
            evidence[v].direct = True
            # A direct match's own score, shown between 0 and 1: a cosine can be negative, and where
            # filters leave few papers the best direct matches can be unrelated ones.
            own = min(max(first_screen_score(evidence[v]), 0.0), 1.0)
            ranked.append((v, min(own, ranked[-1][1]) if ranked else own))
        # Below them the taxonomy's order, its scores scaled under the last direct match's: clipped
        # instead, a dozen papers showed one score and the order among them was lost to the reader.
        rest = [(v, score) for v, score in scored if v not in first]
        scale = min(1.0, ranked[-1][1] / rest[0][1]) if rest and rest[0][1] > 0 else 1.0
        last = ranked[-1][1]  # scaled, a score can land a rounding error above it
        return (ranked + [(v, min(score * scale, last)) for v, score in rest])[:k]
    best = max(evidence, key=lambda v: evidence[v].direct_score)
    place = next(i for i, (v, _) in enumerate(scored) if v == best)
    if place > DIRECT_FIRST - 1 and stands_out(evidence) >= STANDS_OUT:
        evidence[best].direct = True
        above, displaced = scored[DIRECT_FIRST - 2][1], scored[DIRECT_FIRST - 1][1]
        del scored[place]
        scored.insert(DIRECT_FIRST - 1, (best, (above + displaced) / 2))  # between its neighbours' scores
    return scored[:k]


def paper_name(title: str) -> str | None:
    """The name a title gives its method: the one word before its colon ("GPTQ", "LLM.int8()",
    "FlashAttention-2"), in lower case; None for a title without one."""
    head, colon, _ = title.partition(":")
    words = head.split()
    return words[0].lower() if colon and len(words) == 1 and len(words[0]) >= 2 else None


def names_in(query: str) -> set[str]:
    """The words of a question that may name a paper, in lower case: any typed like a name (a
    capital after its first letter, or a digit: "QLoRA", "H2O", "int8"), and the word of a question
    that says nothing else ("reformer", "the mamba paper"). A lower-case word in a longer question is
    a word: "zero shot quantization" does not ask for ZeRO."""
    text = unicodedata.normalize("NFKC", query)  # full-width letters, ligatures
    # Names are letters and digits joined by . - + ( ): "LLM.int8()", "FlashAttention-2", "LoRA+";
    # anything else (quotes, 's, slashes, dashes) ends one. Each also without a trailing . or -.
    tokens = {form for t in _NAME.findall(text) for form in (t, t.rstrip(".-"), t.strip("()")) if len(form) >= 2}
    alone = len([t for t in _NAME.findall(strip_request(text).lower()) if t not in STOPWORDS]) <= 1
    return {t.lower() for t in tokens if alone or any(c.isupper() for c in t[1:]) or any(c.isdigit() for c in t)}


_VERSION_NUMBER = re.compile(r"v?\d{1,2}")
_VERSION = re.compile(r"(\w[\w.+()-]*?)(?:[\s-]+v?|\s*v)(\d{1,2})(?![\w.])", re.IGNORECASE)


def name_alone(query: str, names: set[str]) -> bool:
    """Whether the question, request and stop words aside, is nothing but names among `names` and
    version numbers ("GPTQ", "the LoRA paper", "FlashAttention 2"): it says no more about a topic."""
    said = strip_request(unicodedata.normalize("NFKC", query)).lower()
    words = [w for w in _NAME.findall(said) if w not in STOPWORDS and w != "s"]  # "GPTQ's": the name's "s"
    keys = {name_key(n) for n in names}
    return bool(words) and all(name_key(w.rstrip(".-")) in keys or _VERSION_NUMBER.fullmatch(w) for w in words)


def name_key(name: str) -> str:
    """A name as compared with a title's: without its hyphens ("FlashAttention2" is "FlashAttention-2")."""
    return name.replace("-", "")


def versions_in(query: str) -> dict[str, str]:
    """The versions a question asks for by a name and a number typed apart ("FlashAttention 2",
    "FlashAttention v2"), as {the versioned name's key: the name}: "flashattention2": "flashattention".
    The name must be one the question would name without its number."""
    text = unicodedata.normalize("NFKC", query)
    found = {}
    for match in _VERSION.finditer(text):
        base = match.group(1).lower()
        if base in names_in(text[: match.start(1)] + match.group(1) + text[match.end() :]):
            found[name_key(base) + match.group(2)] = base
    return found


def rank_named(
    ranked: list[tuple[int, float]], named: list[int], evidence: dict[int, Evidence], k: int, after: int = 0
) -> list[tuple[int, float]]:
    """`ranked` with the papers the question names (best direct match first) placed after its first
    `after` papers (never lower than one of them already stood), each shown between the score of the
    paper it now precedes and the one before it, so scores still fall down the list."""
    after = min([after, *(i for i, (v, _) in enumerate(ranked) if v in named)])
    rest = [(v, s) for v, s in ranked if v not in named]
    shown = rest[:after]
    floor = rest[after][1] if len(rest) > after else 0.0
    for v in sorted(named, key=lambda v: -evidence[v].direct_score):
        evidence[v].named = True
        ceiling = shown[-1][1] if shown else 1.0
        own = min(max(evidence[v].direct_score, 0.0), 1.0)
        # Its own score when that fits between its neighbours', else the midpoint: a tie with the
        # paper below would not tell the reader which the question named.
        shown.append((v, own if floor < own <= ceiling else (floor + ceiling) / 2))
    return (shown + rest[after:])[:k]


def question_form(query: str) -> tuple[float, float, float, float]:
    """How the question is put: asked as one (a question mark, or an interrogative first word), the
    log of its length in words, whether it asks for a paper in the singular ("which paper ...?",
    "the paper that ..."), and whether the asker speaks of themselves ("my model", "we need"). A
    kind of work is asked for, named in a few words, or needed for one's own problem; a paper one
    remembers is described (its authors in the third person), or asked for as one paper."""
    asks = "?" in query or bool(INTERROGATIVE.match(query))
    return (
        float(asks),
        float(np.log(len(query.split()) + 1)),
        float(bool(ONE_PAPER_NOUN.search(query))),
        float(bool(FIRST_PERSON.search(query))),
    )


def peak_as_fitted(leaves: np.ndarray, classifier) -> float:
    """The peak of the question's leaf distribution at the papers' softmax temperature, on which
    the question-kind model was fitted (ONE_PAPER_COEFFICIENTS) before questions had their own:
    p ** (T_question / T_paper), renormalised, is exactly the softmax of the same scores at T_paper."""
    powered = leaves ** (classifier.question_temperature / classifier.temperature)
    return float(powered.max() / powered.sum())


def question_features(
    query: str, vector: np.ndarray, evidence: dict[int, Evidence], leaves: np.ndarray, classifier, lexical
) -> np.ndarray:
    """The question-kind model's features (QUESTION_FEATURES): how far the best direct match leads
    the next (and the next nine), how good it is, whether dense and BM25 agree on it, how peaked
    the question's leaf distribution is, how rare its words are, how near it is to an example
    question, a node description and a labelled paper (cosine), and its form."""
    values = list(evidence.values())
    direct = heapq.nlargest(2, (e.direct_score for e in values)) or [0.0]
    top, second = direct[0], direct[-1]
    agree = float(bool(values) and max(values, key=lambda e: e.dense) is max(values, key=lambda e: e.lexical))
    n, n_leaves = len(classifier.labelled_ids), len(classifier.leaves)
    rows = classifier.train_vectors
    vector = np.asarray(vector, dtype=np.float32).reshape(-1)
    asked = rows[n + n_leaves : len(rows) - classifier.opening_rows]  # our example questions
    return np.array(
        [
            top - second,
            stands_out(evidence),
            top,
            agree,
            peak_as_fitted(leaves, classifier),
            lexical.specificity(query),
            float((asked @ vector).max()) if len(asked) else 0.0,
            float((rows[n : n + n_leaves] @ vector).max()),
            float((rows[:n] @ vector).max()) if n else 0.0,
            *question_form(query),
        ]
    )


def one_record_each(
    ranked: list[tuple[int, float]],
    papers: dict[int, Paper],
    k: int,
    left_out: TitlesHeld | None = None,
    shown_as: dict[int, int] | None = None,
) -> list[tuple[int, float, int]]:
    """(shown, score, ranked) for the first k of `ranked` with each paper once, at the place of its
    best-ranked record, and none of the papers `left_out` holds (`TitlesHeld`: a survey entry known
    by its title and the PDF-read arXiv copy of it; 13 of 264 dev and own questions showed both in
    their first ten). A record is shown as `shown_as` says (the survey's record of the paper; a
    rule of the record, not of its rank, so every k agrees). A paper is held at most twice, so
    TWIN_ROOM × k ranked give k."""
    kept: list[tuple[int, float, int]] = []
    shown, shown_as = TitlesHeld(strict=True), shown_as or {}
    for vec_id, score in ranked:
        record = shown_as.get(vec_id, vec_id)
        paper = papers[record]
        arxiv_id = paper.arxiv_id or papers[vec_id].arxiv_id  # the survey's record, for the copy it shows
        if left_out is not None and left_out.find(paper.title, arxiv_id) is not None:
            continue
        if shown.find(paper.title, arxiv_id) is None:
            kept.append((record, score, vec_id))
            shown.add(paper.title, arxiv_id)
            if len(kept) == k:
                break
    return kept


def one_paper_probability(features: np.ndarray) -> float:
    """The chance that a question with these features asks about one paper (logistic model)."""
    return float(1.0 / (1.0 + np.exp(-(ONE_PAPER_BIAS + ONE_PAPER_COEFFICIENTS @ features))))


def taken_for(e: Evidence) -> str:
    """What a question was taken for, and so how its papers were ranked, in a sentence."""
    if e.taxonomy_weight == 0:
        return "Ranked by the papers' own match (meaning and words), the taxonomy left out."
    if e.known_item:
        return (
            f"Taken for a question about one paper ({e.one_paper:.0%} likely by how it is put and what it "
            f"finds), so the {DIRECT_FIRST} papers that match it best by their own text come first, and "
            "where a paper sits in the taxonomy ranks the rest."
        )
    return (
        f"Taken for a question about a kind of work ({1 - e.one_paper:.0%} likely), so where a paper "
        f"sits in the taxonomy weighs {e.taxonomy_weight:.0f} times its own match."
    )


def explanation(hits: list[Hit], mode: str = "hybrid") -> str:
    """In words: what the question was taken for, and what put the first results first."""
    if not hits or hits[0].evidence is None:
        return ""
    if hits[0].evidence.by_id:
        return f"The question is the arXiv id of “{hits[0].paper.title}”: that paper alone."
    if mode == "dense":
        return "Ranked by meaning alone (embedding cosine)."
    if mode == "lexical":
        return "Ranked by shared words alone (BM25, shown relative to the best match)."
    from semsearch.taxonomy import leaf_name

    named = [i for i, h in enumerate(hits) if h.evidence is not None and h.evidence.named]
    if named:
        titles = " and ".join(f"“{hits[i].paper.title}”" for i in named)
        place = "first" if named[0] == 0 else "second, after the best match of a longer question"
        others = [h for h in hits if not h.evidence.named]
        # With nothing below the named paper (k = 1), what the question was taken for is still said.
        rest = explanation(others, mode) if others else taken_for(hits[0].evidence)
        if others and others[0].evidence.beside_named:
            rest = "The question is the name alone, so the papers nearest that paper follow it (its related work)."
        return f"The question names {titles}, put {place}. {rest}".strip()
    first = hits[:3]
    rest = hits[3:] or first
    e = first[0].evidence
    said = taken_for(e)

    def mean(values) -> float:
        return float(np.mean(list(values)))

    direct_lead = mean(h.evidence.direct_score for h in first) - mean(h.evidence.direct_score for h in rest)
    credit_lead = e.taxonomy_weight * (
        mean(h.evidence.category_probability for h in first) - mean(h.evidence.category_probability for h in rest)
    )
    categories = [h.evidence.category for h in first if h.evidence.category]
    if categories and credit_lead > direct_lead:
        common = max(set(categories), key=categories.count)
        chance = mean(h.evidence.category_probability for h in first)
        said += (
            f" The first results lead mostly because they likely sit where the question points "
            f"({leaf_name(common)}; {chance:.0%} on average)."
        )
    else:
        said += (
            f" The first results lead mostly because their own text matches the question best "
            f"(meaning {max(0.0, mean(h.evidence.dense for h in first)):.2f}, words "  # a cosine, floored as scores are
            f"{mean(h.evidence.lexical_share for h in first):.0%} of the best match)."
        )
    return said


def leaf_distributions(store, vec_ids, cache: dict | None = None) -> dict[int, tuple[list[str], np.ndarray]]:
    """Each categorised paper's categories and its chance of each taxonomy leaf: the classifier's
    own for an in-scope prediction, else its categories' leaves shared evenly (`leaf_spread`).
    The chance that two papers, or a paper and a question, share a leaf is the dot product.
    A generation never changes, so a caller that keeps `cache` reads each paper once."""
    cache = {} if cache is None else cache
    found, missing = {}, []
    for vec_id in vec_ids:
        entry = cache.get(vec_id, _UNREAD)
        if entry is _UNREAD:
            missing.append(vec_id)
        elif entry is not None:
            found[vec_id] = entry
    if missing:
        taxonomy = load_taxonomy()
        if len(cache) > DISTRIBUTION_CACHE:
            cache.clear()
        evidence = store.category_evidence(missing)
        for vec_id in missing:
            categories, _, spread = evidence.get(vec_id, ([], None, None))
            usable = spread is not None and len(spread) == len(taxonomy.leaves)
            entry = (categories, spread if usable else taxonomy.leaf_spread(categories)) if categories else None
            cache[vec_id] = entry
            if entry is not None:
                found[vec_id] = entry
    return found


def check_query(query: str) -> str:
    """The question in compatibility form (full-width letters and digits, ligatures as plain ones:
    "ＧＰＴＱ" is GPTQ, "２３０６.００９７８" an arXiv id), control characters dropped and white space
    collapsed; refused if empty, or with no letter or digit to search by ("🚀", "???" answered ten
    papers at random, explained as a question about a kind of work)."""
    if len(query) > MAX_QUESTION:  # as sent, as /openapi.json says: "ﬃ" folds to three letters
        raise SemsearchError(f"the question is longer than {MAX_QUESTION} characters")
    text = one_line(unicodedata.normalize("NFKC", query))
    if not text:
        raise SemsearchError("the question is empty")
    if not SEARCHABLE.search(text):  # the rule /openapi.json publishes as the question's pattern
        raise SemsearchError("the question has no letter or digit to search by")
    return text


class Searcher:
    """Loads what it needs once (model, lexical index, classifier) and answers many questions."""

    def __init__(
        self,
        index: Index,
        embedder=None,
        *,
        mode: str = "hybrid",
        taxonomy: bool = True,
        taxonomy_name: str | None = None,
    ):
        """`taxonomy_name`: a taxonomy added from a curated list, whose categories then stand in for
        the survey's (evidence, filters and the categories shown); None is the survey's."""
        from semsearch.lists import SURVEY, taxonomy_for

        if mode not in MODES:
            raise SemsearchError(f"unknown search mode {mode!r} (choose from {', '.join(MODES)})")
        self.index = index
        self.taxonomy_name = None if taxonomy_name in (None, SURVEY) else taxonomy_name
        self.taxonomy = taxonomy_for(index.store, self.taxonomy_name)  # refuses an unknown name
        if embedder is not None:
            self.embedder = embedder  # else loaded on first use: related work for an indexed paper needs none
        self.mode = mode
        self.use_taxonomy = taxonomy and mode == "hybrid"
        self.distributions: dict = {}  # vec_id -> (categories, leaf distribution) or None, read once
        self.twin_ids: dict[int, bool] = {}  # survey record -> `one_arxiv_twin`, looked up once

    @cached_property
    def embedder(self):
        from semsearch.embeddings import embedder_for

        return embedder_for(self.index.manifest.model, index_dir=self.index.directory)

    @cached_property
    def classifier(self):
        """The taxonomy's classifier saved in the index, else (an index written by another version)
        one trained now."""
        from semsearch.lists import classifier_for_taxonomy

        embed = lambda texts: self.embedder.encode(texts)  # noqa: E731 - the model loads only if needed
        return classifier_for_taxonomy(self.index.store, self.taxonomy_name, embed)

    @cached_property
    def list_user_labels(self) -> dict[int, str]:
        """The list's categories that come from a user (`label --taxonomy`), not from the list."""
        from semsearch.lists import user_labels

        return user_labels(self.index.store, self.taxonomy_name) if self.taxonomy_name else {}

    @cached_property
    def list_labels(self) -> dict[int, list[str]]:
        from semsearch.lists import effective_labels

        if self.taxonomy_name is None:
            return {}
        return effective_labels(self.index.store, self.taxonomy_name, self.list_user_labels)

    def leaf_distributions(self, vec_ids) -> dict[int, tuple[list[str], np.ndarray]]:
        """Each categorised paper's categories and chance of each leaf, in the taxonomy searched: the
        survey's (stored at ingest), or a list's: its labels, else a prediction made now (kept)."""
        if self.taxonomy_name is None:
            return leaf_distributions(self.index.store, vec_ids, self.distributions)
        cache = self.distributions
        missing = [v for v in vec_ids if v not in cache]
        unlabelled = [v for v in missing if v not in self.list_labels]
        for v in missing:
            if v in self.list_labels:
                source = "user" if v in self.list_user_labels else "list"
                cache[v] = (self.list_labels[v], self.taxonomy.leaf_spread(self.list_labels[v]), source)
        if unlabelled and self.classifier is not None:
            store = self.index.store
            papers, vectors = store.papers_by_vec_id(unlabelled), store.embeddings_for(unlabelled)
            known = [v for v in unlabelled if v in papers and v in vectors]
            texts = [papers[v].embedding_text() for v in known]
            placed = (
                self.classifier.classify(texts, np.vstack([vectors[v] for v in known]), explain=False) if known else []
            )
            for v, result in zip(known, placed, strict=True):
                cache[v] = ([result.category], result.leaf_probabilities, "predicted") if result.in_scope else None
        return {v: cache[v][:2] for v in vec_ids if cache.get(v) is not None}

    def embed_query(self, query: str) -> np.ndarray:
        return self.embed_paper(check_query(query))

    def embed_paper(self, text: str) -> np.ndarray:
        """A paper's title and abstract as a vector: not held to a question's length (an abstract
        runs past 2,000 characters; `related --arxiv` refused 77 of the dev index's papers)."""
        if len(text) > MAX_PAPER_CHARS:
            raise SemsearchError(f"the paper's text is longer than {MAX_PAPER_CHARS} characters")
        vector = self.embedder.encode([text])
        if vector.shape[1] != self.index.manifest.dimension:
            raise SemsearchError(
                f"model {self.embedder.model_name!r} gives {vector.shape[1]}-d vectors but the index holds "
                f"{self.index.manifest.dimension}-d ones"
            )
        return vector

    def allowed_vec_ids(self, filters: Filters) -> np.ndarray | None:
        if not filters.active():
            return None
        store = self.index.store
        if self.taxonomy_name and filters.category:  # under a node of the list: its labelled papers
            node = self.resolve_category(filters.category)
            under = {v for v, cats in self.list_labels.items() if any(is_under(c, node) for c in cats)}
            years = store.vec_ids_where(year_from=filters.year_from, year_to=filters.year_to)
            return np.asarray(sorted(under & set(years)), dtype=np.int64)
        categories = [self.resolve_category(filters.category)] if filters.category else []
        ids = store.vec_ids_where(year_from=filters.year_from, year_to=filters.year_to, categories=categories)
        return np.asarray(ids, dtype=np.int64)

    def resolve_category(self, name: str) -> str:
        """The node of this searcher's taxonomy that `name` means. A name that is none of its nodes
        but one of another taxonomy the index holds (the survey, or another list) is refused saying
        which, and how to ask it there: the user named the wrong taxonomy, or none."""
        try:
            return self.taxonomy.resolve(name)
        except UnknownCategory:
            asked = f"the list {self.taxonomy_name}" if self.taxonomy_name else "the survey"
            others = [(t["name"], tuple(t["nodes"])) for t in self.index.store.taxonomies()]
            others = [(None, None)] * bool(self.taxonomy_name) + [o for o in others if o[0] != self.taxonomy_name]
            for other, nodes in others:  # None: the survey, resolve_node's own nodes
                try:
                    resolve_node(name, nodes)
                except SemsearchError:
                    continue
                if other:
                    where = f"a heading of the list {other} (add --taxonomy {other})"
                else:
                    where = "a survey node (leave out --taxonomy)"
                raise UnknownCategory(f"unknown category {name!r} in {asked}: {where}") from None
            raise

    def nearest(self, vector: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[tuple[int, float]]:
        """(vec_id, cosine) of the k nearest papers, optionally only among `allowed` vec_ids."""
        from semsearch import vectors as vector_index

        vectors = self.index.vectors
        k = min(k, vectors.ntotal if allowed is None else len(allowed))
        if k <= 0:
            return []
        scores, ids = vector_index.search(vectors, vector, k, allowed)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0], strict=True) if i >= 0]

    def hits(
        self,
        ranked: list[tuple[int, float]],
        k: int | None = None,
        *,
        left_out: TitlesHeld | None = None,
        allowed: np.ndarray | None = None,
    ) -> list[Hit]:
        """The papers of `ranked` as hits with their categories; with `k`, the first k, each paper
        once, shown by its survey record where it has one among the `allowed`, and none `left_out`
        holds (`one_record_each`: `ranked` holds TWIN_ROOM × k for that). A hit shown by another
        record than the one ranked says which in `ranked_as`."""
        store = self.index.store
        # Records are read as far as k needs: a few beyond it, and the rest only if twins took them.
        size = len(ranked) if k is None else min(len(ranked), k + TWIN_READ)
        while True:
            papers = store.papers_by_vec_id(vec_id for vec_id, _ in ranked[:size])
            if unknown := [v for v, _ in ranked[:size] if v not in papers]:
                # The vectors, BM25 and papers.db of one generation hold the same papers: one the others
                # lack was dropped from the answer without a word (ids changed, checksums made to match).
                raise IndexDamaged(
                    f"index at {self.index.directory}: {self.index.generation_dir.name}'s vector or BM25 index "
                    f"names paper number {unknown[0]}, which its papers.db does not hold; rebuild the index"
                )
            read = ranked[:size]
            if k is None:
                shown = [(v, score, v) for v, score in read]
                break
            shown_as = self.survey_records_of(papers, allowed)
            papers.update(store.papers_by_vec_id(set(shown_as.values()) - set(papers)))
            shown = one_record_each(read, papers, k, left_out, shown_as)
            if len(shown) >= k or size >= len(ranked):
                break
            size = len(ranked)
        predictions = store.predictions(v for v, _, _ in shown if not papers[v].survey_categories)
        hits = [Hit(papers[v], score, predictions.get(v), v, ranked_as=r) for v, score, r in shown]
        if self.taxonomy_name:
            self.leaf_distributions([h.vec_id for h in hits])
            found = {h.vec_id: (e[0], e[2]) for h in hits if (e := self.distributions.get(h.vec_id))}
        else:
            found = {v: entry[:2] for v, entry in store.category_evidence(h.vec_id for h in hits).items()}
        for hit in hits:
            hit.categories, hit.category_source = found.get(hit.vec_id, ([], None))
        return hits

    @cached_property
    def survey_titles(self) -> tuple[TitlesHeld, dict[str, int]]:
        """The survey's papers by title (`TitlesHeld`) and their vec_ids by title."""
        filed = self.index.store.survey_papers()
        return TitlesHeld((p.title, p.arxiv_id) for p in filed.values()), {p.title: v for v, p in filed.items()}

    def one_arxiv_twin(self, survey: int) -> bool:
        """Whether the papers whose titles begin with the survey record's title (a range of the
        title index) carry one arXiv id at most among those it could be: "Textbooks Are All You
        Need" (the survey's, no id) is phi-1 or phi-1.5 by its title alone, and then neither. Read
        once per record: a question whose results hold the twin asked again reads nothing."""
        if survey in self.twin_ids:
            return self.twin_ids[survey]
        store = self.index.store
        record = store.papers_by_vec_id([survey])[survey]
        found = store.papers_by_vec_id(store.vec_ids_with_title_key(normalize_title(record.title), prefix=True))
        ids = {p.arxiv_id for p in found.values() if p.arxiv_id and same_paper_titles(record.title, p.title)}
        self.twin_ids[survey] = len(ids) <= 1
        return self.twin_ids[survey]

    def papers_held(self, papers) -> TitlesHeld:
        """The papers given, and the survey's record of each that has one, as a result list holds
        them (`TitlesHeld`, strict): left out of their own related work or recommendations."""
        papers = list(papers)
        held = TitlesHeld(((p.title, p.arxiv_id) for p in papers), strict=True)
        survey = self.survey_records_of(dict(enumerate(papers)), None)
        records = self.index.store.papers_by_vec_id(set(survey.values()))
        for i, record in survey.items():
            held.add(records[record].title, papers[i].arxiv_id)
        return held

    def survey_records_of(self, papers: dict[int, Paper], allowed: np.ndarray | None) -> dict[int, int]:
        """{vec_id: the survey's record of the same paper} for the papers the survey files under
        another record (a title only, beside the PDF-read arXiv copy), where that record is
        `allowed`: the survey's title and place are the ones shown (known-item questions name the
        paper by that title)."""
        held, by_title = self.survey_titles
        found = {
            v: by_title[title]
            for v, paper in papers.items()
            if not paper.survey_categories and (title := held.find(paper.title, paper.arxiv_id)) is not None
        }
        ids: dict[int, set[str | None]] = {}
        for v, survey in found.items():
            ids.setdefault(survey, set()).add(papers[v].arxiv_id)
        # A sequel's title runs on from it too: a survey record two arXiv papers could be is neither.
        ambiguous = {survey for survey, its in ids.items() if len(its) > 1 or not self.one_arxiv_twin(survey)}
        found = {v: survey for v, survey in found.items() if survey not in ambiguous}
        if allowed is not None and found:
            inside = set(allowed[np.isin(allowed, list(found.values()))].tolist())
            found = {v: survey for v, survey in found.items() if survey in inside}
        return found

    def question_leaves(self, query: str, vector: np.ndarray) -> np.ndarray | None:
        """The chance of each taxonomy leaf (document order) that the question is about, by the
        classifier's question model (request words dropped); None without a classifier."""
        if self.classifier is None:
            return None
        classifier = self.classifier
        text = strip_request(query)
        return classifier.probabilities(classifier.leaf_scores([text], vector, questions=True), questions=True)[0]

    def search(self, query: str, k: int = 10, filters: Filters | None = None) -> list[Hit]:
        check_k(k)
        query = check_query(query)
        allowed = self.allowed_vec_ids(filters or Filters())
        if (arxiv_id := parse_arxiv_id(query)) is not None:
            return self._by_arxiv_id(arxiv_id, allowed)
        if self.mode == "lexical":
            return self._lexical_only(query, k, allowed)
        vector = self._first_vector(query) if "embedder" not in self.__dict__ else self.embed_query(query)
        if self.mode == "dense":
            hits = self.hits(self.nearest(vector, TWIN_ROOM * k, allowed), k, allowed=allowed)
            for hit in hits:
                hit.evidence = Evidence(dense=hit.score)
                hit.score = min(max(hit.score, 0.0), 1.0)  # a cosine; below 0 is as unlike as it gets
            return hits
        return self._hybrid(query, vector, k, allowed)

    def _by_arxiv_id(self, arxiv_id: str, allowed: np.ndarray | None) -> list[Hit]:
        """A question that is an arXiv id (`2305.05920`, `arXiv:…v2`, its abs or pdf URL) asks for
        that paper: its words would match nothing, and its vector papers at random."""
        vec_id = self.index.store.find(arxiv_id)
        if vec_id is None:
            raise NotFound(
                f"no paper {arxiv_id} in the index (`semsearch ingest arxiv --id {arxiv_id}` adds it; "
                f"`semsearch related --arxiv {arxiv_id}` finds its related work without adding it)"
            )
        if allowed is not None and not np.isin(vec_id, allowed):
            return []
        hits = self.hits([(vec_id, 1.0)])
        for hit in hits:
            hit.evidence = Evidence(one_paper=1.0, known_item=True, named=True, by_id=True)
        return hits

    def _first_vector(self, query: str) -> np.ndarray:
        """The first question's vector, embedded while the rest loads: the encoder's session starts
        in native code on the other core as the lexical index, vectors and classifier are read."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(self.embed_query, query)
            self.index.vectors  # noqa: B018 - loading is the point
            if self.mode == "hybrid":
                self.index.lexical  # noqa: B018
                if self.use_taxonomy:
                    self.classifier  # noqa: B018
            return pending.result()

    def _lexical_scores(self, query: str, allowed: np.ndarray | None) -> tuple[np.ndarray, dict[int, float]]:
        """BM25 of every paper (in the lexical index's order), and the best CANDIDATES among the
        allowed ones by vec_id with their scores."""
        lexical = self.index.lexical
        scores = lexical.scores(query)
        if allowed is not None:
            scores = np.where(np.isin(lexical.vec_ids, allowed), scores, 0.0)
        n = min(CANDIDATES, int((scores > 0).sum()))
        best = np.argpartition(-scores, n - 1)[:n] if n else np.array([], dtype=np.int64)
        return scores, dict(zip(lexical.vec_ids[best].tolist(), scores[best].tolist(), strict=True))

    def _lexical_only(self, query: str, k: int, allowed: np.ndarray | None) -> list[Hit]:
        _, best = self._lexical_scores(query, allowed)
        hits = self.hits(sorted(best.items(), key=lambda item: -item[1])[: TWIN_ROOM * k], k, allowed=allowed)
        top = max(best.values(), default=0.0)
        for hit in hits:  # BM25 is unbounded: shown relative to the best match, as the hybrid uses it
            hit.evidence = Evidence(lexical=hit.score, lexical_share=hit.score / top if top else 0.0)
            hit.score = hit.evidence.lexical_share
        return hits

    def evidence(
        self, query: str, vector: np.ndarray, allowed: np.ndarray | None = None, question: np.ndarray | None = None
    ) -> dict[int, Evidence]:
        """Every candidate's evidence for the question (vec_id -> Evidence); nothing is ranked yet.
        `question`: its leaf distribution when the caller has read it already."""
        dense = dict(self.nearest(vector, CANDIDATES, allowed))
        scores, lexical_best = self._lexical_scores(query, allowed)
        missing = [v for v in lexical_best if v not in dense]
        for vec_id, embedding in self.index.store.embeddings_for(missing).items():
            dense[vec_id] = float(embedding @ vector[0])
        top_lexical = float(scores.max()) if len(scores) else 0.0
        lexical = dict(zip(dense, self.index.lexical.score_of(scores, list(dense)).tolist(), strict=True))
        if question is None and self.use_taxonomy:
            question = self.question_leaves(query, vector)
        filed = self.leaf_distributions(dense) if question is not None else {}
        evidence = {}
        for vec_id, cosine in dense.items():
            raw = lexical.get(vec_id, 0.0)
            evidence[vec_id] = e = Evidence(
                dense=cosine, lexical=raw, lexical_share=raw / top_lexical if top_lexical else 0.0
            )
            if vec_id in filed:
                categories, spread = filed[vec_id]
                e.category, e.category_probability = categories[0], float(spread @ question)
        return evidence

    def one_paper(self, query: str, vector: np.ndarray, evidence: dict[int, Evidence], leaves: np.ndarray) -> float:
        """The chance that the question asks about one paper (step 4 of the module's ranking)."""
        features = question_features(query, vector, evidence, leaves, self.classifier, self.index.lexical)
        return one_paper_probability(features)

    def named_papers(self, query: str, evidence: dict[int, Evidence]) -> list[int]:
        """The candidates the question names (step 5), among its NAME_LOOKUP best by BM25 (a name is
        in its title, twice) and by meaning (a name made of request words, "LOOK-M", has no BM25).
        A name that BM25 splits into short parts and meaning misses ("Q-Transformer") is missed."""
        names, versions = names_in(query), versions_in(query)
        if not names and not versions:
            return []
        by_words = heapq.nlargest(NAME_LOOKUP, evidence, key=lambda v: evidence[v].lexical)
        by_meaning = heapq.nlargest(NAME_LOOKUP, evidence, key=lambda v: evidence[v].dense)
        looked = list(dict.fromkeys(by_words + by_meaning))
        papers = self.index.store.papers_by_vec_id(looked)
        keys = {name_key(n) for n in names} | set(versions)
        found = {v: key for v in looked if v in papers and (key := name_key(paper_name(papers[v].title) or "")) in keys}
        # A version asked for ("FlashAttention 2") that a paper carries: the bare name's paper gives way.
        replaced = {name_key(versions[key]) for key in found.values() if key in versions}
        return [v for v, key in found.items() if key not in replaced]

    def names_alone(self, query: str, named: list[int]) -> bool:
        """Whether the question is nothing but the names of the papers it names (`name_alone`), each
        typed as a name or a word few of the index's papers hold: in "scale" (431 of the dev index's
        1,855 papers) or "adapters" the reader may mean the word, and its papers are the list."""
        keys = {name_key(paper_name(p.title) or "") for p in self.index.store.papers_by_vec_id(named).values()}
        keys |= {name_key(base) for key, base in versions_in(query).items() if key in keys}  # "FlashAttention 2"
        if not name_alone(query, keys):
            return False
        lexical, text = self.index.lexical, unicodedata.normalize("NFKC", query)
        for word in _NAME.findall(text):
            terms = tokenize(word)
            typed = not word.isalpha() or any(c.isupper() for c in word[1:])  # "QLoRA", "H2O", "Look-M"
            if name_key(word.rstrip(".-").lower()) in keys and not typed and len(terms) == 1:
                if lexical.holding(terms[0]) > COMMON_NAME_SHARE * len(lexical.vec_ids):
                    return False
        return True

    def beside_named(
        self,
        ranked: list[tuple[int, float]],
        evidence: dict[int, Evidence],
        vector: np.ndarray,
        k: int,
        allowed: np.ndarray | None,
    ) -> list[tuple[int, float]]:
        """`ranked`'s named papers, then the related work of the first (`RelatedFinder`), each
        shown at its related-work score times the last named paper's. A name alone says nothing else
        the question's vector or words could rank by: after "GPTQ", the question's best matches were
        "Instruction Tuning with GPT-4" and "What Makes Good In-Context Examples for GPT-3?"."""
        from semsearch.related import RelatedFinder

        named = [(v, score) for v, score in ranked if evidence[v].named]
        related = RelatedFinder(self.index, searcher=self).related_to_vec_id(named[0][0], k, allowed=allowed)
        below = [hit for hit in related if hit.vec_id not in evidence or not evidence[hit.vec_id].named]
        missing = [hit.vec_id for hit in below if hit.vec_id not in evidence]
        first = evidence[named[0][0]]
        for vec_id, embedding in self.index.store.embeddings_for(missing).items():
            evidence[vec_id] = Evidence(dense=float(embedding @ vector[0]))  # not among the question's matches
        for hit in below:
            e = evidence[hit.vec_id]
            e.beside_named, e.direct = True, False  # placed as related work, not by its own match
            e.one_paper, e.known_item, e.taxonomy_weight = first.one_paper, first.known_item, first.taxonomy_weight
        last = named[-1][1]
        return (named + [(hit.vec_id, hit.score * last) for hit in below])[:k]

    def titled_papers(self, query: str, evidence: dict[int, Evidence]) -> list[int]:
        """The candidates whose title the question is (TITLE_WORDS words or more, compared as
        `normalize_title` keys), or begins, in a question of TITLE_PREFIX_WORDS words or more: a
        title from a PDF often carries its authors' names after it. A pasted title is the surest
        question about one paper, and its words alone did not always find it (Wanda's title: not
        in the first ten)."""
        key = normalize_title(query)
        words = len(key.split())
        if words < TITLE_WORDS:
            return []
        found = self.index.store.vec_ids_with_title_key(key, prefix=words >= TITLE_PREFIX_WORDS)
        return [v for v in found if v in evidence]

    def title_shares(self, query: str, evidence: dict[int, Evidence]) -> None:
        """Set `title_share` of the question's DIRECT_FIRST best direct matches: the share of its
        terms' IDF that their titles hold ("keeps attention sinks": StreamingLLM's title has the
        rare "sinks", TransformerFAM's only "attention")."""
        lexical = self.index.lexical
        idf = {term: lexical.idf(term) for term in dict.fromkeys(question_terms(query))}
        total = sum(idf.values())
        if not total:
            return
        first = heapq.nlargest(DIRECT_FIRST, evidence, key=lambda v: evidence[v].direct_score)
        for vec_id, paper in self.index.store.papers_by_vec_id(first).items():
            words = set(tokenize(paper.title))
            evidence[vec_id].title_share = sum(weight for term, weight in idf.items() if term in words) / total

    def _hybrid(self, query: str, vector: np.ndarray, k: int, allowed: np.ndarray | None) -> list[Hit]:
        leaves = self.question_leaves(query, vector) if self.use_taxonomy else None
        evidence = self.evidence(query, vector, allowed, leaves)
        one_paper = self.one_paper(query, vector, evidence, leaves) if leaves is not None else 0.0
        named, titled = self.named_papers(query, evidence), self.titled_papers(query, evidence)
        alone = bool(named) and not titled and self.names_alone(query, named)
        weight = TAXONOMY_WEIGHT if leaves is not None else 0.0
        if weight > 0 and one_paper >= ONE_PAPER:
            self.title_shares(query, evidence)
        room = TWIN_ROOM * k  # for other records of a paper listed above, left out at the end
        ranked = rank_hybrid(evidence, room + len(named) + len(titled), weight, one_paper)
        # In a longer question a name is context ("... adding temporal views to RWKV"): after the first;
        # a question of names alone ("What is the HINT paper about?") has nothing else to be about.
        after = 0 if alone or len(strip_request(query).split()) <= NAMED_WORDS else 1
        if named:
            ranked = rank_named(ranked, named, evidence, room + len(titled), after)
        if titled:  # a title is never context: first
            ranked = rank_named(ranked, titled, evidence, room, 0)
        elif alone:
            ranked = self.beside_named(ranked, evidence, vector, room, allowed)
        hits = self.hits(ranked[:room], k, allowed=allowed)
        for hit in hits:
            hit.evidence = evidence[hit.ranked_as]
        return hits
