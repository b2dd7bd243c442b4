"""Figures for vertex heatmaps (notebook 02): the cuboid, heatmap slices, 3D point clouds, decoding
errors and the soft-argmax path as beta varies. matplotlib only; tensors in, numpy at the edge.

Frame: SMPL's (x = body's left, y up, z = facing direction). Slices are drawn in metres with the
axes named in :data:`SLICE_PLANES` (horizontal, vertical): front = x-y, side = z-y, top = x-z.
:func:`draw_cuboid` projects like :func:`vhakit.viz.draw_mesh` so the two overlay.
"""
from __future__ import annotations

import itertools

import numpy as np
import torch

from vhakit._util import check_shape, to_numpy
from vhakit.heatmaps.core import Cuboid
from vhakit.viz.figures import view_rotation

__all__ = ["cuboid_edges", "draw_cuboid", "SLICE_PLANES", "plot_heatmap_slices",
           "scatter_vertices_3d", "plot_errors_vs_resolution", "plot_beta_path",
           "soft_argmax_figure"]

#: Slice planes: name -> (horizontal axis, vertical axis, fixed axis); 0/1/2 = x/y/z.
SLICE_PLANES = {"front (x-y)": (0, 1, 2), "side (z-y)": (2, 1, 0), "top (x-z)": (0, 2, 1)}
_AXIS = "xyz"


def _check_item(cuboid: Cuboid, b: int) -> None:
    if not isinstance(cuboid, Cuboid):
        raise TypeError(f"cuboid must be a vhakit.heatmaps.Cuboid, got {type(cuboid).__name__}")
    if not 0 <= b < cuboid.batch_size:
        raise ValueError(f"b must be in [0, {cuboid.batch_size}), got {b}")


def cuboid_edges(cuboid: Cuboid, b: int = 0) -> np.ndarray:
    """The 12 edges of item ``b``'s cuboid as ``(12, 2, 3)`` end points in metres."""
    _check_item(cuboid, b)
    lo, hi = to_numpy(cuboid.lower[b], np.float64), to_numpy(cuboid.upper[b], np.float64)
    corners = {c: np.where(np.array(c) == 1, hi, lo) for c in itertools.product((0, 1), repeat=3)}
    edges = [(corners[c], corners[c[:a] + (1,) + c[a + 1:]])
             for c in corners for a in range(3) if c[a] == 0]
    return np.array(edges)


def draw_cuboid(ax, cuboid: Cuboid, b: int = 0, azimuth_deg: float = 0.0,
                elevation_deg: float = 0.0, **line_kw) -> list:
    """Draw the cuboid's edges on a 2-D axes, orthographically, as :func:`vhakit.viz.draw_mesh`
    draws meshes (same ``azimuth_deg``/``elevation_deg``). Returns the Line2D objects."""
    R = view_rotation(azimuth_deg, elevation_deg)
    kw = {"color": "0.4", "lw": 0.8, "ls": "--"} | line_kw
    return [ax.plot(*(e @ R.T)[:, :2].T, **kw)[0] for e in cuboid_edges(cuboid, b)]


