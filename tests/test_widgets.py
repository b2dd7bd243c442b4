"""The viewer's callbacks, kernel-side (no browser): setting widget values changes the displayed
frame, image and MPVE read-out to independently computed numbers. Plus the stand-in data, the
loader and the setup report."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from vhakit import viz3d
from vhakit.recon import Reconstructions
from vhakit.standin import STANDIN_NOISE_MM, demo_reconstructions, load_reconstructions
from vhakit.widgets import LAYERS, ReconstructionViewer

RENDERERS = ["matplotlib"] + (["pyvista"] if viz3d.offscreen_render_works() else [])


@pytest.fixture(scope="module")
def recons(open_body):
    return demo_reconstructions(body=open_body, num_frames=3, images=False, seed=1)


def mpve_loop_mm(a: np.ndarray, b: np.ndarray) -> float:
    """Mean per-vertex Euclidean distance in mm, one vertex at a time."""
    total = 0.0
    for p, q in zip(a, b, strict=True):
        total += math.sqrt(sum((float(x) - float(y)) ** 2 for x, y in zip(p, q, strict=True)))
    return 1000.0 * total / len(a)


def readout_numbers(viewer) -> dict:
    html = viewer.readout.value
    return {"frame": int(re.search(r'data-frame="(\d+)"', html).group(1)),
            "method": re.search(r'data-method="([^"]*)"', html).group(1),
            "mpve": float(re.search(r'data-mpve-mm="([\d.]+)"', html).group(1))}


@pytest.mark.parametrize("renderer", RENDERERS)
def test_frame_slider_changes_frame_image_and_readout(recons, renderer):
    viewer = ReconstructionViewer(recons, renderer=renderer, size=(240, 220))
    method = "baseline (stand-in)"
    viewer.method_select.value = method
    first_png, first = viewer.view.value, readout_numbers(viewer)
    assert first == {"frame": 0, "method": method, "mpve": pytest.approx(
        mpve_loop_mm(recons.meshes[method][0], recons.meshes["ground truth"][0]), abs=1e-3)}
    count = viewer.render_count

    viewer.frame_slider.value = 2  # what dragging the slider does, kernel-side
    now = readout_numbers(viewer)
    assert viewer.shown_frame == 2 and now["frame"] == 2
    expected = mpve_loop_mm(recons.meshes[method][2], recons.meshes["ground truth"][2])
    assert now["mpve"] == pytest.approx(expected, abs=1e-3)
    assert viewer.mpve_mm() == pytest.approx(expected, abs=1e-6)
    assert now["mpve"] != first["mpve"]
    assert viewer.view.value != first_png and viewer.view.value[:4] == b"\x89PNG"
    assert viewer.render_count == count + 1
    assert "vhakit-frame-2" in viewer.view._dom_classes
    assert "vhakit-frame-0" not in viewer.view._dom_classes
    viewer.close()


def test_method_and_layers(recons):
    viewer = ReconstructionViewer(recons, renderer="matplotlib", size=(200, 200))
    viewer.method_select.value = "ground truth"
    assert readout_numbers(viewer)["mpve"] == 0.0
    scores = {}
    for m in STANDIN_NOISE_MM:
        viewer.method_select.value = m
        scores[m] = readout_numbers(viewer)["mpve"]
        assert scores[m] == pytest.approx(float(recons.mpve_mm(m)[0]), abs=1e-3)
    # the stand-ins are ordered by their noise scale, as labelled
    assert list(scores) == sorted(scores, key=scores.get, reverse=True)
    before = viewer.view.value
    viewer.layer_boxes["error colours"].value = False
    assert viewer.view.value != before  # plain colour instead of the error map
    viewer.layer_boxes["108 points"].value = True
    assert set(viewer.layers) == set(LAYERS) and viewer.layers["108 points"]
    assert viewer.layer_boxes["cameras"].disabled is False  # the stand-in has cameras
    viewer.close()


def test_viewer_output_keeps_a_png_for_exported_notebooks(recons):
    viewer = ReconstructionViewer(recons, renderer="matplotlib", size=(160, 160))
    bundle = viewer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"] and "MPVE" in bundle["text/plain"]
    with pytest.raises(ValueError, match="not in the reconstructions"):
        ReconstructionViewer(recons, methods=["nope"], renderer="matplotlib")
    viewer.close()


def test_standin_reconstructions(recons, open_body):
    assert recons.methods == ["ground truth", *STANDIN_NOISE_MM]
    assert all("stand-in" in m for m in recons.methods[1:])
    assert all(name.startswith("stand-in") for name in recons.frame_names)
    # ground truth is the open body's own output for those poses (checked on frame 0: T-pose
    # walking towards 'standing' with yaw -0.4 rad about y)
    assert recons.meshes["ground truth"].shape == (3, open_body.num_vertices, 3)
    idx = open_body.subsample_indices.numpy()
    for m in recons.methods:
        np.testing.assert_array_equal(recons.points108[m], recons.meshes[m][:, idx])
    # noise: per-axis std near the labelled scale, smooth along mesh edges
    f = recons.faces
    for m, scale_mm in STANDIN_NOISE_MM.items():
        d = recons.meshes[m] - recons.meshes["ground truth"]  # (N, V, 3)
        assert 0.3 * scale_mm < 1000 * d.std() < 1.5 * scale_mm
        edge_jump = np.linalg.norm(d[:, f[:, 0]] - d[:, f[:, 1]], axis=-1).mean()
        assert edge_jump < 0.1 * np.linalg.norm(d, axis=-1).mean()
    assert recons.K.shape == (3, 4, 3, 3) and recons.images is None


def test_standin_matches_the_body_model(open_body):
    from vhakit.demo import demo_poses

    r = demo_reconstructions(body=open_body, num_frames=2, images=False, seed=3)
    poses = demo_poses()
    p_last = poses[list(poses)[-1]].clone()
    p_last[1] += 0.4  # the last frame is the last demo pose, turned by +0.4 rad about y
    betas = 0.7 * torch.randn(2, 10, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        v = open_body(betas=betas[1:], global_orient=p_last[None, :3],
                      body_pose=p_last[None, 3:]).vertices[0].numpy()
    np.testing.assert_allclose(r.meshes["ground truth"][1], v, atol=1e-5)


def test_load_reconstructions_prefers_the_demo_output(tmp_path, recons, monkeypatch):
    path = tmp_path / "runs" / "demo" / "reconstructions.npz"
    small = Reconstructions(faces=recons.faces, meshes={"ground truth": recons.meshes[
        "ground truth"][:1], "VHA+BCP": recons.meshes["VHA+BCP (stand-in)"][:1]})
    small.save(path)
    monkeypatch.chdir(tmp_path)
    loaded, source = load_reconstructions()
    assert source.startswith("demo output") and loaded.methods == ["ground truth", "VHA+BCP"]
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")  # notebooks run one level below the root
    assert load_reconstructions()[1].startswith("demo output")


def test_load_reconstructions_falls_back_to_the_standin(tmp_path, monkeypatch, open_body):
    monkeypatch.chdir(tmp_path)
    called = {}

    def fake_demo(fast=None, body=None):
        called["fast"] = fast
        return "stand-in"

    monkeypatch.setattr("vhakit.standin.demo_reconstructions", fake_demo)
    got, source = load_reconstructions(tmp_path / "missing.npz", fast=True)
    assert got == "stand-in" and called["fast"] is True and "STAND-IN" in source


# --- setup report ------------------------------------------------------------------------------
def test_setup_report_lines_have_status_and_fix():
    from vhakit.setup_check import setup_report

    report = setup_report()
    names = [c.name for c in report]
    for needed in ["packages", "widgets", "3D backend", "device", "open body model",
                   "licensed SMPL"]:
        assert needed in names
    assert all(c.status in {"ok", "info", "warn", "fail"} for c in report)
    assert all(c.fix for c in report if c.status in {"warn", "fail"})
    assert "<table" in report._repr_html_() and "what to do" in report._repr_html_()


def test_widget_version_mismatch_is_a_failure(monkeypatch):
    import importlib.metadata

    from vhakit import setup_check

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.1.0")
    (check,) = setup_check.check_widgets()
    assert check.status == "fail" and "model not found" in check.detail
    assert "restart JupyterLab" in check.fix
    report = setup_check.SetupReport([check])
    assert not report.ok and "what to do" in str(report)


def test_widget_probe_round_trip():
    from vhakit.setup_check import WidgetProbe

    probe = WidgetProbe()
    bundle = probe._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("WIDGETS DO NOT RENDER")
    assert not probe.round_trip_ok and "waiting" in probe.label.value
    probe._echo.value = 1  # what the browser's link does when it renders the probe
    assert probe.round_trip_ok and "round trip works" in probe.label.value
