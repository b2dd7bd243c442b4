"""Every notebook is committed without outputs and opens with its goals and its measured run time.

The run time line must say how long the notebook took and on how many cores, e.g.
``**Run time** (measured on 2 CPU cores): about 40 s.``
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
RUN_TIME = re.compile(r"run\s*time.*?\b\d+(\.\d+)?\s*(s|sec|seconds|min|minutes)\b",
                      re.IGNORECASE | re.DOTALL)
TWO_CORES = re.compile(r"\b2\s+(\w+\s+){0,2}cores?\b", re.IGNORECASE)  # "2 shared CPU cores"


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def test_there_are_notebooks():
    names = [p.name for p in NOTEBOOKS]
    assert "00_setup_check.ipynb" in names and "07_interactive_3d.ipynb" in names, names


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_committed_without_outputs(path):
    nb = _load(path)
    dirty = [i for i, c in enumerate(nb["cells"]) if c["cell_type"] == "code"
             and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: cells {dirty} have outputs or execution counts; clear "
                       f"them: jupyter nbconvert --clear-output --inplace {path.name}")
    assert "widgets" not in nb.get("metadata", {}), f"{path.name}: saved widget state"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_opens_with_goals_and_measured_run_time(path):
    cells = _load(path)["cells"]
    assert cells and cells[0]["cell_type"] == "markdown", \
        f"{path.name}: the first cell must be markdown (title, goals, run time)"
    text = _source(cells[0])
    assert re.search(r"\bgoals?\b", text, re.IGNORECASE), f"{path.name}: no 'Goals' in cell 1"
    assert RUN_TIME.search(text), f"{path.name}: no measured run time (e.g. 'Run time ... 40 s')"
    assert TWO_CORES.search(text), f"{path.name}: say the run time was measured on 2 cores"


def test_the_checks_can_fail(tmp_path):
    """The patterns reject a first cell without numbers and accept the documented form."""
    assert not RUN_TIME.search("Run time: quick.")
    assert RUN_TIME.search("**Run time** (measured on 2 CPU cores): about 40 s.")
    assert RUN_TIME.search("Run time: 2 min on 2 cores") and TWO_CORES.search("2 cores")
    assert not TWO_CORES.search("on 12 cores")
    assert TWO_CORES.search("measured on 2 shared CPU cores")
