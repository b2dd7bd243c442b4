"""The folder tree is the architecture: imports run down the layer order and never in a circle.

Layers, bottom to top (``docs/architecture.md``): geometry, body, data, heatmaps, models,
training, fitting, evaluation, viz, experiments, teaching. ``vhakit.runtime``, ``vhakit.config``
and ``vhakit._util`` sit below every layer and import none; ``vhakit.cli`` and ``__main__`` sit
above them all (the command line may import anything). A module may import its own layer and the
layers below it. The import graph is read with ``ast``: module-level and function-level (lazy)
imports alike, so a deferred import cannot hide a cycle or an upward dependency.

The second half imports every ``vhakit`` name that a notebook imports, so that moving a module
cannot break a notebook unnoticed.
"""
from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vhakit"
LAYERS = ("geometry", "body", "data", "heatmaps", "models", "training", "fitting", "evaluation",
          "viz", "experiments", "teaching")
BASE = {"vhakit", "vhakit.runtime", "vhakit.config", "vhakit._util"}  # importable by every layer
TOP = {"vhakit.cli", "vhakit.__main__"}  # may import anything
# Upward imports that are there on purpose: (importer, imported) -> why.
EXCEPTIONS = {
    ("vhakit.fitting.analysis", "vhakit.evaluation.metrics"):
        "the fitting experiments (noise sweep, stage snapshots) score fits with the evaluation's "
        "MPVE and angular distance; metrics import only geometry and body, so no cycle can form",
}


