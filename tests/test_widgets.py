"""The viewer's callbacks, kernel-side (no browser): setting widget values changes the displayed
frame, image and MPVE read-out to independently computed numbers. Plus the stand-in data, the
loader and the setup report."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest
import torch

from vhakit.evaluation.recon import Reconstructions
from vhakit.teaching.standin import STANDIN_NOISE_MM, demo_reconstructions, load_reconstructions
from vhakit.teaching.widgets import LAYERS, ReconstructionViewer
from vhakit.viz import backend as viz3d

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
    viewer = ReconstructionViewer(recons, renderer=renderer, size=(240, 220), frame=0)
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
    viewer = ReconstructionViewer(recons, renderer="matplotlib", size=(200, 200), frame=0)
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
    from vhakit.experiments.demo import demo_poses

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

    monkeypatch.setattr("vhakit.teaching.standin.demo_reconstructions", fake_demo)
    got, source = load_reconstructions(tmp_path / "missing.npz", fast=True)
    assert got == "stand-in" and called["fast"] is True and "STAND-IN" in source


# --- setup report ------------------------------------------------------------------------------
def test_setup_report_lines_have_status_and_fix():
    from vhakit.teaching.setup_check import setup_report

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

    from vhakit.teaching import setup_check

    monkeypatch.setattr(importlib.metadata, "version", lambda name: "1.1.0")
    (check,) = setup_check.check_widgets()
    assert check.status == "fail" and "model not found" in check.detail
    assert "restart JupyterLab" in check.fix
    report = setup_check.SetupReport([check])
    assert not report.ok and "what to do" in str(report)


def test_widget_probe_round_trip():
    from vhakit.teaching.setup_check import WidgetProbe

    probe = WidgetProbe()
    bundle = probe._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith("WIDGETS DO NOT RENDER")
    assert not probe.round_trip_ok and "waiting" in probe.label.value
    probe._echo.value = 1  # what the browser's link does when it renders the probe
    assert probe.round_trip_ok and "round trip works" in probe.label.value


# --- what the viewer opens on, and its colour scale ---------------------------------------------
def _toy_recons(offsets_mm, points=None, K=None, R=None, t=None, size=(100, 100)):
    """Reconstructions of len(offsets_mm) frames of a 4-vertex 'body': one method, 'pred',
    displaced from the truth by offsets_mm[f] along x on every vertex (its MPVE)."""
    n = len(offsets_mm)
    base = np.array([[0.0, 0.0, 0.0], [0.1, 0.0, 0.0], [0.0, 0.1, 0.0], [0.0, 0.0, 0.1]])
    gt = np.stack([base if points is None else points[f] for f in range(n)])  # (N, 4, 3)
    pred = gt + np.asarray(offsets_mm, dtype=np.float64)[:, None, None] / 1000 * [1, 0, 0]
    images = None if K is None else np.zeros((n, K.shape[1], size[1], size[0], 3), np.uint8)
    return Reconstructions(faces=np.array([[0, 1, 2], [0, 2, 3]]),
                           meshes={"ground truth": gt, "pred": pred}, images=images, K=K, R=R, t=t)


def _one_camera(n):
    """One camera at the origin looking along +z, f = 100 px, a 100 x 100 image."""
    K = np.array([[100.0, 0, 49.5], [0, 100.0, 49.5], [0, 0, 1]])
    return (np.broadcast_to(K, (n, 1, 3, 3)).copy(), np.broadcast_to(np.eye(3), (n, 1, 3, 3)).copy(),
            np.zeros((n, 1, 3)))


def test_views_showing_body_by_hand():
    from vhakit.evaluation.recon import views_showing_body

    body = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0], [0.0, 0.1, 2.0], [0.0, 0.0, 2.1]])
    # in view (u = 49.5 + 100 x / z: 49.5..54.5 px); 10 m to the side (u ~ 550 px); behind the
    # camera, where the pinhole formula alone would put it inside the image
    frames = np.stack([body, body + [10.0, 0, 0], body * [1, 1, -1]])
    r = _toy_recons([0, 0, 0], frames, *_one_camera(3))
    np.testing.assert_array_equal(views_showing_body(r)[:, 0], [True, False, False])
    half_out = frames[:1].copy()
    half_out[0, :2] += [0.3, 0, 0]  # 2 of 4 vertices at u = 64.5..69.5: still inside
    half_out[0, 2:] += [2.0, 0, 0]  # the others at u > 140 px: outside (the image ends at 99.5)
    r = _toy_recons([0], half_out, *_one_camera(1))
    assert views_showing_body(r, min_inside=0.5)[0, 0]
    assert not views_showing_body(r, min_inside=0.75)[0, 0]
    assert views_showing_body(_toy_recons([0, 0])).all()  # no cameras: nothing to rule out


def test_representative_frame_is_the_median_of_the_frames_every_camera_sees():
    from vhakit.evaluation.recon import representative_frame

    offsets = [10, 50, 20, 40, 30]  # MPVE per frame, mm
    assert representative_frame(_toy_recons(offsets)) == 4  # median 30 mm
    body = np.array([[0.0, 0.0, 2.0], [0.1, 0.0, 2.0], [0.0, 0.1, 2.0], [0.0, 0.0, 2.1]])
    frames = np.stack([body] * 4 + [body + [10.0, 0, 0]])  # frame 4 out of the camera's view
    r = _toy_recons(offsets, frames, *_one_camera(5))
    assert representative_frame(r) == 2  # of 10, 50, 20, 40 mm: the lower middle, 20 mm
    frames[:] = body + [10.0, 0, 0]  # no frame seen: all frames count
    assert representative_frame(_toy_recons(offsets, frames, *_one_camera(5))) == 4


def test_error_scale_ignores_one_outlier_frame_and_names_it():
    from vhakit.evaluation.recon import error_scale

    offsets = [float(x) for x in range(1, 100)] + [1300.0]  # 99 typical frames, one failure
    r = _toy_recons(offsets)
    errs = sorted(offsets)  # every vertex of frame f is off by offsets[f]: 4 equal errors each
    # the 90th percentile by hand (linear interpolation of the sorted values, numpy's rule)
    pos = 0.9 * (len(errs) - 1)
    p90 = errs[int(pos)] + (pos - int(pos)) * (errs[int(pos) + 1] - errs[int(pos)])
    scale = error_scale(r)
    assert p90 == pytest.approx(90.1)
    assert scale.high_mm == 100.0  # rounded up to a multiple of 25 mm; the maximum was 1300
    assert scale.clim_mm == (0.0, 100.0)
    assert scale.saturated == {99: 1.0}  # only the failed frame has vertices off the scale
    assert "frame 99 (100 %)" in scale.caption() and "0-100 mm" in scale.caption()
    assert error_scale(r, percentile=100).high_mm == 1300.0
    with pytest.raises(ValueError, match="percentile"):
        error_scale(r, percentile=0)


def test_viewer_opens_on_a_typical_frame_with_one_robust_scale(open_body):
    from vhakit.evaluation.recon import error_scale, representative_frame

    far = demo_reconstructions(body=open_body, num_frames=8, images=False, seed=2)
    for m in far.methods:
        far.meshes[m][0] += [1.3, 0.0, 7.3]  # frame 0 wanders off, as h36m_like's first frame
    far.meshes["baseline (stand-in)"][0] += [0.0, 1.0, 0.0]  # ... and one method fails there
    viewer = ReconstructionViewer(far, renderer="matplotlib", size=(200, 200))
    assert viewer.frame == representative_frame(far) != 0  # a camera lost frame 0's body
    errors = np.mean([far.mpve_mm(m) for m in far.methods[1:]], axis=0)[1:]  # frames 1..7
    assert viewer.frame == 1 + int(np.argsort(errors)[3])  # their median (7 frames: the 4th)
    # one scale for all methods, from the 90th percentile, far below the failed frame's metre
    expected = error_scale(far).high_mm
    assert viewer.clim_mm == (0.0, expected) and expected < 100.0
    assert 1000 * far.vertex_errors_m("baseline (stand-in)").max() > 1000.0
    assert readout_numbers(viewer)["frame"] == viewer.frame
    assert f'data-clim-high-mm="{expected:g}"' in viewer.readout.value
    for m in far.methods[1:]:
        viewer.method_select.value = m
        assert f'data-clim-high-mm="{expected:g}"' in viewer.readout.value
    assert " 0 (100 %)" in viewer.caption.value  # the failed frame is named under the picture
    viewer.close()
    with pytest.raises(ValueError, match="frame must be"):
        ReconstructionViewer(far, renderer="matplotlib", frame=9)


@pytest.mark.parametrize("renderer", RENDERERS)
def test_a_far_away_frame_fills_the_picture(recons, renderer):
    """The camera follows the frame's body: a body 7 m from the others still fills the view."""
    from PIL import Image

    far = Reconstructions(**{**recons.__dict__, "meshes": {
        m: v.copy() for m, v in recons.meshes.items()}})
    for m in far.methods:
        far.meshes[m][0] += [1.3, 0.0, 7.3]
    viewer = ReconstructionViewer(far, renderer=renderer, size=(240, 240), frame=0)
    img = np.asarray(Image.open(__import__("io").BytesIO(viewer.view.value)).convert("RGB"))
    body = (np.abs(img.astype(int) - 255).sum(-1) > 60)[30:, : int(0.75 * img.shape[1])]
    rows = np.flatnonzero(body.any(axis=1))  # below the title, left of the colour bar
    assert len(rows) and rows[-1] - rows[0] > 0.6 * body.shape[0], (renderer, rows[[0, -1]])
    viewer.close()


def test_widget_probe_says_what_is_true_where_it_runs():
    from vhakit.teaching.setup_check import WidgetProbe

    probe = WidgetProbe()
    assert probe.round_trip_text("executed").startswith("not tested")
    assert probe.round_trip_text("none").startswith("not tested")
    assert probe.round_trip_text("jupyter").startswith("waiting")
    assert probe.round_trip_text().startswith("not tested")  # pytest: no kernel, no browser
    probe._echo.value = 1
    assert probe.round_trip_text("jupyter") == probe.round_trip_text("executed") == "works"
