"""The command behind ``make classroom`` (no server started; the browser test serves it), and
the dashboards run the way Voila runs them: the cells it keeps, from a clean checkout, within
the page-load budget and without training."""
from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import pytest

from vhakit.teaching.classroom import (
    DASHBOARD_SKIP_TAGS,
    DASHBOARDS,
    dashboard_notebook,
    dashboard_notebooks,
    prepare,
    voila_command,
)

REPO = Path(__file__).resolve().parents[1]


def _notebooks(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / name).write_text("{}")
    return tmp_path


@pytest.mark.parametrize("present", [["07_interactive_3d.ipynb"], ["05_ablations.ipynb"],
                                     ["05_ablations.ipynb", "07_interactive_3d.ipynb"]])
def test_serves_whichever_dashboards_exist_and_hides_the_other_notebooks(tmp_path, present):
    others = ["00_setup_check.ipynb", "02_vertex_heatmaps.ipynb"]
    root = _notebooks(tmp_path, present + others)
    server = voila_command(root, port=9999, token="t0k")
    assert server.dashboards == [n for n in DASHBOARDS if n in present]
    cmd = server.command
    assert cmd[:4] == [sys.executable, "-m", "voila", str(root.resolve())]
    for flag in ["--no-browser", "--port=9999", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
                 "--Voila.token=t0k", "--strip_sources=True"]:
        assert flag in cmd
    skipped = [a for a in cmd if a.startswith("--TagRemovePreprocessor.remove_cell_tags=")]
    assert skipped == [f"--TagRemovePreprocessor.remove_cell_tags={t}"
                       for t in DASHBOARD_SKIP_TAGS]  # one flag per tag: a set, read by traitlets
    hidden = {a.split("=", 1)[1] for a in cmd if a.startswith("--LargeFileManager.hide_globs=")}
    assert set(others) <= hidden and not set(present) & hidden
    assert server.dashboard_url(present[0]) == (
        f"http://127.0.0.1:9999/voila/render/{present[0]}?token=t0k")


def test_random_token_by_default():
    a, b = (voila_command(REPO / "notebooks") for _ in range(2))
    assert re.fullmatch(r"[0-9a-f]{32}", a.token) and a.token != b.token


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="none of the dashboards"):
        voila_command(_notebooks(tmp_path, ["00_setup_check.ipynb"]))
    with pytest.raises(FileNotFoundError, match="notebooks_dir"):
        dashboard_notebooks(tmp_path / "missing")
    with pytest.raises(ValueError, match="port"):
        voila_command(REPO / "notebooks", port=70000)


def test_the_kit_ships_the_viewer_dashboard():
    assert REPO / "notebooks" / "07_interactive_3d.ipynb" in dashboard_notebooks(REPO / "notebooks")


# --- the dashboards as Voila runs them ---------------------------------------------------------
#: A dashboard page must be ready within this (seconds of kernel CPU: on 2 quiet cores the page
#: load takes about as long in wall time).
DASHBOARD_BUDGET_S = 30.0
_GUARD = '''
import resource as _resource
import vhakit.training.trainer as _train


def _no_training(*args, **kwargs):
    raise RuntimeError("this dashboard started training (vhakit.training.trainer.fit)")


_train._fit = _no_training  # every training run of the kit goes through vhakit.training.trainer.fit
'''
_CPU = '''
_self, _kids = (_resource.getrusage(w) for w in (_resource.RUSAGE_SELF,
                                                 _resource.RUSAGE_CHILDREN))
print("DASHBOARD-CPU-S", _self.ru_utime + _self.ru_stime + _kids.ru_utime + _kids.ru_stime)
'''


def _voila_cells(path: Path):
    """The notebook as Voila runs it with :func:`voila_command`'s options: nbconvert's
    TagRemovePreprocessor with the tags given on the command line."""
    import nbformat
    from nbconvert.preprocessors import TagRemovePreprocessor

    flag = "--TagRemovePreprocessor.remove_cell_tags="
    tags = {a[len(flag):] for a in voila_command(REPO / "notebooks").command
            if a.startswith(flag)}
    nb = nbformat.read(path, as_version=4)
    nb, _ = TagRemovePreprocessor(remove_cell_tags=tags).preprocess(nb, {})
    return nb


def test_voila_removes_the_cells_dashboard_notebook_removes():
    for name in DASHBOARDS:
        ours = dashboard_notebook(REPO / "notebooks" / name)
        assert [c.id for c in _voila_cells(REPO / "notebooks" / name).cells] == \
            [c.id for c in ours.cells]
        tagged = [c for c in ours.cells
                  if set(DASHBOARD_SKIP_TAGS) & set(c.metadata.get("tags", []))]
        assert not tagged


