"""vhakit make-data never deletes a user's files, and bad inputs give one-line messages.

Every failure path of ``build_dataset`` / ``vhakit make-data`` is run in a folder holding a
sentinel file beside the output folder and (where the output folder exists) inside it; the folder
is compared byte for byte before and after.
"""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from vhakit.cli import main
from vhakit.data import build as build_mod
from vhakit.data import store
from vhakit.data.build import DATA_PRESETS, build_dataset
from vhakit.data.datasets import MeshDataset, MultiViewDataset
from vhakit.data.store import DatasetCorrupt

SMALL = dataclasses.replace(DATA_PRESETS["tiny"], image_px=32, chunk=2)
MARKER = ".vhakit-dataset"  # the kit's list of the files it wrote in a dataset folder


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file (bytes) and folder (None) under ``root``."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def _build(out, body, seed=3, frames=4, **kw):
    return build_dataset(SMALL, "h36m_like", "test", out, seed=seed, max_frames=frames, body=body,
                         progress=False, **kw)


@pytest.fixture(scope="module")
def built(tmp_path_factory, open_body):
    return _build(tmp_path_factory.mktemp("safety") / "ds", open_body)


@pytest.fixture
def home(tmp_path):
    """A user's folder: a file beside the output, a thesis and a source folder."""
    (tmp_path / "beside.txt").write_text("keep beside")
    (tmp_path / "thesis.tex").write_text("keep thesis")
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "main.py").write_text("keep src")
    return tmp_path


