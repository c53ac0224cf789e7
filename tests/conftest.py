from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Bytecode caches, even where the environment turns them off (PYTHONDONTWRITEBYTECODE=1 on this
# machine's image): without them every worker compiles and assertion-rewrites every test module,
# and every process a test starts compiles semsearch again: 17 % of the quick loop's CPU. Set here,
# before pytest imports the test modules; the processes tests start inherit it.
sys.dont_write_bytecode = False
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)

# One BLAS/OpenMP thread per process, set before numpy loads (and inherited by the processes tests
# start). The quick loop runs one worker per core already; a second thread per worker only spins
# waiting for a core: a classifier's training took 2.7 times the CPU with OpenBLAS's default threads.
for _threads in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")

import numpy as np  # noqa: E402  (after the thread settings above)
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

from semsearch import embeddings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"

# scripts/mutation.sh: while mutmut records which tests reach which function (its "stats" run, in
# this process), the processes tests start would try to record too and fail to find mutmut's
# config from their working directory; they run the code unmutated instead. (This process keeps
# the mode: mutmut holds it in memory too.) Under a mutant, processes inherit the mutant.
if os.environ.get("MUTANT_UNDER_TEST") == "stats":
    del os.environ["MUTANT_UNDER_TEST"]


# The quick loop (`-m "not slow"`, also what mutmut runs) tries a quarter of the examples each
# property asks for; the full suite (CI) tries them all. Hypothesis keeps the examples that failed
# once (.hypothesis/) and tries those first either way.
QUICK = False
_MEMORY_TEMP: Path | None = None


# A run's directory is named semsearch-tests-PID-XXXX, PID the run's: pytest empties a given basetemp
# when it first uses it, so nothing written inside beforehand would last.
FAILED_FILE = ".failed"  # the run failed: kept a day, for a look
KEEP_FAILED_SECONDS = 24 * 3600
KEEP_FAILED_RUNS = 3  # the newest failed runs kept: hand mutations fail run after run (23 GB of them once)


def sweep_stale_test_dirs(parent: Path, *, now: float | None = None) -> list[Path]:
    """Remove the test directories of runs that are over: a run killed before its end (a timeout,
    the OOM killer, ^C twice) never removed its own, and in memory they add up (22 GB once, which
    got the next run killed). A run still going is left alone, and so, for a day, are the
    KEEP_FAILED_RUNS newest that failed. Returns what was removed."""
    now = time.time() if now is None else now
    removed, failed = [], []
    for directory in parent.glob("semsearch-tests-*"):
        owner = directory.name.split("-")[2]
        if owner.isdigit() and _running(int(owner)):
            continue
        try:
            failed_at = (directory / FAILED_FILE).stat().st_mtime
        except OSError:
            failed_at = None
        if failed_at is not None and now - failed_at < KEEP_FAILED_SECONDS:
            failed.append((failed_at, directory))
            continue
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    for _, directory in sorted(failed, reverse=True)[KEEP_FAILED_RUNS:]:  # only the newest few are kept
        shutil.rmtree(directory, ignore_errors=True)
        removed.append(directory)
    return removed


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def pytest_configure(config) -> None:
    global QUICK, _MEMORY_TEMP
    QUICK = (config.option.markexpr or "").replace(" ", "") == "notslow"
    # Temporary directories in memory where there is a tmpfs: every ingest and label commits and
    # fsyncs, and on a disk those waits were seconds of the run. A directory of its own per run
    # (runs in other worktrees go on at the same time), removed at the end unless a test failed.
    # (With xdist the workers get theirs inside the controller's.)
    shm = Path("/dev/shm")
    if config.option.basetemp is None and shm.is_dir() and os.access(shm, os.W_OK):
        sweep_stale_test_dirs(shm)
        _MEMORY_TEMP = Path(tempfile.mkdtemp(prefix=f"semsearch-tests-{os.getpid()}-", dir=shm))
        config.option.basetemp = str(_MEMORY_TEMP)
    if QUICK:  # properties that name no count of their own: 100 examples by default
        settings.register_profile("quick", max_examples=examples(100))
        settings.load_profile("quick")


def pytest_collection_finish(session) -> None:
    # Everything imported and collected so far lives to the end of the run: out of the garbage
    # collector's sight, its full passes (and pytest's five at the end, looking for unraisable
    # exceptions) walk only what the tests made; and a young-generation pass every 50,000 objects
    # rather than 700 (the tests make many short-lived ones): a third of the collector's CPU.
    gc.freeze()
    gc.set_threshold(50_000, 20, 20)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config) -> None:
    if _MEMORY_TEMP is not None and not getattr(config, "_semsearch_failed", False):
        shutil.rmtree(_MEMORY_TEMP, ignore_errors=True)
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # A worker leaves at once, its session over and reported: tearing down all that the tests
        # imported took each worker 0.3 s, which the controller waited for at the end of every run.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def pytest_sessionfinish(session, exitstatus) -> None:
    # Kept after a failure, for a look, except under mutmut (a failure is a mutant caught).
    if exitstatus not in (0, 5) and not os.environ.get("MUTANT_UNDER_TEST"):  # 5: no tests collected
        session.config._semsearch_failed = True
        if _MEMORY_TEMP is not None:
            (_MEMORY_TEMP / FAILED_FILE).touch()
            print(f"\n(temporary directories kept in {_MEMORY_TEMP} for a day; remove them when done)")