def plot_heatmap_slices(axes, heatmap: torch.Tensor, cuboid: Cuboid, at_m, b: int = 0,
                        marker_m=None, zoom_vox: float | None = None, cmap: str = "magma") -> list:
    """Three orthogonal slices of one heatmap ``(Gx, Gy, Gz)`` through the voxel containing the
    point ``at_m (3,)``, drawn in metres (``extent`` = the cuboid's faces).

    Args:
        axes: three matplotlib axes, for :data:`SLICE_PLANES` in order.
        heatmap: ``(Gx, Gy, Gz)`` of batch item ``b``.
        at_m: ``(3,)`` metres: which voxel the slices pass through (clamped into the grid).
        marker_m: optional ``(3,)`` metres drawn as a cross (e.g. the true vertex).
        zoom_vox: if given, show only ``at_m`` +- this many voxels (else the whole cuboid).
    Returns:
        the three AxesImage objects.
    """
    _check_item(cuboid, b)
    h = to_numpy(heatmap, np.float64)
    check_shape(h, "heatmap", cuboid.resolution)
    lo, vs = to_numpy(cuboid.lower[b], np.float64), to_numpy(cuboid.voxel_size, np.float64)
    idx = np.floor((to_numpy(at_m, np.float64) - lo) / vs).astype(int)
    idx = np.clip(idx, 0, np.array(h.shape) - 1)
    images = []
    for ax, (name, (hor, ver, fix)) in zip(axes, SLICE_PLANES.items(), strict=True):
        sl = np.take(h, idx[fix], axis=fix)  # 2-D, remaining axes in increasing order
        sl = sl if hor < ver else sl.T  # rows = horizontal axis
        extent = [lo[hor], lo[hor] + cuboid.side, lo[ver], lo[ver] + cuboid.side]
        images.append(ax.imshow(sl.T, origin="lower", extent=extent, cmap=cmap,
                                interpolation="nearest"))
        if marker_m is not None:
            m = to_numpy(marker_m, np.float64)
            ax.plot(m[hor], m[ver], "x", color="cyan", ms=8, mew=2)
        if zoom_vox is not None:
            at = to_numpy(at_m, np.float64)
            ax.set_xlim(at[hor] - zoom_vox * vs[hor], at[hor] + zoom_vox * vs[hor])
            ax.set_ylim(at[ver] - zoom_vox * vs[ver], at[ver] + zoom_vox * vs[ver])
        ax.set_xlabel(f"{_AXIS[hor]} (m)")
        ax.set_ylabel(f"{_AXIS[ver]} (m)")
        ax.set_title(f"{name}, {_AXIS[fix]}-index {idx[fix]}", fontsize=9)
    return images


def scatter_vertices_3d(ax3d, vertices_m, cuboid: Cuboid | None = None, b: int = 0, **kw):
    """3-D scatter of ``vertices_m (N, 3)`` with y drawn upwards (matplotlib's vertical axis is
    its third): plotted as (x, z, y). Draws the cuboid's edges when given. Returns the
    PathCollection."""
    v = to_numpy(vertices_m, np.float64)
    check_shape(v, "vertices_m", ("N", 3))
    coll = ax3d.scatter(v[:, 0], v[:, 2], v[:, 1], **({"s": 8} | kw))
    if cuboid is not None:
        for e in cuboid_edges(cuboid, b):
            ax3d.plot(e[:, 0], e[:, 2], e[:, 1], color="0.5", lw=0.6, ls="--")
    from matplotlib.ticker import MaxNLocator

    for axis, name in ((ax3d.xaxis, "x (m)"), (ax3d.yaxis, "z (m)"), (ax3d.zaxis, "y (m)")):
        axis.set_major_locator(MaxNLocator(nbins=4))  # 0.5 m steps on a 2 m cuboid
        axis.set_label_text(name)
    ax3d.tick_params(labelsize=8, pad=1)
    ax3d.set_box_aspect((1, 1, 1))
    return coll


def plot_errors_vs_resolution(ax, grids, errors_mm: dict, side_m: float = 2.0,
                              ylabel: str = "mean decoding error (mm)") -> list:
    """Log-log decoding error against grid size ``G``, one line per encoding.

    Args:
        grids: the ``G`` values, e.g. ``(16, 32, 64)``.
        errors_mm: encoding name -> one error (mm) per grid.
        side_m: cuboid side, for the reference line "half a voxel" (``side / G / 2``).
    Returns:
        the Line2D objects, encodings first, then the reference.
    """
    g = np.asarray(grids, dtype=np.float64)
    lines = []
    for name, err in errors_mm.items():
        e = np.asarray(err, dtype=np.float64)
        if e.shape != g.shape:
            raise ValueError(f"errors_mm[{name!r}] must have one value per grid {tuple(g)}, "
                             f"got shape {e.shape}")
        lines.append(ax.plot(g, np.maximum(e, 1e-6), "o-", label=name)[0])
    lines.append(ax.plot(g, side_m / g / 2 * 1e3, "k:", label="half a voxel")[0])
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(g, [str(int(x)) for x in g])
    ax.set_xlabel("voxels per axis G")
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    return lines


