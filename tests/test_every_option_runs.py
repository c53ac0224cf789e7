"""Every option of every command runs, in some test, in a real `semsearch` process (the rule a
CliRunner or an in-process `main` call does not meet: it skips the entry point, the exit, the
stream set-up, the signal handling that only a process has).

Read from the tests' source, not from a run of the suite (which one test cannot have): a call
*starts a process* when it is a subprocess of `tests.cli_process` or `-m semsearch`, or a call of
a function that passes its `*args` to one (found to a fixed point, file by file), or of the `cli`
fixture (a process of its own in the full suite). The words of such a call are its string literals,
with names followed to their assignments, `for` loops and `parametrize` values, after the words
the function it calls puts before its `*args`; each command word among them begins a command and
the flags after it are its own. An option is run when one of its flags is among its command's words
in some such call. Generous where a call's words are many (a flag refused still ran); strict where
they are out of sight: flags built in another module or joined at run time are not counted, so
write them as literals where the process is started.
"""

from __future__ import annotations

import ast
import functools
from collections import defaultdict
from pathlib import Path

import typer

from semsearch.cli import app

TESTS = Path(__file__).resolve().parent
STARTS_A_PROCESS = ("tests.cli_process", "tests.test_serve_watch")  # modules run as `python -m ...`
SHARED_LAUNCHERS = {"run_cli": (), "cli": ()}  # cli_process.run_cli; conftest's `cli` fixture


def command_options() -> dict[tuple[str, ...], list[tuple[str, ...]]]:
    """(command path) -> each option's flags, from the click command typer builds."""
    found: dict[tuple[str, ...], list[tuple[str, ...]]] = {}

    def walk(command, path: tuple[str, ...]) -> None:
        found[path] = [tuple(p.opts + p.secondary_opts) for p in command.params if p.param_type_name == "option"]
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


