"""3D views: the backend policy, off-screen PNGs with a body in them, error colour scales in mm,
camera frusta against OpenCV, heatmap grids against the cuboid's voxel centres."""
from __future__ import annotations

import io
import sys

import matplotlib
import numpy as np
import pytest
import torch

from vhakit.evaluation.recon import Reconstructions
from vhakit.viz import backend as viz3d
from vhakit.viz.backend import BackendChoice, choose_backend, configure_offscreen, detect_frontend
from vhakit.viz.figures import error_colors, method_color

needs_render = pytest.mark.skipif(not viz3d.offscreen_render_works(),
                                  reason="VTK cannot render off-screen here (no EGL/OSMesa)")


class _FakeShell:
    """Stands in for IPython's shell: ``kernel`` is set inside a Jupyter kernel only."""

    def __init__(self, kernel: bool):
        self.kernel = object() if kernel else None


def tube_recons(n_frames: int = 2, rings: int = 30, segments: int = 20) -> Reconstructions:
    """A 1.7 m tube as ground truth, and two 'methods' displaced by known amounts."""
    y = np.linspace(0.0, 1.7, rings)
    a = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    v = np.stack([0.15 * np.sin(a)[None].repeat(rings, 0), y[:, None].repeat(segments, 1),
                  0.15 * np.cos(a)[None].repeat(rings, 0)], -1).reshape(-1, 3)
    f = []
    for i in range(rings - 1):
        for j in range(segments):
            p, q = i * segments + j, i * segments + (j + 1) % segments
            f += [[p, q, p + segments], [q, q + segments, p + segments]]
    gt = np.stack([v + [0.1 * k, 0, 0] for k in range(n_frames)])
    ramp = (v[:, 1] / 1.7)[None, :, None] * np.array([0.04, 0.0, 0.0])  # 0..40 mm along x
    return Reconstructions(faces=np.array(f), meshes={
        "ground truth": gt, "baseline": gt + ramp, "VHA+BCP": gt + 0.01})


# --- backend policy ----------------------------------------------------------------------------
@pytest.mark.parametrize("env, frontend, trame, expected", [
    ({"VHAKIT_PYVISTA_BACKEND": "html", "CI": "1"}, "jupyter", True, "html"),  # override wins
    ({"VHAKIT_PYVISTA_BACKEND": "Static"}, "jupyter", True, "static"),
    ({"CI": "true"}, "jupyter", True, "static"),
    ({"GITHUB_ACTIONS": "true"}, "jupyter", True, "static"),
    ({"CI": "0"}, "jupyter", True, "client"),  # CI=0 is not CI
    ({}, "executed", True, "static"),  # nbclient / nbconvert / nbmake
    ({}, "none", True, "static"),  # plain python
    ({}, "vscode", True, "static"),
    ({}, "colab", True, "static"),
    ({}, "jupyter", True, "client"),  # local JupyterLab with trame
    ({}, "jupyter", False, "static"),  # trame-pyvista missing
])
def test_choose_backend(env, frontend, trame, expected):
    choice = choose_backend(env, frontend=frontend, trame=trame, server_proxy=True)
    assert isinstance(choice, BackendChoice)
    assert choice.name == expected, choice.reason
    assert choice.reason


def test_choose_backend_jupyterhub_needs_proxy():
    env = {"JUPYTERHUB_API_TOKEN": "x"}
    assert choose_backend(env, frontend="jupyter", trame=True, server_proxy=False).name == "static"
    assert choose_backend(env, frontend="jupyter", trame=True, server_proxy=True).name == "client"


def test_choose_backend_rejects_unknown_override():
    with pytest.raises(ValueError, match="VHAKIT_PYVISTA_BACKEND"):
        choose_backend({"VHAKIT_PYVISTA_BACKEND": "trames"}, frontend="jupyter")


def test_detect_frontend():
    assert detect_frontend({"JPY_SESSION_NAME": "x"}, _FakeShell(kernel=False)) == "none"
    assert detect_frontend({"JPY_SESSION_NAME": "a.ipynb"}, _FakeShell(True)) == "jupyter"
    assert detect_frontend({}, _FakeShell(True)) == "executed"
    assert detect_frontend({"PAPERMILL_INPUT_PATH": "a", "JPY_SESSION_NAME": "a"},
                           _FakeShell(True)) == "executed"
    assert detect_frontend({"VSCODE_PID": "1", "JPY_SESSION_NAME": "a"}, _FakeShell(True)) == "vscode"


