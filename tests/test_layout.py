"""The package layout is the architecture: engine below runs, runs below cli and ui, and no cycles."""

import argparse
import ast
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tui_trainer.engine.config import TrainConfig
from tui_trainer.runs.store import RunStore

PACKAGE = Path(__file__).resolve().parent.parent / "tui_trainer"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    """Every tui_trainer module (and third-party top-level package) that the file imports."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_each_layer_imports_only_the_layers_below_it():
    forbidden = {"engine": ("runs", "cli", "ui"), "runs": ("cli", "ui"), "ui": ("cli",)}
    problems = []
    for module, path in MODULES.items():
        for imported in _imports(path):
            if not imported.startswith("tui_trainer."):
                if _layer(module) in ("engine", "runs") and imported.split(".")[0] in ("textual", "textual_plotext",
                                                                                         "plotext"):
                    problems.append(f"{module} imports {imported}")
                continue
            if _layer(imported) in forbidden.get(_layer(module), ()):
                problems.append(f"{module} imports {imported}")
            if _layer(imported) == "cli" and _layer(module) not in ("cli",) and module != "tui_trainer.__main__":
                problems.append(f"{module} imports {imported}: only __main__ may")
    assert problems == []


# -- the command lines runs/ and engine/ start ------------------------------------------------------------------
STARTERS = {"Popen", "run", "call", "check_call", "check_output"}  # subprocess's; the argv is the first argument


class _Argv:
    """The words of every command line that some source files hand to a new process.

    Found from each `subprocess.Popen/run/call/...` back through what reaches its argv: list and tuple
    displays, `*spread` parts, `+`, the local and module names assigned (and names imported from another of the
    files), the values of a function's parameters at every call of that function (so a wrapper that passes
    its argument on is followed to its callers), and the lists a called function returns. A word is a whole
    string constant (of an f-string, its leading constant part). What never reaches a new process, such as a
    sentence of advice or the repeat line `runs show` prints, is no word of a command line."""

    def __init__(self, sources: dict[str, str]):
        self.trees = {name: ast.parse(text) for name, text in sources.items()}
        self.parent: dict[ast.AST, ast.AST] = {}
        self.functions: dict[str, list[ast.FunctionDef]] = {}
        self.calls: list[ast.Call] = []
        for tree in self.trees.values():
            for node in ast.walk(tree):
                for child in ast.iter_child_nodes(node):
                    self.parent[child] = node
                if isinstance(node, ast.FunctionDef):
                    self.functions.setdefault(node.name, []).append(node)
                elif isinstance(node, ast.Call):
                    self.calls.append(node)
        self.words: list[tuple[str, str]] = []  # (word, where)
        self.shell = [self._where(c) for c in self.calls
                      if any(k.arg == "shell" and not (isinstance(k.value, ast.Constant) and not k.value.value)
                             for k in c.keywords)]
        self._seen: set[ast.AST] = set()
        for call in self.calls:
            func = call.func
            if isinstance(func, ast.Attribute) and func.attr in STARTERS and \
                    isinstance(func.value, ast.Name) and func.value.id == "subprocess":
                argv = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "args"), None)
                if argv is not None:
                    self._expand(argv)

    def _where(self, node: ast.AST) -> str:
        root = node
        while root in self.parent:
            root = self.parent[root]
        name = next(n for n, t in self.trees.items() if t is root)
        return f"{name}:{getattr(node, 'lineno', '?')}"

    def _enclosing(self, node: ast.AST) -> ast.AST:
        """The function around `node`, else its module."""
        while node in self.parent:
            node = self.parent[node]
            if isinstance(node, ast.FunctionDef):
                return node
        return node

    def _expand(self, node: ast.AST | None) -> None:
        if node is None or node in self._seen:
            return
        self._seen.add(node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                self.words.append((node.value, self._where(node)))
        elif isinstance(node, ast.JoinedStr):
            if node.values and isinstance(node.values[0], ast.Constant):
                self.words.append((node.values[0].value, self._where(node)))
        elif isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            for element in node.elts:
                self._expand(element)
        elif isinstance(node, ast.Starred):
            self._expand(node.value)
        elif isinstance(node, ast.BinOp):
            self._expand(node.left)
            self._expand(node.right)
        elif isinstance(node, ast.IfExp):
            self._expand(node.body)
            self._expand(node.orelse)
        elif isinstance(node, ast.Call):
            for argument in [*node.args, *(k.value for k in node.keywords)]:
                self._expand(argument)
            if isinstance(node.func, ast.Name):  # a function of these files: the lists it returns
                for function in self.functions.get(node.func.id, []):
                    for returned in ast.walk(function):
                        if isinstance(returned, ast.Return):
                            self._expand(returned.value)
        elif isinstance(node, ast.Name):
            self._expand_name(node.id, self._enclosing(node))

    def _expand_name(self, name: str, scope: ast.AST) -> None:
        assigned = [n.value for n in ast.walk(scope) if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign,
                                                                          ast.NamedExpr))
                    and name in {t.id for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
                                 if isinstance(t, ast.Name)}]
        for value in assigned:
            self._expand(value)
        if isinstance(scope, ast.FunctionDef):
            params = [a.arg for a in [*scope.args.posonlyargs, *scope.args.args]]
            if name in params or name in [a.arg for a in scope.args.kwonlyargs]:
                self._expand_parameter(scope, name, params)
            elif not assigned:
                self._expand_name(name, self._enclosing(scope))  # a module's name, read inside a function
            return
        if not assigned:  # imported from another of the files: its module-level assignment there
            for node in ast.walk(scope):
                if isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if (alias.asname or alias.name) == name:
                            for tree in self.trees.values():
                                for top in tree.body:
                                    if isinstance(top, ast.Assign) and alias.name in {
                                            t.id for t in top.targets if isinstance(t, ast.Name)}:
                                        self._expand(top.value)

    def _expand_parameter(self, function: ast.FunctionDef, name: str, params: list[str]) -> None:
        """What every call of `function` passes as its parameter `name`."""
        for call in self.calls:
            called = call.func.id if isinstance(call.func, ast.Name) else \
                call.func.attr if isinstance(call.func, ast.Attribute) else None
            if called != function.name:
                continue
            for keyword in call.keywords:
                if keyword.arg == name:
                    self._expand(keyword.value)
            if name in params:
                index = params.index(name) - (1 if params[:1] in (["self"], ["cls"]) and
                                              isinstance(call.func, ast.Attribute) else 0)
                if 0 <= index < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args[:index]):
                    self._expand(call.args[index])


def _cli_words() -> tuple[set[str], set[str]]:
    """The CLI's flags (the `--` options of every parser and subparser) and its commands (every subcommand)."""
    from tui_trainer.cli import build_parser

    flags: set[str] = set()
    commands: set[str] = set()

    def walk(parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            flags.update(s for s in action.option_strings if s.startswith("--"))
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    commands.add(name)
                    walk(sub)

    walk(build_parser())
    return flags, commands


def _cli_in(argv: _Argv) -> list[str]:
    """The words of those command lines that belong to the CLI: one of its flags (alone, or `--flag=value`), one
    of its commands, or the CLI itself as the program (`-m tui_trainer`, its script `scratch-tui`)."""
    flags, commands = _cli_words()
    found = []
    for word, where in argv.words:
        if word.split("=", 1)[0] in flags or word in commands or word in ("tui_trainer", "scratch-tui") \
                or word.startswith(("tui_trainer.cli", "tui_trainer.__main__")):
            found.append(f"{where}: {word!r}")
    return found + [f"{where}: shell=" for where in argv.shell]


def _package_sources(*layers: str) -> dict[str, str]:
    return {str(path.relative_to(PACKAGE.parent)): path.read_text()
            for layer in layers for path in sorted((PACKAGE / layer).rglob("*.py"))}


def test_runs_and_engine_start_no_process_through_the_cli():
    """A process that runs/ or engine/ starts is a module entry of its own (the run worker, the queue's runner,
    torchrun of the worker), never the CLI, so the CLI stays free to change its flags, and nothing below cli/
    depends on its argv.

    Where the line is: a command line the program itself hands to a new process (an argv, followed back from
    each subprocess call, see _Argv) may not name one of the CLI's flags or commands, nor the CLI as the program.
    Text for people may: an advice sentence ("`scratch-tui train --resume ID` continues it") or the repeat line
    `runs show` prints (engine/command.py) is read, never run. That line holds because no command line here goes
    through a shell (`shell=` is refused too), so a sentence can never become one."""
    argv = _Argv(_package_sources("runs", "engine"))
    assert _cli_in(argv) == []
    # what these files do start, so that the check above has looked at their command lines
    started = {word for word, _ in argv.words}
    assert {"tui_trainer.runs.worker", "tui_trainer.runs.queue", "torch.distributed.run"} <= started


def test_the_command_line_check_finds_the_cli_in_an_argv_but_not_in_advice():
    """The check of the test above, on the code it replaced (the detached child was `train --run-id ...
    --no-hangup`, the runner `queue _runner`) and on text for people."""
    old = textwrap.dedent('''
        import subprocess, sys

        def ranks_command(gpus, train_args):
            return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={gpus}",
                    "-m", "tui_trainer", "train", *train_args]

        def start_created(store, run_id):
            return _spawn(store, run_id, ["--run-id", run_id])

        def start_runner(store):
            return _detached([sys.executable, "-m", "tui_trainer", "queue", "_runner", "--runs-dir", "x"], "log")

        def _spawn(store, run_id, args):
            train_args = ["--runs-dir", str(store.db_path.resolve()), *args, "--no-hangup"]
            command = ranks_command(2, train_args) if store.gpus > 1 else [sys.executable, "-m", "x", *train_args]
            return _detached(command, "log")

        def _detached(command, log):
            return subprocess.Popen(command, start_new_session=True).pid

        def resume(store, run_id, epochs):
            subprocess.run(["scratch-tui", f"--epochs={epochs}"], check=True)
            subprocess.run(f"scratch-tui train --resume {run_id}", shell=True)
    ''')
    argv = _Argv({"old.py": old})
    # every word of those command lines is found, through the wrappers, the parameters and the returned list
    assert {"-m", "tui_trainer", "train", "--run-id", "--no-hangup", "--runs-dir", "queue", "_runner", "x",
            "scratch-tui", "--epochs="} <= {word for word, _ in argv.words}
    # and the CLI's among them (its hidden flags and `_runner` are gone from its parser now)
    assert {line.split(": ", 1)[1] for line in _cli_in(argv)} == {
        "'tui_trainer'", "'train'", "'--runs-dir'", "'queue'", "'scratch-tui'", "'--epochs='", "shell="}
    advice = textwrap.dedent('''
        import subprocess, sys

        def resume_advice(run_id):
            return f"`scratch-tui train --resume {run_id}` continues from its last checkpoint"

        def command_line(fork):
            parts = ["scratch-tui", "train"]
            parts += ["--fork", fork]
            return " ".join(parts)

        def start(run_id, store):
            print(resume_advice(run_id), command_line(run_id))
            return subprocess.Popen([sys.executable, "-m", "tui_trainer.runs.worker", run_id, "--store", store])
    ''')
    assert _cli_in(_Argv({"advice.py": advice})) == []


def test_no_import_cycles_at_module_level():
    graph = {m: {i for i in _imports(p, top_level_only=True) if i in MODULES and i != m} for m, p in MODULES.items()}
    # a package imports its own submodules' names; that is not a cycle of dependence
    seen, on_path, cycles = set(), [], []

    def visit(node: str) -> None:
        if node in on_path:
            cycles.append(on_path[on_path.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        on_path.append(node)
        for nxt in graph[node]:
            visit(nxt)
        on_path.pop()

    for module in graph:
        visit(module)
    assert cycles == []


def _printed_by(code: str) -> str:
    """What a fresh interpreter running `code` prints: it starts with no module loaded."""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_engine_runs_and_headless_cli_load_no_textual():
    code = (
        "import sys, tui_trainer.engine, tui_trainer.engine.loop, tui_trainer.runs.store, tui_trainer.runs.handle, "
        "tui_trainer.runs.recording, tui_trainer.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext', 'plotext'))\n"
        "print(','.join(bad))\n"
    )
    assert _printed_by(code) == ""


# the commands that only print: each must answer before torch (~2 s to import) could load
QUICK_COMMANDS = (["--version"], ["--help"], ["train", "--help"], ["lr-find", "--help"], ["runs", "--help"],
                  ["runs"])


def test_version_help_and_runs_import_no_torch(runs_home):
    with RunStore(runs_home) as store:  # $SCRATCH_TUI_HOME, which the subprocess inherits
        store.create_run(TrainConfig())
    code = (
        "import contextlib, io, sys\n"
        "from tui_trainer.cli import main\n"
        "loaded = ['import'] if 'torch' in sys.modules else []\n"
        f"for argv in {QUICK_COMMANDS!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "        try:\n"
        "            main(argv)\n"
        "        except SystemExit:\n"  # --help and --version exit
        "            pass\n"
        "    assert out.getvalue(), argv\n"
        "    if 'torch' in sys.modules and not loaded:\n"
        "        loaded.append(' '.join(argv))\n"
        "print(','.join(loaded))\n"
    )
    assert _printed_by(code) == ""  # else: the first command after which torch was loaded


@pytest.mark.skipif(not sys.platform.startswith("linux") or any(
    os.path.exists(n) for n in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")),
    reason="a GPU box: the runner asks torch which cards it has")
def test_the_queue_runner_places_and_packs_runs_without_torch_on_a_box_without_gpus():
    code = (
        "import sys\n"
        "from collections import Counter\n"
        "from tui_trainer.engine.config import TrainConfig\n"
        "from tui_trainer.engine.pack_shape import pack_key\n"
        "from tui_trainer.runs import queue\n"
        "same = pack_key(TrainConfig(seed=0)) == pack_key(TrainConfig(seed=1, lr=0.1))\n"
        "free = queue._free_memory('auto', Counter(), 1)\n"  # no GPU memory to cap a pack by
        "print(queue._slot('auto'), queue._candidates('auto'), same, free, 'torch' in sys.modules)\n"
    )
    assert _printed_by(code) == "cpu ['cpu'] True None False"
