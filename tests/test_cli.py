import json
import re
import shutil

import pytest

from semsearch.cli import main
from tests.arxiv_stub import ArxivStub, Step
from tests.cli_process import python_prints, run_cli


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


@pytest.fixture
def built(corpus_index):
    """What `semsearch ingest jsonl corpus.jsonl` builds (a copy of one built per session)."""
    return corpus_index


def test_ingest_then_search_json(built, capsys):
    code, out, err = run(
        capsys, "search", "speculative decoding with a small draft model", "--json", "-k", 3, "--index", built
    )
    assert code == 0, err
    answer = json.loads(out)
    assert answer["query"] == "speculative decoding with a small draft model"
    assert len(answer["results"]) == 3
    top = answer["results"][0]
    assert set(top) == {"id", "title", "score", "year", "categories", "category_source", "url"}
    assert top["id"] == "2302.00003" and top["url"] == "https://arxiv.org/abs/2302.00003"
    scores = [r["score"] for r in answer["results"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.parametrize(
    "args",
    [
        ("search", "mixture of experts routing", "--year-from", "2090"),
        ("recommend", "--like", "2302.00003", "--since", "2090-01-01"),
    ],
    ids=["search", "recommend"],
)
def test_a_table_with_no_papers_says_so_in_words(built, cli, args):
    """Filters that leave nothing drew an empty box of column headings, as if the output were cut
    short; the table's place now says there are no papers (exit 0: an answer, not an error)."""
    done = cli(*args, "--index", built)
    assert done.returncode == 0 and done.stdout == "no papers\n", done.stdout + done.stderr
    assert json.loads(cli(*args, "--json", "--index", built).stdout)["results"] == []


def test_search_table(built, capsys):
    code, out, _ = run(capsys, "search", "mixture of experts routing", "--index", built)
    assert code == 0 and "Mixture of experts" in out


def test_batch_keeps_order_and_loads_once(built, capsys, tmp_path, fake_model, monkeypatch):
    from semsearch import index, lists

    loads = {"index": 0, "classifier": 0}
    real_open, real_classifier = index.Index.open.__func__, lists.classifier_for_taxonomy

    def counted_open(cls, *args, **kwargs):
        loads["index"] += 1
        return real_open(cls, *args, **kwargs)

    def counted_classifier(*args, **kwargs):
        loads["classifier"] += 1
        return real_classifier(*args, **kwargs)

    monkeypatch.setattr(index.Index, "open", classmethod(counted_open))
    monkeypatch.setattr(lists, "classifier_for_taxonomy", counted_classifier)
    questions = tmp_path / "q.txt"
    questions.write_text("pruning attention heads\n\nkey-value cache eviction\n")
    code, out, _ = run(capsys, "search", "--batch", questions, "-k", 2, "--index", built)
    assert loads == {"index": 1, "classifier": 1}  # one index and one classifier for every question
    lines = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [a["query"] for a in lines] == ["pruning attention heads", "key-value cache eviction"]
    assert lines[0]["results"][0]["id"] == "2401.00002" and lines[1]["results"][0]["id"] == "2305.00004"
    code, out, _ = run(capsys, "search", "--batch", questions, "-k", 1, "--format", "table", "--index", built)
    heads = [line for line in out.splitlines() if line.startswith("query: ")]
    assert code == 0 and heads == ["query: pruning attention heads", "query: key-value cache eviction"]
    questions.write_text("pruning attention heads\n")  # a batch of one is still a batch: headed
    code, out, _ = run(capsys, "search", "--batch", questions, "-k", 1, "--format", "table", "--index", built)
    assert code == 0 and out.splitlines()[0] == "query: pruning attention heads"


def test_a_batch_with_an_id_the_index_lacks_prints_nothing_and_names_the_question(built, capsys, tmp_path):
    """It printed the answers before it and then stopped: half a file, exit 2 (an attacker's pass)."""
    questions = tmp_path / "q.txt"
    questions.write_text("pruning attention heads\n2399.99999\nkey-value cache eviction\n")
    code, out, err = run(capsys, "search", "--batch", questions, "--index", built)
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert err.startswith(f"error: {questions}: question 2: no paper 2399.99999 in the index")
    assert "nothing printed" in err
    code, out, err = run(capsys, "search", "2399.99999", "--index", built)  # one question: as it is
    assert (code, out) == (2, "") and err.startswith("error: no paper 2399.99999 in the index (")


def test_a_batch_question_with_nothing_to_search_by_is_refused_by_its_line_before_any_is_answered(
    built, cli, tmp_path, monkeypatch
):
    """A line of "???" stopped the batch with "the question has no letter or digit", naming no
    line (a too-long line was named: `q.txt:2: question: ...`), and only after the lines before it
    were searched: it is refused as the line's form, with its number, before the model is asked."""
    from semsearch import search

    questions = tmp_path / "q.txt"
    questions.write_text("pruning attention heads\n\nkey-value cache eviction\n???\n")
    monkeypatch.setattr(search.Searcher, "search", lambda *a, **k: pytest.fail("searched before refusing"))
    done = cli("search", "--batch", questions, "--index", built)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"error: {questions}:4: the question has no letter or digit to search by\n"


@pytest.mark.parametrize(
    "command", [("search", "--batch"), ("related", "--batch"), ("classify", "--batch"), ("labels", "import")]
)
def test_a_batch_with_nothing_to_answer_is_refused_by_every_command_alike(built, cli, tmp_path, command):
    """search and related answered a batch of blank lines with nothing and exit 0, where classify
    and labels import refused it: a file that asks nothing is a wrong file, named, exit 2."""
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    done = cli(*command, blank, "--index", built)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {blank}: nothing to read\n")


def test_an_error_message_of_several_lines_is_printed_as_one(built, capsys, monkeypatch):
    """Ray's errors hold line breaks, and `ingest --ray bogus://x` printed two lines."""
    from semsearch import index
    from semsearch.errors import SemsearchError

    def failing(*args, **kwargs):
        raise SemsearchError("could not connect:\n  bogus://x\nis no cluster")

    monkeypatch.setattr(index.Index, "open", failing)
    code, out, err = run(capsys, "info", "--index", built)
    assert (code, out, err) == (2, "", "error: could not connect: bogus://x is no cluster\n")


def test_an_ingest_refused_for_its_ray_cluster_stores_nothing(tmp_path, fake_model, capsys):
    """`ingest jsonl FILE --ray ADDRESS` whose cluster cannot be used (no client, no export to run
    there) was refused only once its papers were read into staging, and the next writer published
    them, even one that was itself refused. The cluster is now reached first."""
    from semsearch.index import Index, lock_is_held

    index = tmp_path / "idx"
    first, new = tmp_path / "first.jsonl", tmp_path / "new.jsonl"
    first.write_text(json.dumps({"id": "2401.00001", "title": "KV caches", "abstract": "We evict keys."}) + "\n")
    new.write_text(json.dumps({"id": "2401.00002", "title": "Draft models", "abstract": "We draft tokens."}) + "\n")
    assert run(capsys, "ingest", "jsonl", first, "--index", index)[0] == 0
    code, out, err = run(capsys, "ingest", "jsonl", new, "--ray", "ray://127.0.0.1:1", "--index", index)
    assert (code, out) == (2, "") and err.startswith("error: --ray ") and len(err.splitlines()) == 1, err
    assert not (index / "staging").exists() and not lock_is_held(index / ".lock")
    assert run(capsys, "label", "2401.00001", "Quantization", "--index", index)[0] == 0  # the next writer
    assert Index.open(index).store.find("2401.00002") is None and Index.open(index).manifest.count == 1


def test_one_malformed_line_skipped_is_one_line(tmp_path, fake_model, capsys):
    source = tmp_path / "papers.jsonl"
    paper = {"id": "2401.00001", "title": "KV caches", "abstract": "We evict keys."}
    source.write_text(json.dumps(paper) + "\n{oops\n")
    code, _, err = run(capsys, "ingest", "jsonl", source, "--skip-malformed", "--index", tmp_path / "idx")
    assert code == 0 and f"skipped 1 malformed line: {source}:2\n" in err, err


def test_filters(built, capsys):
    code, out, _ = run(capsys, "search", "models", "--json", "--year-from", 2023, "--year-to", 2023, "--index", built)
    assert code == 0 and {r["year"] for r in json.loads(out)["results"]} == {2023}


def test_category_filter_uses_survey_labels(tmp_path, fake_model, capsys):
    index = tmp_path / "idx"
    code, _, err = run(capsys, "ingest", "survey", "--offline", "--index", index)
    assert code == 0, err
    code, out, _ = run(
        capsys, "search", "quantization", "--json", "--category", "Speculative Decoding", "--index", index
    )
    results = json.loads(out)["results"]
    assert code == 0 and len(results) == 10
    assert all(any("Speculative Decoding" in c for c in r["categories"]) for r in results)


def test_info(built, capsys):
    code, out, _ = run(capsys, "info", "--json", "--index", built)
    data = json.loads(out)
    assert code == 0 and data["papers"] == 7 and data["model"] == "all-MiniLM-L6-v2" and data["dimension"] == 64
    assert data["size_bytes"] > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "   "], "question: has no text"),
        (["search", "x", "--index", "nowhere"], "/nowhere (build one with `semsearch ingest survey --index /"),
        (["search", "x", "--category", "Not A Node"], "unknown category"),
        (["ingest", "arxiv", "--id", "12.34"], "invalid arXiv id"),
        (["ingest", "arxiv"], "give --id"),
        (["ingest", "jsonl", "missing.jsonl"], "no such file"),
        (["ingest", "jsonl", "."], "cannot read .: it is a directory"),
        (["eval", "search", "--queries", "missing.jsonl"], "cannot read missing.jsonl: no such file"),
        (["eval", "related", "--topics", "."], "cannot read .: it is a directory"),
        (["ingest", "jsonl", "x.jsonl", "--since", "yesterday"], "invalid date"),
        # As every door reads a date: Python 3.11 alone took these (a week, no dashes).
        (["ingest", "jsonl", "x.jsonl", "--since", "20240101"], "invalid date '20240101': expected YYYY-MM-DD"),
        (["watch", "--since", "2024-W01-1"], "invalid date '2024-W01-1': expected YYYY-MM-DD"),
        (["search"], "give a question"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(built, capsys, tmp_path, args, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if "--index" not in args:
        args = args + ["--index", str(built)] if args[0] == "search" and "nowhere" not in args else args
    code, _, err = run(capsys, *args)
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1


URL = "https://example.com/data/papers.jsonl"


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "jsonl", URL],
        ["search", "--batch", URL],
        ["classify", "--batch", URL],
        ["related", "--batch", URL],
        ["labels", "import", URL],
        ["eval", "search", "--queries", URL],
        ["eval", "classify", "--papers", URL],
        ["eval", "propose", URL, URL],
    ],
    ids=lambda args: " ".join(args[:2]),
)
def test_a_url_where_a_file_is_asked_for_is_named_as_typed_and_said_to_be_one(built, cli, args):
    """These commands read files, not URLs. A URL given instead was refused as a missing file
    under a name nobody typed (`cannot read https:/example.com/...: no such file`: a path collapses
    the `//`), which reads as a typo in the address rather than as "download it first"."""
    code, _, err = cli(*args, "--index", built)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"cannot read {URL}: a URL, not a file" in err and "download it" in err


