"""vhakit make-data: determinism, resume after a crash, camera consistency, clear errors."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from vhakit.data import build as build_mod
from vhakit.data.build import DATA_PRESETS, build_dataset
from vhakit.data.datasets import MeshDataset, MultiViewDataset
from vhakit.data.store import DatasetCorrupt, open_dataset
from vhakit.geometry.camera import Camera

SMALL = dataclasses.replace(DATA_PRESETS["tiny"], image_px=32, chunk=8)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory, open_body):
    out = tmp_path_factory.mktemp("d") / "h36m"
    build_dataset(SMALL, "h36m_like", "test", out, seed=3, max_frames=20, body=open_body,
                  progress=False)
    return out


def test_same_seed_gives_byte_identical_dataset(built, tmp_path, open_body):
    again = build_dataset(SMALL, "h36m_like", "test", tmp_path / "again", seed=3, max_frames=20,
                          body=open_body, progress=False)
    assert _files(built) == _files(again)
    other = build_dataset(SMALL, "h36m_like", "test", tmp_path / "other", seed=4, max_frames=20,
                          body=open_body, progress=False)
    assert _files(built)["arrays/poses.npy"] != _files(other)["arrays/poses.npy"]


def test_interrupted_build_resumes_to_the_same_bytes(built, tmp_path, open_body, monkeypatch):
    real = build_mod._render_chunk
    calls = {"n": 0}

    def crash_on_third_chunk(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("simulated crash")
        return real(*args, **kwargs)

    out = tmp_path / "resumed"
    monkeypatch.setattr(build_mod, "_render_chunk", crash_on_third_chunk)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(SMALL, "h36m_like", "test", out, seed=3, max_frames=20, body=open_body,
                      progress=False)
    assert not (out / "meta.json").exists()
    assert len(list((out / ".partial").glob("chunk_*.npz"))) == 2
    with pytest.raises(DatasetCorrupt, match="resume"):
        open_dataset(out)
    monkeypatch.setattr(build_mod, "_render_chunk", real)
    calls["n"] = 0
    build_dataset(SMALL, "h36m_like", "test", out, seed=3, max_frames=20, body=open_body,
                  progress=False)
    assert _files(out) == _files(built)


def test_stored_cameras_are_the_cropped_originals(built, open_body):
    ds = MultiViewDataset(built)
    info = open_dataset(built)
    boxes = torch.as_tensor(info.array("bboxes"))  # (F, V, 4) in the original image
    K = ds.arrays["K"]
    side = boxes[..., 2] - boxes[..., 0]
    # K' = A K with A the crop+resize map: focal scales by out / box side, principal point moves.
    expect_f = SMALL.focal_px * SMALL.image_px / side
    assert torch.allclose(K[..., 0, 0], expect_f, rtol=1e-5)
    cx0 = (SMALL.sensor_px - 1) / 2
    expect_cx = (cx0 - boxes[..., 0] + 0.5) * SMALL.image_px / side - 0.5
    assert torch.allclose(K[..., 0, 2], expect_cx, atol=1e-3)
    # Every subsampled vertex projects inside the crop, and the crop is tight (margin 15%).
    s = ds[7]
    cam = Camera(K=s["K"], R=s["R"], t=s["t"], dist=s["dist"], image_size=(32, 32))
    uv = cam.project(s["vertices108"])
    assert float(uv.min()) > 0 and float(uv.max()) < 31
    extent = (uv.amax(1) - uv.amin(1)).amax(-1)  # (V,) px
    assert bool((extent > 0.6 * 32).all())
    # Roughly half the vertices of a body are visible from any side.
    vis = s["visibility"].mean(1)
    assert bool(((vis > 0.25) & (vis < 0.75)).all()), vis
    # Vertices and joints come from the body model with the stored parameters.
    out = open_body.from_poses(ds.arrays["poses"][:4], ds.arrays["betas"][:4],
                               ds.arrays["transl"][:4])
    assert torch.allclose(out.vertices108, ds.arrays["vertices108"][:4], atol=1e-5)


def test_images_are_person_on_background(built):
    ds = MultiViewDataset(built)
    img = ds[0]["images"]  # (V, 3, H, W)
    assert img.shape == (4, 3, 32, 32) and img.dtype == torch.float32
    assert float(img.std()) > 0.05  # not blank


def test_prior_pool_is_mesh_only_and_matches_from_split(tmp_path, open_body):
    out = build_dataset("tiny", "prior_pool", "test", tmp_path / "pool", max_frames=40,
                        body=open_body, progress=False)
    info = open_dataset(out)
    assert not info.has_images and info.num_frames == 40
    disk = MeshDataset.from_dir(out)
    mem = MeshDataset.from_split("prior_pool", "test", size="tiny", body=open_body)
    assert torch.allclose(disk.arrays["vertices108"], mem.arrays["vertices108"][:40], atol=1e-6)
    with pytest.raises(DatasetCorrupt, match="no images"):
        MultiViewDataset(out)


def test_rebuild_with_other_settings_needs_overwrite(built, tmp_path, open_body):
    out = tmp_path / "x"
    build_dataset(SMALL, "h36m_like", "test", out, seed=3, max_frames=4, body=open_body,
                  progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        build_dataset(SMALL, "h36m_like", "test", out, seed=5, max_frames=4, body=open_body,
                      progress=False)
    build_dataset(SMALL, "h36m_like", "test", out, seed=5, max_frames=4, body=open_body,
                  progress=False, overwrite=True)
    assert json.loads((out / "meta.json").read_text())["seed"] == 5


def test_bad_input_gives_clear_errors(built, tmp_path, open_body):
    with pytest.raises(ValueError, match="split"):
        build_dataset(SMALL, "no_such_split", "train", tmp_path / "a", body=open_body)
    with pytest.raises(ValueError, match="preset"):
        build_dataset("huge", "h36m_like", "train", tmp_path / "b", body=open_body)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "meta.json").write_text("{not json")
    with pytest.raises(DatasetCorrupt, match="rebuild"):
        MultiViewDataset(broken)
    missing = tmp_path / "missing"
    import shutil
    shutil.copytree(built, missing)
    (missing / "arrays" / "visibility.npy").unlink()
    with pytest.raises(DatasetCorrupt, match="visibility"):
        MultiViewDataset(missing)


def test_cli_make_data(tmp_path, capsys):
    from vhakit.cli import main

    assert main(["make-data", "--preset", "tiny", "--split", "real_mocap", "--part", "test",
                 "--out", str(tmp_path / "rm")]) == 0
    info = open_dataset(tmp_path / "rm", require_images=True)
    assert info.num_frames > 100 and info.num_views == 4
    assert np.isfinite(info.array("vertices108")).all()
    assert main(["make-data", "--split", "bogus", "--out", str(tmp_path / "bad")]) == 1
    assert "bogus" in capsys.readouterr().err
