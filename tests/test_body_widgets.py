"""vhakit.teaching.body_widgets and vhakit.viz.views: the slider callbacks pose the body exactly as
BodyModel does, the pictures are PNGs of the right size, the visibility figures count right."""
from __future__ import annotations

import base64
import io
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from vhakit.body.model import JOINT_NAMES, BodyModel  # noqa: E402
from vhakit.data.joint_limits import JOINT_LIMITS_DEG  # noqa: E402
from vhakit.data.motion import load_deepmimic  # noqa: E402
from vhakit.geometry.camera import make_rig  # noqa: E402
from vhakit.teaching.body_widgets import (  # noqa: E402
    DEFAULT_POSE_CONTROLS,
    BodyExplorer,
    ClipPlayer,
    PoseControl,
    pose_from_controls,
    render_meshes_png,
)
from vhakit.viz.views import (  # noqa: E402
    plot_rig_topdown,
    plot_views,
    plot_visibility_matrix,
    rig_scene,
    visibility_summary,
)


@pytest.fixture(scope="module")
def body():
    return BodyModel.open()


@pytest.fixture(scope="module")
def explorer(body):
    ex = BodyExplorer(body, num_betas=3)
    yield ex
    ex.close()


def png_size(png: bytes) -> tuple[int, int]:
    from PIL import Image
    return Image.open(io.BytesIO(png)).size


def covered_pixels(png: bytes) -> int:
    from PIL import Image
    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int64)
    return int((img.sum(-1) < 3 * 250).sum())


# ------------------------------------------------------------------ pose_from_controls
def test_pose_from_controls_places_degrees_at_the_joint_and_axis():
    values = {"L knee (x: + flexes)": 90.0, "R elbow (y: + flexes)": 45.0}
    pose = pose_from_controls(values)
    assert pose.shape == (1, 69)
    ref = torch.zeros(24, 3)
    ref[JOINT_NAMES.index("left_knee"), 0] = math.pi / 2
    ref[JOINT_NAMES.index("right_elbow"), 1] = math.pi / 4
    torch.testing.assert_close(pose, ref[1:].reshape(1, 69))
    twice = (PoseControl("a", "neck", 0), PoseControl("b", "neck", 0))
    assert float(pose_from_controls({"a": 10, "b": 20}, twice).abs().sum()) == pytest.approx(
        math.radians(30))
    with pytest.raises(ValueError, match="unknown labels"):
        pose_from_controls({"L kneee": 3.0})


def test_pose_controls_validate_and_take_the_joint_limits():
    with pytest.raises(ValueError, match="joint"):
        PoseControl("x", "pelvis", 0)
    with pytest.raises(ValueError, match="axis"):
        PoseControl("x", "neck", 3)
    for c in DEFAULT_POSE_CONTROLS:
        lo, hi = JOINT_LIMITS_DEG[JOINT_NAMES.index(c.joint), c.axis]
        assert c.limits_deg == (lo, hi) and lo <= 0 <= hi and lo < hi, c  # 0 = rest pose
    assert len({c.label for c in DEFAULT_POSE_CONTROLS}) == len(DEFAULT_POSE_CONTROLS)


# ------------------------------------------------------------------ BodyExplorer
def test_shape_slider_gives_the_body_models_mesh(body, explorer):
    explorer.reset()
    n = explorer.render_count
    explorer.beta_sliders[1].value = 2.0
    assert explorer.render_count == n + 1
    with torch.no_grad():
        ref = body(betas=torch.tensor([[0.0, 2.0] + [0.0] * 8]))
    torch.testing.assert_close(explorer.output.vertices, ref.vertices)
    torch.testing.assert_close(explorer.output.joints, ref.joints)
    explorer.reset()
    assert explorer.render_count == n + 2  # one render for the reset, not one per slider
    with torch.no_grad():
        torch.testing.assert_close(explorer.output.vertices, body().vertices)


def test_knee_slider_bends_the_knee_by_its_angle(body, explorer):
    """Independent check: the angle between thigh (hip->knee) and shin (knee->ankle) grows by the
    slider's value (the rest leg is bent ~9 degrees, in the same sagittal plane)."""
    def knee_angle_deg(joints):
        hip, knee, ankle = (joints[0, JOINT_NAMES.index(n)] for n in
                            ("left_hip", "left_knee", "left_ankle"))
        a, b = knee - hip, ankle - knee
        return math.degrees(math.acos(float(a @ b / (a.norm() * b.norm()))))

    explorer.reset()
    rest = knee_angle_deg(explorer.output.joints)
    explorer.pose_sliders["L knee (x: + flexes)"].value = 70.0
    bent = knee_angle_deg(explorer.output.joints)
    assert abs(bent - rest - 70.0) < 3.0, (rest, bent)  # measured: 9.1 -> 78.8 degrees
    with torch.no_grad():
        ref = body(body_pose=pose_from_controls({"L knee (x: + flexes)": 70.0}))
    torch.testing.assert_close(explorer.output.vertices, ref.vertices)
    # the ankle moves backwards (-z) when the left knee flexes (+x, right-hand rule, y up)
    ankle = JOINT_NAMES.index("left_ankle")
    explorer.reset()
    assert float(ref.joints[0, ankle, 2]) < float(explorer.output.joints[0, ankle, 2]) - 0.2


