"""The documentation stays true: every command it shows exists with the options it uses, links
resolve, and the README keeps its two set-up commands (CI runs the second one verbatim)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from tests.test_cli import run

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def shown_commands(path: Path) -> list[str]:
    """`semsearch ...` lines of the bash blocks in a markdown file (comments dropped)."""
    blocks = re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.DOTALL)
    lines = [line.split("  #")[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line.startswith("semsearch ")]


COMMANDS = [(path.name, line) for path in DOCS for line in shown_commands(path)]


@pytest.mark.parametrize("where, line", COMMANDS, ids=[f"{w}: {c[:50]}" for w, c in COMMANDS])
def test_every_command_shown_exists_with_its_options(where, line, capsys):
    words = shlex.split(line.replace("[", "").replace("]", "").replace("|", " "))[1:]
    path = []
    for word in words:  # the subcommand path: words up to the first argument or option
        if word.startswith("-"):
            break
        code, out, _ = run(capsys, *path, word, "--help")
        if code != 0 or "Usage:" not in out or (path and f"{' '.join(path)} {word}" not in out):
            break
        path.append(word)
    code, help_text, err = run(capsys, *path, "--help")
    assert code == 0 and path, (line, err)
    for option in {w.split("=")[0] for w in words if w.startswith("--")}:
        assert option in help_text, f"{where}: `{line}` uses {option}, which `semsearch {' '.join(path)}` lacks"


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
    import subprocess
    import sys

    heavy = "('torch', 'sentence_transformers', 'faiss')"
    probe = f"import sys, semsearch; print(sorted(m for m in {heavy} if m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True).stdout.strip() == "[]"
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
