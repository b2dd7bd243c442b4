"""vhakit.viz.bcp: silhouettes unprojected into the cuboid contain the body (visual hull), slice
indices map to voxel-centre coordinates, and the slice figure shows what the volume holds."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vhakit.body.model import BodyModel  # noqa: E402
from vhakit.geometry.camera import make_rig  # noqa: E402
from vhakit.heatmaps.core import Cuboid  # noqa: E402
from vhakit.viz.bcp import (  # noqa: E402
    plot_volume_slices,
    predict_visibility_logits,
    silhouette_masks,
    slice_coords,
    slice_index,
    unproject_views,
    values_at_points,
    visibility_accuracy,
    voxel_margin_px,
)

IMAGE = (48, 64)  # (W, H): not square, to catch x/y mix-ups


@pytest.fixture(scope="module")
def scene():
    body = BodyModel.open()
    g = torch.Generator().manual_seed(0)
    poses = torch.zeros(1, 72)
    poses[0, 3:] = 0.3 * torch.randn(69, generator=g)  # a bent but plausible body
    with torch.no_grad():
        out = body.from_poses(poses, torch.zeros(1, 10), torch.tensor([[0.1, 0.0, -0.2]]))
    pelvis = out.joints[0, 0]
    rig = make_rig(4, distance_m=3.5, height_m=0.4, yaw0_deg=20.0, image_size=IMAGE,
                   focal_px=60.0, target_m=pelvis)
    return body, out.vertices[0], out.vertices108[0], pelvis, rig


def naive_hull(vertices108, masks, rig, cuboid):
    """Per view and per vertex, by hand: the mask at the nearest pixel to the projection of the
    centre of the vertex's voxel (independent of grid_sample and of unproject_features)."""
    vs = cuboid.side / cuboid.resolution[0]
    lo = cuboid.lower[0]
    out = torch.zeros(len(rig.K), len(vertices108))
    for v in range(len(rig.K)):
        for i, p in enumerate(vertices108):
            idx = torch.clamp(torch.floor((p - lo) / vs), 0, cuboid.resolution[0] - 1)
            centre = lo + (idx + 0.5) * vs
            u, w = rig[v].project(centre[None])[0].round().long().tolist()
            if 0 <= u < IMAGE[0] and 0 <= w < IMAGE[1]:
                out[v, i] = masks[v, 0, w, u]
    return out


@pytest.mark.parametrize("grid", [16, 24])
def test_every_vertex_lies_in_the_visual_hull_of_dilated_silhouettes(scene, grid):
    body, verts, v108, pelvis, rig = scene
    cuboid = Cuboid(pelvis[None], 2.0, grid)
    margin = voxel_margin_px(v108, cuboid, rig.K, rig.R, rig.t)
    assert margin.shape == (4,) and bool((margin > 0).all())
    masks = silhouette_masks(verts, body.faces, rig.K, rig.R, rig.t, IMAGE,
                             dilate_px=int(torch.ceil(margin.max() + 1.5)))
    assert masks.shape == (4, 1, IMAGE[1], IMAGE[0])
    vv = unproject_views(masks, pelvis, rig.K, rig.R, rig.t, IMAGE, grid=grid)
    assert vv.per_view.shape == (4, 1, grid, grid, grid)
    at = values_at_points(vv.per_view[:, 0], vv.cuboid, v108)  # (4, 108)
    torch.testing.assert_close(at, torch.ones_like(at), atol=1e-5, rtol=0)
    assert bool(values_at_points(vv.valid, vv.cuboid, v108).all())
    assert bool((naive_hull(v108, masks, rig, cuboid) == 1).all())
    # Aggregations: mean = 1, sum = 4 (views), softmax = 1 on every vertex's voxel
    for method, expected in (("mean", 1.0), ("sum", 4.0), ("softmax", 1.0)):
        agg = values_at_points(vv.aggregate(method)[0], vv.cuboid, v108)
        torch.testing.assert_close(agg, torch.full_like(agg, expected), atol=1e-4, rtol=0)
    # ... and the hull is a small part of the cuboid: the views do carve
    hull = (vv.per_view[:, 0] > 0.999).all(0)
    assert 0.005 < hull.double().mean() < 0.5


