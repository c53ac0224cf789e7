import json
import os

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


# --- digests under damage ----------------------------------------------------------------------------
GOOD = "202411010000-202411020000"  # an older, readable digest
NEWER = "202411020000-202411030000"  # the newest by name: the one damaged in the tests below


def _report(since: str, until: str, title: str):
    from semsearch.ingest import IngestReport
    from semsearch.watch import DigestEntry, WatchReport

    entry = DigestEntry(
        "2411.00001", title, None, "Model-Centric Methods/Model Compression/Quantization", 0.8, True,
        closest=[{"id": "2306.00978", "title": "A known paper", "categories": []}], authors=["Grace Hopper"],
        snippet="A snippet.",
    )  # fmt: skip
    return WatchReport(since, until, 1, [entry], IngestReport())


@pytest.fixture
def digest_client(survey_index):
    """A server over an index with one readable digest (GOOD), for damaging more beside it."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from semsearch.watch import save_digest

    save_digest(_report(*GOOD.split("-"), "The readable digest's paper"), index_dir=survey_index)
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None)) as client:
        yield client, survey_index / "digests"


def _valid_bytes(name: str = NEWER) -> bytes:
    return json.dumps(
        {
            "since": name[:12],
            "until": name[13:],
            "fetched": 1,
            "entries": [
                {
                    "id": "2411.00002",
                    "title": "Newer paper",
                    "url": None,
                    "category": "Quantization",
                    "confidence": 0.5,
                    "in_scope": True,
                }
            ],
        }  # fmt: skip
    ).encode()


def _with(field: str, value) -> bytes:
    data = json.loads(_valid_bytes())
    target = data["entries"][0] if field in data["entries"][0] else data
    target[field] = value
    return json.dumps(data).encode()


DAMAGED = {
    "garbage": b"\x00\xff\xfe garbage \x89PNG",
    "empty": b"",
    "half-written": _valid_bytes()[: len(_valid_bytes()) // 2],
    "not UTF-8": _valid_bytes().replace(b"Newer", b"N\xe9wer"),
    "a list, not a digest": b"[1, 2, 3]",
    "no entries": json.dumps({"since": NEWER[:12], "until": NEWER[13:], "fetched": 0}).encode(),
    "an entry without a title": _valid_bytes().replace(b'"title"', b'"name"'),
    "a confidence of NaN": _valid_bytes().replace(b"0.5", b"NaN"),
    "a string as confidence": _with("confidence", "high"),
    "a lone surrogate": _valid_bytes().replace(b"Newer", b"\\ud800"),
    "a month 13": json.dumps({**json.loads(_valid_bytes()), "since": "202413010000"}).encode(),
    "a window unlike its name": _valid_bytes("202411050000-202411060000"),
    "nested too deep": b"[" * 100_000 + b"]" * 100_000,
    "a number too long": b'{"since": "' + NEWER[:12].encode() + b'", "fetched": ' + b"9" * 5000 + b"}",
}


@pytest.mark.parametrize("damage", list(DAMAGED))
def test_a_damaged_digest_is_skipped_with_a_note_and_never_breaks_the_api(digest_client, damage):
    client, folder = digest_client
    (folder / f"{NEWER}.json").write_bytes(DAMAGED[damage])

    listing = client.get("/api/digests")
    assert listing.status_code == 200
    assert [d["name"] for d in listing.json()["digests"]] == [GOOD]
    [skipped] = listing.json()["skipped"]
    assert skipped["file"] == f"{NEWER}.json" and "\n" not in skipped["reason"]

    one = client.get(f"/api/digests/{NEWER}")
    assert one.status_code == 422 and list(one.json()) == ["error"]
    assert NEWER in one.json()["error"] and "\n" not in one.json()["error"]

    overview = client.get("/api/overview")  # the newest readable digest, passing over the damaged one
    assert overview.status_code == 200
    assert [e["title"] for group in overview.json()["new_papers"].values() for e in group] == [
        "The readable digest's paper"
    ]
    assert client.get(f"/api/digests/{GOOD}").status_code == 200


def test_a_damaged_digest_is_logged_once_not_on_every_request(digest_client, caplog, monkeypatch):
    import logging

    client, folder = digest_client
    (folder / f"{NEWER}.json").write_bytes(b"{")
    # The CLI stops "semsearch" propagating: listen here. Stopped here too, whether or not a CLI test
    # ran first in this process (else the root's capture counts each record a second time).
    monkeypatch.setattr(logging.getLogger("semsearch"), "propagate", False)
    logger = logging.getLogger("semsearch.watch")
    logger.addHandler(caplog.handler)
    try:
        for _ in range(3):
            client.get("/api/digests")
            client.get("/api/overview")
    finally:
        logger.removeHandler(caplog.handler)
    noted = [r.getMessage() for r in caplog.records if NEWER in r.getMessage()]
    assert len(noted) == 1 and "skipping" in noted[0]


def test_a_stray_file_in_digests_is_neither_the_newest_nor_served(digest_client):
    client, folder = digest_client
    (folder / "zzz.json").write_bytes(_valid_bytes())  # sorts after every digest name; its content is fine
    (folder / "notes.txt").write_text("not a json file at all")
    listing = client.get("/api/digests").json()
    assert [d["name"] for d in listing["digests"]] == [GOOD]
    assert [s["file"] for s in listing["skipped"]] == ["zzz.json"]
    overview = client.get("/api/overview")
    assert overview.status_code == 200 and overview.json()["new_papers"]
    assert client.get("/api/digests/zzz").status_code == 404


def test_a_digest_name_that_is_a_folder_or_leads_outside_is_refused_without_its_content(digest_client, tmp_path):
    client, folder = digest_client
    secret = tmp_path / "secret.txt"
    secret.write_text("password=hunter2")
    (folder / f"{NEWER}.json").symlink_to(secret)
    (folder / "202411030000-202411040000.json").mkdir()
    (folder / "202411040000-202411050000.json").symlink_to("/dev/zero")  # endless: read whole, it exhausts memory
    os.mkfifo(folder / "202411050000-202411060000.json")  # opened plainly, it blocks the request for good
    for name in (NEWER, "202411030000-202411040000", "202411040000-202411050000", "202411050000-202411060000"):
        answer = client.get(f"/api/digests/{name}")
        assert answer.status_code == 422 and "hunter2" not in answer.text
    for name in ("..%2F..%2Fsecret", f"{GOOD}.json", f"{GOOD}%00", f"{GOOD}%0A"):
        assert client.get(f"/api/digests/{name}").status_code == 404
    listing = client.get("/api/digests")
    assert listing.status_code == 200 and "hunter2" not in listing.text and len(listing.json()["skipped"]) == 4
    assert client.get("/api/overview").status_code == 200


def test_an_empty_digests_folder_or_none_at_all_answers_empty(survey_index):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=survey_index, reload_seconds=None)) as client:
        assert client.get("/api/digests").json() == {"digests": [], "skipped": []}
        assert client.get("/api/overview").json()["new_papers"] == {}
        (survey_index / "digests").mkdir()
        (survey_index / "digests" / f"{NEWER}.json").write_bytes(b"")
        assert client.get("/api/overview").json()["new_papers"] == {}  # only a damaged one: none yet


def test_a_digest_is_written_whole_or_not_at_all(survey_index, monkeypatch):
    """The digest goes to a temp file, is flushed to disk, then renamed: a failure on the way leaves
    neither a digest under its real name nor the temp file."""
    from semsearch import watch as watch_module

    synced = []
    real_fsync = watch_module.os.fsync

    def fsync_then_fail(fd):
        synced.append(fd)
        real_fsync(fd)
        raise OSError(5, "input/output error")

    monkeypatch.setattr(watch_module.os, "fsync", fsync_then_fail)
    with pytest.raises(OSError):
        watch_module.save_digest(_report(*NEWER.split("-"), "Never saved"), index_dir=survey_index)
    assert synced and list((survey_index / "digests").iterdir()) == []
    monkeypatch.setattr(watch_module.os, "fsync", real_fsync)
    saved = watch_module.save_digest(_report(*NEWER.split("-"), "Saved"), index_dir=survey_index)
    assert [p.name for p in saved.parent.iterdir()] == [f"{NEWER}.json"]
    assert watch_module.list_digests(index_dir=survey_index)[0]["name"] == NEWER


def _mutations():
    """Bytes a digest file may hold after damage: anything at all, a valid digest cut short or with
    bytes changed, or any JSON value."""
    from hypothesis import strategies as st

    valid = _valid_bytes()
    cut = st.integers(0, len(valid)).map(lambda n: valid[:n])
    flipped = st.lists(st.tuples(st.integers(0, len(valid) - 1), st.integers(0, 255)), min_size=1, max_size=4).map(
        lambda changes: bytes(b if i not in dict(changes) else dict(changes)[i] for i, b in enumerate(valid))
    )
    leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
    values = st.recursive(
        leaves, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
        max_leaves=20,
    )  # fmt: skip
    shaped = st.fixed_dictionaries(
        {"since": st.just(NEWER[:12]), "until": st.just(NEWER[13:]), "fetched": values, "entries": values}
    )
    as_json = (values | shaped).map(lambda v: json.dumps(v).encode())
    return st.binary(max_size=300) | cut | flipped | as_json


@pytest.mark.parametrize("examples", [60, pytest.param(600, marks=pytest.mark.slow)])
def test_no_bytes_in_a_digest_file_make_a_digest_route_answer_5xx(survey_index, examples):
    from fastapi.testclient import TestClient
    from hypothesis import HealthCheck, given, settings

    from semsearch.server import create_app
    from semsearch.watch import save_digest

    save_digest(_report(*GOOD.split("-"), "The readable digest's paper"), index_dir=survey_index)
    target = survey_index / "digests" / f"{NEWER}.json"
    client = TestClient(create_app(index_dir=survey_index, reload_seconds=None), raise_server_exceptions=False)

    @settings(max_examples=examples, deadline=2000, suppress_health_check=[HealthCheck.too_slow])
    @given(_mutations())
    def routes_answer(data: bytes) -> None:
        target.write_bytes(data)
        for route in ("/api/digests", f"/api/digests/{NEWER}", "/api/overview"):
            answer = client.get(route)
            assert answer.status_code < 500, (route, answer.text)
            assert answer.status_code == 200 or list(answer.json()) == ["error"]
        listed = client.get("/api/digests").json()
        assert GOOD in [d["name"] for d in listed["digests"]]  # the readable one is never hidden by it

    routes_answer()


# --- serve --watch-every: the watcher and its status --------------------------------------------------
def _recent(arxiv_id: str) -> dict:
    """An in-scope stub paper submitted an hour ago: inside the first watch's window (the last day)."""
    from datetime import datetime, timedelta, timezone

    title, abstract = IN_SCOPE["2411.00001"]
    published = (datetime.now(timezone.utc) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {arxiv_id: {"title": title, "abstract": abstract, "published": published}}


def _until(check, seconds: float = 20.0):
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {seconds} s")


@pytest.mark.parametrize("failure", ["answers 500", "refuses connections"])
def test_serve_watch_every_reports_a_failing_watch_in_health_and_recovers(survey_index, stub, failure, monkeypatch):
    from fastapi.testclient import TestClient

    from semsearch.server import create_app
    from tests.arxiv_stub import Step

    stub.papers = _recent("2612.00001")
    if failure == "answers 500":
        stub.script = [Step(500)] * 10_000  # until the script is cleared
    else:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")  # the discard port
    app = create_app(index_dir=survey_index, reload_seconds=0.05, watch_seconds=0.2)
    with TestClient(app) as client:
        failing = _until(lambda: (w := client.get("/api/health").json()["watch"])["state"] == "failing" and w)
        assert "did not answer" in failing["last_error"] and "\n" not in failing["last_error"]
        assert failing["every"] == 0.2 and failing["next_run"] and failing["last_success"] is None
        assert client.get("/api/health").json()["status"] == "degraded"
        stub.script.clear()  # arXiv is back: a later turn succeeds
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        ok = _until(lambda: (w := client.get("/api/health").json()["watch"])["last_success"] and w)
        assert ok["last_error"] is None and ok["failures"] >= 1 and ok["state"] in ("ok", "running")
        assert client.get("/api/health").json()["status"] == "ok"
        found = _until(
            lambda: [r for r in client.get("/api/search", params={"q": "evicting tokens"}).json()["results"]
                     if r["id"] == "2612.00001"]
        )  # fmt: skip
        assert found


def test_a_turn_that_fails_in_any_way_is_retried_and_a_failing_report_does_not_end_the_schedule(
    survey_index, monkeypatch
):
    import threading

    from semsearch import watch as watch_module

    failures = iter([KeyError("entries"), ValueError("bad XML"), RuntimeError("boom")])

    def flaky_watch(*args, **kwargs):
        error = next(failures, None)
        if error:
            raise error
        return "report"

    monkeypatch.setattr(watch_module, "watch", flaky_watch)
    turns, stop = [], threading.Event()

    def done(report, error):
        turns.append(repr(error) if error else report)
        if len(turns) == 4:
            stop.set()
        raise OSError("the reporter itself fails")

    watch_module.watch_every(0.0, stop, on_done=done, index_dir=survey_index)
    assert turns == ["KeyError('entries')", "ValueError('bad XML')", "RuntimeError('boom')", "report"]


def test_watch_every_with_an_output_that_cannot_be_written_stops_in_one_line(survey_index, stub, tmp_path, capsys):
    code, _, err = run(
        capsys, "watch", "--every", "1s", "--output", tmp_path / "missing" / "digest.md", "--index", survey_index
    )
    assert code == 2 and err.strip().splitlines()[-1].startswith("error: cannot write")
    assert "Traceback" not in err


def test_a_watch_thread_that_dies_anyway_shows_dead_in_health(survey_index, monkeypatch):
    from fastapi.testclient import TestClient

    from semsearch import watch as watch_module
    from semsearch.server import create_app

    def fatal(*args, **kwargs):
        raise SystemExit(3)  # not an Exception: the schedule cannot go on

    monkeypatch.setattr(watch_module, "watch", fatal)
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None, watch_seconds=0.1)) as client:
        dead = _until(lambda: (w := client.get("/api/health").json()["watch"])["state"] == "dead" and w)
        assert "ended" in dead["last_error"]