class Source:
    """One test module: the values each name is bound to, per function (and the module)."""

    def __init__(self, path: Path):
        self.tree = ast.parse(path.read_text(encoding="utf-8"))
        self.parent = {child: node for node in ast.walk(self.tree) for child in ast.iter_child_nodes(node)}
        self.bound: dict[tuple[int, str], list[ast.AST]] = defaultdict(list)
        self._said: dict[int, list[str]] = {}
        functions = [n for n in ast.walk(self.tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
        for scope in [self.tree, *functions]:
            for node in _own_nodes(scope):
                targets: list[tuple[ast.AST, ast.AST]] = []
                if isinstance(node, ast.Assign):
                    targets = [(t, node.value) for t in node.targets]
                elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None:
                    targets = [(node.target, node.value)]
                elif isinstance(node, (ast.For, ast.comprehension)):
                    targets = [(node.target, node.iter)]
                for target, value in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name):
                            self.bound[(id(scope), name.id)].append(value)
            for decorator in getattr(scope, "decorator_list", []):
                if isinstance(decorator, ast.Call) and getattr(decorator.func, "attr", "") == "parametrize":
                    names, values = decorator.args[0], decorator.args[1]
                    listed = names.value.split(",") if isinstance(names, ast.Constant) else [
                        e.value for e in getattr(names, "elts", []) if isinstance(e, ast.Constant)
                    ]  # fmt: skip
                    for name in listed:
                        self.bound[(id(scope), name.strip())].append(values)

    def scopes(self, node: ast.AST) -> list[ast.AST]:
        found = [self.tree]
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                found.append(node)
        return found

    def words(self, node: ast.AST, scopes: list[ast.AST], depth: int = 0) -> list[str]:
        """The string literals in `node`, names followed (three steps deep)."""
        out: list[str] = []
        for part in ast.walk(node):
            if isinstance(part, ast.Constant) and isinstance(part.value, str):
                out.append(part.value)
            elif isinstance(part, ast.Name) and depth < 3:
                for scope in scopes:
                    for value in self.bound.get((id(scope), part.id), []):
                        out += self.words(value, scopes, depth + 1)
        return out

    def call_words(self, call: ast.Call) -> list[str]:
        if id(call) not in self._said:
            scopes = self.scopes(call)
            args = [*call.args, *(k.value for k in call.keywords)]
            self._said[id(call)] = [w for arg in args for w in self.words(arg, scopes)]
        return self._said[id(call)]


def _own_nodes(scope: ast.AST):
    """The nodes of a function (or module) outside the functions defined in it."""
    todo = list(ast.iter_child_nodes(scope))
    while todo:
        node = todo.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            todo.extend(ast.iter_child_nodes(node))


def _name(call: ast.Call) -> str | None:
    return call.func.id if isinstance(call.func, ast.Name) else getattr(call.func, "attr", None)


def _after_the_program(words: list[str]) -> list[str]:
    for i, word in enumerate(words):
        if word in STARTS_A_PROCESS or (word == "semsearch" and words[i - 1 : i] == ["-m"]):
            rest = words[i + 1 :]
            return rest[1:] if rest[:1] == ["--"] else rest
    return words


def _starts(call: ast.Call, source: Source, launchers: dict) -> bool:
    words = source.call_words(call)
    return (
        _name(call) in launchers
        or any(w in STARTS_A_PROCESS for w in words)
        or ("-m" in words and "semsearch" in words)
    )


@functools.cache
def process_calls() -> list[tuple[str, int, list[str]]]:
    """(file, line, the words after the program) of every call that starts a `semsearch` process."""
    calls = []
    for path in sorted(TESTS.glob("*.py")):
        if path.name == Path(__file__).name:
            continue  # its own names of the programs are not a process start
        source = Source(path)
        launchers = dict(SHARED_LAUNCHERS)  # name -> the words it puts before the caller's
        every_call = [n for n in ast.walk(source.tree) if isinstance(n, ast.Call)]

        grew = True
        while grew:  # a function handing its *args to a process start is one too
            grew = False
            for call in every_call:
                starred = [a for a in ast.walk(call) if isinstance(a, ast.Starred)]
                forwarded = {n.id for a in starred for n in ast.walk(a) if isinstance(n, ast.Name)}  # *map(str, args)
                if not forwarded or not _starts(call, source, launchers):
                    continue
                enclosing = source.scopes(call)[1:]  # innermost first
                for at, scope in enumerate(enclosing):
                    vararg = scope.args.vararg
                    if vararg is None or vararg.arg not in forwarded:
                        continue
                    # a fixture returning `lambda *args: cli(*args)` is named by its function
                    named = [s for s in enclosing[at:] if not isinstance(s, ast.Lambda)]
                    name = named[0].name if named else None
                    if name and not name.startswith("test_") and name not in launchers:
                        own = _after_the_program([*launchers.get(_name(call), ()), *source.call_words(call)])
                        launchers[name] = tuple(own)
                        grew = True
        for call in every_call:
            if _starts(call, source, launchers):
                prefix = list(launchers.get(_name(call), ()))
                calls.append((path.name, call.lineno, _after_the_program(prefix + source.call_words(call))))
    return calls


def options_run() -> set[tuple[tuple[str, ...], str]]:
    """(command path, flag) for each flag a process start gives a command: each command word
    begins a command (the words of a parametrized call hold one per case), its flags follow it."""
    commands = command_options()
    seen = set()
    for _, _, words in process_calls():
        path: tuple[str, ...] = ()
        at = 0
        while at < len(words):
            word = words[at]
            if (word,) in commands:
                path = (word,)
                if (word, *words[at + 1 : at + 2]) in commands and at + 1 < len(words):
                    path, at = (word, words[at + 1]), at + 1
            elif word.startswith("-"):
                seen.add((path, word.split("=")[0]))
            at += 1
    return seen


def options_never_run() -> list[str]:
    run = options_run()
    return [
        f"semsearch {' '.join(path)} {'/'.join(flags)}".replace("  ", " ")
        for path, options in command_options().items()
        for flags in options
        if not any((path, flag) in run for flag in flags)
    ]


def test_every_option_runs_in_a_real_process_in_some_test():
    """A new option needs a test that runs it through `cli`, `run_cli` or a subprocess: named here
    when none does (`python -m tests.test_every_option_runs` lists every process start it read)."""
    assert options_never_run() == []


def test_the_reading_finds_the_process_starts_of_each_kind():
    """The reading itself: a subprocess, `run_cli`, the `cli` fixture, a helper passing on its *args,
    a parametrized command, each seen with its command and flags."""
    run = options_run()
    assert (("ingest", "jsonl"), "--vectors") in run  # cli(...) in test_ingest_index
    assert (("search",), "--no-taxonomy") in run  # subprocess.run([... "tests.cli_process", ...]) in a loop
    assert (("serve",), "--allow-host") in run  # test_doors' _serving(index_dir, *extra)
    assert (("taxonomy", "add"), "--replace") in run  # test_faults: killed_while_embedding(tmp_path, *replace)
    assert (("serve",), "--workers") in run  # test_serve_watch: semsearch_process, run as `-m tests.test_serve_watch`


if __name__ == "__main__":  # the audit by hand: each process start, then what never runs
    for where, line, words in process_calls():
        print(f"{where}:{line}", " ".join(words)[:150])
    print(*options_never_run(), sep="\n")
