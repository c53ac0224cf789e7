import json

import pytest

from semsearch.index import Index, reseal
from semsearch.ingest import Ingest, label_paper
from semsearch.watch import LAST_WATCH, render_digest, watch
from tests.arxiv_stub import ArxivStub
from tests.test_cli import run

IN_SCOPE = {
    "2411.00001": (
        "Evicting tokens from the key-value cache",
        "KV cache eviction keeps heavy hitter tokens and evicts the rest to cut memory in long context "
        "inference of large language models.",
    ),
    "2411.00002": (
        "Speculative decoding with a tiny draft model",
        "A draft model proposes tokens that the target large language model verifies in parallel, "
        "speeding up decoding.",
    ),
    "2411.00003": (
        "Four-bit weight quantization after training",
        "Post-training weight-only quantization of large language models to 4 bits with a small calibration set.",
    ),
}
OUT_OF_SCOPE = {
    "2411.00009": (
        "Aligning language models with human preferences",
        "Aligning language models with human preferences through reinforcement learning from human "
        "feedback, reward models and preference optimization.",
    ),
}


def stub_papers(ids=None):
    chosen = {**IN_SCOPE, **OUT_OF_SCOPE}
    return {
        i: {"title": t, "abstract": a, "published": f"2024-11-0{n + 1}T09:00:00Z"}
        for n, (i, (t, a)) in enumerate(sorted(chosen.items()))
        if ids is None or i in ids
    }


@pytest.fixture
def survey_index(survey_only_index):
    return survey_only_index


@pytest.fixture
def stub(monkeypatch):
    with ArxivStub(papers=stub_papers()) as running:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", running.url)
        yield running


def test_watch_ingests_in_scope_papers_and_digests_them(survey_index, stub):
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert report.fetched == 4
    by_id = {e.id: e for e in report.entries}
    assert set(by_id) == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert not by_id["2411.00009"].in_scope and all(by_id[i].in_scope for i in IN_SCOPE)
    index = Index.open(survey_index)
    assert index.manifest.count == 424 + 3 and index.store.get("2411.00009") is None
    assert index.store.get_meta(LAST_WATCH)
    query = stub.requests[0]["search_query"][0]
    assert "cat:cs.CL" in query and "submittedDate:[202411010000 TO" in query
    assert stub.requests[0]["sortBy"] == ["submittedDate"]

    digest = render_digest(report)
    assert "Evicting tokens" in digest and "Aligning language models" not in digest
    assert "closest known:" in digest and digest.count("## ") == 3
    data = json.loads(render_digest(report, "json"))
    assert sum(len(v) for v in data["groups"].values()) == 3
    page = render_digest(report, "html")
    assert page.startswith("<!doctype html>") and "&lt;" not in page.split("<body>")[0]
    assert render_digest(report, "markdown", min_confidence=1.01).count("- **") == 0


def test_digests_read_like_a_newsletter(survey_index, stub):
    from semsearch.watch import human_time

    assert human_time("202411010000") == "1 Nov 2024" and human_time("202611282053") == "28 Nov 2026 20:53 UTC"
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    for fmt in ("markdown", "html"):
        digest = render_digest(report, fmt)
        assert "3 new papers, 1 Nov 2024 to " in digest and "202411010000" not in digest
        assert "Grace Hopper, Edsger Dijkstra" in digest  # authors
        assert "KV cache eviction keeps heavy hitter tokens" in digest  # the abstract's opening
        assert "/paper/2411.00001" in digest  # the paper view
    page = render_digest(report, "html")
    assert "<style>" in page and "prefers-color-scheme: dark" in page and "viewport" in page


def test_consecutive_watches_do_not_duplicate(survey_index, stub):
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    again = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # the same window once more
    assert again.fetched == 4 and [e for e in again.entries if e.in_scope] == []  # nothing new to report
    assert render_digest(again).startswith("# semsearch digest: 0 new papers")
    later = watch(["cs.CL"], index_dir=survey_index, progress=False)  # from the last watch on: nothing submitted since
    assert later.fetched == 0
    index = Index.open(survey_index)
    assert index.manifest.count == 427 and len({p.id for _, p in index.store.iter_papers()}) == 427


def test_keep_all_ingests_out_of_scope_papers_too(survey_index, stub):
    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, keep_all=True, progress=False)
    assert Index.open(survey_index).store.get("2411.00009") is not None


def test_interrupted_watch_resumes_at_the_next_page(survey_index, stub, fake_model, monkeypatch):
    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    real_encode = fake_model.encode
    calls = {"n": 0}

    def crash_on_second_page(texts, **kwargs):
        if len(texts) == 2 and texts[0].startswith("Four-bit"):
            calls["n"] += 1
            raise KeyboardInterrupt
        return real_encode(texts, **kwargs)

    monkeypatch.setattr(fake_model, "encode", crash_on_second_page)
    with pytest.raises(KeyboardInterrupt):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert calls["n"] == 1 and Index.open(survey_index).manifest.count == 424  # nothing published yet
    monkeypatch.setattr(fake_model, "encode", real_encode)
    starts = len(stub.requests)
    report = watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert [r["start"] for r in stub.requests[starts:]][0] == ["2"]  # the first page is not asked again
    assert {e.id for e in report.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)  # still in the digest
    assert Index.open(survey_index).manifest.count == 427