def test_malformed_line_reports_and_keeps_earlier_papers(tmp_path, fake_model, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"id": "2401.00001", "title": "Fine"}\n[1, 2]\n')
    code, _, err = run(capsys, "ingest", "jsonl", source, "--index", tmp_path / "idx")
    assert code == 2 and "bad.jsonl:2" in err
    code, out, _ = run(capsys, "info", "--json", "--index", tmp_path / "idx")
    assert json.loads(out)["papers"] == 1
    code, _, err = run(capsys, "ingest", "jsonl", source, "--skip-malformed", "--index", tmp_path / "idx")
    assert code == 0 and "bad.jsonl:2" in err


def test_usage_errors_exit_2(capsys):
    code, _, err = run(capsys, "search", "x", "-k", "0")
    assert code == 2 and err == "error: k: Input should be greater than or equal to 1\n"


def test_ingest_arxiv_partial_failure_stores_what_arrived(tmp_path, fake_model, capsys, monkeypatch):
    with ArxivStub(unknown={"2401.00002"}) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, _, err = run(capsys, "ingest", "arxiv", "--id", "2401.00001", "--id", "2401.00002", "--index", tmp_path)
    assert code == 1 and "2401.00002" in err.splitlines()[-1]
    code, out, _ = run(capsys, "info", "--json", "--index", tmp_path)
    assert json.loads(out)["papers"] == 1


def test_ingest_arxiv_query(tmp_path, fake_model, capsys, monkeypatch):
    with ArxivStub(script=[Step(status=503)]) as stub:
        stub.papers = {f"2402.{n:05d}": {"title": f"Cache paper {n}", "abstract": "About caches."} for n in range(3)}
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, _, err = run(capsys, "ingest", "arxiv", "--query", "all:cache", "--max", 5, "--index", tmp_path)
    assert code == 0, err
    code, out, _ = run(capsys, "search", "cache", "--json", "--index", tmp_path)
    assert {r["id"] for r in json.loads(out)["results"]} == {"2402.00000", "2402.00001", "2402.00002"}


@pytest.mark.slow  # ingests the survey's 424 papers twice
def test_survey_offline_fallback_then_online_fills_abstracts(tmp_path, fake_model, capsys, monkeypatch):
    code, _, err = run(capsys, "ingest", "survey", "--index", tmp_path)  # arXiv unreachable in tests
    assert code == 0 and err.count("warning:") == 1 and "titles only" in err
    with ArxivStub() as stub:
        # The survey gives LLM.int8() no arXiv id: it is found by its title.
        stub.papers["2208.07339"] = {
            "title": "LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale",
            "abstract": "Vector-wise quantization with outlier features kept in 16-bit.",
        }
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, _, err = run(capsys, "ingest", "survey", "--index", tmp_path)
    assert code == 0, err
    from semsearch.index import Index

    index = Index.open(tmp_path)
    assert index.manifest.count == 424
    awq = index.store.get("2306.00978")
    assert awq.abstract.startswith("An abstract written for the stub") and awq.title.startswith("AWQ")
    assert awq.survey_categories and "arxiv" in awq.sources
    int8 = index.store.get("2208.07339")
    assert int8.abstract.startswith("Vector-wise") and int8.survey_categories
    assert not index.store.vec_ids_with_title("LLM.int8(): 8-bit Matrix Multiplication for Transformers at Scale")[1:]
    # A third run asks arXiv for nothing: every abstract it can have is there.
    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        assert run(capsys, "ingest", "survey", "--index", tmp_path)[0] == 0
        assert stub.requests == []


def test_help_imports_nothing_heavy():
    """`semsearch --help` and a command's --help answer without torch, FAISS or the model."""
    code = (
        "import contextlib, io, sys, semsearch.cli as cli\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    cli.main(['--help']); cli.main(['search', '--help']); cli.main(['ingest', 'jsonl', '--help'])\n"
        "print(sorted(m for m in ('torch', 'faiss', 'sentence_transformers', 'onnxruntime') if m in sys.modules))"
    )
    assert python_prints(code) == "[]"


def test_a_request_model_builds_its_validator_only_when_used():
    """A command-line question validates a SearchRequest and nothing else: the other request
    models' validators are not built on import (building them all cost ~25 ms of a cold question)."""
    code = (
        "import pydantic, semsearch.requests_models as r\n"
        "models = [m for m in vars(r).values() if isinstance(m, type) and issubclass(m, pydantic.BaseModel)]\n"
        "r.parse(r.SearchRequest, question='kv cache', k=3)\n"
        "print(sorted(m.__name__ for m in models if m.__pydantic_complete__))"
    )
    assert python_prints(code) == "['SearchRequest']"