def test_a_typo_then_the_right_command_in_a_users_folder_deletes_nothing(home, open_body,
                                                                         monkeypatch, capsys):
    monkeypatch.chdir(home)
    before = _snapshot(home)
    assert main(["make-data", "--split", "real_mocap", "--part", "validation", "--out", "."]) == 1
    assert "validation" in capsys.readouterr().err
    assert _snapshot(home) == before  # nothing written: the part is checked first
    assert main(["make-data", "--split", "real_mocap", "--part", "test", "--out", "."]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith("vhakit make-data: error: ")
    assert "not empty" in err and "new or empty folder" in err
    assert _snapshot(home) == before


@pytest.mark.parametrize("case", ["bad_split", "bad_part", "bad_preset", "bad_max_frames",
                                  "bad_seed", "out_is_file", "parent_is_file"])
def test_bad_arguments_write_nothing(case, home, open_body):
    out = home / "out"
    kwargs = {"bad_split": dict(split="h36m_lik"), "bad_part": dict(part="validation"),
              "bad_preset": dict(preset="huge"), "bad_max_frames": dict(max_frames=0),
              "bad_seed": dict(seed="3")}.get(case, {})
    if case == "out_is_file":
        out.write_text("keep out")
    if case == "parent_is_file":
        (home / "thesis.tex").rename(home / "file")
        out = home / "file" / "ds"
    before = _snapshot(home)
    args = dict(preset=SMALL, split="h36m_like", part="test", out_dir=out, max_frames=4,
                body=open_body, progress=False)
    with pytest.raises((ValueError, TypeError)) as err:
        build_dataset(**{**args, **kwargs})
    assert _snapshot(home) == before
    if case in ("out_is_file", "parent_is_file"):
        assert str(home / "file" if case == "parent_is_file" else out) in str(err.value)


def test_overwrite_refuses_a_folder_the_kit_did_not_write(home, open_body, built):
    foreign = home / "A"  # the case: a meta.json that is not a vhakit dataset
    foreign.mkdir()
    (foreign / "meta.json").write_text(json.dumps({"x": 1}))
    (foreign / "notes.txt").write_text("keep notes")
    old = home / "old"  # a complete vhakit dataset without the kit's list of files
    shutil.copytree(built, old)
    (old / MARKER).unlink(missing_ok=True)
    (old / "notes.txt").write_text("keep notes")
    before = _snapshot(home)
    for out in (foreign, old):
        with pytest.raises(ValueError, match="new or empty folder"):
            _build(out, open_body, seed=5, overwrite=True)
        assert _snapshot(home) == before
    # The same recipe is still read back without being touched.
    assert _build(old, open_body) == old and _snapshot(home) == before


def test_overwrite_and_restart_delete_only_the_kits_files(home, open_body, monkeypatch):
    out = home / "ds"
    _build(out, open_body, seed=3, frames=6)
    (out / "inside.txt").write_text("keep inside")
    (out / "images" / "notes.txt").write_text("keep notes")
    with pytest.raises(FileExistsError, match="overwrite"):
        _build(out, open_body, seed=5, frames=2)
    _build(out, open_body, seed=5, frames=2, overwrite=True)  # fewer frames: old images go
    assert (out / "inside.txt").read_text() == "keep inside"
    assert (out / "images" / "notes.txt").read_text() == "keep notes"
    assert sorted(p.name for p in (out / "images").iterdir()) == ["000000.png", "000001.png",
                                                                  "notes.txt"]
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 5
    assert sorted(store.recorded_files(out)) == sorted(
        ["meta.json", *(f"arrays/{n}.npy" for n in meta["arrays"]), "images/000000.png",
         "images/000001.png"])

    # An unfinished build of another recipe is restarted: its files go, the user's stay.
    real, calls = build_mod._render_chunk, {"n": 0}

    def crash_on_second_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    other = home / "other"
    monkeypatch.setattr(build_mod, "_render_chunk", crash_on_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        _build(other, open_body, seed=7, frames=6)
    monkeypatch.setattr(build_mod, "_render_chunk", real)
    assert (other / ".partial" / "recipe.json").exists()
    (other / "inside.txt").write_text("keep inside")
    (other / ".partial" / "mine.txt").write_text("keep mine")
    (other / "images" / ".000003.png.k1ll3d0x.tmp").write_bytes(b"left by a killed write")
    with pytest.raises(ValueError, match="mine.txt|did not write"):
        _build(other, open_body, seed=8, frames=2)
    (other / ".partial" / "mine.txt").unlink()
    before_user = (other / "inside.txt").read_bytes()
    _build(other, open_body, seed=8, frames=2)
    assert (other / "inside.txt").read_bytes() == before_user
    fresh = _build(home / "fresh", open_body, seed=8, frames=2)
    expect = _snapshot(fresh)
    got = _snapshot(other)
    del got["inside.txt"]
    assert got == expect  # the crashed build's images, chunks and temporary files are gone
    assert (home / "beside.txt").read_text() == "keep beside"


def test_cli_make_data_errors_are_one_line(home, open_body, capsys):
    ds = _build(home / "ds", open_body, seed=3, frames=2)
    before = _snapshot(home)
    cases = [(["--out", str(home / "thesis.tex")], "is a file"),
             (["--out", str(ds)], "--overwrite"),
             (["--out", str(home / "thesis.tex" / "x")], "cannot create"),
             (["--out", str(home / "new"), "--seed", "1", "--preset", "huge"], "huge")]
    for extra, expect in cases:
        assert main(["make-data", "--split", "h36m_like", "--part", "test", *extra]) == 1
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1, err
        assert err.startswith("vhakit make-data: error: ") and expect in err, err
        assert "overwrite=True" not in err and "Traceback" not in err
        assert _snapshot(home) == before


def test_cli_evaluate_negative_frames(capsys, tmp_path):
    assert main(["evaluate", "--model", str(tmp_path / "run"), "--data", str(tmp_path / "d"),
                 "--frames", "-3"]) == 1
    err = capsys.readouterr().err
    assert "--frames" in err and "-3" in err and len(err.strip().splitlines()) == 1


def test_png_of_the_wrong_size_names_the_file_and_the_size(built, tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    ds = MultiViewDataset(root)
    views = (ds[1]["images"].permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    store.write_image(root, 1, np.repeat(np.repeat(views, 2, axis=1), 2, axis=2))  # 64 px views
    with pytest.raises(DatasetCorrupt, match=r"000001\.png is 256x64 px.*4 views of 32x32 px"):
        torch.utils.data.default_collate([ds[0], ds[1]])


@pytest.mark.parametrize("name", ["K", "t", "vertices108"])
def test_nan_in_a_stored_array_names_the_file_and_frame(built, tmp_path, name):
    root = tmp_path / "ds"
    shutil.copytree(built, root)
    arr = np.load(root / "arrays" / f"{name}.npy")
    arr[2].flat[0] = np.nan
    arr[3].flat[-1] = np.inf
    store.atomic_save_npy(root / "arrays" / f"{name}.npy", arr)
    frame2 = json.loads((root / "meta.json").read_text())["frame_names"][2]
    pattern = (rf"{name}\.npy contains NaN or inf in 2 of 4 frames, first frame 2 "
               rf"\({re.escape(frame2)}\)")
    with pytest.raises(DatasetCorrupt, match=pattern):
        MultiViewDataset(root)
    if name == "vertices108":
        with pytest.raises(DatasetCorrupt, match=pattern):
            MeshDataset.from_dir(root)


def test_a_build_stopped_after_meta_json_finishes_its_clean_up(home, open_body, monkeypatch):
    real = store.remove_recorded

    def crash_when_finishing(root, keep=()):
        if keep:
            raise KeyboardInterrupt("simulated crash after meta.json")
        return real(root, keep)

    monkeypatch.setattr(store, "remove_recorded", crash_when_finishing)
    with pytest.raises(KeyboardInterrupt):
        _build(home / "stopped", open_body, seed=3, frames=2)
    monkeypatch.setattr(store, "remove_recorded", real)
    assert (home / "stopped" / ".partial" / "chunk_00000.npz").exists()
    _build(home / "stopped", open_body, seed=3, frames=2)  # complete: only the clean-up runs
    assert _snapshot(home / "stopped") == _snapshot(_build(home / "fresh", open_body, seed=3,
                                                           frames=2))