def plot_beta_path(ax, cuboid: Cuboid, estimates_m, betas, plane: str = "front (x-y)",
                   b: int = 0, truth_m=None, current: int | None = None) -> list:
    """The soft-argmax estimate ``estimates_m (K, 3)`` for ``betas (K,)`` projected on a plane of
    :data:`SLICE_PLANES`, coloured by log10(beta), with the cuboid outline, the true vertex and
    the estimate at index ``current`` highlighted. Returns the artists."""
    _check_item(cuboid, b)
    if plane not in SLICE_PLANES:
        raise ValueError(f"plane must be one of {list(SLICE_PLANES)}, got {plane!r}")
    hor, ver, _ = SLICE_PLANES[plane]
    e, beta = to_numpy(estimates_m, np.float64), to_numpy(betas, np.float64)
    check_shape(e, "estimates_m", (len(beta), 3))
    lo = to_numpy(cuboid.lower[b], np.float64)
    art = [ax.plot([lo[hor], lo[hor] + cuboid.side, lo[hor] + cuboid.side, lo[hor], lo[hor]],
                   [lo[ver], lo[ver], lo[ver] + cuboid.side, lo[ver] + cuboid.side, lo[ver]],
                   color="0.6", lw=0.8, ls="--")[0]]
    art.append(ax.scatter(e[:, hor], e[:, ver], c=np.log10(beta), cmap="viridis", s=12))
    if truth_m is not None:
        t = to_numpy(truth_m, np.float64)
        art.append(ax.plot(t[hor], t[ver], "x", color="crimson", ms=9, mew=2, label="vertex")[0])
    if current is not None:
        art.append(ax.plot(e[current, hor], e[current, ver], "o", mfc="none", mec="k", ms=12,
                           label=f"beta = {beta[current]:.3g}")[0])
    ax.set_xlabel(f"{_AXIS[hor]} (m)")
    ax.set_ylabel(f"{_AXIS[ver]} (m)")
    ax.set_aspect("equal")
    return art


def soft_argmax_figure(logits: torch.Tensor, cuboid: Cuboid, beta: float, betas,
                       path_m, truth_m):
    """The soft-argmax at one inverse temperature, as a 2 x 2 figure: slices of
    ``p = softmax(beta * logits)`` through the estimate (front, side, top) and the path of the
    estimate over all ``betas`` (:func:`plot_beta_path`), the one nearest ``beta`` circled.

    Args:
        logits: ``(1, 1, Gx, Gy, Gz)`` one heatmap's logits on ``cuboid`` (batch 1).
        beta: the inverse temperature shown in the slices.
        betas: ``(K,)`` and ``path_m``: ``(K, 3)`` metres, the estimates for each of them.
        truth_m: ``(3,)`` metres, the vertex the logits peak at.
    Returns:
        the matplotlib ``Figure`` (10 x 9 in, so each panel is readable in a notebook column).
    """
    import matplotlib.pyplot as plt

    from vhakit.heatmaps.core import soft_argmax

    coords, probs = soft_argmax(logits, cuboid, beta=float(beta), return_probs=True)
    b = torch.as_tensor(betas, dtype=torch.float64)
    current = int((b.log() - np.log(float(beta))).abs().argmin())
    fig, axes = plt.subplots(2, 2, figsize=(10, 9), constrained_layout=True)
    flat = axes.ravel()
    plot_heatmap_slices(flat[:3], probs[0, 0], cuboid, at_m=coords[0, 0], marker_m=coords[0, 0])
    plot_beta_path(flat[3], cuboid, path_m, betas, truth_m=truth_m, current=current)
    flat[3].set_title("the estimate for every beta (colour: log10 beta)", fontsize=9)
    flat[3].legend(fontsize=8)
    err_mm = float((coords[0, 0] - torch.as_tensor(truth_m, dtype=coords.dtype)).norm()) * 1000
    fig.suptitle(f"beta = {float(beta):.3g}: estimate {err_mm:.0f} mm from the vertex",
                 fontsize=11)
    return fig