def test_the_first_question_builds_the_default_index(tmp_path, fake_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no ./index yet, no $SEMSEARCH_INDEX (the autouse fixture clears it)
    code, out, err = run(capsys, "search", "speculative decoding with a draft model", "--json", "-k", "3")
    assert code == 0, err
    assert f"first run: building the index in {tmp_path / 'index'} from the survey's papers" in err
    # arXiv unreachable: the warning names the command that adds the abstracts later ("run again
    # online" read as this search again, which finds the index built and fetches nothing).
    assert "titles only (`semsearch ingest survey` online adds their abstracts)" in err
    assert len(json.loads(out)["results"]) == 3 and (tmp_path / "index" / "CURRENT").exists()
    code, _, err = run(capsys, "search", "kv cache", "--index", tmp_path / "elsewhere")
    assert code == 2 and "no index at" in err  # an index asked for by name is never built behind one's back


def test_an_index_option_naming_a_directory_inside_an_index_names_the_index(built, cli):
    """`--index idx/gen-000001` (a level too deep) was told to build an index there."""
    generation = next(built.glob("gen-*"))
    code, _, err = cli("search", "kv cache", "--index", generation)
    assert code == 2
    assert err == f"error: no index at {generation}: it is inside the index at {built}; pass --index {built}\n"


def test_no_index_at_a_relative_path_names_it_in_full_and_the_command_that_builds_it_there(cli, tmp_path):
    """`--index idx` typed in another directory said "no index at idx (build one with `semsearch
    ingest survey`, ...)": which idx was not said, and the command it named builds ./index, after
    which `--index idx` finds nothing again. It names the directory in full, and the command it
    names builds the index there."""
    import shlex

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    code, _, err = cli("search", "kv cache", "--index", "idx", cwd=elsewhere)
    assert code == 2 and err.startswith(f"error: no index at {elsewhere / 'idx'} "), err
    named = re.search(r"`semsearch ([^`]+)`", err)[1]
    assert cli(*shlex.split(named), "--offline", cwd=tmp_path).returncode == 0  # from any directory
    assert cli("search", "kv cache", "--index", "idx", cwd=elsewhere).returncode == 0


@pytest.mark.parametrize(
    "command",
    [["search", "kv cache"], ["ingest", "survey", "--offline"], ["taxonomy", "list"], ["info"], ["serve"], ["mcp"]],
)
def test_an_index_option_naming_a_file_is_a_wrong_argument_not_damage(command, tmp_path, capsys, monkeypatch):
    papers = tmp_path / "papers.jsonl"
    papers.write_text('{"id": "2302.00003", "title": "T", "abstract": "A"}\n')
    code, out, err = run(capsys, *command, "--index", papers)
    expected = f"error: {papers} is a file, not an index directory; --index and $SEMSEARCH_INDEX name a directory\n"
    assert (code, err) == (2, expected)
    monkeypatch.setenv("SEMSEARCH_INDEX", str(papers))  # the variable is read by the same rule
    assert run(capsys, *command)[:3:2] == (2, expected)
    dangling = tmp_path / "gone"
    dangling.symlink_to(tmp_path / "nowhere")
    code, out, err = run(capsys, *command, "--index", dangling)
    assert (code, err) == (2, f"error: {dangling} is a symbolic link to nothing ({tmp_path / 'nowhere'})\n")
    under = papers / "index"  # a directory that cannot be made: one line too, naming the file in the way
    code, out, err = run(capsys, *command, "--index", under)
    assert (code, err) == (2, expected.replace("directory;", f"directory (in the path {under});"))
    assert papers.read_text() == '{"id": "2302.00003", "title": "T", "abstract": "A"}\n'  # left as it was


@pytest.mark.parametrize(
    "argv, refusal",
    [
        (["search", "kv", "-k", "nan"], "error: k: Input should be a valid integer"),  # as HTTP and MCP say it
        (["search", "kv", "--top", "5"], "No such option: --top (see semsearch search --help)"),
        (["watch", "--format", "pdf"], "Invalid value for '--format'"),
        (["frobnicate"], "No such command 'frobnicate'. (see semsearch --help)"),
        (["search"], 'give a question (semsearch search "how do I shrink the KV cache?") or --batch FILE'),
        (["search", "kv", "--batch", "q.txt"], "give a question or --batch FILE, not both"),
        (["watch", "--categories", "cs.CL) OR (all:x"], "not an arXiv category: 'cs.CL) OR (all:x'"),
        (["watch", "--categories", " , "], "no arXiv category given"),
        (["watch", "--since", "9999-01-01"], "--since 9999-01-01 is in the future"),
        (["watch", "--every", "99999999999999d"], "the interval '99999999999999d' is longer than 366 days"),
        (["search", "kv", "--json", "--format", "table"], "--json asks for JSON and --format for table: give one"),
        (["recommend"], "give at least one paper you liked: --like ID (repeatable)"),
    ],
)
def test_a_usage_error_is_one_line_with_where_to_look(argv, refusal, capsys, tmp_path):
    code, out, err = run(capsys, *argv, "--index", tmp_path / "none")
    assert (code, out) == (2, "") and err.startswith("error: ") and refusal in err and err.count("\n") == 1


def test_a_paper_named_by_arxiv_id_is_read_from_the_index_when_it_holds_the_abstract(
    survey_corpus_index, capsys, monkeypatch
):
    """`classify --arxiv` and `related --arxiv` answer offline for a paper the index has whole; one it
    lacks is fetched."""
    index = survey_corpus_index
    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, out, err = run(capsys, "classify", "--arxiv", "2302.00003", "--json", "--index", index)
        assert code == 0 and json.loads(out)["id"] == "2302.00003" and stub.requests == [], err
        code, out, err = run(capsys, "related", "--arxiv", "arXiv:2302.00003v2", "--json", "--index", index)
        answer = json.loads(out)
        assert code == 0 and answer["id"] == "2302.00003" and stub.requests == [], err
        assert answer["results"] and "2302.00003" not in [r["id"] for r in answer["results"]]  # not itself
        code, out, err = run(capsys, "classify", "--arxiv", "2499.00001", "--json", "--index", index)
        assert code == 0 and json.loads(out)["id"] == "2499.00001" and len(stub.requests) == 1, err


def test_a_batch_names_papers_by_id_alone_and_arxiv_is_asked_once_for_all(
    survey_corpus_index, capsys, tmp_path, monkeypatch
):
    """A --batch line may be {"id"} alone, as `--arxiv` names a paper (a user with a list of arXiv
    ids had to fetch each title and abstract first): the index's copy when it holds the abstract,
    the rest from arXiv in one request, answers in the batch's order; an id arXiv does not know
    fails the whole batch in one line, before anything is printed."""
    batch = tmp_path / "ids.jsonl"
    batch.write_text(
        '{"id": "2499.00001"}\n{"id": "arXiv:2302.00003v2"}\n'
        '{"id": "mine", "title": "Pruning heads", "abstract": "We prune attention heads."}\n{"id": "2499.00002"}\n'
    )
    with ArxivStub(unknown={"2499.00009"}) as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_corpus_index)
        answers = [json.loads(line) for line in out.splitlines()]
        assert code == 0 and [a["id"] for a in answers] == ["2499.00001", "2302.00003", "mine", "2499.00002"], err
        assert all(0 <= a["scope"] <= 1 and a["suggestions"] for a in answers)
        assert [r["id_list"] for r in stub.requests] == [["2499.00001,2499.00002"]]
        batch.write_text('{"id": "2302.00003"}\n{"id": "2499.00009"}\n{"id": "no such paper"}\n')
        code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_corpus_index)
        assert (code, out) == (2, "") and err == "error: no paper 'no such paper' in the index, and not an arXiv id\n"
        batch.write_text('{"id": "2302.00003"}\n{"id": "2499.00009"}\n')
        code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_corpus_index)
        assert (code, out, err) == (2, "", "error: arXiv has no paper 2499.00009\n")


def test_a_batch_id_the_index_holds_by_title_alone_is_placed_on_its_title_without_asking_arxiv(
    survey_only_index, capsys, tmp_path, monkeypatch
):
    """A survey paper without an arXiv id is held by its title under an id of the index's own
    ("survey:gptq-..."): named so on a --batch line, it is placed on its title, as the index places
    it, and arXiv (which could not know the id) is not asked; refused, it was "no paper in the index"."""
    gptq = "survey:gptq-accurate-quantization-for-generative-pre-trained-transformers"
    batch = tmp_path / "ids.jsonl"
    batch.write_text(json.dumps({"id": gptq}) + "\n")
    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_only_index)
        assert code == 0 and [json.loads(line)["id"] for line in out.splitlines()] == [gptq], err
        assert stub.requests == [] and err == ""


def test_a_batch_whose_papers_arxiv_stopped_sending_says_why_they_are_missing(
    survey_corpus_index, capsys, tmp_path, monkeypatch
):
    """arXiv answered the first chunk of ids and then asked to wait an hour: the papers it never
    sent are named with the reason it gave, not as papers arXiv lacks."""
    from semsearch.sources.arxiv import ID_CHUNK
    from tests.test_arxiv import Answering

    feeds = ArxivStub()

    def answer(query: dict, n: int):
        if n == 0:
            status, body = feeds.respond(query, Step())
            return status, {}, body
        return 503, {"Retry-After": "3600"}, b"busy"

    ids = [f"2499.{n:05d}" for n in range(ID_CHUNK + 1)]
    batch = tmp_path / "ids.jsonl"
    batch.write_text("".join(json.dumps({"id": paper_id}) + "\n" for paper_id in ids))
    with Answering(answer) as server:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", server.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_corpus_index)
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.startswith(f"error: arXiv has no paper {ids[-1]} (arXiv asked to wait 3,600 seconds"), err


def test_a_batch_with_a_paper_only_arxiv_has_fails_as_unreachable_when_arxiv_does_not_answer(
    survey_only_index, capsys, tmp_path
):
    """arXiv unreachable (the tests' default) and a batch naming a paper the index holds by title
    with one it does not hold at all: the batch fails on arXiv's silence (exit 1), not with "arXiv
    has no paper ..." (a wrong URL's exit 2, for a paper arXiv was never heard to lack)."""
    batch = tmp_path / "ids.jsonl"
    batch.write_text('{"id": "2306.00978"}\n{"id": "2399.00001"}\n')
    code, out, err = run(capsys, "classify", "--batch", batch, "--index", survey_only_index)
    assert (code, out) == (1, "") and err.startswith("error: arXiv did not answer") and err.count("\n") == 1, err