def test_policy_inside_a_kernel_run_by_nbclient():
    """The real mechanism: a kernel executed by nbclient is detected and gets static PNGs."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    code = ("import os\nfrom vhakit.viz.backend import detect_frontend, choose_backend, CI_VARIABLES\n"
            "env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES\n"
            "       and k != 'VHAKIT_PYVISTA_BACKEND'}\n"
            "print(detect_frontend(), choose_backend(env).name)")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    out = "".join(o.get("text", "") for o in nb.cells[0].outputs)
    assert out.split() == ["executed", "static"], out


def test_configure_offscreen_selects_egl_only_without_display(monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    env = {}
    assert configure_offscreen(env) == "vtkEGLRenderWindow"
    env = {"DISPLAY": ":0"}
    assert configure_offscreen(env) is None
    env = {"VTK_DEFAULT_OPENGL_WINDOW": "vtkOSOpenGLRenderWindow"}  # the user's choice is kept
    assert configure_offscreen(env) == "vtkOSOpenGLRenderWindow"


def test_missing_pyvista_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyvista", None)  # makes `import pyvista` fail
    with pytest.raises(ImportError, match=r"vhakit\[viz\]"):
        viz3d.import_pyvista()


# --- static images -----------------------------------------------------------------------------
def _body_fraction(png: bytes) -> float:
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((np.abs(img - 255).sum(-1) > 30).mean())  # non-white pixels


@needs_render
def test_static_view_is_a_png_with_the_body():
    from vhakit.viz.scenes import comparison_scene

    recons = tube_recons()
    pl = comparison_scene(recons, 0, window_size=(400, 300))
    view = viz3d.show(pl, "static")
    assert view.backend == "static" and view.png[:8] == b"\x89PNG\r\n\x1a\n"
    assert 0.03 < _body_fraction(view.png) < 0.6
    bundle = view._repr_mimebundle_()
    assert "image/png" in bundle and "application/vnd.jupyter.widget-view+json" not in bundle
    # an empty scene has no body pixels: the measure can fail
    from vhakit.viz.scenes import new_plotter

    assert _body_fraction(viz3d.screenshot_png(new_plotter((64, 64)))) == 0.0
    pl.close()


@needs_render
def test_error_colour_scale_is_the_data_range_in_mm():
    from vhakit.viz.scenes import add_error_body, new_plotter

    recons = tube_recons()
    err_m = recons.vertex_errors_m("baseline")[0]
    pl = new_plotter((200, 200))
    clim = add_error_body(pl, recons.meshes["baseline"][0], recons.faces, err_m)
    assert clim == pytest.approx((err_m.min() * 1000, err_m.max() * 1000))
    assert clim[1] == pytest.approx(40.0, abs=1e-6)  # the ramp tops out at 40 mm
    actor = next(iter(pl.renderer.actors.values()))
    assert actor.mapper.GetScalarRange() == pytest.approx(clim)
    bar = next(iter(pl.scalar_bars.values()))
    assert bar.GetTitle() == "error (mm)"
    assert bar.GetLookupTable().GetRange() == pytest.approx(clim)
    pl.close()


def test_error_colors_numbers():
    e_m = np.array([0.010, 0.025, 0.040])
    rgb, clim = error_colors(e_m)
    assert clim == pytest.approx((10.0, 40.0))
    cmap = matplotlib.colormaps["viridis"]
    np.testing.assert_allclose(rgb[0], cmap(0.0)[:3])
    np.testing.assert_allclose(rgb[2], cmap(1.0)[:3])
    np.testing.assert_allclose(rgb[1], cmap(0.5)[:3], atol=0.01)
    rgb2, clim2 = error_colors(torch.tensor(e_m), clim_mm=(0, 20))
    assert clim2 == (0.0, 20.0)
    np.testing.assert_allclose(rgb2[1:], np.array([cmap(1.0)[:3]] * 2))  # clipped at 20 mm
    with pytest.raises(ValueError, match="errors_m"):
        error_colors(np.zeros((3, 3)))


def test_method_colors():
    assert method_color("VHA+BCP fitted (stand-in)") == method_color("fitted")
    assert method_color("baseline (stand-in)") == method_color("baseline")
    assert method_color("my method") != method_color("baseline")


def test_frustum_corners_project_to_the_image_corners():
    cv2 = pytest.importorskip("cv2")
    from vhakit.geometry.camera import make_rig
    from vhakit.viz.scenes import frustum_corners

    cams = make_rig(3, image_size=(160, 120), dtype=torch.float64)
    for v in range(3):
        K, R, t = cams.K[v].double().numpy(), cams.R[v].double().numpy(), cams.t[v].double().numpy()
        centre, corners = frustum_corners(K, R, t, (160, 120), depth_m=0.7)
        uv, _ = cv2.projectPoints(corners, cv2.Rodrigues(R)[0], t, K, None)
        np.testing.assert_allclose(uv[:, 0], [[-0.5, -0.5], [159.5, -0.5], [159.5, 119.5],
                                              [-0.5, 119.5]], atol=1e-3)
        np.testing.assert_allclose((corners @ R.T + t)[:, 2], 0.7, atol=1e-9)  # at the depth
        np.testing.assert_allclose(R @ centre + t, 0.0, atol=1e-9)  # the camera's origin


def test_heatmap_grid_points_are_the_voxel_centres():
    from vhakit.heatmaps.core import Cuboid, encode_gaussian
    from vhakit.viz.scenes import heatmap_grid

    cub = Cuboid(torch.tensor([[0.1, 0.9, -0.2]], dtype=torch.float64), side=2.0,
                 resolution=(6, 5, 4))
    vertex = torch.tensor([[[0.4, 1.2, -0.5]]], dtype=torch.float64)
    h = encode_gaussian(vertex, cub, sigma_vox=0.7)[0, 0]  # (6, 5, 4)
    grid = heatmap_grid(h, cub.center[0], cub.side)
    centres = cub.voxel_centres()[0].numpy()  # (Gx, Gy, Gz, 3)
    ix, iy, iz = 3, 1, 2
    flat = ix + 6 * (iy + 5 * iz)  # VTK point order: x fastest
    np.testing.assert_allclose(grid.points[flat], centres[ix, iy, iz], atol=1e-6)
    np.testing.assert_allclose(grid.points, centres.transpose(2, 1, 0, 3).reshape(-1, 3),
                               atol=1e-6)
    peak = np.argmax(grid.point_data["heatmap"])
    np.testing.assert_allclose(grid.points[peak],
                               centres.reshape(-1, 3)[int(torch.argmax(h))], atol=1e-6)
    with pytest.raises(ValueError, match="Gx, Gy, Gz"):
        heatmap_grid(h[None], cub.center[0], 2.0)


@needs_render
def test_camera_and_heatmap_scenes_render():
    from vhakit.geometry.camera import make_rig
    from vhakit.viz.scenes import camera_scene, heatmap_scene

    recons = tube_recons(1)
    cams = make_rig(2, image_size=(32, 24))
    images = np.zeros((1, 2, 24, 32, 3), np.uint8)
    images[..., 0] = 200
    r = Reconstructions(faces=recons.faces, meshes={"ground truth": recons.meshes["ground truth"]},
                        images=images, K=cams.K.numpy()[None], R=cams.R.numpy()[None],
                        t=cams.t.numpy()[None])
    png = viz3d.screenshot_png(camera_scene(r, 0, window_size=(200, 150)))
    assert _body_fraction(png) > 0.01
    h = np.zeros((8, 8, 8))
    h[3:5, 3:5, 3:5] = 1.0
    png = viz3d.screenshot_png(heatmap_scene(recons.meshes["ground truth"][0], recons.faces, h,
                                             (0.0, 0.85, 0.0), 2.0, vertex=0,
                                             window_size=(200, 200)))
    assert _body_fraction(png) > 0.01


def test_matplotlib_fallback_draws_the_frame():
    import matplotlib.pyplot as plt

    from vhakit.viz.figures import draw_frame

    recons = tube_recons()
    fig = plt.figure(figsize=(3, 3), dpi=80)
    draw_frame(fig, recons, 1, "baseline", {"mesh": True, "error colours": True,
                                            "108 points": False})
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    assert 0.03 < _body_fraction(buf.getvalue()) < 0.7


@pytest.mark.skipif(not viz3d.trame_available(), reason="trame-pyvista not installed")
def test_export_html(tmp_path):
    from vhakit.viz.scenes import comparison_scene

    pl = comparison_scene(tube_recons(1), 0, window_size=(200, 150))
    path = viz3d.export_html(pl, tmp_path / "scene.html")
    text = path.read_text()
    assert text.lstrip().lower().startswith("<!doctype html") or "<html" in text[:2000].lower()
    assert len(text) > 10_000
    pl.close()


@needs_render
@pytest.mark.skipif(not viz3d.trame_available(), reason="trame-pyvista not installed")
def test_html_backend_and_fallback_when_interactive_fails(monkeypatch):
    from vhakit.viz.scenes import comparison_scene

    pl = comparison_scene(tube_recons(1), 0, window_size=(200, 150))
    view = viz3d.show(pl, "html")
    bundle = view._repr_mimebundle_()
    assert bundle["text/html"].startswith("<iframe srcdoc=") and "image/png" in bundle

    def broken_show(*args, **kwargs):
        raise RuntimeError("trame server down")

    monkeypatch.setattr(pl, "show", broken_show)
    with pytest.warns(UserWarning, match="trame server down"):
        view = viz3d.show(pl, "client")
    assert view.backend == "static" and _body_fraction(view.png) > 0.01
    pl.close()


# --- picking a vertex by body part; notebook 02's figures ----------------------------------------
def test_part_vertex_finds_the_hand_whichever_way_the_body_faces(open_body):
    from vhakit.body.model import JOINT_NAMES
    from vhakit.viz.scenes import part_vertex

    labels = open_body.part_labels
    hand = JOINT_NAMES.index("left_hand")
    turned = torch.tensor([[0.0, np.pi, 0.0]])  # facing -z: the left hand is now on the -x side
    with torch.no_grad():
        verts = open_body(global_orient=turned).vertices[0]
    picked = part_vertex(verts, labels, "left_hand")
    assert int(labels[picked]) == hand
    furthest = int(torch.argmax(verts[:, 0]))  # "furthest along +x" picks the other side
    assert JOINT_NAMES[int(labels[furthest])].startswith("right_")
    # by hand: of the hand's vertices, the one nearest their centroid
    members = [i for i in range(len(labels)) if int(labels[i]) == hand]
    centre = verts[members].mean(0)
    best = min(members, key=lambda i: float(((verts[i] - centre) ** 2).sum()))
    assert picked == best == part_vertex(verts, labels, hand)
    with pytest.raises(ValueError, match="JOINT_NAMES"):
        part_vertex(verts, labels, "left_paw")
    with pytest.raises(ValueError, match="part_labels"):
        part_vertex(verts, labels[:10], "left_hand")


def test_soft_argmax_figure_is_large_and_names_the_error():
    import matplotlib.pyplot as plt

    from vhakit.heatmaps.core import Cuboid, encode_gaussian, soft_argmax
    from vhakit.viz.heatmaps import soft_argmax_figure

    cub = Cuboid(torch.zeros(1, 3), side=2.0, resolution=16)
    v = torch.tensor([[[0.3, -0.2, 0.1]]])
    logits = 6.0 * encode_gaussian(v, cub, sigma_vox=1.0)
    logits = logits / logits.amax()
    betas = torch.logspace(-1, 1, 5)
    path = torch.cat([soft_argmax(logits, cub, beta=float(b))[0] for b in betas])  # (5, 3)
    fig = soft_argmax_figure(logits, cub, 2.0, betas, path, truth_m=v[0, 0])
    try:
        w, h = fig.get_size_inches()
        assert len(fig.axes) >= 4 and w >= 10 and h >= 9  # 2 x 2 panels, each readable
        est = soft_argmax(logits, cub, beta=2.0)[0, 0]
        err = float((est - v[0, 0]).norm()) * 1000
        assert fig._suptitle.get_text() == f"beta = 2: estimate {err:.0f} mm from the vertex"
    finally:
        plt.close(fig)


def test_3d_scatter_has_few_ticks():
    import matplotlib.pyplot as plt

    from vhakit.heatmaps.core import Cuboid
    from vhakit.viz.heatmaps import scatter_vertices_3d

    fig = plt.figure(figsize=(6, 6))
    ax = fig.add_subplot(projection="3d")
    scatter_vertices_3d(ax, torch.rand(20, 3) - 0.5, Cuboid(torch.zeros(1, 3), 2.0, 16))
    fig.canvas.draw()
    try:
        for axis in (ax.xaxis, ax.yaxis, ax.zaxis):  # 0.25 m ticks overlapped at 6 in
            inside = [t for t in axis.get_majorticklocs() if -1.0 <= t <= 1.0]
            assert len(inside) <= 5, inside
    finally:
        plt.close(fig)


def test_scale_bar_labels_fall_on_round_millimetres():
    from vhakit.viz.scenes import scale_bar_labels

    for high in (100, 125, 200, 225, 250, 275, 300):
        n = scale_bar_labels(0, high)
        step = high / (n - 1)
        assert 4 <= n <= 7 and step % 5 == 0, (high, n, step)  # 0-275: 0, 55, ..., not 69, 138