def test_a_watch_whose_arxiv_fails_part_way_resumes_and_digests_every_page(survey_index, stub, monkeypatch):
    from semsearch.errors import SemsearchError
    from semsearch.watch import list_digests
    from tests.arxiv_stub import Step

    monkeypatch.setattr("semsearch.sources.arxiv.QUERY_PAGE", 2)
    stub.script = [Step(200)] + [Step(503)] * 5  # the first page, then arXiv fails every retry
    with pytest.raises(SemsearchError, match="did not answer"):
        watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    assert Index.open(survey_index).manifest.count == 424 + 2  # the first page's papers are published
    assert list_digests(index_dir=survey_index) == []  # no digest for a watch that did not finish
    starts = len(stub.requests)
    report = watch(["cs.CL"], index_dir=survey_index, progress=False)  # a plain rerun, as a schedule would do it
    assert stub.requests[starts]["start"] == ["2"]
    assert {e.id for e in report.entries} == set(IN_SCOPE) | set(OUT_OF_SCOPE)
    assert Index.open(survey_index).manifest.count == 427
    assert [d["papers"] for d in list_digests(index_dir=survey_index)] == [3]


def test_digests_are_kept_and_served(survey_index, stub):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)
    client = TestClient(create_app(index_dir=survey_index, reload_seconds=None))
    listed = client.get("/api/digests").json()["digests"]
    assert len(listed) == 1 and listed[0]["papers"] == 3 and listed[0]["since"] == "202411010000"
    digest = client.get(f"/api/digests/{listed[0]['name']}").json()
    assert sum(len(v) for v in digest["groups"].values()) == 3
    assert client.get("/api/digests/../../etc/passwd").status_code == 404
    assert client.get("/api/digests/202411010000-202411010001").status_code == 404


def test_a_scheduled_watch_runs_each_turn_and_outlives_a_failure(survey_index, stub):
    import threading

    from semsearch.watch import watch_every
    from tests.arxiv_stub import Step

    watch(["cs.CL"], "2024-11-01", index_dir=survey_index, progress=False)  # the window so far is done
    stub.script = [Step(503)] * 5  # the first turn fails; the second succeeds
    turns, stop = [], threading.Event()

    def done(report, error):
        turns.append(error or report)
        if len(turns) == 2:
            stop.set()

    watch_every(0.01, stop, ["cs.CL"], on_done=done, index_dir=survey_index)
    assert "did not answer" in str(turns[0]) and turns[1].fetched == 0


def test_intervals():
    from semsearch.errors import SemsearchError
    from semsearch.watch import parse_interval

    assert [parse_interval(t) for t in ("90s", "30m", "24h", "1d", "1.5h")] == [90, 1800, 86400, 86400, 5400]
    for bad in ("", "24", "0h", "-1h", "1w"):
        with pytest.raises(SemsearchError):
            parse_interval(bad)


def test_labels_change_later_suggestions(survey_index, fake_model):
    from semsearch.classify import classify_texts

    text = ("Zebra quagga okapi", "Tapir capybara axolotl pangolin narwhal.")
    with Ingest(index_dir=survey_index, progress=False) as job:
        from semsearch.paper import Paper

        job.add([Paper(id="2411.00042", title=text[0], abstract=text[1])])
    before = classify_texts(Index.open(survey_index), [(None, *text)])[0]
    node = label_paper("2411.00042", "Demonstration Ordering", index_dir=survey_index)
    assert node.endswith("Demonstration Ordering")
    after = classify_texts(Index.open(survey_index), [(None, *text)])[0]
    assert after.category == node and before.category != node
    assert Index.open(survey_index).store.labels()[0]["category"] == node


def test_a_label_outranks_the_prediction_everywhere(tmp_path):
    from semsearch.paper import Paper
    from semsearch.store import Prediction, Store

    store = Store(tmp_path / "papers.db")
    vec_id = store.put(Paper(id="2411.00042", title="T", abstract="A"))
    labelled = "Data-Centric Methods/Prompt Engineering/Few-Shot Prompting/Demonstration Organization"
    predicted = "Model-Centric Methods/Model Compression/Quantization"
    store.put_predictions([(vec_id, Prediction(predicted, 0.9, True))])
    store.derive_categories()
    assert store.vec_ids_where(categories=[predicted]) == [vec_id]
    store.put_label(vec_id, labelled + "/Demonstration Ordering", "2024-11-01T00:00:00+00:00")
    store.derive_categories()
    # The --category filter reads the paper's category as `categories_for` does: the label wins.
    assert store.categories_for([vec_id])[vec_id] == [labelled + "/Demonstration Ordering"]
    assert store.vec_ids_where(categories=[labelled]) == [vec_id]
    assert store.vec_ids_where(categories=[predicted]) == []