def test_a_paper_held_by_title_alone_is_placed_on_the_abstract_arxiv_gives(survey_only_index, capsys, monkeypatch):
    """The index's copy stands in for arXiv's only when it holds the abstract, or arXiv cannot be
    reached: a paper held by its title alone is placed on the title and abstract arXiv answers, as
    the same text given with --title and --abstract is."""
    from tests.arxiv_stub import stub_paper

    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        monkeypatch.setenv("SEMSEARCH_ARXIV_DELAY", "0")
        code, out, err = run(capsys, "classify", "--arxiv", "2306.00978", "--json", "--index", survey_only_index)
        assert code == 0 and len(stub.requests) == 1, err
    paper = stub_paper("2306.00978")
    code, given, err = run(
        capsys, "classify", "--title", paper["title"], "--abstract", paper["abstract"], "--json",
        "--index", survey_only_index,
    )  # fmt: skip
    assert code == 0, err
    assert {**json.loads(out), "id": None} == {**json.loads(given), "id": None}


def test_a_batch_read_from_a_pipe_is_answered_and_one_from_dev_zero_is_refused(survey_corpus_index, capsys, tmp_path):
    """`classify --batch <(...)` was "no such file" (a pipe is not a regular file); `search --batch
    /dev/zero` was read until memory ran out (an attacker's pass found the same of other files)."""
    import os
    import threading

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)

    def write() -> None:
        with open(pipe, "w") as end:
            end.write('{"id": "2302.00003"}\n')

    threading.Thread(target=write, daemon=True).start()
    code, out, err = run(capsys, "classify", "--batch", pipe, "--index", survey_corpus_index)
    assert code == 0 and json.loads(out)["id"] == "2302.00003", err
    for command in ("search", "classify", "related"):
        code, out, err = run(capsys, command, "--batch", "/dev/zero", "--index", survey_corpus_index)
        assert (code, out, err) == (2, "", "error: cannot read /dev/zero: larger than 64 MB\n")


def test_serve_on_a_port_another_process_holds_is_refused_before_announcing_itself(survey_corpus_index, capsys):
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run(capsys, "serve", "--port", port, "--index", survey_corpus_index)
    assert (code, out) == (2, "") and "serving" not in err
    assert err == f"error: cannot serve on 127.0.0.1:{port}: Address already in use (give another --port)\n"


def test_version_and_bare_commands(capsys):
    from importlib.metadata import version

    assert run(capsys, "--version")[:2] == (0, f"semsearch {version('semsearch')}\n")
    code, out, err = run(capsys)  # no command: the help, as asked for by giving nothing
    assert code == 2 and "Usage: semsearch" in out + err and "error:" not in err


def test_eval_related_over_a_handful_of_papers_warns_that_the_figure_says_little(survey_corpus_index, capsys, tmp_path):
    index = survey_corpus_index  # this test's own copy
    awq = tmp_path / "awq.jsonl"  # a survey paper, now with an abstract: the one paper to ask about
    awq.write_text('{"id": "2306.00978", "title": "AWQ", "abstract": "Activation-aware 4-bit weight quantization."}\n')
    assert run(capsys, "ingest", "jsonl", awq, "--index", index, "--no-progress")[0] == 0
    topics = tmp_path / "topics.jsonl"
    topics.write_text('{"id": "2306.00978", "topics": ["quantization"]}\n')
    code, out, err = run(capsys, "eval", "related", "--topics", topics, "--json", "--index", index)
    assert code == 0 and json.loads(out)["queries"] == 1
    assert set(json.loads(out)) == {
        "queries",
        "precision_at_5",
        "plain_nearest_precision_at_5",
        "uses_topics",
        "latency_ms_p50",
        "latency_ms_max",
    }
    assert err.startswith("warning: only 1 survey papers with an abstract to ask about: the figure says little")


def test_eval_related_on_an_offline_survey_index_says_how_to_get_the_abstracts_it_needs(survey_only_index, capsys):
    """usage.md: `eval related` "needs abstracts: an online ingest"; the refusal said only that there were none."""
    code, out, err = run(capsys, "eval", "related", "--index", survey_only_index)
    assert (code, out) == (2, "")
    assert err.startswith("error: no survey paper with an abstract in the index to evaluate with")
    assert "`semsearch ingest survey` online adds the abstracts" in err


def test_serve_names_a_host_it_cannot_resolve_and_writes_an_ipv6_page_address_in_brackets(survey_corpus_index, capsys):
    from semsearch.server import page_url

    code, out, err = run(capsys, "serve", "--host", "nosuchhost.invalid", "--index", survey_corpus_index)
    assert (code, err) == (
        2,
        "error: cannot serve on nosuchhost.invalid: no such host name here (give another --host)\n",
    )
    assert page_url("::1", 8000) == "http://[::1]:8000/" and page_url("127.0.0.1", 80) == "http://127.0.0.1:80/"


@pytest.mark.slow  # real processes
def test_version_a_taken_port_and_a_paper_named_by_its_method_in_real_processes(survey_corpus_index):
    import socket
    from importlib.metadata import version

    from tests.cli_process import run_cli

    assert run_cli("--version")[:2] == (0, f"semsearch {version('semsearch')}\n")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        code, out, err = run_cli("serve", "--port", port, "--index", survey_corpus_index)
    assert (code, out) == (
        2,
        "",
    ) and err == f"error: cannot serve on 127.0.0.1:{port}: Address already in use (give another --port)\n"
    code, out, err = run_cli("related", "GPTQ", "--json", "-k", "2", "--index", survey_corpus_index)
    assert code == 0 and len(json.loads(out)["results"]) == 2, err


@pytest.mark.parametrize(
    "args, embeds",
    [
        (["ingest", "jsonl", "x.jsonl"], True),
        (["watch", "--since", "2024-01-01"], True),
        (["taxonomy", "add", "kv", "README.md"], True),
        (["taxonomy", "refresh", "--offline"], True),
        (["label", "2401.00001", "Pruning"], False),
        (["labels", "import", "x"], False),
        (["taxonomy", "remove", "kv"], False),
    ],
)
def test_ctrl_c_says_what_the_index_writer_left(args, embeds):
    """An interrupted label said only "interrupted", and took effect with the next label; one
    stopped before it staged anything said its change waited in staging/; a Ctrl-C'd refresh said
    "the next run resumes from it", and the next label published its labels (clumsy operators)."""
    from semsearch.cli import _interrupted

    staged = _interrupted(args, index_left="staged")
    assert "the next command that writes to the index publishes them (delete staging/" in staged or (
        "is published by the next command that writes to the index (delete staging/" in staged
    )
    assert ("the papers read so far are kept, with any already embedded: the next run resumes" in staged) == embeds
    assert _interrupted(args, index_left="nothing") == "interrupted; nothing was changed"
    assert _interrupted(args, index_left="published") == "interrupted; the change was published"
    assert _interrupted(args, index_left=None) == "interrupted"  # no writer was open: it wrote nothing


@pytest.mark.parametrize("args", [["search", "--batch", "-"], ["related", "2401.00001"], ["taxonomy", "propose"], []])
def test_ctrl_c_of_a_command_that_writes_nothing_is_interrupted_only(args):
    """`search --batch -` interrupted said work already embedded was kept: it embeds nothing."""
    from semsearch.cli import _interrupted

    assert _interrupted(args) == "interrupted"


@pytest.mark.parametrize(
    "args",
    [
        ["search", "kv cache \udcff"],
        ["related", "--text", "Efficient streaming with attention sinks \udcff"],
        ["classify", "--title", "Sinks \udcff", "--abstract", "Attention sinks keep streaming stable."],
    ],
)
def test_a_byte_that_is_not_utf8_on_the_command_line_is_refused_in_one_line(built, cli, args):
    """Python keeps such a byte of argv as a lone surrogate; `related --text` handed it to the
    tokenizer (a TypeError traceback, exit 1), the others said pydantic's "unable to parse raw data
    as a unicode string"."""
    code, out, err = cli(*args, "--index", built)
    assert (code, out) == (2, "") and err.count("\n") == 1, err
    assert err.endswith(": is not valid text (a byte that is not UTF-8, or a lone surrogate)\n"), err