def test_explorer_output_carries_a_png_for_executed_notebooks(explorer):
    data = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in data
    png = base64.b64decode(data["image/png"])
    assert png == explorer.view.value and png_size(png) == explorer.size_px
    assert "extent along y" in explorer.readout.value
    with pytest.raises(ValueError, match="num_betas"):
        BodyExplorer(explorer.body, num_betas=11)


def test_fixed_window_shows_size_changes(body):
    """With a fixed drawing window a body scaled by s covers ~s^2 as many pixels."""
    with torch.no_grad():
        v = body().vertices[0]
    small = covered_pixels(render_meshes_png(v, body.faces, azimuths_deg=(0,)))
    big = covered_pixels(render_meshes_png(1.2 * v, body.faces, azimuths_deg=(0,)))
    assert 1.3 < big / small < 1.6, big / small
    with pytest.raises(ValueError, match=r"vertices_m must have shape \(V, 3\)"):
        render_meshes_png(v[None], body.faces)


# ------------------------------------------------------------------ ClipPlayer
def test_clip_player_frames_match_the_body_model(body):
    clip = next(c for c in load_deepmimic() if c.name == "walk")
    player = ClipPlayer(clip, body, step=3)
    assert list(player.frame_index) == list(range(0, clip.num_frames, 3))
    assert player.play.interval == int(1000 * 3 / clip.fps) and player.play.max == 12
    t = clip.to_torch()
    f = int(player.frame_index[5])
    with torch.no_grad():
        ref = body.from_poses(t["poses"][f:f + 1], t["betas"][f:f + 1], t["transl"][f:f + 1])
    torch.testing.assert_close(player.vertices[5], ref.vertices[0])
    first = player.view.value
    player.slider.value = 5
    assert player.shown == 5 and f"frame {f} /" in player.readout.value
    assert player.view.value != first and png_size(player.view.value) == player.size_px
    assert "image/png" in player._repr_mimebundle_()
    with pytest.raises(ValueError, match="step"):
        ClipPlayer(clip, body, step=0)
    player.close()


# ------------------------------------------------------------------ viz_views
def test_visibility_summary_and_figures_count_like_a_loop():
    gen = torch.Generator().manual_seed(0)
    vis = torch.rand(4, 108, generator=gen) < 0.5
    vis[:, 7] = False
    s = visibility_summary(vis)
    for k in range(4):
        assert s["per_view"][k] == sum(bool(vis[k, n]) for n in range(108))
    for n in range(108):
        assert s["num_views"][n] == sum(bool(vis[k, n]) for k in range(4))
    assert 7 in s["unseen"] and all(s["num_views"][s["unseen"]] == 0)

    images = torch.zeros(4, 32, 48, 3, dtype=torch.uint8)
    uv = torch.rand(4, 108, 2, generator=gen) * 30
    fig, axes = plt.subplots(1, 4)
    counts = plot_views(axes, images, uv, vis)
    assert list(counts) == list(s["per_view"])
    assert axes[0].get_xlim() == (-0.5, 47.5) and axes[0].get_ylim() == (31.5, -0.5)
    with pytest.raises(ValueError, match="uv_px"):
        plot_views(axes, images, uv[:, :5], vis)
    with pytest.raises(ValueError, match="one axes per view"):
        plot_views(axes[:2], images)
    labels = torch.randint(0, 24, (108,), generator=gen)
    fig2, ax = plt.subplots()
    order = plot_visibility_matrix(ax, vis, labels)
    assert (np.diff(labels.numpy()[order]) >= 0).all()
    with pytest.raises(ValueError, match="bool"):
        plot_visibility_matrix(ax, vis.float())
    plt.close(fig)
    plt.close(fig2)


def test_rig_topdown_puts_view_0_in_front_of_the_body():
    rig = make_rig(num_views=4, distance_m=3.0)
    fig, ax = plt.subplots()
    plot_rig_topdown(ax, rig)
    xs, zs = zip(*[line.get_xydata()[0] for line in ax.lines], strict=True)
    assert zs[0] == pytest.approx(3.0, abs=1e-5) and xs[1] == pytest.approx(3.0, abs=1e-5)
    assert ax.get_xlim() == pytest.approx((-3.45, 3.45), abs=1e-4)
    plt.close(fig)


def test_rig_scene_frames_body_and_cameras(body):
    from vhakit.viz.backend import offscreen_render_works, screenshot_png
    if not offscreen_render_works():
        pytest.skip("VTK cannot render off-screen here")
    rig = make_rig(num_views=2, image_size=(32, 32))
    with torch.no_grad():
        v = body().vertices[0]
    pl = rig_scene(v, body.faces, rig, torch.full((2, 32, 32, 3), 200, dtype=torch.uint8),
                   window_size=(160, 120))
    try:
        assert png_size(screenshot_png(pl)) == (160, 120)
        b = pl.bounds  # everything in the scene: body and both frusta
        assert b[5] > 2.9 and b[3] > 0.8  # the camera at z = 3 m and the head are in the scene
    finally:
        pl.close()