def test_without_dilation_the_hull_is_tighter_and_misses_some_vertex_voxels(scene):
    """The margin is needed: plain silhouettes sampled at voxel centres drop some vertices (a
    test of the dilated case above that could not fail would prove nothing)."""
    body, verts, v108, pelvis, rig = scene
    masks = silhouette_masks(verts, body.faces, rig.K, rig.R, rig.t, IMAGE)
    vv = unproject_views(masks, pelvis, rig.K, rig.R, rig.t, IMAGE, grid=16)
    at = values_at_points(vv.per_view[:, 0], vv.cuboid, v108)
    assert bool((at < 0.999).any())
    torch.testing.assert_close(vv.aggregate("mean")[0],
                               (vv.per_view[:, 0] * vv.valid).sum(0) / (vv.valid.sum(0) + 1e-6),
                               atol=1e-5, rtol=0)


def test_silhouette_pixels_match_the_projected_vertices(scene):
    body, verts, _, _, rig = scene
    masks = silhouette_masks(verts, body.faces, rig.K, rig.R, rig.t, IMAGE)
    uv = rig.project(verts).round().long()  # (4, Nm, 2)
    for v in range(4):
        inside = (uv[v, :, 0] >= 0) & (uv[v, :, 0] < IMAGE[0]) & (uv[v, :, 1] >= 0) & \
                 (uv[v, :, 1] < IMAGE[1])
        assert bool((masks[v, 0, uv[v, inside, 1], uv[v, inside, 0]] == 1).all())
    # the person covers a part of each image, not all of it
    frac = masks.mean((1, 2, 3))
    assert bool(((frac > 0.02) & (frac < 0.6)).all()), frac
    dil = silhouette_masks(verts, body.faces, rig.K, rig.R, rig.t, IMAGE, dilate_px=2)
    assert bool((dil >= masks).all()) and bool((dil.sum() > masks.sum()))


def test_voxel_margin_matches_a_brute_force_bound(scene):
    """Points sampled inside each vertex's voxel project within the margin of the vertex."""
    _, _, v108, pelvis, rig = scene
    cuboid = Cuboid(pelvis[None], 2.0, 16)
    margin = voxel_margin_px(v108, cuboid, rig.K, rig.R, rig.t)
    vs, lo = 2.0 / 16, cuboid.lower[0]
    idx = torch.clamp(torch.floor((v108 - lo) / vs), 0, 15)
    g = torch.Generator().manual_seed(1)
    inside = lo + (idx[:, None] + torch.rand(108, 50, 3, generator=g)) * vs  # (108, 50, 3)
    d = (rig.project(inside.reshape(-1, 3)).view(4, 108, 50, 2) - rig.project(v108)[:, :, None])
    brute = d.norm(dim=-1).flatten(1).amax(1)
    assert bool((brute <= margin + 1e-4).all())
    assert bool((brute > 0.5 * margin).all())  # the bound is not absurdly loose


def test_slice_indices_map_to_voxel_centre_coordinates():
    cub = Cuboid(torch.tensor([[0.3, 1.0, -0.5]]), side=2.0, resolution=(4, 8, 16))
    torch.testing.assert_close(slice_coords(cub, 2, [0, 5, 15]),
                               torch.tensor([-1.5 + 0.0625, -1.5 + 5.5 * 0.125, 0.5 - 0.0625]))
    torch.testing.assert_close(slice_coords(cub, 0, [0, 3]), torch.tensor([-0.45, 1.05]))
    z = slice_coords(cub, 2, range(16))
    assert slice_index(cub, 2, z).tolist() == list(range(16))
    assert slice_index(cub, 1, [0.0, 1.0, 1.99, 5.0]).tolist() == [0, 4, 7, 7]  # 5 m: clamped
    with pytest.raises(ValueError, match="indices must be in"):
        slice_coords(cub, 2, [16])
    with pytest.raises(ValueError, match="axis"):
        slice_coords(cub, 3, [0])