def test_the_why_column_says_a_paper_is_there_because_the_question_names_it(capsys):
    """A named paper is placed above better-scored ones (or first, and was then credited to the
    taxonomy): its "why" says the question names it, or the ranking it explains reads as wrong."""
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Evidence, Hit

    named = Evidence(dense=0.3, lexical=4.6, lexical_share=1.0, taxonomy_weight=2.0, named=True)
    plain = Evidence(dense=0.5, lexical=2.0, lexical_share=0.4, taxonomy_weight=2.0)
    hits = [
        Hit(Paper("2210.17323", "GPTQ: Accurate Quantization"), 0.56, evidence=named),
        Hit(Paper("2306.00978", "AWQ: Activation-aware Weight Quantization"), 0.2, evidence=plain),
    ]
    _print_hits(hits, explain=True)
    out = " ".join(capsys.readouterr().out.split())
    first, second = out.split("2306.00978")
    assert "named by the question" in first and "taxonomy weighed" not in first
    assert "named by the question" not in second


def test_the_papers_below_a_name_alone_are_said_to_be_its_related_work(survey_corpus_index, cli, capsys):
    """Below a question that is a name alone, papers are the named paper's related work: said in the
    answer, its explain block and the why column, as the page says it (an attacker's pass: they were
    explained by scores that did not rank them)."""
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Evidence, Hit

    answer = json.loads(cli("search", "GPTQ", "-k", "3", "--json", "--explain", "--index", survey_corpus_index).stdout)
    assert [hit["explain"]["beside_named"] for hit in answer["results"]] == [False, True, True]
    assert "the name alone" in answer["explanation"]
    below = Evidence(dense=0.2, taxonomy_weight=2.0, beside_named=True)
    _print_hits([Hit(Paper("2306.00978", "AWQ"), 0.3, evidence=below)], True)
    why = " ".join(word for word in capsys.readouterr().out.split() if word not in "│┃")
    assert "related work of the paper the question names (the question is a name alone)" in why


def test_the_why_column_of_a_paper_asked_for_by_its_arxiv_id_says_only_that(capsys):
    """A question that is a paper's arXiv id finds it by the id, no name or title read: "its arXiv
    id", not also "named by the question (its name or title)", which it was not."""
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Evidence, Hit

    by_id = Evidence(one_paper=1.0, known_item=True, named=True, by_id=True)
    _print_hits([Hit(Paper("2210.17323", "GPTQ: Accurate Quantization"), 1.0, evidence=by_id)], explain=True)
    out = " ".join(capsys.readouterr().out.split())
    assert "its arXiv id" in out and "named by the question" not in out


def test_an_old_style_id_written_three_ways_is_one_paper(tmp_path, cli):
    """`cs.CL/0601001` (its subject class) and `CS/0601001` name arXiv's `cs/0601001`; each was
    stored as a paper of its own, listed twice in search and recommended beside itself when liked."""
    text = {"title": "Compressing Key-Value Caches with Old Tricks", "abstract": "Cached keys quantized."}
    other = {"id": "2401.00001", "title": "Speculative decoding with drafts", "abstract": "Drafts verified."}
    source = tmp_path / "old.jsonl"
    rows = [{"id": i, **text} for i in ("cs/0601001", "cs.CL/0601001v2", "CS/0601001", "arXiv:cs.CL/0601001")]
    source.write_text("".join(json.dumps(r) + "\n" for r in [*rows, other]))
    index = tmp_path / "idx"
    cli("ingest", "jsonl", source, "--index", index, "--no-progress", check=True)
    assert json.loads(cli("info", "--index", index, "--json", check=True).stdout)["papers"] == 2
    found = json.loads(cli("search", "Compressing Key-Value Caches", "--index", index, "--json", check=True).stdout)
    assert [hit["id"] for hit in found["results"]].count("cs/0601001") == 1
    liked = json.loads(cli("recommend", "--like", "cs.CL/0601001", "--index", index, "--json", check=True).stdout)
    assert [hit["id"] for hit in liked["results"]] == ["2401.00001"]


def test_every_ingest_command_prints_its_report_as_json(cli, tmp_path, survey_only_index, monkeypatch):
    """`--json` on every command that prints results: `ingest jsonl --json` printed the run's counts,
    `ingest arxiv` and `ingest survey` refused the option ("No such option: --json", exit 2). All
    three now print the same object, the summary line staying on stderr."""
    fields = {"read", "added", "updated", "unchanged", "embedded", "papers", "skipped", "skipped_lines"}
    with ArxivStub() as stub:
        monkeypatch.setenv("SEMSEARCH_ARXIV_URL", stub.url)
        fetched = cli("ingest", "arxiv", "--id", "2401.00001", "--json", "--index", tmp_path / "new", check=True)
        again = cli("ingest", "arxiv", "--id", "2401.00001", "--index", tmp_path / "new", check=True)
    assert json.loads(fetched.stdout) == {
        "read": 1, "added": 1, "updated": 0, "unchanged": 0, "embedded": 1, "papers": 1,
        "skipped": 0, "skipped_lines": [],
    }  # fmt: skip
    assert "index now holds 1 paper (" in fetched.stderr  # it said "1 papers"
    assert "read 1 paper: 0 new, 0 updated, 1 unchanged; nothing new: gen-000001 (1 paper) is unchanged" in again.stderr
    again = cli("ingest", "survey", "--offline", "--json", "--index", survey_only_index, check=True)
    report = json.loads(again.stdout)
    assert set(report) == fields and report["read"] == report["unchanged"] > 400 and report["added"] == 0
    assert report["papers"] == json.loads(cli("info", "--json", "--index", survey_only_index).stdout)["papers"]


def test_the_why_column_says_each_kind_of_evidence_in_its_own_words(capsys):
    """`search --explain`'s table, cell by cell: the scores, the question's leaf and how surely the
    paper fits it, the taxonomy's weight on the first row alone, and a named paper said as such."""
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Evidence, Hit

    fits = Evidence(dense=0.5, lexical=2.0, lexical_share=0.4, category="Compression/Quantization",
                    category_probability=0.8, taxonomy_weight=0.5)  # fmt: skip
    named = Evidence(dense=0.3, lexical=4.6, lexical_share=1.0, named=True)
    hits = [Hit(Paper("2210.17323", "GPTQ"), 0.9, evidence=fits), Hit(Paper("2306.00978", "AWQ"), 0.8, evidence=named),
            Hit(Paper("2208.07339", "LLM.int8"), 0.7, evidence=fits)]  # fmt: skip
    _print_hits(hits, explain=True)
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in capsys.readouterr().out.splitlines()]
    rows = [row for row in rows if row]
    assert rows[0] == ["#", "score", "year", "title", "category", "id", "why"]
    assert [row[-1] for row in rows[1:]] == [
        "dense 0.50, bm25 2.0 (40% of best), Quantization fits the question 80%, taxonomy weighed 0.5",
        "dense 0.30, bm25 4.6 (100% of best), named by the question (its name or title)",
        "dense 0.50, bm25 2.0 (40% of best), Quantization fits the question 80%",
    ]


def test_the_table_says_which_categories_the_classifier_predicted(capsys):
    """A category the survey does not give but the classifier guessed is marked "(predicted)"; a
    labelled one is shown as it is, by its leaf's name."""
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Hit

    hits = [
        Hit(Paper("2210.17323", "GPTQ", year=2022), 0.9, categories=["Compression/Quantization"],
            category_source="survey"),
        Hit(Paper("2306.00978", "AWQ"), 0.8, categories=["Compression/Quantization", "Inference/KV Cache"],
            category_source="predicted"),
    ]  # fmt: skip
    _print_hits(hits)
    rows = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in capsys.readouterr().out.splitlines()]
    assert [row for row in rows if row] == [
        ["#", "score", "year", "title", "category", "id"],
        ["1", "0.900", "2022", "GPTQ", "Quantization", "2210.17323"],
        ["2", "0.800", "", "AWQ", "Quantization, KV Cache (predicted)", "2306.00978"],
    ]


def test_skipped_lines_are_counted_and_the_first_five_named(tmp_path, fake_model, capsys):
    """`--skip-malformed` says how many lines it skipped ("7 malformed lines": the plural as said)
    and names the first five, then "…"."""
    source = tmp_path / "papers.jsonl"
    paper = {"id": "2401.00001", "title": "KV caches", "abstract": "We evict keys."}
    source.write_text(json.dumps(paper) + "\n" + "{oops\n" * 7)
    code, _, err = run(capsys, "ingest", "jsonl", source, "--skip-malformed", "--index", tmp_path / "idx")
    named = ", ".join(f"{source}:{n}" for n in range(2, 7))
    assert code == 0 and err.splitlines()[-1] == f"skipped 7 malformed lines: {named}, …", err