@pytest.fixture(scope="module")
def clean_checkout(tmp_path_factory):
    """A clean checkout as a dashboard sees it: ``notebooks/`` and the committed ``results/``
    copied to a new root without ``runs/``; the data sets built by :func:`prepare` (as ``make
    classroom`` does before serving, in its mode: no VHAKIT_FAST) in the repository's ``data/``."""
    pytest.importorskip("nbclient")
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("VHAKIT_FAST", raising=False)  # the classroom's mode, as the test below
        print(prepare(REPO / "data", progress=False))
    root = tmp_path_factory.mktemp("checkout")
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs", "data"))
    shutil.copytree(REPO / "results", root / "results")
    return root


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_loads_in_budget_without_training(clean_checkout, name, monkeypatch):
    """Each dashboard runs (the cells Voila runs, in a fresh kernel, the classroom's mode:
    no VHAKIT_FAST) from a clean checkout without an error, without starting a training run
    (the trainer raises if called) and within :data:`DASHBOARD_BUDGET_S`."""
    import nbformat
    from nbclient import NotebookClient

    nb = _voila_cells(clean_checkout / "notebooks" / name)
    nb.cells = [nbformat.v4.new_code_cell(_GUARD), *nb.cells, nbformat.v4.new_code_cell(_CPU)]
    monkeypatch.delenv("VHAKIT_FAST", raising=False)
    monkeypatch.setenv("VHAKIT_DATA_DIR", str(REPO / "data"))
    t0 = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(clean_checkout / "notebooks")}}).execute()
    wall = time.perf_counter() - t0
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    text = "".join(o.get("text", "") for o in outputs)
    assert not [o for o in outputs if o["output_type"] == "error"]
    cpu = float(re.search(r"DASHBOARD-CPU-S ([\d.]+)", text).group(1))
    print(f"{name}: {cpu:.1f} s kernel CPU, {wall:.1f} s wall")
    assert cpu < DASHBOARD_BUDGET_S, f"{name} took {cpu:.1f} s of CPU (wall {wall:.1f} s)"
    assert not (clean_checkout / "runs").exists() or not any(
        (clean_checkout / "runs").rglob("last.pt"))  # no checkpoint written


#: Words that only make sense beside the code; a dashboard (no code) must not show them.
CODE_ONLY_WORDS = ("USE_PRETRAINED", "VHAKIT_FAST", "TRAIN =", "how the tests", "its tests",
                   "set `", "frame_slider", "vhakit.", "runs/cache")


@pytest.mark.parametrize("name", DASHBOARDS)
def test_dashboard_text_is_written_for_readers_without_code(name):
    nb = dashboard_notebook(REPO / "notebooks" / name)
    prose = [c.source for c in nb.cells if c.cell_type == "markdown"]
    found = [(w, p[:60]) for p in prose for w in CODE_ONLY_WORDS if w in p]
    assert not found, f"{name}: untag or rewrite these cells for the dashboard: {found}"
    # exercises ask for code: none is left on a dashboard
    assert not [p for p in prose if "Exercise" in p]


def test_one_policy_committed_or_pretrained_first_training_on_request():
    """Every notebook switch defaults to the committed checkpoints or results; training is the
    value a reader sets. (nbmake runs the defaults; tests flip them to run the training paths.)"""
    import nbformat

    switches = {}
    for path in sorted((REPO / "notebooks").glob("*.ipynb")):
        for cell in nbformat.read(path, as_version=4).cells:
            for line in cell.source.splitlines() if cell.cell_type == "code" else []:
                m = re.match(r"(USE_PRETRAINED|TRAIN) = (True|False)\b", line)
                if m:
                    switches.setdefault(path.name, []).append(m.groups())
    assert switches["04_body_code_predictor.ipynb"] == [("USE_PRETRAINED", "True")]
    assert switches["07_interactive_3d.ipynb"] == [("USE_PRETRAINED", "True")]
    assert switches["05_ablations.ipynb"] == [("TRAIN", "False")]
    assert all(v == ("USE_PRETRAINED", "True") or v == ("TRAIN", "False")
               for vs in switches.values() for v in vs), switches


@pytest.mark.slow
def test_notebook_05_trains_when_asked(monkeypatch, tmp_path):
    """Notebook 05's training path (``TRAIN = True``), as nbmake runs notebooks (fast mode:
    the tiny sweep, one seed, seconds-long budgets) in a copy with its own run cache, so CI
    still trains the sweep through the notebook. The solution cells run too."""
    import nbformat
    from nbclient import NotebookClient

    shutil.copytree(REPO / "notebooks", tmp_path / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints", "runs", "data"))
    shutil.copytree(REPO / "results", tmp_path / "results")
    nb = nbformat.read(tmp_path / "notebooks" / "05_ablations.ipynb", as_version=4)
    setup = [c for c in nb.cells if c.cell_type == "code" and "TRAIN = False" in c.source]
    assert len(setup) == 1, "notebook 05 lost its TRAIN switch"
    setup[0].source = setup[0].source.replace("TRAIN = False", "TRAIN = True", 1)
    monkeypatch.setenv("VHAKIT_FAST", "1")
    monkeypatch.setenv("VHAKIT_DATA_DIR", str(REPO / "data"))
    NotebookClient(nb, timeout=900, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path / "notebooks")}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "trained or loaded here" in printed and "notebook run time" in printed
    assert list((tmp_path / "runs" / "cache").glob("fast-*/result.json"))  # it trained


def test_viewer_reconstructions_are_cached_per_checkpoint_frames_and_code(tmp_path, monkeypatch,
                                                                        open_body):
    """What prepare() stores is what a page load reads, and a change of the kit's code (or of
    the frames) computes them again instead of showing stale reconstructions."""
    import numpy as np

    import vhakit.teaching.classroom_models as cm
    from vhakit.teaching.standin import demo_reconstructions

    if not cm.pretrained_available():
        pytest.skip("no committed classroom checkpoints")
    monkeypatch.setenv("VHAKIT_DATA_DIR", str(tmp_path))
    fake = demo_reconstructions(body=open_body, num_frames=2, images=False)
    calls = []
    monkeypatch.setattr(cm, "pretrained_reconstructions",
                        lambda n, directory=None: calls.append(n) or fake)
    cm.cached_pretrained_reconstructions(2)
    again = cm.cached_pretrained_reconstructions(2)
    assert calls == [2] and cm.viewer_cache_path(2).parent == tmp_path / "classroom_viewer"
    for m in fake.methods:
        np.testing.assert_allclose(again.meshes[m], fake.meshes[m], atol=1e-6)
    cm.cached_pretrained_reconstructions(3)
    monkeypatch.setattr(cm, "_source_hash", lambda: "changed")
    cm.cached_pretrained_reconstructions(2)
    assert calls == [2, 3, 2]