def test_other_processes_read_the_watchers_status_file(survey_index, monkeypatch):
    """`serve --workers N`: the parent watches; each worker's health reads the status it writes."""
    import subprocess
    import sys

    from fastapi.testclient import TestClient

    from semsearch import watch as watch_module
    from semsearch.server import create_app

    def unreachable(*args, **kwargs):
        raise watch_module.SemsearchError("arXiv is unreachable (http://127.0.0.1:9/api/query)")

    monkeypatch.setattr(watch_module, "watch", unreachable)
    watcher = watch_module.Watcher(3600, index_dir=survey_index)
    stop = watcher.start()
    status_file = survey_index / watch_module.STATUS_FILE
    with TestClient(create_app(index_dir=survey_index, reload_seconds=None, watched_elsewhere=True)) as worker:
        seen = _until(lambda: (w := worker.get("/api/health").json()["watch"])["state"] == "failing" and w)
        assert seen["last_error"] == "arXiv is unreachable (http://127.0.0.1:9/api/query)" and seen["every"] == 3600
        stop.set()
        watcher.thread.join(5)
        assert worker.get("/api/health").json()["watch"]["state"] == "stopped"

        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
        status = json.loads(status_file.read_text())
        status_file.write_text(json.dumps({**status, "alive": True, "pid": int(gone.stdout)}))  # killed mid-run
        assert worker.get("/api/health").json()["watch"]["state"] == "dead"

        damages = (b"", b"{", b"[]", b'{"pid": "x"}', b'{"pid": 0, "alive": true}', b'{"pid": 1e300, "alive": true}',
                   b'{"pid": 1, "alive": true, "last_error": "\\ud800"}', b"\xff")  # fmt: skip
        for damaged in damages:
            status_file.write_bytes(damaged)
            answer = worker.get("/api/health")
            assert answer.status_code == 200 and answer.json()["watch"]["state"] == "unknown"


def test_listing_digests_reads_each_file_once_until_it_changes(digest_client, monkeypatch):
    from semsearch import watch as watch_module
    from semsearch.watch import save_digest

    client, folder = digest_client
    reads = []
    real_read = watch_module.read_digest_file
    monkeypatch.setattr(watch_module, "read_digest_file", lambda path: reads.append(path.stem) or real_read(path))
    for _ in range(3):
        assert [d["name"] for d in client.get("/api/digests").json()["digests"]] == [GOOD]
    assert reads == [GOOD]  # once, not on every request
    save_digest(_report(*GOOD.split("-"), "Rewritten"), index_dir=folder.parent)  # a new file under the name
    (folder / f"{NEWER}.json").write_bytes(_valid_bytes())
    assert [d["name"] for d in client.get("/api/digests").json()["digests"]] == [NEWER, GOOD]
    assert reads == [GOOD, NEWER, GOOD]  # the new file, and the old name's new version