def test_text_goes_out_whole_where_it_can_and_escaped_where_it_cannot(built, capsys, tmp_path, monkeypatch):
    """To a stream that names no encoding (a program's StringIO) JSON is UTF-8 as it is; to an ASCII
    one (PYTHONIOENCODING=ascii) JSON uses its own escapes and plain text backslash escapes, never a
    UnicodeEncodeError."""
    import io
    import shutil
    import sys

    index = tmp_path / "índice"
    shutil.copytree(built, index)
    plain = io.StringIO()
    monkeypatch.setattr(sys, "stdout", plain)
    assert main(["info", "--json", "--index", str(index)]) == 0
    assert json.loads(plain.getvalue())["path"].endswith("/índice") and "índice" in plain.getvalue()
    for args, shown in ((["--json"], "\\u00ed"), ([], "\\xed")):
        raw = io.BytesIO()
        ascii_out = io.TextIOWrapper(raw, encoding="ascii", write_through=True)
        monkeypatch.setattr(sys, "stdout", ascii_out)
        assert main(["info", *args, "--index", str(index)]) == 0
        written = raw.getvalue().decode("ascii")
        assert f"/{shown}ndice" in written, written


def test_sigterm_during_a_command_is_said_as_terminated_exit_143(built, capsys, monkeypatch):
    """SIGTERM arrives as `Terminated` (a KeyboardInterrupt): said in Ctrl-C's words with
    "terminated" for "interrupted", exit 143; Ctrl-C itself exit 130."""
    from semsearch import index
    from semsearch.cli import Terminated

    def stopped(*args, **kwargs):
        raise Terminated

    monkeypatch.setattr(index.Index, "open", stopped)
    assert run(capsys, "info", "--index", built) == (143, "", "terminated\n")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(index.Index, "open", interrupted)
    assert run(capsys, "info", "--index", built) == (130, "", "interrupted\n")


def test_an_index_that_cannot_be_written_is_one_line_exit_2_and_any_other_os_error_is_not_hidden(
    built, capsys, monkeypatch
):
    """EACCES, EROFS, EPERM (an index on a read-only mount, another user's) are the user's to fix:
    one line, exit 2. Another OSError the library did not name is a fault, not passed off as one."""
    import errno

    from semsearch import index

    def failing(code):
        def open_index(*args, **kwargs):
            raise OSError(code, os.strerror(code), "idx/store.sqlite")

        return open_index

    import os

    for code in (errno.EACCES, errno.EROFS, errno.EPERM):
        monkeypatch.setattr(index.Index, "open", failing(code))
        assert run(capsys, "info", "--index", built) == (2, "", f"error: [Errno {code}] {os.strerror(code)}: "
                                                                 "'idx/store.sqlite'\n")  # fmt: skip
    monkeypatch.setattr(index.Index, "open", failing(errno.EIO))
    with pytest.raises(OSError, match="Input/output"):
        main(["info", "--index", str(built)])


def test_a_paper_out_of_scope_is_said_so_with_its_nearest_node_alternatives_and_neighbours(capsys):
    """`classify`'s table: the best node as a path, the confidence and scope with the verdict in
    words, then the alternatives and the closest labelled papers by their leaves."""
    from types import SimpleNamespace as Record

    from semsearch.cli import _print_classification

    result = Record(
        suggestions=[
            Record(category="Compression/Quantization", score=0.4),
            Record(category="Inference/KV", score=0.1),
        ],
        in_scope=False,
        confidence=0.4,
        scope=0.2,
        neighbours=[Record(similarity=0.31, title="GPTQ", categories=["Compression/Quantization", "Inference/KV"])],
    )
    _print_classification(result)
    assert capsys.readouterr().out.splitlines() == [
        "Compression › Quantization",
        "confidence 0.40, scope 0.20: out of scope: closer to other kinds of research",
        "alternatives:",
        "  0.10  Inference › KV",
        "closest labelled papers:",
        "  0.31  GPTQ  (Quantization, KV)",
    ]
    _print_classification(Record(**{**vars(result), "in_scope": True, "scope": 0.9}))
    assert capsys.readouterr().out.splitlines()[1] == "confidence 0.40, scope 0.90: in scope"


def test_eval_classify_of_new_papers_as_tables_names_each_figure(survey_only_index, capsys, tmp_path):
    """The table form of `eval classify --papers`: a line of counts, the figures per engine under
    their headings, then top-1 by the expected branch."""
    papers = tmp_path / "new.jsonl"
    rows = [
        {"id": "a", "title": "Weights", "abstract": "4-bit weight quantization", "expected": "Quantization"},
        {"id": "c", "title": "Kittens", "abstract": "A photo essay about kittens.", "expected": None},
    ]
    papers.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, out, err = run(capsys, "eval", "classify", "--papers", papers, "--index", survey_only_index)
    lines = [line.rstrip() for line in out.splitlines()]
    cells = [[cell.strip() for cell in re.split("[│┃]", line)[1:-1]] for line in lines]
    assert code == 0 and lines[:2] == [
        "2 papers: 1 in the taxonomy, 1 outside it",
        "first suggestion at or under the expected node (top-1), any of three (top-3)",
    ], err
    heads = ["engine", "top-1", "top-3", "branch top-1", "scope AUROC", "scope bal. acc.", "ECE", "mean confidence"]
    assert cells[3] == heads and [row[0] for row in cells[5:7]] == ["semsearch", "kNN vote"]
    assert cells[6][5] == "–"  # the kNN vote gives no verdict to judge
    assert "top-1 by expected branch" in lines
    branch = lines.index("top-1 by expected branch")
    assert cells[branch + 2] == ["branch", "papers", "semsearch", "kNN vote"]
    assert cells[branch + 4][:2] == ["Model-Centric Methods/Model Compression", "1"]


def test_eval_classify_of_an_added_list_judges_its_scope_against_the_papers_marked_outside(
    survey_only_index, capsys, tmp_path
):
    """`eval classify --taxonomy NAME`: leave-one-out over the list's labelled papers; with --papers,
    its scope is judged against the papers the file marks as outside (expected null) alone."""
    from semsearch.index import Index

    idx = Index.open(survey_only_index)
    held = [paper for _, paper in idx.store.iter_papers() if paper.id[:1].isdigit()][:24]
    idx.close()
    items = [f"- **{paper.title}** [[pdf](https://arxiv.org/abs/{paper.id})]" for paper in held]
    readme = tmp_path / "mine.md"
    readme.write_text("\n".join(["# Mine", "## Caches", *items[:12], "## Drafts", *items[12:]]) + "\n")
    assert run(capsys, "taxonomy", "add", "mine", readme, "--offline", "--index", survey_only_index)[0] == 0
    code, out, err = run(capsys, "eval", "classify", "--taxonomy", "mine", "--json", "--index", survey_only_index)
    alone = json.loads(out)
    assert code == 0 and alone["papers"] == 24 and "scope_auroc" not in alone, err
    papers = tmp_path / "new.jsonl"
    rows = [
        {"id": "c", "title": "Kittens", "abstract": "A photo essay about kittens.", "expected": None},
        {"id": "d", "title": "Ferns", "abstract": "Ferns of the northern woods.", "expected": None},
        {"id": "a", "title": "Weights", "abstract": "4-bit weight quantization", "expected": "Quantization"},
    ]
    papers.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    args = ("eval", "classify", "--taxonomy", "mine", "--papers", papers, "--index", survey_only_index)
    code, out, err = run(capsys, *args, "--json")
    judged = json.loads(out)
    assert code == 0 and judged["outside_papers"] == 2 and 0.0 <= judged["scope_auroc"] <= 1.0, err
    assert {key: value for key, value in judged.items() if key not in ("outside_papers", "scope_auroc")} == alone
    code, out, err = run(capsys, *args)
    table = dict(line.split(maxsplit=1) for line in out.splitlines())
    assert code == 0 and table["outside_papers"] == "2" and table["papers"] == "24"
    assert table["in_scope_share_with_abstract"] == "n/a (none to measure)"  # offline: no abstracts
    assert table["scope_auroc"] == f"{judged['scope_auroc']:.3f}"


def test_ctrl_c_before_the_command_could_answer_it_is_said_and_exits_130(capsys, monkeypatch):
    """Ctrl-C while the streams are set up or the model warms (before `main` answers it) is said in
    one line, nothing changed, exit 130; SIGTERM is taken as Ctrl-C for the command, and a second
    Ctrl-C is ignored once the first is answered."""
    import signal

    from semsearch import cli

    def pressed(argv=None):
        raise KeyboardInterrupt

    saved = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    monkeypatch.setattr(cli, "main", pressed)
    monkeypatch.setattr(cli, "_A_COMMAND", False)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    try:
        with pytest.raises(SystemExit) as stopped:
            cli.run(["info"])
        assert stopped.value.code == 130 and capsys.readouterr().err == "interrupted; nothing was changed\n"
        assert signal.getsignal(signal.SIGTERM) is cli.terminate
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, saved[0])
        signal.signal(signal.SIGTERM, saved[1])