def examples(wanted: int) -> int:
    """How many examples a property tries in this run: `wanted` in the full suite."""
    return max(10, wanted // 4) if QUICK else wanted


class HashingModel:
    """A tiny stand-in for a SentenceTransformer: bag of hashed words, unit length. Deterministic and
    lexical, so the pipeline can be tested in milliseconds; tests marked `slow` use the real model."""

    dimension = 64

    def __init__(self):
        self.encoded: list[str] = []

    def get_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts, **kwargs):
        self.encoded.extend(texts)
        vectors = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for row, text in enumerate(texts):
            for word in re.findall(r"[a-z0-9]+", text.lower()):
                vectors[row, int(hashlib.md5(word.encode()).hexdigest(), 16) % self.dimension] += 1.0
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.maximum(norms, 1e-9)


def use_hashing_model(patch: pytest.MonkeyPatch) -> HashingModel:
    """Put a HashingModel where the library loads its sentence-transformers model, for as long as
    `patch` lasts."""
    model = HashingModel()
    patch.setattr(embeddings, "_load", lambda name: model)
    return model


@pytest.fixture
def fake_model(monkeypatch) -> HashingModel:
    return use_hashing_model(monkeypatch)


@pytest.fixture(params=["here", pytest.param("own-process", marks=pytest.mark.slow)])
def cli(request, fake_model):
    """`cli(*args, check=False, cwd=None)`: the `semsearch` command with ARGS -> (exit code, stdout,
    stderr), also as `.returncode`, `.stdout`, `.stderr`; `check` requires exit code 0. The quick loop
    calls the command in the test's own process (a process of its own costs a second in start-up and
    imports); the full suite runs each such test once more with the command in a process of its own,
    as a user runs it."""
    from tests.cli_process import run_cli, run_here

    def run(*args, check: bool = False, cwd: Path | None = None):
        if request.param == "here":
            return run_here(*args, cwd=cwd, check=check)
        return run_cli(*args, cwd=cwd or ROOT, check=check)

    return run


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch, tmp_path):
    """No test reads the user's index or reaches the real arXiv."""
    monkeypatch.delenv("SEMSEARCH_INDEX", raising=False)
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")  # discard port: refused
    monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
    monkeypatch.setenv("SEMSEARCH_ARXIV_TIMEOUT", "2")
    monkeypatch.chdir(tmp_path)


# A small corpus written for these tests (not third-party text).
CORPUS = [
    (
        "2401.00001",
        "Weight-only quantization of language models to four bits",
        "We quantize the weights of large language models to 4-bit integers after training, using a small "
        "calibration set, and keep activations in 16-bit floating point.",
        "cs.CL",
        "2024-01-02",
    ),
    (
        "2401.00002",
        "Pruning attention heads in large transformers",
        "Structured pruning removes whole attention heads and feed-forward channels, shrinking the network "
        "with little loss of accuracy.",
        "cs.LG",
        "2024-01-03",
    ),
    (
        "2302.00003",
        "Speculative decoding with a small draft model",
        "A small draft model proposes several tokens that the large target model verifies in parallel, "
        "accelerating autoregressive generation without changing the output distribution.",
        "cs.CL",
        "2023-02-05",
    ),
    (
        "2305.00004",
        "Compressing the key-value cache for long prompts",
        "The key-value cache grows with the prompt; we evict unimportant tokens and quantize the cache to cut "
        "memory during long-context inference.",
        "cs.CL cs.LG",
        "2023-05-07",
    ),
    (
        "2210.00005",
        "Low-rank adapters for parameter-efficient fine-tuning",
        "Freezing the pretrained weights and training low-rank update matrices fine-tunes large models with a "
        "fraction of the trainable parameters.",
        "cs.LG",
        "2022-10-09",
    ),
    (
        "2106.00006",
        "Mixture of experts layers with sparse routing",
        "A router sends each token to a few experts, so model capacity grows while compute per token stays constant.",
        "cs.LG",
        "2021-06-11",
    ),
    (
        "2308.00007",
        "A benchmark of image captioning for vision-language models",
        "We collect photographs with human-written captions and evaluate multimodal models on describing images.",
        "cs.CV",
        "2023-08-13",
    ),
]


