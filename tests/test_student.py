"""vhakit.teaching.student: student copies drop exactly the `solution` cells, keep every other cell as it
is (checked on the raw JSON, independently of nbformat), strip outputs, and still run."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from vhakit.teaching.student import is_solution, main, make_student_copies, student_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def raw_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def source(cell: dict) -> str:
    s = cell.get("source", "")
    return "".join(s) if isinstance(s, list) else s


def check_copy(original: Path, copy: Path) -> None:
    """The copy = the original's non-solution cells, in order, same source, metadata and id;
    code cells without outputs or execution counts."""
    kept = [c for c in raw_cells(original) if "solution" not in tags(c)]
    got = raw_cells(copy)
    assert len(got) == len(kept), (copy.name, len(got), len(kept))
    for a, b in zip(kept, got, strict=True):
        assert (b["cell_type"], source(b), b.get("metadata", {}), b.get("id")) == \
            (a["cell_type"], source(a), a.get("metadata", {}), a.get("id")), copy.name
        assert "solution" not in tags(b)
        if b["cell_type"] == "code":
            assert b["outputs"] == [] and b["execution_count"] is None
    assert "widgets" not in json.loads(copy.read_text(encoding="utf-8"))["metadata"]


@pytest.fixture
def toy(tmp_path) -> Path:
    v4 = nbformat.v4
    out = v4.new_output("stream", name="stdout", text="42\n")
    cells = [v4.new_markdown_cell("# Toy\n**Goals** ..."),
             v4.new_code_cell("x = 41", execution_count=1, outputs=[out]),
             v4.new_markdown_cell("**Exercise.** add one"),
             v4.new_code_cell("answer = None  # yours", metadata={"tags": ["exercise"]}),
             v4.new_code_cell("answer = x + 1\nprint(answer)", execution_count=2, outputs=[out],
                              metadata={"tags": ["solution", "other"]}),
             v4.new_markdown_cell("Solution notes", metadata={"tags": ["solution"]}),
             v4.new_code_cell("print(x)", execution_count=3, outputs=[out],
                              metadata={"collapsed": True})]
    nb = v4.new_notebook(cells=cells, metadata={"widgets": {"state": {}}})
    src = tmp_path / "src"
    src.mkdir()
    nbformat.write(nb, src / "toy.ipynb")
    return src


def test_toy_notebook_loses_only_solutions_and_outputs(toy, tmp_path):
    before = (toy / "toy.ipynb").read_bytes()
    written = make_student_copies(toy, tmp_path / "student")
    assert written == [tmp_path / "student" / "toy.ipynb"]
    check_copy(toy / "toy.ipynb", written[0])
    got = raw_cells(written[0])
    assert [source(c) for c in got] == ["# Toy\n**Goals** ...", "x = 41", "**Exercise.** add one",
                                       "answer = None  # yours", "print(x)"]
    assert got[-1]["metadata"] == {"collapsed": True} and tags(got[3]) == ["exercise"]
    assert (toy / "toy.ipynb").read_bytes() == before  # the teacher's notebook is untouched
    nb = nbformat.read(toy / "toy.ipynb", as_version=4)
    assert sum(map(is_solution, nb.cells)) == 2 and sum(map(is_solution, student_notebook(nb).cells)) == 0


def test_every_notebook_has_a_valid_student_copy(tmp_path):
    written = make_student_copies(NOTEBOOKS, tmp_path)
    assert [p.name for p in written] == sorted(p.name for p in NOTEBOOKS.glob("*.ipynb"))
    for copy in written:
        nbformat.validate(nbformat.read(copy, as_version=4))
        check_copy(NOTEBOOKS / copy.name, copy)
    for name in ("01_body_model_and_data.ipynb", "02_vertex_heatmaps.ipynb"):
        n_solutions = sum("solution" in tags(c) for c in raw_cells(NOTEBOOKS / name))
        assert n_solutions >= 1, f"{name}: its exercises have no solution cells"
        assert len(raw_cells(tmp_path / name)) == len(raw_cells(NOTEBOOKS / name)) - n_solutions


def _bound_names(code: str) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return names


def names_only_solutions_give(cells: list[dict]) -> set[str]:
    """Names that a kept (non-solution) code cell reads but only an earlier solution cell binds."""
    student_names: set[str] = set()
    solution_only: set[str] = set()
    missing: set[str] = set()
    for cell in (c for c in cells if c["cell_type"] == "code"):
        code = "\n".join(line for line in source(cell).splitlines()
                         if not line.lstrip().startswith(("%", "!")))  # IPython magics
        if "solution" in tags(cell):
            solution_only |= _bound_names(code) - student_names
            continue
        used = {n.id for n in ast.walk(ast.parse(code))
                if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        missing |= (used & solution_only) - student_names
        student_names |= _bound_names(code)
    return missing


def test_the_dependency_check_can_fail(toy):
    cells = raw_cells(toy / "toy.ipynb")
    assert names_only_solutions_give(cells) == set()  # `answer` is also bound by the student cell
    cells[-1]["source"] = "print(x, answer)"
    assert names_only_solutions_give(cells) == set()
    del cells[3]  # the student's `answer = None`
    assert names_only_solutions_give(cells) == {"answer"}


@pytest.mark.parametrize("path", sorted(NOTEBOOKS.glob("*.ipynb")), ids=lambda p: p.name)
def test_student_cells_do_not_need_names_only_solutions_define(path):
    """Fast proxy for "the student copy runs": a name bound only in solution cells must not be
    read by a later cell that students keep (the full run is the slow test below)."""
    missing = names_only_solutions_give(raw_cells(path))
    assert not missing, f"{path.name}: student cells use {missing}, defined only in solutions"


def test_errors_and_command_line(toy, tmp_path, capsys):
    with pytest.raises(FileNotFoundError, match="src must be a folder"):
        make_student_copies(tmp_path / "nowhere", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="no \\*.ipynb"):
        make_student_copies(tmp_path / "empty", tmp_path / "out")
    with pytest.raises(ValueError, match="dst must differ"):
        make_student_copies(toy, toy)
    with pytest.raises(TypeError, match="tags"):
        is_solution({"metadata": {"tags": "solution"}})
    assert main(["--src", str(toy), "--dst", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "toy.ipynb").is_file() and "toy.ipynb" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["01_body_model_and_data.ipynb", "02_vertex_heatmaps.ipynb"])
def test_student_copy_runs_under_nbmake(name, tmp_path):
    """What `make student` writes passes nbmake (exercise cells left for students run as they
    are). ~30 s each on 2 cores."""
    make_student_copies(NOTEBOOKS, tmp_path)
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--nbmake", "--nbmake-timeout=300", str(tmp_path / name)],
                         cwd=ROOT, env={**os.environ, "VHAKIT_FAST": "1"}, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-2000:]