def test_a_command_started_with_stdout_or_stderr_closed_answers_as_if_to_dev_null(built, capsys, monkeypatch):
    """`semsearch ... >&-` or `2>&-` (sys.stdout or sys.stderr None): what would go there is
    dropped, the exit code is the answer's, and the streams are as they were afterwards."""
    import sys

    stderr = sys.stderr
    monkeypatch.setattr(sys, "stderr", None)
    assert main(["search", "x", "--index", str(built / "nowhere")]) == 2  # its one line: to nowhere
    assert main(["info", "--index", str(built)]) == 0 and sys.stderr is None
    monkeypatch.setattr(sys, "stderr", stderr)
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["info", "--json", "--index", str(built)]) == 0 and sys.stdout is None


@pytest.mark.parametrize(
    ("command", "left", "said"),
    [
        (("ingest", "jsonl", "x.jsonl"), "staged", "interrupted; the papers read so far are kept, with any already "
         "embedded: the next run resumes from them, and the next command that writes to the index publishes them "
         "(delete staging/ to drop them)"),
        (("label", "2302.00003", "Quantization"), "staged", "interrupted; a change it had begun waits in the index's "
         "staging/ and is published by the next command that writes to the index (delete staging/ to drop it)"),
        (("label", "2302.00003", "Quantization"), "published", "interrupted; the change was published"),
        (("label", "2302.00003", "Quantization"), "nothing", "interrupted; nothing was changed"),
        (("label", "2302.00003", "Quantization"), None, "interrupted"),
    ],
)  # fmt: skip
def test_ctrl_c_says_what_the_writer_left_by_the_command_it_stopped(built, capsys, monkeypatch, command, left, said):
    """What Ctrl-C leaves is said by what the index's writer tells (`index_left`) and by the command
    given (not the process's own argv): a command that embeds resumes from what it staged."""
    from semsearch import ingest

    def pressed(*args, **kwargs):
        stop = KeyboardInterrupt()
        if left is not None:
            stop.index_left = left
        raise stop

    monkeypatch.setattr(ingest, "ingest_jsonl", pressed)
    monkeypatch.setattr(ingest, "labelled", pressed)
    assert run(capsys, *command, "--index", built) == (130, "", said + "\n")


def test_search_warms_the_encoder_of_the_index_it_names_and_no_other_command_does(built, capsys, monkeypatch):
    """Before typer parses anything, `search` starts loading the question encoder of the index it
    will ask (--index DIR or --index=DIR, else $SEMSEARCH_INDEX); a lexical search, --help and other
    commands load none."""
    from pathlib import Path

    from semsearch import embeddings

    warmed = []
    monkeypatch.setattr(embeddings, "warm_up", lambda *, index_dir: warmed.append(Path(index_dir)))
    assert run(capsys, "search", "kv cache", "--index", built)[0] == 0
    assert run(capsys, "search", "kv cache", f"--index={built}")[0] == 0
    monkeypatch.setenv("SEMSEARCH_INDEX", str(built))
    assert run(capsys, "search", "kv cache")[0] == 0
    assert warmed == [Path(built)] * 3
    for args in (("search", "kv cache", "--mode", "lexical"), ("search", "--help"), ("info",)):
        assert run(capsys, *args)[0] == 0
    assert warmed == [Path(built)] * 3


def test_help_shows_a_type_beside_options_that_take_a_value_and_none_beside_flags(capsys):
    """`-k <int>` and `--index <path>` take a value and say its kind; `--json` takes none."""
    code, out, _ = run(capsys, "search", "--help")
    lines = {line.split()[1]: line.split()[2] for line in out.splitlines() if len(line.split()) > 2}
    assert code == 0 and lines["-k"] == "<int>" and lines["--index"] == "<path>"
    assert lines["--json"] == "Print"  # the help text follows at once: no type


def test_stdout_that_cannot_be_written_is_said_once_and_a_closed_pipe_is_not_an_error(built, capsys, monkeypatch):
    """Output to a full disk (`> file` on it): one line naming the output, not the index, exit 2;
    a reader that went away (`| head`): exit 0, nothing said."""
    import errno
    import io
    import sys

    class Failing(io.StringIO):
        def __init__(self, error):
            super().__init__()
            self.error = error

        def write(self, text):
            raise self.error

    monkeypatch.setattr(sys, "stdout", Failing(OSError(errno.ENOSPC, "No space left on device")))
    assert main(["info", "--json", "--index", str(built)]) == 2
    assert capsys.readouterr().err == "error: could not write the output: no space left on device\n"
    monkeypatch.setattr(sys, "stdout", Failing(BrokenPipeError(errno.EPIPE, "Broken pipe")))
    assert main(["info", "--json", "--index", str(built)]) == 0
    assert capsys.readouterr().err == ""


def test_the_command_line_is_read_from_sys_argv_when_main_is_given_none(built, capsys, monkeypatch):
    """`main()` (the `semsearch` command) reads sys.argv, for the command and for what Ctrl-C says."""
    import sys

    from semsearch import ingest

    def pressed(*args, **kwargs):
        stop = KeyboardInterrupt()
        stop.index_left = "staged"
        raise stop

    monkeypatch.setattr(ingest, "ingest_jsonl", pressed)
    monkeypatch.setattr(sys, "argv", ["semsearch", "ingest", "jsonl", "x.jsonl", "--index", str(built)])
    assert main() == 130
    assert capsys.readouterr().err.startswith("interrupted; the papers read so far are kept")


def test_an_aborted_command_says_interrupted_exit_130(built, capsys, monkeypatch):
    """click's Abort (a prompt's Ctrl-C or end of input) is answered as Ctrl-C is."""
    import typer

    from semsearch import index

    def aborted(*args, **kwargs):
        raise typer.Abort

    monkeypatch.setattr(index.Index, "open", aborted)
    assert run(capsys, "info", "--index", built) == (130, "", "interrupted\n")


def test_progress_is_shown_by_default_only_when_stderr_is_a_terminal(capsys, monkeypatch):
    """No --progress/--no-progress: a bar when stderr is a terminal, none when it is not, is
    missing (fd 2 closed) or closed."""
    import io
    import sys

    from semsearch import ingest

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    asked = []
    monkeypatch.setattr(ingest, "ingest_survey", lambda **kwargs: asked.append(kwargs["progress"]) or 1 / 0)
    closed = io.StringIO()
    closed.close()
    for stream in (Terminal(), io.StringIO(), closed):
        monkeypatch.setattr(sys, "stderr", stream)
        with pytest.raises(ZeroDivisionError):
            main(["ingest", "survey", "--offline", "--index", "idx"])
    assert asked == [True, False, False]


def test_a_batch_as_bibtex_is_one_bibliography_ending_in_one_line_break(built, capsys, tmp_path):
    questions = tmp_path / "q.txt"
    questions.write_text("pruning attention heads\nkey-value cache eviction\n")
    code, out, _ = run(capsys, "search", "--batch", questions, "-k", 2, "--format", "bibtex", "--index", built)
    assert code == 0 and out.startswith("@") and out.endswith("}\n") and not out.endswith("\n\n")


def test_a_title_too_long_for_the_table_is_folded_whole_not_cut(capsys):
    from semsearch.cli import _print_hits
    from semsearch.paper import Paper
    from semsearch.search import Hit

    """Off a terminal the table is 160 columns wide; a longer title (or one unbroken token of it,
    such as a URL) is folded over lines, every character kept."""
    title = " ".join(f"word{n}" for n in range(60)) + " " + "q" * 250
    _print_hits([Hit(Paper("2210.17323", title), 0.9)])
    out = capsys.readouterr().out
    assert "…" not in out and all(f"word{n}" in out for n in range(60)) and out.count("q") == 250


@pytest.mark.parametrize(
    "argv", [["watch", "--every", "0.001s"], ["serve", "--watch-every", "59s", "--port", "1"]], ids=["watch", "serve"]
)
def test_a_watch_interval_shorter_than_a_minute_is_refused_when_it_asks_arxiv(argv, capsys, tmp_path, monkeypatch):
    """`watch --every 0.001s` (and `serve --watch-every` alike) watched again at once, turn after
    turn: against an arXiv that failed, thousands of requests a second. Asking arXiv itself, an
    interval under a minute is refused in one line, before anything runs; a mirror or a test's stub
    (SEMSEARCH_ARXIV_URL) is its owner's to pace."""
    from semsearch.watch import watch_interval

    monkeypatch.delenv("SEMSEARCH_ARXIV_URL")
    refusal = f"error: the interval '{argv[2]}' is shorter than a minute: arXiv asks for 3 s between requests"
    code, out, err = run(capsys, *argv, "--index", tmp_path / "none")
    assert (code, out, len(err.splitlines())) == (2, "", 1) and err.startswith(refusal), err
    assert watch_interval("1m") == 60 and watch_interval("24h") == 86400
    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", "http://127.0.0.1:9/api/query")
    assert watch_interval("2s") == 2