def test_label_and_watch_cli(survey_index, stub, capsys, tmp_path):
    code, _, err = run(capsys, "label", "2306.00978", "Low-Rank Approximation", "--index", survey_index)
    assert code == 0, err
    code, out, _ = run(capsys, "labels", "--index", survey_index)
    assert json.loads(out)["category"].endswith("Low-Rank Approximation")
    assert run(capsys, "label", "2306.00978", "--remove", "--index", survey_index)[0] == 0
    code, _, err = run(capsys, "label", "nope", "Quantization", "--index", survey_index)
    assert code == 2 and "no paper 'nope'" in err
    code, _, err = run(capsys, "label", "2306.00978", "Not A Node", "--index", survey_index)
    assert code == 2 and "unknown category" in err

    digest = tmp_path / "digest.md"
    code, out, err = run(
        capsys,
        "watch",
        "--categories",
        "cs.CL,cs.LG",
        "--since",
        "2024-11-01",
        "--output",
        digest,
        "--index",
        survey_index,
    )
    assert code == 0, err
    assert out == "" and digest.read_text().startswith("# semsearch digest: 3 new papers")
    code, out, _ = run(capsys, "watch", "--format", "json", "--index", survey_index)
    assert code == 0 and json.loads(out)["groups"] == {}


def test_the_html_digest_escapes_what_arxiv_sends():
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport

    entry = DigestEntry(
        "2411.00001", "Caches <script>alert(1)</script> & more", "https://arxiv.org/abs/2411.00001?a=1&b=2",
        "A/B <KV>", 0.9, True, closest=[{"id": "x", "title": "R&D <i>", "categories": []}],
        authors=["O'Brien <ob@x>"], snippet="x < y & z",
    )  # fmt: skip
    page = render_digest(WatchReport("202411010000", "202411020000", 1, [entry], IngestReport()), "html")
    body = page.split("<body>", 1)[1]
    assert "<script>" not in body and "<i>" not in body and "<KV>" not in body and "<ob@x>" not in body
    assert "Caches &lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in body and "x &lt; y &amp; z" in body
    assert "a=1&amp;b=2" in body and "R&amp;D &lt;i&gt;" in body


def test_labels_survive_a_rebuild_through_export_and_import(survey_index, tmp_path, capsys):
    from semsearch.ingest import ingest_survey

    assert run(capsys, "label", "2306.00978", "Low-Rank Approximation", "--index", survey_index)[0] == 0
    code, exported, _ = run(capsys, "labels", "--index", survey_index)
    assert code == 0 and json.loads(exported)["category"].endswith("Low-Rank Approximation")
    (tmp_path / "labels.jsonl").write_text(
        exported + json.dumps({"id": "2999.99999", "category": "Quantization"}) + "\n"
    )
    rebuilt = tmp_path / "rebuilt"
    ingest_survey(index_dir=rebuilt, offline=True, progress=False)
    code, _, err = run(capsys, "labels", "import", tmp_path / "labels.jsonl", "--index", rebuilt)
    assert code == 0 and "imported 1 labels; 1 are for papers not in the index" in err
    assert run(capsys, "labels", "--index", rebuilt)[1] == exported
    (tmp_path / "bad.jsonl").write_text(json.dumps({"id": "2306.00978", "category": "Nope"}) + "\n")
    code, _, err = run(capsys, "labels", "import", tmp_path / "bad.jsonl", "--index", rebuilt)
    assert code == 2 and "bad.jsonl:1:" in err


def test_categories_are_derived_once_at_publish_and_read_the_same_by_every_path(survey_corpus_index):
    """Search hits, the --category filter and the counts read the categories stored with the
    generation; an index published before they were stored derives the same ones on reading."""
    import sqlite3

    from semsearch.search import Searcher

    index = Index.open(survey_corpus_index)
    store = index.store
    stored = store.categories_for(range(store.count() + 1))
    sources = {v: s for v, (_, s, _) in store.category_evidence(stored).items()}
    assert {"survey", "predicted"} <= set(sources.values())
    hits = Searcher(index, taxonomy=False).hits([(v, 1.0) for v in stored])
    assert {h.vec_id: h.categories for h in hits} == stored
    assert {h.vec_id: h.category_source for h in hits} == sources
    predicted = next(v for v, s in sources.items() if s == "predicted")
    assert predicted in store.vec_ids_where(categories=[stored[predicted][0].rsplit("/", 1)[0]])
    counts = store.content_counts()
    assert counts["predicted"] == sum(s == "predicted" for s in sources.values())
    index.close()

    db = sqlite3.connect(index.generation_dir / "papers.db")
    db.execute("DROP TABLE paper_categories")  # as an index written before they were stored
    db.commit()
    db.close()
    reseal(index.generation_dir)  # published files carry checksums: the rewrite is on purpose
    older = Index.open(survey_corpus_index).store
    assert older.categories_for(stored) == stored and older.content_counts() == counts