def module_files(package: Path = PACKAGE) -> dict[str, Path]:
    """``{dotted module name: file}`` of every module of the package (``__init__`` as the
    package's own name)."""
    out = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, modules: set[str], implied: bool = False
               ) -> dict[str, int]:
    """``{imported vhakit module: first line}`` for one module: every ``import`` and
    ``from ... import`` anywhere in the file (lazy ones too). ``from P import m`` counts as an
    import of the submodule ``P.m`` when it is one. ``implied=True`` adds the packages whose
    ``__init__`` such an import runs as well (``P`` for ``P.m``, from outside ``P``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    found: dict[str, int] = {}

    def add(target: str, line: int) -> None:
        parts = target.split(".")
        for i in range(2 if implied else len(parts), len(parts) + 1):
            prefix = ".".join(parts[:i])
            inside = name == prefix or name.startswith(prefix + ".")
            if prefix in modules and prefix != name and (i == len(parts) or not inside):
                found.setdefault(prefix, line)

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "vhakit":
                    add(alias.name, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[:len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] != "vhakit":
                continue
            subs = [f"{module}.{a.name}" for a in node.names if f"{module}.{a.name}" in modules]
            for sub in subs:
                add(sub, node.lineno)
            if len(subs) < len(node.names):
                add(module, node.lineno)
    return found


def import_graph(package: Path = PACKAGE, implied: bool = False) -> dict[str, dict[str, int]]:
    """The import graph of the package; ``implied=True``: with the package ``__init__`` modules
    that the imports run (for cycles: an ``__init__`` that re-exports can close one)."""
    files = module_files(package)
    return {name: imports_of(name, path, set(files), implied) for name, path in files.items()}


def layer(name: str) -> int | None:
    """Position in the layer order: -1 for the base modules, len(LAYERS) for the command line,
    None for a module outside every layer."""
    if name in BASE:
        return -1
    if name in TOP:
        return len(LAYERS)
    parts = name.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def upward_imports(graph: dict[str, dict[str, int]], exceptions=EXCEPTIONS) -> list[str]:
    bad = []
    for importer, targets in graph.items():
        for target, line in targets.items():
            lo, lt = layer(importer), layer(target)
            if lo is None or lt is None or (importer, target) in exceptions:
                continue
            if (lo == -1 and target not in BASE) or lt > lo:
                bad.append(f"{importer} (line {line}) imports {target}: "
                           f"{LAYERS[lo] if 0 <= lo < len(LAYERS) else importer} may not import "
                           f"{LAYERS[lt] if 0 <= lt < len(LAYERS) else target}")
    return sorted(bad)


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), or a self-import."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:  # recursive: the graph is ~70 modules, far below the limit
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, {}):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, {}):
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


GRAPH = import_graph()
FULL_GRAPH = import_graph(implied=True)


def test_every_module_sits_in_a_layer():
    loose = sorted(name for name in GRAPH if layer(name) is None)
    assert not loose, (f"modules outside the layer packages: {loose}; move each into the package "
                       f"of its concept ({', '.join(LAYERS)})")


def test_imports_run_down_the_layers():
    bad = upward_imports(GRAPH)
    assert not bad, ("imports against the layer order (bottom to top: "
                     + " -> ".join(LAYERS) + "); move the code down or the import up:\n"
                     + "\n".join(bad))


def test_every_exception_is_still_needed():
    stale = [pair for pair in EXCEPTIONS if pair[1] not in GRAPH.get(pair[0], {})]
    assert not stale, f"EXCEPTIONS lists imports that are gone; delete them: {stale}"


def test_no_import_cycles():
    found = cycles(FULL_GRAPH)
    assert not found, "import cycles (a module may not depend on itself):\n" + "\n".join(
        " <-> ".join(c) for c in found)


def test_the_checks_can_fail(tmp_path):
    """A small package with a cycle, an upward import (a lazy one) and a package __init__ that
    closes a cycle is caught; the real tree's known exception is honoured."""
    pkg = tmp_path / "vhakit"
    for folder in ("geometry", "body"):
        (pkg / folder).mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "geometry" / "__init__.py").write_text("from vhakit.geometry.a import f\n")
    (pkg / "geometry" / "a.py").write_text("def f():\n    from vhakit.body.m import g\n")
    (pkg / "body" / "__init__.py").write_text("")
    (pkg / "body" / "m.py").write_text("from vhakit.geometry import a\n\ndef g():\n    pass\n")
    graph, full = import_graph(pkg), import_graph(pkg, implied=True)
    assert "vhakit.geometry" in full["vhakit.body.m"]  # the package __init__ runs too
    assert upward_imports(graph) == [
        "vhakit.geometry.a (line 2) imports vhakit.body.m: geometry may not import body"]
    assert cycles(full) == [["vhakit.body.m", "vhakit.geometry", "vhakit.geometry.a"]]
    assert cycles(graph) == [["vhakit.body.m", "vhakit.geometry.a"]]
    assert upward_imports({"vhakit.fitting.analysis": {"vhakit.evaluation.metrics": 1}}) == []
    assert upward_imports({"vhakit.runtime": {"vhakit.body.model": 1}})


# ------------------------------------------------------------------------------ notebooks
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def notebook_imports(path: Path) -> list[tuple[str, str | None]]:
    """``(module, name)`` for each ``from vhakit... import name`` and ``(module, None)`` for each
    ``import vhakit...`` in a notebook's code cells (IPython magics and shell lines skipped)."""
    out = []
    for cell in json.loads(path.read_text(encoding="utf-8"))["cells"]:
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        code = "\n".join("" if line.lstrip().startswith(("%", "!")) else line
                         for line in src.splitlines())
        for node in ast.walk(ast.parse(code)):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "vhakit":
                out += [(node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                out += [(a.name, None) for a in node.names if a.name.split(".")[0] == "vhakit"]
    return out


NOTEBOOK_IMPORTS = sorted({(m, n) for p in NOTEBOOKS for m, n in notebook_imports(p)},
                          key=lambda x: (x[0], x[1] or ""))


def test_notebooks_import_vhakit():
    assert len(NOTEBOOK_IMPORTS) > 20, NOTEBOOK_IMPORTS


@pytest.mark.parametrize("module,name", NOTEBOOK_IMPORTS,
                         ids=[f"{m}:{n}" if n else m for m, n in NOTEBOOK_IMPORTS])
def test_notebook_imports_resolve(module, name):
    mod = importlib.import_module(module)
    if name is not None and not hasattr(mod, name):
        importlib.import_module(f"{module}.{name}")  # a submodule: ImportError names it
