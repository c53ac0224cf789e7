"""The documentation stays true: every command it shows exists with the options it uses, links
resolve, and the README keeps its two set-up commands (CI runs the second one verbatim)."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import re
import shlex
from pathlib import Path

import pytest

from semsearch.cli import main
from tests.cli_process import python_prints
from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(path: Path) -> list[str]:
    """`semsearch ...` lines of the bash blocks in a markdown file (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("semsearch ")]


COMMANDS = [(path.name, line) for path in DOCS for line in shown_commands(path)]


@functools.cache
def help_of(*path: str) -> tuple[int, str, str]:
    """`semsearch PATH --help`: (exit code, stdout, stderr), asked once per path for all the lines
    that name it (help depends on nothing but the command's definition)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([*path, "--help"])
    return code, out.getvalue(), err.getvalue()


def named_commands(path: Path) -> list[str]:
    """Commands the running text names in code spans: `semsearch ...`, or a command and more
    words (`label ID --remove --taxonomy NAME`), as `semsearch ...` lines; and the arguments of the
    assistants' configuration (`"args": ["mcp", ...]`)."""
    from semsearch.cli import _command

    names = set(_command().commands)
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL)  # the blocks' lines are COMMANDS
    found = []
    for span in re.findall(r"`([^`\n]+)`", text):
        words = span.split()
        if words[0] == "semsearch" and len(words) > 1 or words[0] in names and len(words) > 1:
            found.append(span if words[0] == "semsearch" else f"semsearch {span}")
    for args in re.findall(r'"args": (\[[^\]]*\])', path.read_text()):
        found.append(shlex.join(["semsearch", *json.loads(args)]))
    return found


NAMED = [(p.name, line) for p in DOCS if p.name != "evaluation.md" for line in named_commands(p)]


def _exists_with_its_options(where: str, line: str) -> None:
    words = shlex.split(line.replace("[", "").replace("]", "").replace("|", " ").replace("$(date +%F)", "DAY"))[1:]
    path = []
    for word in words:  # the subcommand path: words up to the first argument or option
        if word.startswith("-"):
            break
        code, out, _ = help_of(*path, word)
        if code != 0 or "Usage:" not in out or (path and f"{' '.join(path)} {word}" not in out):
            break
        path.append(word)
    code, help_text, err = help_of(*path)
    assert code == 0 and (path or words[0] == "--version"), (line, err)  # `semsearch --version` alone
    for option in {w.split("=")[0] for w in words if w.startswith("--")}:
        assert option in help_text, f"{where}: `{line}` uses {option}, which `semsearch {' '.join(path)}` lacks"


@pytest.mark.parametrize("where, line", COMMANDS, ids=[f"{w}: {c[:50]}" for w, c in COMMANDS])
def test_every_command_shown_exists_with_its_options(where, line):
    _exists_with_its_options(where, line)


@pytest.mark.parametrize("where, line", NAMED, ids=[f"{w}: {c[:50]}" for w, c in NAMED])
def test_every_command_the_text_names_exists_with_its_options(where, line):
    """The commands in the prose (`label ID --remove --taxonomy NAME`, `info [--json]`, the MCP
    configuration's `mcp --index`) are no bash block's, which the test above and tests/test_examples
    read: an option renamed there had left the text naming one that no longer exists."""
    _exists_with_its_options(where, line)


def test_the_readme_keeps_its_two_set_up_commands():
    readme = (ROOT / "README.md").read_text()
    setup = readme[readme.index("## Set up (two commands)") :].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, flags=re.DOTALL)
    assert commands[0].startswith("pip install -e . && semsearch ")
    assert commands[1] == 'pip install -e ".[test]" && pytest'
    assert commands[1] in (ROOT / ".ci" / "run").read_text()
    assert len(readme.splitlines()) <= 150


@pytest.mark.parametrize("path", DOCS + [ROOT / "scripts" / "eval" / "README.md"], ids=lambda p: p.name)
def test_relative_links_resolve(path):
    for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", path.read_text()):
        if not re.match(r"^[a-z]+:", target):
            assert (path.parent / target).exists(), f"{path.name} links to {target}, which does not exist"


def test_the_public_api_is_declared_and_light():
    heavy = "('torch', 'sentence_transformers', 'faiss')"
    probe = f"import sys, semsearch; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert python_prints(probe) == "[]"
    import semsearch

    for name in semsearch.__all__:
        assert getattr(semsearch, name) is not None
    with pytest.raises(AttributeError):
        semsearch.nothing_here  # noqa: B018


