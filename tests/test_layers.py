"""The import structure: every module of ``methods`` and ``reports`` sits in one layer and imports
only its own layer or lower ones, with no import cycle (imports inside functions included). A new
module must be given its layer here: the test names it.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parent.parent

#: Lowest first; a layer is a set of folders (a package and everything under it), so a new module
#: gets its layer from the folder it is put in. base: configuration, files, data, registries with
#: no suite imports; models; algorithms (pruning, training, counting); the specification and run
#: identity; the stages; the workflow and its command line; the report pages, which read results
#: and never train.
LAYERS = {
    "base": ["methods", "methods.base"],
    "models": ["methods.models"],
    "algorithms": ["methods.pruning", "methods.train", "methods.metrics"],
    "specification": ["methods.runs"],
    "stages": ["methods.stages"],
    "workflow": ["methods.workflow", "methods.__main__"],
    "reports": ["reports"],
}


def _module(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _exists(name: str, root: Path) -> bool:
    p = root / name.replace(".", "/")
    return p.with_suffix(".py").is_file() or (p / "__init__.py").is_file()


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the suite modules it imports, at any depth of its code."""
    graph: dict[str, set[str]] = {}
    for pkg in ("methods", "reports"):
        for path in sorted((root / pkg).rglob("*.py")):
            mod = _module(path, root)
            package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
            out = graph.setdefault(mod, set())
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom):
                    base = node.module or ""
                    if node.level:
                        up = package.split(".")[:len(package.split(".")) - (node.level - 1)]
                        base = ".".join(up + ([node.module] if node.module else []))
                    names = [base, *(f"{base}.{a.name}" for a in node.names)]
                elif isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                else:
                    continue
                for name in names:
                    while name and not _exists(name, root):  # "methods.runs.cells.load_tables" -> "methods.runs.cells"
                        name = name.rpartition(".")[0]
                    if name.split(".")[0] in ("methods", "reports") and name != mod:
                        out.add(name)
    return graph


def layer_of(mod: str) -> int | None:
    """The layer of a module: that of the deepest folder of ``LAYERS`` that holds it."""
    best, depth = None, -1
    for i, pkgs in enumerate(LAYERS.values()):
        for pkg in pkgs:
            if (mod == pkg or mod.startswith(pkg + ".")) and pkg.count(".") > depth and (pkg != "methods" or mod == pkg):
                best, depth = i, pkg.count(".")
    return best


def upward(graph: dict[str, set[str]]) -> list[str]:
    names = list(LAYERS)
    return sorted(f"{m} ({names[layer_of(m)]}) -> {t} ({names[layer_of(t)]})"
                  for m, ts in graph.items() for t in ts if layer_of(t) > layer_of(m))


def test_every_module_has_a_layer_and_imports_point_down():
    graph = import_graph()
    unplaced = sorted(m for m in graph if layer_of(m) is None)
    assert not unplaced, f"give these modules a layer in tests/test_layers.py: {unplaced}"
    assert not upward(graph), upward(graph)


def test_no_import_cycles():
    graph = import_graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if t == "methods" or (t == "reports" and m.startswith("reports.")):
                continue  # a package's __init__ imported by its own modules (version, page list)
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_the_checker_sees_a_planted_upward_import(tmp_path):
    """A function-level import of a page from ``methods`` (as ``methods status`` once imported the
    claims page) is caught; the real tree has none."""
    import shutil

    for pkg in ("methods", "reports"):
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__"))
    status = tmp_path / "methods" / "workflow" / "status.py"
    status.write_text(status.read_text() + "\n\ndef _claims():\n    from reports.pages.claims import build\n    return build\n")
    assert upward(import_graph(tmp_path)) == ["methods.workflow.status (workflow) -> reports.pages.claims (reports)"]
    assert "methods.workflow.verdicts" in import_graph()["methods.__main__"]
