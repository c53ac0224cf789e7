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