def test_index_dir_is_keyword_only_everywhere():
    """`f(x, index_dir=...)` reads the same in every module; the handles on one index (Index.open,
    IndexWriter, Ingest) take its directory first, as `open()` takes a path."""
    import importlib
    import inspect
    import pkgutil

    import semsearch

    checked = []
    for module_info in pkgutil.walk_packages(semsearch.__path__, "semsearch."):
        if module_info.name.endswith(("mcp_server", "__main__")):
            continue  # imports the optional MCP SDK at call time only; checked below by name
        module = importlib.import_module(module_info.name)
        for _, member in inspect.getmembers(module, lambda m: inspect.isfunction(m) or inspect.isclass(m)):
            if getattr(member, "__module__", None) != module.__name__:
                continue
            methods = [getattr(member, n) for n in vars(member)] if inspect.isclass(member) else []
            functions = (
                [member]
                if inspect.isfunction(member)
                else [m for m in methods if inspect.isfunction(m) or inspect.ismethod(m)]
            )
            for function in functions:
                parameter = inspect.signature(function).parameters.get("index_dir")
                if parameter is not None:
                    checked.append(function.__qualname__)
                    assert parameter.kind is parameter.KEYWORD_ONLY, function.__qualname__
    from semsearch import mcp_server

    for function in (mcp_server.build_server, mcp_server.serve_stdio):
        assert inspect.signature(function).parameters["index_dir"].kind is inspect.Parameter.KEYWORD_ONLY
    assert {"ingest_jsonl", "watch", "label_paper", "create_app", "Service.__init__"} <= set(checked)


# --- help that reads right ------------------------------------------------------------------------
def command_paths() -> list[tuple[str, ...]]:
    """Every command and subcommand of `semsearch`, as the words that name it."""
    from semsearch.cli import _command

    paths, stack = [], [((), _command())]
    while stack:
        path, command = stack.pop()
        paths.append(path)
        stack += [((*path, name), sub) for name, sub in getattr(command, "commands", {}).items()]
    return sorted(paths)


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "semsearch")
def test_on_off_flags_show_no_type_in_help(path):
    """`--json`, `--diverse` and `--help` take no value: typer printed `<bool>` beside each."""
    code, out, _ = help_of(*path)
    assert code == 0 and "--help" in out and "Usage:" in out
    assert "<bool>" not in out


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "semsearch")
def test_the_usage_line_marks_an_argument_optional_or_repeated_once(path):
    """typer adds its own brackets and dots to a metavar: `[[FILE|URL|NAME]]` and `{ID...}...`."""
    _, out, _ = help_of(*path)
    usage = next(line for line in out.splitlines() if "Usage:" in line)
    assert "[[" not in usage and "...}..." not in usage, usage


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "semsearch")
def test_a_repeatable_option_shows_what_one_value_is_not_a_python_list(path):
    """`--like <list[str]>`, `--id <list[str]>`, `--queries <list[Path]>`: each takes one value
    and is repeated, and the help read as if it took a list (in what syntax?)."""
    import re

    _, out, _ = help_of(*path)
    for line in out.splitlines():
        assert not re.search(r"--[\w-]+\s+<list\[", line), line


@pytest.mark.parametrize("path", [p for p in command_paths() if p], ids=" ".join)
def test_each_command_is_listed_in_its_groups_help_by_one_unbroken_summary(path):
    """A group's `--help` lists each command by its help's first paragraph with the line breaks as
    written (typer's rich mode): a summary running on to a second source line showed in the list
    as a ragged line and a fragment ("A refresh that" … "refused"). The summary is one source line;
    the details follow after a blank line, on the command's own `--help`."""
    from semsearch.cli import _command

    command = _command()
    for name in path:
        command = command.commands[name]
    summary = (command.help or "").strip().split("\n\n")[0]
    assert summary and "\n" not in summary
    code, listing, _ = help_of(*path[:-1])
    assert code == 0 and " ".join(summary.split()[:4]) in " ".join(listing.split())


