"""The package layout is the architecture: engine below runs, runs below cli and ui, and no cycles."""

import ast
import subprocess
import sys
from pathlib import Path

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


def test_engine_runs_and_headless_cli_load_no_textual():
    code = (
        "import sys, tui_trainer.engine, tui_trainer.engine.loop, tui_trainer.runs.store, tui_trainer.runs.handle, "
        "tui_trainer.runs.recording, tui_trainer.cli\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'textual_plotext', 'plotext'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


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
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""  # else: the first command after which torch was loaded