def test_plot_volume_slices_draws_the_right_plane():
    """A volume that is 1 on one voxel only: the image of its z slice has the 1 at (y row, x
    column) of that voxel; other slices are 0; the vertex in the slice is drawn in red."""
    cub = Cuboid(torch.zeros(1, 3), side=2.0, resolution=(4, 6, 8))
    vol = torch.zeros(2, 4, 6, 8)
    vol[:, 1, 4, 3] = 1.0
    point = cub.voxel_centres()[0, 1, 4, 3][None]  # (1, 3)
    fig, axes = plt.subplots(2, 2)
    ims = plot_volume_slices(axes, vol, cub, 2, [3, 5], points_m=point, row_labels=["a", "b"])
    arr = ims[0].get_array()
    assert arr.shape == (6, 4) and arr[4, 1] == 1 and arr.sum() == 1  # rows y, columns x
    assert ims[1].get_array().sum() == 0
    assert list(ims[0].get_extent()) == [-1.0, 1.0, -1.0, 1.0]
    assert axes[0, 0].get_title() == f"z = {float(slice_coords(cub, 2, [3])[0]):+.2f} m"
    red = axes[0, 0].collections[1].get_offsets()
    assert len(red) == 1 and len(axes[0, 1].collections[1].get_offsets()) == 0
    top = plot_volume_slices(axes[0], vol[:1], cub, 1, [4, 0])
    assert top[0].get_array().shape == (8, 4) and top[0].get_array()[3, 1] == 1  # rows z
    side = plot_volume_slices(axes[1], vol[:1], cub, 0, [1, 0])
    assert side[0].get_array().shape == (6, 8) and side[0].get_array()[4, 3] == 1  # rows y, cols z
    with pytest.raises(ValueError, match="axes"):
        plot_volume_slices(axes, vol, cub, 2, [1, 2, 3])
    plt.close(fig)


def test_visibility_accuracy_against_a_loop():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 4, 108, generator=g)
    rendered = torch.rand(5, 4, 108, generator=g) > 0.3
    acc = visibility_accuracy(logits, rendered)
    for v in range(4):
        hits = sum(int((logits[f, v, i] > 0) == rendered[f, v, i]) for f in range(5)
                   for i in range(108))
        assert acc[v].item() == pytest.approx(hits / 540)
    assert visibility_accuracy(torch.where(rendered, 3.0, -3.0), rendered).tolist() == [1.0] * 4
    with pytest.raises(ValueError, match="shape"):
        visibility_accuracy(logits[0], rendered)


def test_errors_name_the_argument(scene):
    body, verts, _, pelvis, rig = scene
    with pytest.raises(ValueError, match="verts_world_m"):
        silhouette_masks(verts[None], body.faces, rig.K, rig.R, rig.t, IMAGE)
    with pytest.raises(ValueError, match="K must have shape"):
        silhouette_masks(verts, body.faces, rig.K[0], rig.R, rig.t, IMAGE)
    with pytest.raises(ValueError, match="features"):
        unproject_views(torch.zeros(4, 8, 8), pelvis, rig.K, rig.R, rig.t, IMAGE)
    with pytest.raises(ValueError, match="center_m"):
        unproject_views(torch.zeros(4, 1, 8, 8), pelvis[None], rig.K, rig.R, rig.t, IMAGE)


def test_predict_visibility_logits_equals_single_sample_calls(scene):
    """Batched prediction over a dataset = the model called on each sample alone."""
    from vhakit.config import bcp_configs, vha_configs
    from vhakit.models.bcp import BodyCodePredictor

    _, _, v108, pelvis, rig = scene
    torch.manual_seed(0)
    model = BodyCodePredictor(bcp_configs("tiny").model, vha_configs("tiny").model)
    g = torch.Generator().manual_seed(2)
    data = [{"images": torch.rand(4, 3, 32, 32, generator=g), "K": rig.K, "R": rig.R, "t": rig.t,
             "vertices108": v108, "pelvis": pelvis + 0.01 * i} for i in range(3)]
    got = predict_visibility_logits(model.train(), data, batch_size=2)
    assert got.shape == (3, 4, 108) and model.training  # the mode is restored
    model.eval()
    with torch.no_grad():
        for i, s in enumerate(data):
            ref = model(s["images"][None], s["K"][None], s["R"][None], s["t"][None],
                        s["pelvis"][None]).visibility_logits[0]
            torch.testing.assert_close(got[i], ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="empty"):
        predict_visibility_logits(model, [])