@pytest.mark.parametrize(
    "path, says",
    [
        (("ingest", "survey"), "counts"),
        (("ingest", "jsonl"), "counts"),
        (("ingest", "arxiv"), "counts"),
        (("taxonomy", "add"), "summary"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, tuple) else value,
)
def test_json_help_says_what_it_prints_where_there_is_no_table(path, says):
    """These commands print no table (a summary line on stderr), yet `--json` said "Print JSON
    instead of a table"; it says what it prints."""
    _, out, _ = help_of(*path)
    words = " ".join(out.replace("│", " ").split())
    assert "instead of a table" not in words and says in words.split("--json", 1)[1].split("--")[0]


def test_watch_help_never_shows_the_default_site_in_a_form_site_refuses():
    """It said "(default 127.0.0.1:8000 ...)", a form `--site` refuses: an http(s) address is asked
    for, which the help says (the address itself does not fit the help's column at 80 characters)."""
    import re

    from semsearch.errors import SemsearchError
    from semsearch.watch import paper_view

    _, out, _ = help_of("watch")
    words = " ".join(out.replace("│", " ").split())
    site_help = words.split("--site", 1)[1].split(" --", 1)[0]
    assert "http(s) address" in site_help and "…" not in site_help, site_help
    for shown in re.findall(r"[\w:/.]*\d+\.\d+\.\d+\.\d+:\d+", site_help):
        try:
            paper_view(shown)
        except SemsearchError:
            pytest.fail(f"the help shows {shown!r}, which --site refuses")


def test_labels_help_shows_export_and_import_and_export_is_the_bare_command(cli, survey_only_index, capsys):
    import json

    code, out, _ = run(capsys, "labels", "--help")
    assert code == 0 and "export" in out and "import" in out
    code, _, err = run(capsys, "label", "2306.00978", "Weight-Only Quantization", "--index", survey_only_index)
    assert code == 0, err
    exported = cli("labels", "export", "--index", survey_only_index, check=True)
    assert [json.loads(line)["id"] for line in exported.stdout.splitlines()] == ["2306.00978"]
    code, bare, _ = run(capsys, "labels", "--index", survey_only_index)
    assert bare == exported.stdout  # `labels` alone is `labels export`


def test_the_survey_taxonomy_cannot_be_removed_and_says_so(survey_only_index, capsys):
    for name in ("survey", "Survey"):
        code, _, err = run(capsys, "taxonomy", "remove", name, "--index", survey_only_index)
        assert code == 2 and err.strip() == (
            "error: the survey's taxonomy is built in and cannot be removed (only lists added with `taxonomy add` can)"
        )


# --- network errors in whole phrases -------------------------------------------------------------
def test_a_list_that_cannot_be_fetched_is_one_whole_line(cli, survey_only_index):
    """requests' own text ("HTTPConnectionPool(...): Max retries exceeded ... (Caused by ...") was
    cut at 160 characters mid-sentence."""
    done = cli("taxonomy", "add", "kv", "http://127.0.0.1:9/README.md", "--index", survey_only_index)
    assert done.returncode == 1 and done.stdout == ""  # a host that does not answer: as arXiv's, not bad input
    assert done.stderr.strip() == "error: cannot fetch http://127.0.0.1:9/README.md: 127.0.0.1 refused the connection"


def _failure(kind: str):
    import requests

    request = requests.Request("GET", "https://raw.githubusercontent.com/a/b/HEAD/README.md").prepare()
    pool = "HTTPSConnectionPool(host='raw.githubusercontent.com', port=443): Max retries exceeded with url: /a/b"
    if kind == "dns":
        return requests.ConnectionError(f"{pool} (Caused by NameResolutionError(\"<urllib3...>: Failed to resolve\"))",
                                        request=request)  # fmt: skip
    if kind == "timeout":
        return requests.ReadTimeout(f"{pool} (Caused by ReadTimeoutError(...))", request=request)
    if kind == "tls":
        return requests.exceptions.SSLError(f"{pool} (Caused by SSLError(...))", request=request)
    if kind == "reset":
        return requests.ConnectionError(f"{pool} (Caused by ProtocolError('Connection aborted.'))", request=request)
    response = requests.Response()
    response.status_code, response.request = 404, request
    return requests.HTTPError("404 Client Error: Not Found for url: ...", response=response, request=request)


@pytest.mark.parametrize(
    "kind, phrase",
    [
        ("dns", "cannot resolve raw.githubusercontent.com (no network, or DNS is down)"),
        ("timeout", "raw.githubusercontent.com did not answer in time"),
        ("tls", "the secure connection to raw.githubusercontent.com failed (certificate or TLS)"),
        ("reset", "cannot connect to raw.githubusercontent.com (the connection failed or was dropped)"),
        ("http", "raw.githubusercontent.com answered HTTP 404"),
    ],
)
def test_network_failures_read_as_whole_phrases(kind, phrase):
    from semsearch.errors import network_reason

    assert network_reason(_failure(kind)) == phrase


@pytest.mark.parametrize("path", command_paths(), ids=lambda p: " ".join(p) or "semsearch")
def test_a_commands_help_flows_each_paragraph_to_the_terminals_width(path, monkeypatch):
    """typer's rich mode kept a docstring's line breaks: at 80 columns a source line of 90 showed as
    a ragged line and a fragment ("… or a file unlike the" / "list, is refused …")."""
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = help_of.__wrapped__(*path)  # at this width, not the cached answer at another
    description = [line.strip() for line in out.split("╭")[0].splitlines()]  # above the boxes
    assert code == 0 and max(map(len, description)) <= 58
    for line, after in zip(description, description[1:], strict=False):
        if line and after and not line.startswith("Usage:"):  # a paragraph's line, not its last
            assert len(line) + 1 + len(after.split()[0]) > 58, f"{line!r} is left short before {after!r}"
