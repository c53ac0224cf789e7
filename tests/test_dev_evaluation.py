"""Quality that cannot slip unnoticed: the dev evaluations, run as a user runs them, with floors.

Each test runs `semsearch eval ...` in a real process with the real model on the dev index (the
survey, offline, plus ../shared/data/arxiv_topics.jsonl) and fails when a figure falls under its
floor. The floors sit a little under the figures measured on the code they were set on (see
docs/evaluation.md), so a changed weight or a dropped clause that costs quality turns CI red, while
the run-to-run noise of a deterministic pipeline (none) and of small re-tunings does not.

The dev index takes minutes to build: it is built once and kept in pytest's cache directory, keyed
by the modules and data that make it (SEMSEARCH_DEV_INDEX names a ready one instead). Without
../shared the tests skip.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
EVAL = SHARED / "eval"
TOPICS = SHARED / "data" / "arxiv_topics.jsonl"
OURS = ROOT / "scripts" / "eval"
ENGINE = "semsearch (hybrid + taxonomy)"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (EVAL.is_dir() and TOPICS.is_file()), reason="needs ../shared (eval sets and topics)"),
]

# What the dev index is made of: when one of these changes, the cached index is built again.
BUILT_FROM = [
    "ingest.py", "index.py", "store.py", "embeddings.py", "vectors.py", "lexical.py", "paper.py",
    "classify.py", "taxonomy.py", "sources", "data",
]  # fmt: skip


def semsearch(*args, timeout: float = 1800) -> str:
    """`semsearch ARGS` in a process of its own with the real model; its stdout (it must succeed)."""
    done = subprocess.run(
        [sys.executable, "-m", "semsearch", *map(str, args)],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return done.stdout


def _key() -> str:
    digest = hashlib.sha256()
    for name in BUILT_FROM:
        path = ROOT / "semsearch" / name
        for file in sorted(path.rglob("*")) if path.is_dir() else [path]:
            if file.is_file() and "__pycache__" not in file.parts:
                digest.update(file.name.encode() + file.read_bytes())
    digest.update(TOPICS.read_bytes())
    return digest.hexdigest()[:16]


@pytest.fixture(scope="session")
def dev_index(request) -> Path:
    if os.environ.get("SEMSEARCH_DEV_INDEX"):
        return Path(os.environ["SEMSEARCH_DEV_INDEX"])
    cached = Path(request.config.cache.mkdir("dev-index")) / _key()
    if not (cached / "CURRENT").is_file():
        building = cached.with_name(cached.name + ".building")
        shutil.rmtree(building, ignore_errors=True)
        semsearch("ingest", "survey", "--offline", "--index", building)
        semsearch("ingest", "jsonl", TOPICS, "--index", building)
        for stale in cached.parent.iterdir():  # indexes of earlier code: a few hundred MB each
            if stale != building:
                shutil.rmtree(stale, ignore_errors=True)
        building.rename(cached)
    return cached


def eval_search(index: Path, questions: Path) -> dict:
    report = json.loads(
        semsearch("eval", "search", "--queries", questions, "--topics", TOPICS, "--json", "--index", index)
    )
    (results,) = report.values()
    return results


def test_topical_questions_dev(dev_index):
    results = eval_search(dev_index, EVAL / "queries_dev.jsonl")
    assert results[ENGINE]["ndcg@10"] >= FLOORS["topical dev ndcg@10"]
    # The taxonomy is worth something: without it the same questions score clearly lower.
    assert results[ENGINE]["ndcg@10"] > results["hybrid, no taxonomy"]["ndcg@10"] + 0.05


def test_problem_phrased_questions(dev_index):
    results = eval_search(dev_index, OURS / "questions_problems.jsonl")
    assert results[ENGINE]["ndcg@10"] >= FLOORS["problems ndcg@10"]
    assert results[ENGINE]["ndcg@10"] > max(results["dense only"]["ndcg@10"], results["BM25 only"]["ndcg@10"])


def test_known_items(dev_index):
    titles = eval_search(dev_index, EVAL / "known_items_dev.jsonl")
    assert titles[ENGINE]["success@3"] >= FLOORS["known items dev s@3"]
    abstracts = eval_search(dev_index, EVAL / "known_items_dev_abstracts.jsonl")
    assert abstracts[ENGINE]["success@3"] >= FLOORS["known items dev with abstracts s@3"]
    assert abstracts[ENGINE]["success@3"] >= abstracts["hybrid, no taxonomy"]["success@3"]  # issue 23
    ours = eval_search(dev_index, OURS / "known_items_ours.jsonl")
    assert ours[ENGINE]["success@3"] >= FLOORS["known items ours s@3"]


def test_classification_and_scope_of_new_papers(dev_index):
    report = json.loads(
        semsearch("eval", "classify", "--papers", EVAL / "new_papers_dev.jsonl", "--json", "--index", dev_index)
    )
    ours = report["semsearch"]
    assert ours["node_top1"] >= FLOORS["new papers top-1"]
    assert ours["node_top3"] >= FLOORS["new papers top-3"]
    assert ours["scope_auroc"] >= FLOORS["new papers scope AUROC"]
    assert ours["scope_balanced_accuracy"] >= FLOORS["new papers scope balanced accuracy"]
    assert ours["ece"] <= CEILINGS["new papers ECE"]
    assert ours["node_top1"] > report["kNN vote"]["node_top1"]  # better than the plain vote it replaced


def test_scope_of_text_from_other_fields(dev_index):
    """Abstracts two helpers wrote to a stated scope rule without seeing our anchors (scripts/eval/README.md):
    computing outside machine learning, other fields and LLM research that is not about efficiency
    are turned away, efficiency work on any kind of neural model is kept. Without the anchors of
    computing outside ML, 0.821 of those outside were turned away (the dev set cannot show it: its
    papers outside are all LLM research)."""
    for name in ("scope_probes_aside", "scope_probes_aside2"):
        probes = OURS / f"{name}.jsonl"
        expected = [json.loads(line)["in_scope"] for line in probes.read_text().splitlines()]
        answered = semsearch("classify", "--batch", probes, "--index", dev_index).splitlines()
        answers = [json.loads(line) for line in answered]
        kept = [a["in_scope"] for a, inside in zip(answers, expected, strict=True) if inside]
        turned_away = [not a["in_scope"] for a, inside in zip(answers, expected, strict=True) if not inside]
        assert sum(kept) / len(kept) >= FLOORS[f"{name} inside kept"], name
        assert sum(turned_away) / len(turned_away) >= FLOORS[f"{name} outside turned away"], name


def test_classification_of_the_survey_papers_left_out_in_turn(dev_index):
    report = json.loads(semsearch("eval", "classify", "--json", "--index", dev_index))
    assert report["leaf_top1"] >= FLOORS["survey leave-one-out top-1"]
    assert report["leaf_top3"] >= FLOORS["survey leave-one-out top-3"]
    assert report["leaf_top1"] > report["knn_baseline_top1"] + 0.1


def test_related_work(dev_index):
    report = json.loads(semsearch("eval", "related", "--topics", TOPICS, "--json", "--index", dev_index))
    assert report["precision_at_5"] >= FLOORS["related P@5"]
    assert report["precision_at_5"] > report["plain_nearest_precision_at_5"] + 0.1


def test_placing_the_papers_the_survey_list_added_as_its_maintainers_did(dev_index):
    lists = SHARED / "data" / "lists"
    old, new = (
        lists / "AIoT-MLSys-Lab__Efficient-LLMs-Survey.2024-07-25.md",
        lists / "AIoT-MLSys-Lab__Efficient-LLMs-Survey.md",
    )
    if not old.is_file():
        pytest.skip("needs ../shared/data/lists")
    report = json.loads(semsearch("eval", "propose", old, new, "--json", "--index", dev_index))
    assert report["first_at_or_under"] >= FLOORS["survey history first"]
    assert report["top3_at_or_under"] >= FLOORS["survey history top-3"]


def test_gaps_find_left_out_headings_of_the_survey_and_the_shared_lists(dev_index, tmp_path):
    lists = SHARED / "data" / "lists"
    if not lists.is_dir():
        pytest.skip("needs ../shared/data/lists")
    index = tmp_path / "index"
    shutil.copytree(dev_index, index)  # adding the lists writes: never into the shared dev index
    semsearch(
        "taxonomy", "add", "kv", lists / "October2001__Awesome-KV-Cache-Compression.md", "--offline", "--index", index
    )
    semsearch(
        "taxonomy", "add", "specdec", lists / "hemingkx__SpeculativeDecodingPapers.md", "--offline", "--index", index
    )
    for name in ("survey", "kv", "specdec"):
        report = json.loads(semsearch("eval", "gaps", name, "--json", "--index", index))
        assert report["share"] >= FLOORS["gaps recovered share"], name
        assert report["false_share"] <= CEILINGS["gaps false share"], name


# A little under the figures measured on the merged code of 2026-12-05 (in the comments; docs/evaluation.md has them
# with their commands). On the smaller sets one question is worth 0.04-0.09: a floor there allows no
# question lost.
FLOORS = {
    "topical dev ndcg@10": 0.93,  # 0.956
    "problems ndcg@10": 0.65,  # 0.681 (0.673 with the papers' temperature for questions)
    "known items dev s@3": 0.70,  # 0.727 (8 of 11; most targets are titles only)
    "known items dev with abstracts s@3": 0.85,  # 0.875 (21 of 24)
    "known items ours s@3": 0.60,  # 0.623 (33 of 53)
    "new papers top-1": 0.69,  # 0.715
    "new papers top-3": 0.88,  # 0.904
    # 0.891 / 0.829 with scope's words; 0.873 / 0.806 by the embedding alone, which fails both
    "new papers scope AUROC": 0.88,
    "new papers scope balanced accuracy": 0.81,
    "scope_probes_aside inside kept": 0.9,  # 0.950 (19 of 20)
    "scope_probes_aside outside turned away": 0.89,  # 0.929 (26 of 28); 0.821 without OTHER_COMPUTING
    "scope_probes_aside2 inside kept": 0.9,  # 0.958 (23 of 24)
    "scope_probes_aside2 outside turned away": 0.83,  # 0.861 (31 of 36); 0.722 without OTHER_COMPUTING
    "survey leave-one-out top-1": 0.60,  # 0.621
    "survey leave-one-out top-3": 0.83,  # 0.852
    "related P@5": 0.77,  # 0.789
    "survey history first": 0.58,  # 0.618 (21 of 34)
    "survey history top-3": 0.85,  # 0.882 (30 of 34)
    "gaps recovered share": 0.5,  # survey 0.556 (15 of 27), kv 0.60 (3 of 5), specdec 0.714 (5 of 7): the target
}
CEILINGS = {
    "new papers ECE": 0.09,  # 0.057
    # survey 0.074 (2 of 27), specdec 0.143 (1 of 7), kv 0.40 (2 of 5): since GEAR, listed by its
    # title alone, labels the index's record of it instead of a second one, kv recovers 4 headings
    # of 5 (was 3) and one hidden half more forms a gap (was 1 of 5). One control is 0.2 here.
    "gaps false share": 0.4,
}
