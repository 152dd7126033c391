"""The architecture contract: layers that import only downwards (import-linter, `.importlinter`),
no import cycle anywhere in the package (function-local and type-checking imports included), no
module over 600 lines, a docstring on every module, a CLI whose `--help` does not load torch, and
a library that never imports the experiments, the benchmarks or the scripts."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "workbench"
MODULES = sorted(PACKAGE.rglob("*.py"))


def test_layers_contract_is_kept():
    lint = Path(sys.executable).parent / "lint-imports"
    done = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of a directed graph with more than one node.

    >>> strongly_connected({"a": {"b"}, "b": {"a"}, "c": {"a"}})
    [['a', 'b']]
    """
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in sorted(graph.get(node, ())):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    graph = grimp.build_graph("workbench", exclude_type_checking_imports=False)
    # a package's __init__ that re-exports its own submodules is not a cycle of the design
    edges = {m: {d for d in graph.find_modules_directly_imported_by(m)
                 if not (d.startswith(m + ".") or m.startswith(d + "."))}
             for m in graph.modules}
    assert strongly_connected(edges) == []


def test_strongly_connected_finds_a_planted_cycle():
    assert strongly_connected({"x": {"y"}, "y": {"z"}, "z": {"x"}, "w": set()}) == [["x", "y", "z"]]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_module_is_short_and_says_what_it_owns(path):
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600, f"{path.name} has {len(text.splitlines())} lines"
    if path.name == "__init__.py" and not text.strip():
        return  # an empty package marker; the package's modules carry the docstrings
    assert ast.get_docstring(ast.parse(text)), f"{path} has no module docstring"


def test_library_never_imports_the_experiments_benchmarks_or_scripts():
    for path in MODULES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] in ("experiments", "benchmarks", "scripts") for n in names), (
                f"{path} imports {names}")


def test_cli_help_does_not_load_torch():
    code = ("import sys, contextlib, io\n"
            "from workbench.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "    assert main(['--help']) == 0\n"
            "assert 'grpo' in out.getvalue()\n"
            "heavy = sorted(m for m in ('torch', 'transformers', 'trl', 'gradio', 'plotly') if m in sys.modules)\n"
            "assert not heavy, heavy\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