@pytest.mark.parametrize(
    "url",
    ["https://export.arxiv.org/api/query/", "http://export.arxiv.org/api/query", "https://EXPORT.arXiv.org/api/query",
     "https://arxiv.org/api/query", "https://export.arxiv.org./api/query?"],
)  # fmt: skip
def test_arxivs_own_api_named_in_semsearch_arxiv_url_is_paced_as_arxiv(url, tmp_path, monkeypatch):
    """SEMSEARCH_ARXIV_URL naming arXiv's API otherwise than the default is spelt (a slash at its end,
    http, capitals) passed for a mirror: `watch --every 1s` asked arXiv itself every second."""
    from semsearch.errors import SemsearchError
    from semsearch.watch import watch_interval

    monkeypatch.setenv("SEMSEARCH_ARXIV_URL", url)
    with pytest.raises(SemsearchError, match="shorter than a minute"):
        watch_interval("1s")
    if url.endswith("/"):
        code, out, err = run_cli("watch", "--every", "1s", "--index", tmp_path / "none", timeout=60)
        assert (code, out) == (2, "") and err.startswith("error: the interval '1s' is shorter than a minute"), err


def test_a_too_short_watch_interval_is_refused_by_the_command(tmp_path, monkeypatch):
    """The same refusal from `semsearch watch --every` and `serve --watch-every` processes."""
    monkeypatch.delenv("SEMSEARCH_ARXIV_URL")
    for argv in (("watch", "--every", "0.001s"), ("serve", "--watch-every", "30s")):
        code, out, err = run_cli(*argv, "--index", tmp_path / "none", timeout=60)
        assert (code, out) == (2, "") and err.startswith("error: the interval ") and err.count("\n") == 1, err


def test_mcp_without_an_index_says_the_command_that_builds_it(tmp_path, capsys):
    """`search` builds the default index on first use; `mcp` does not: its client waits on stdio for
    the server to start, and a build takes from half a minute (titles) to minutes (abstracts from
    arXiv). It said "no index at index": a relative name, read in whatever directory the client
    started it, and a command that, run in the user's own shell, built another ./index. Now one
    line naming the directory in full and the command that builds that one; nothing is made."""
    expected = (
        f"error: no index at {tmp_path / 'index'} for the MCP server: build it first with "
        f"`semsearch ingest survey --index {tmp_path / 'index'}` (it does not build one while its client waits)\n"
    )
    assert run(capsys, "mcp") == (2, "", expected)
    assert run_cli("mcp", cwd=tmp_path, timeout=60) == (2, "", expected)  # as an MCP client starts it
    assert list(tmp_path.iterdir()) == []


def test_an_ingest_refused_for_its_ray_cluster_leaves_no_index_directory_behind(tmp_path, fake_model, capsys):
    """Refused for its cluster on a directory with no index yet (`--index` mistyped, or a first try),
    `ingest jsonl --ray` left that directory made, holding a `.lock` and the encoder's export (87 MB
    with the real model), for a run that stored nothing. Now a refusal leaves no trace; on an index
    that is there, no export it made either."""
    source = tmp_path / "new.jsonl"
    source.write_text(json.dumps({"id": "2401.00002", "title": "Draft models", "abstract": "We draft tokens."}) + "\n")
    fresh = tmp_path / "fresh" / "idx"
    code, out, err = run(capsys, "ingest", "jsonl", source, "--ray", "ray://127.0.0.1:1", "--index", fresh)
    assert (code, out) == (2, "") and err.startswith("error: --ray ") and len(err.splitlines()) == 1, err
    assert not (tmp_path / "fresh").exists()
    done = run_cli("ingest", "jsonl", source, "--ray", "ray://127.0.0.1:1", "--index", fresh)
    assert (done.returncode, done.stdout) == (2, "") and not (tmp_path / "fresh").exists(), done.stderr


def test_an_encoders_folder_linked_to_nowhere_is_no_traceback_and_a_refused_ray_start_leaves_the_link(tmp_path):
    """An index whose `encoders` is a symbolic link to a folder not there (a disk not mounted): the
    marker of a model that cannot be exported was written into it unguarded, a traceback; and
    `ingest --ray` refused then removed the link, which it took for a folder it had made."""
    source = tmp_path / "papers.jsonl"
    source.write_text(json.dumps({"id": "2401.00002", "title": "Draft models", "abstract": "We draft tokens."}) + "\n")
    index = tmp_path / "idx"
    run_cli("ingest", "jsonl", source, "--index", index, check=True)
    shutil.rmtree(index / "encoders", ignore_errors=True)
    (index / "encoders").symlink_to(tmp_path / "unmounted" / "encoders")
    assert run_cli("ingest", "jsonl", source, "--index", index).returncode == 0  # no traceback (run_cli)
    code, out, err = run_cli("ingest", "jsonl", source, "--ray", "ray://127.0.0.1:1", "--index", index)
    assert (code, out) == (2, "") and err.startswith("error: --ray "), err
    assert (index / "encoders").is_symlink()


def test_label_and_labels_take_json(built, capsys, tmp_path):
    """`label`, `labels` (and `labels export`) and `labels import` took no --json, while every other
    command printing results does. With it each prints one JSON document on stdout, its message
    still on stderr: `label` the answer POST /api/labels gives, `labels` an array of the rows its
    JSON Lines hold (which `labels import` reads back, as its lines), `labels import` its counts."""
    code, out, err = run(capsys, "label", "2302.00003", "Quantization", "--json", "--index", built)
    assert code == 0 and json.loads(out) == {"id": "2302.00003", "category": err.split(": ", 1)[1].strip(),
                                             "in_effect": True}, err  # fmt: skip
    lines = run(capsys, "labels", "--index", built)[1]
    listed = run(capsys, "labels", "--json", "--index", built)[1]
    assert json.loads(listed) == [json.loads(line) for line in lines.splitlines()] and len(json.loads(listed)) == 1
    assert run(capsys, "labels", "export", "--json", "--index", built)[1] == listed
    exported = tmp_path / "labels.json"
    exported.write_text(listed)
    code, out, err = run(capsys, "labels", "import", exported, "--json", "--index", built)
    assert code == 0 and json.loads(out) == {"imported": 0, "already_held": 1, "not_in_index": 0}, err
    exported.write_text('[{"id": "2302.00003", "category": "Quantization"}, {"id": "2302.00003"}]')
    code, out, err = run(capsys, "labels", "import", exported, "--json", "--index", built)
    assert (code, out) == (2, "") and err.startswith(f"error: {exported}: item 2: ") and err.count("\n") == 1, err
    code, out, err = run(capsys, "label", "2302.00003", "--remove", "--json", "--index", built)
    assert code == 0 and json.loads(out) == {"id": "2302.00003", "category": None, "in_effect": False}, err
    assert json.loads(run(capsys, "labels", "--json", "--index", built)[1]) == []


def test_labels_options_given_before_its_command_count(built, capsys, tmp_path):
    """`labels --json export` printed JSON Lines and `labels --index DIR export` read ./index: `labels`
    read the options, and its command never saw them."""
    run(capsys, "label", "2302.00003", "Quantization", "--index", built)
    listed = run(capsys, "labels", "export", "--json", "--index", built)[1]
    assert run(capsys, "labels", "--json", "--index", built, "export")[1] == listed
    assert run(capsys, "labels", "--index", built, "export", "--json")[1] == listed
    exported = tmp_path / "labels.json"
    exported.write_text(listed)
    code, out, err = run(capsys, "labels", "--json", "--index", built, "import", exported)
    assert code == 0 and json.loads(out) == {"imported": 0, "already_held": 1, "not_in_index": 0}, err
    done = run_cli("labels", "--json", "--index", built, "export", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, listed), done.stderr


def test_label_and_labels_json_by_the_command(built, tmp_path):
    """The same options in `semsearch` processes of their own."""
    said = json.loads(run_cli("label", "2302.00003", "Quantization", "--json", "--index", built, check=True).stdout)
    assert said["id"] == "2302.00003" and said["in_effect"] is True
    listed = run_cli("labels", "--json", "--index", built, check=True).stdout
    assert [row["id"] for row in json.loads(listed)] == ["2302.00003"]
    assert run_cli("labels", "export", "--json", "--index", built, check=True).stdout == listed
    exported = tmp_path / "labels.json"
    exported.write_text(listed)
    imported = run_cli("labels", "import", exported, "--json", "--index", built, check=True)
    assert json.loads(imported.stdout) == {"imported": 0, "already_held": 1, "not_in_index": 0}