def survey_entry_and_its_pdf_copy(**copy: object):
    """A survey entry known by its title alone, and the arXiv copy of the same paper whose title a
    PDF gave with its spacing garbled and its authors run on (`copy`: more of that record's fields)."""
    from semsearch.paper import Paper

    survey = Paper(
        id="survey:draft-study-2", title="Draft study two: verify tokens", abstract="",
        survey_categories=["Model-Centric Methods/Efficient Inference/Speculative Decoding"],
    )  # fmt: skip
    garbled = Paper(
        id="2401.00009", title="DRAFT S TUDY TWO : VERIFY TOKENS Ada Lovelace 1, Alan Turing 2",
        abstract="speculative decoding draft model verify tokens", **copy,
    )  # fmt: skip
    return survey, garbled


def corpus_records() -> list[dict]:
    return [
        {
            "id": i,
            "title": t,
            "abstract": a,
            "categories": c,
            "update_date": d,
            "authors": "Ada Lovelace and Alan Turing",
        }
        for i, t, a, c, d in CORPUS
    ]


@pytest.fixture
def corpus_file(tmp_path) -> Path:
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in corpus_records()))
    return path


def built_once(tmp_path_factory, build) -> Path:
    """An index made by `build(index_dir, work_dir)` with the test model, offline, once per session:
    tests get copies of it (`copy_of`), which is many times cheaper than building it again."""
    root = tmp_path_factory.mktemp("template")
    with pytest.MonkeyPatch.context() as patch:
        use_hashing_model(patch)
        patch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")
        patch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        patch.chdir(root)
        build(root / "idx", root)
    return root / "idx"


def copy_of(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "idx", symlinks=True)
    return tmp_path / "idx"


def _ingest_corpus(index_dir: Path, work: Path) -> None:
    from semsearch.ingest import ingest_jsonl

    source = work / "corpus.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in corpus_records()))
    ingest_jsonl([source], index_dir=index_dir, progress=False)


@pytest.fixture(scope="session")
def _survey_template(tmp_path_factory) -> Path:
    from semsearch.ingest import Ingest
    from semsearch.sources.survey import load_survey

    def build(index_dir: Path, work: Path) -> None:
        with Ingest(index_dir=index_dir, progress=False) as job:
            job.add(load_survey().papers)

    return built_once(tmp_path_factory, build)


@pytest.fixture(scope="session")
def _survey_corpus_template(tmp_path_factory, _survey_template) -> Path:
    """The survey template with the corpus ingested on top (what ingesting both in turn builds; the
    survey's part, its embeddings and classifier, is not made twice)."""

    def build(index_dir: Path, work: Path) -> None:
        shutil.copytree(_survey_template, index_dir, symlinks=True)
        _ingest_corpus(index_dir, work)

    return built_once(tmp_path_factory, build)


@pytest.fixture(scope="session")
def _corpus_template(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, _ingest_corpus)


@pytest.fixture
def survey_only_index(tmp_path, fake_model, _survey_template) -> Path:
    """The survey's papers (titles only), with the test model (a copy of one built per session)."""
    return copy_of(_survey_template, tmp_path)


@pytest.fixture
def survey_corpus_index(tmp_path, fake_model, _survey_corpus_template) -> Path:
    """The survey's papers (titles) and the small corpus (abstracts), with the test model: the index
    the server, page and MCP tests answer from (a copy of one built per session)."""
    return copy_of(_survey_corpus_template, tmp_path)


@pytest.fixture(scope="module")
def unchanged_survey_corpus_index(tmp_path_factory, _survey_corpus_template) -> Path:
    """One copy of the survey+corpus index for all the tests of a module that only read it (a
    refusal, a lookup); the test model stays in place for the module. Checked unchanged at the end:
    a test that writes must take its own copy (`survey_corpus_index`)."""
    directory = copy_of(_survey_corpus_template, tmp_path_factory.mktemp("shared"))
    before = _fingerprint(directory)
    with pytest.MonkeyPatch.context() as patch:
        use_hashing_model(patch)
        yield directory
    assert _fingerprint(directory) == before, "a test wrote to the shared index; give it survey_corpus_index"


@pytest.fixture(scope="module")
def unchanged_client(unchanged_survey_corpus_index):
    """One server over the shared index for a module's requests that only read (refusals above all)."""
    from fastapi.testclient import TestClient

    from semsearch.server import create_app

    with TestClient(create_app(index_dir=unchanged_survey_corpus_index, reload_seconds=None)) as client:
        yield client


def _fingerprint(directory: Path) -> dict[str, str]:
    """Each published file's content digest (the readers' markers and the lock are not content)."""
    return {
        str(path.relative_to(directory)): hashlib.md5(path.read_bytes()).hexdigest()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and path.name not in (".readers", ".lock", ".verified")
    }


@pytest.fixture
def corpus_index(tmp_path, fake_model, _corpus_template) -> Path:
    """The small corpus alone (`ingest jsonl` of corpus_file), with the test model (a copy)."""
    return copy_of(_corpus_template, tmp_path)
