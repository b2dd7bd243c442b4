"""Student copies of the notebooks: the cells tagged ``solution`` removed, outputs cleared.

::

    make student                                   # notebooks/*.ipynb -> student/*.ipynb
    python -m vhakit.teaching.student --src notebooks --dst student

Convention: an exercise is a markdown prompt, then (optionally) a code cell for the student that
runs as it is (placeholders such as ``answer = None``, never a bare ``...`` that is then used),
then one or more code cells tagged ``solution`` (cell metadata ``"tags": ["solution"]``). The
student copy keeps every other cell exactly (source, metadata, id) and drops all outputs, so
it still executes from top to bottom (CI runs it under nbmake).
"""
from __future__ import annotations

import argparse
import copy
from pathlib import Path

__all__ = ["SOLUTION_TAG", "is_solution", "student_notebook", "make_student_copies", "main"]

SOLUTION_TAG = "solution"


def _nbformat():
    try:
        import nbformat
    except ImportError as err:  # part of the notebook extra (jupyterlab, nbmake)
        raise ImportError("student copies need nbformat: pip install 'vhakit[notebooks]'") from err
    return nbformat


def is_solution(cell) -> bool:
    """True for a cell whose metadata tags include ``"solution"``."""
    tags = cell.get("metadata", {}).get("tags", [])
    if isinstance(tags, str):
        raise TypeError(f"cell metadata 'tags' must be a list of strings, got the string {tags!r}")
    return SOLUTION_TAG in tags


def student_notebook(nb):
    """A copy of the notebook ``nb`` (an ``nbformat.NotebookNode``) without the solution cells,
    without outputs or execution counts and without saved widget state; ``nb`` is unchanged."""
    out = copy.deepcopy(nb)
    out.cells = [c for c in out.cells if not is_solution(c)]
    for cell in out.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
    out.metadata.pop("widgets", None)
    return out


def make_student_copies(src: str | Path = "notebooks", dst: str | Path = "student") -> list[Path]:
    """Write the student copy of every ``src/*.ipynb`` to ``dst/`` (created; files overwritten).

    Returns:
        the written paths, sorted by name.
    """
    nbformat = _nbformat()
    src, dst = Path(src), Path(dst)
    if not src.is_dir():
        raise FileNotFoundError(f"src must be a folder of notebooks, {src.resolve()} is not one")
    paths = sorted(src.glob("*.ipynb"))
    if not paths:
        raise FileNotFoundError(f"no *.ipynb in {src.resolve()}")
    if dst.resolve() == src.resolve():
        raise ValueError("dst must differ from src: the student copies would overwrite the notebooks")
    dst.mkdir(parents=True, exist_ok=True)
    written = []
    for path in paths:
        nb = student_notebook(nbformat.read(path, as_version=4))
        nbformat.validate(nb)
        out = dst / path.name
        nbformat.write(nb, out)
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vhakit.teaching.student", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--src", default="notebooks", help="folder of notebooks (default: %(default)s)")
    parser.add_argument("--dst", default="student", help="output folder (default: %(default)s)")
    args = parser.parse_args(argv)
    for path in make_student_copies(args.src, args.dst):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
