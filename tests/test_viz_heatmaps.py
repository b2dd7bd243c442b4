"""vhakit.viz.heatmaps: the figures show the numbers they are given, where the conventions say."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from vhakit.heatmaps.core import Cuboid, encode_onehot  # noqa: E402
from vhakit.viz.heatmaps import (  # noqa: E402
    SLICE_PLANES,
    cuboid_edges,
    draw_cuboid,
    plot_beta_path,
    plot_errors_vs_resolution,
    plot_heatmap_slices,
    scatter_vertices_3d,
)


@pytest.fixture
def cub():
    return Cuboid(torch.tensor([[0.1, 0.9, -0.3], [0.0, 0.0, 0.0]]), 2.0, (4, 6, 8))


def test_cuboid_edges_are_the_12_unit_steps(cub):
    e = cuboid_edges(cub, b=0)
    assert e.shape == (12, 2, 3)
    d = np.abs(e[:, 1] - e[:, 0])
    assert np.allclose(np.sort(d, axis=1), [[0, 0, 2.0]] * 12)  # each edge moves along one axis
    corners = np.unique(e.reshape(-1, 3).round(6), axis=0)
    assert len(corners) == 8
    assert np.allclose(corners.min(0), [-0.9, -0.1, -1.3]) and np.allclose(corners.max(0), [1.1, 1.9, 0.7])
    with pytest.raises(ValueError, match="b must"):
        cuboid_edges(cub, b=2)


def test_draw_cuboid_front_view_keeps_x_and_y(cub):
    fig, ax = plt.subplots()
    lines = draw_cuboid(ax, cub, b=1)
    xy = np.concatenate([np.stack(ln.get_data(), 1) for ln in lines])
    assert len(lines) == 12 and np.allclose(np.abs(xy), 1.0)
    plt.close(fig)


def test_heatmap_slices_show_the_voxel_values_in_metres(cub):
    v = torch.tensor([[[0.3, 1.2, 0.1]], [[-0.5, 0.2, 0.9]]])
    h = encode_onehot(v, cub)[0, 0]  # (4, 6, 8), a single 1
    h = h + torch.arange(h.numel(), dtype=h.dtype).view_as(h) * 1e-3  # every voxel distinct
    idx = ((v[0, 0] - cub.lower[0]) / cub.voxel_size).floor().long().tolist()
    fig, axes = plt.subplots(1, 3)
    ims = plot_heatmap_slices(axes, h, cub, v[0, 0], marker_m=v[0, 0])
    for im, (hor, ver, fix) in zip(ims, SLICE_PLANES.values(), strict=True):
        arr = np.asarray(im.get_array())
        assert arr.shape == (cub.resolution[ver], cub.resolution[hor])  # rows = vertical axis
        for i, j in [(0, 0), (cub.resolution[hor] - 1, 1)]:
            full = [0, 0, 0]
            full[hor], full[ver], full[fix] = i, j, idx[fix]
            assert arr[j, i] == pytest.approx(float(h[tuple(full)]))
        lo = cub.lower[0].tolist()
        assert np.allclose(im.get_extent(), [lo[hor], lo[hor] + 2, lo[ver], lo[ver] + 2])
    plot_heatmap_slices(axes, h, cub, v[0, 0], zoom_vox=2)
    assert np.allclose(axes[0].get_xlim(), [0.3 - 1.0, 0.3 + 1.0])  # 2 voxels of 0.5 m in x
    assert np.allclose(axes[0].get_ylim(), [1.2 - 2 / 3, 1.2 + 2 / 3])  # 2 voxels of 1/3 m in y
    plt.close(fig)
    with pytest.raises(ValueError, match="heatmap"):
        plot_heatmap_slices(axes, h[:2], cub, v[0, 0])


def test_scatter_draws_y_upwards(cub):
    fig = plt.figure()
    ax = fig.add_subplot(projection="3d")
    pts = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    coll = scatter_vertices_3d(ax, pts, cub)
    x, z, y = coll._offsets3d
    assert np.allclose(x, [0.1, 0.4]) and np.allclose(y, [0.2, 0.5]) and np.allclose(z, [0.3, 0.6])
    assert ax.get_zlabel() == "y (m)"
    plt.close(fig)


def test_errors_vs_resolution_plots_given_values_and_half_voxel():
    fig, ax = plt.subplots()
    lines = plot_errors_vs_resolution(ax, (16, 32, 64), {"onehot": [30.0, 15.0, 7.5]})
    assert np.allclose(lines[0].get_ydata(), [30, 15, 7.5])
    assert np.allclose(lines[-1].get_ydata(), [62.5, 31.25, 15.625])
    with pytest.raises(ValueError, match="onehot"):
        plot_errors_vs_resolution(ax, (16, 32), {"onehot": [1.0]})
    plt.close(fig)


def test_beta_path_projects_onto_the_plane(cub):
    fig, ax = plt.subplots()
    est = torch.tensor([[0.1, 0.2, 0.3], [0.4, 0.5, 0.6]])
    art = plot_beta_path(ax, cub, est, [0.1, 10.0], plane="side (z-y)", truth_m=est[1], current=1)
    assert np.allclose(art[1].get_offsets(), [[0.3, 0.2], [0.6, 0.5]])
    with pytest.raises(ValueError, match="plane"):
        plot_beta_path(ax, cub, est, [0.1, 10.0], plane="oblique")
    with pytest.raises(ValueError, match="estimates_m"):
        plot_beta_path(ax, cub, est[:1], [0.1, 10.0])
    plt.close(fig)
