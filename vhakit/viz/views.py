"""Figures of a multi-view capture: the camera rig, the rendered views and per-vertex visibility.

Matplotlib drawings (work everywhere) and one pyvista scene (:func:`rig_scene`, displayed with
:func:`vhakit.viz.backend.show`). World frame: metres, y up, the body faces +z. Cameras are
:class:`vhakit.geometry.camera.Camera` batches ``(K,)``; pixels follow OpenCV (centres at integers).
"""
from __future__ import annotations

import numpy as np

from vhakit._util import check_shape, to_numpy

__all__ = ["visibility_summary", "plot_views", "plot_visibility_matrix", "plot_rig_topdown",
           "rig_scene"]

VISIBLE_COLOR = "lime"
HIDDEN_COLOR = "red"


def _check_visibility(visibility, num_views: int | None = None) -> np.ndarray:
    vis = to_numpy(visibility)
    if vis.ndim != 2 or vis.dtype != np.bool_:
        raise ValueError(f"visibility must be a bool (K, N) array, got {vis.shape} {vis.dtype}")
    if num_views is not None and vis.shape[0] != num_views:
        raise ValueError(f"visibility has {vis.shape[0]} views, expected {num_views}")
    return vis


def visibility_summary(visibility) -> dict[str, np.ndarray]:
    """Counts behind the figures: ``per_view (K,)`` visible vertices per view, ``num_views (N,)``
    how many views see each vertex, ``unseen (M,)`` indices of vertices no view sees."""
    vis = _check_visibility(visibility)
    seen_by = vis.sum(0)
    return {"per_view": vis.sum(1), "num_views": seen_by, "unseen": np.flatnonzero(seen_by == 0)}


def plot_views(axes, images, uv_px=None, visibility=None, titles=None, marker_size: float = 9.0):
    """Show views ``(K, H, W, 3)`` uint8, one per axes; with ``uv_px (K, N, 2)`` and
    ``visibility (K, N)`` mark each vertex visible (green dot) or hidden (red cross).

    Returns:
        ``(K,)`` numbers of visible vertices (all zeros without ``visibility``).
    """
    imgs = to_numpy(images)
    axes = list(np.ravel(axes))
    check_shape(imgs, "images", ("K", "H", "W", 3))
    if len(axes) != imgs.shape[0]:
        raise ValueError(f"need one axes per view: {imgs.shape[0]} views, {len(axes)} axes")
    vis = None if visibility is None else _check_visibility(visibility, imgs.shape[0])
    uv = None if uv_px is None else to_numpy(uv_px, np.float64)
    if vis is not None and (uv is None or uv.shape != (*vis.shape, 2)):
        raise ValueError(f"uv_px must have shape {(*vis.shape, 2)} to mark visibility, got "
                         f"{None if uv is None else uv.shape}")
    counts = np.zeros(imgs.shape[0], np.int64)
    for k, ax in enumerate(axes):
        ax.imshow(imgs[k])
        title = f"view {k}" if titles is None else titles[k]
        if vis is not None:
            counts[k] = vis[k].sum()
            ax.scatter(*uv[k, vis[k]].T, s=marker_size, c=VISIBLE_COLOR, edgecolors="k",
                       linewidths=0.3)
            ax.scatter(*uv[k, ~vis[k]].T, s=marker_size, c=HIDDEN_COLOR, marker="x",
                       linewidths=0.8)
            title += f": {counts[k]}/{vis.shape[1]} visible"
        ax.set_xlim(-0.5, imgs.shape[2] - 0.5)
        ax.set_ylim(imgs.shape[1] - 0.5, -0.5)
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    return counts


def plot_visibility_matrix(ax, visibility, part_labels=None, part_names=None):
    """Visibility ``(K, N)`` as an image (views x vertices; white = visible). With
    ``part_labels (N,)`` the vertices are sorted by body part and the parts are labelled."""
    vis = _check_visibility(visibility)
    order = np.arange(vis.shape[1])
    if part_labels is not None:
        labels = to_numpy(part_labels, np.int64)
        check_shape(labels, "part_labels", (vis.shape[1],))
        order = np.argsort(labels, kind="stable")
        starts = np.flatnonzero(np.r_[True, np.diff(labels[order]) != 0])
        ax.set_xticks(starts)
        names = [str(labels[order][s]) if part_names is None else part_names[labels[order][s]]
                 for s in starts]
        ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.imshow(vis[:, order], cmap="gray", aspect="auto", interpolation="nearest", vmin=0, vmax=1)
    ax.set_yticks(range(vis.shape[0]))
    ax.set_yticklabels([f"view {k} ({n})" for k, n in enumerate(vis.sum(1))], fontsize=7)
    return order


def plot_rig_topdown(ax, cameras, points_m=None, arrow_m: float = 0.6):
    """Top view (x right, z up the page) of camera centres, their viewing directions and the
    body's points ``(N, 3)`` m. The body faces +z, so view 0 of the default rig is at the top."""
    centres = to_numpy(cameras.centre, np.float64).reshape(-1, 3)
    forward = to_numpy(cameras.R, np.float64).reshape(-1, 3, 3)[:, 2]  # camera z axis in the world
    if points_m is not None:
        p = to_numpy(points_m, np.float64).reshape(-1, 3)
        ax.scatter(p[:, 0], p[:, 2], s=2, c="0.6")
    for k, (c, f) in enumerate(zip(centres, forward, strict=True)):
        ax.annotate("", xy=(c[0] + arrow_m * f[0], c[2] + arrow_m * f[2]), xytext=(c[0], c[2]),
                    arrowprops=dict(arrowstyle="->", color="C0"))
        ax.plot(c[0], c[2], "o", color="C0")
        ax.text(c[0], c[2], f"  {k}", fontsize=9, va="bottom")
    ax.set_xlabel("x (m, the body's left)")
    ax.set_ylabel("z (m, the body's front)")
    ax.set_aspect("equal")
    lim = 1.15 * float(np.abs(centres[:, [0, 2]]).max())
    ax.set_xlim(-lim, lim)
    ax.set_ylim(-lim, lim)


def rig_scene(vertices_m, faces, cameras, images=None, *, vertex_colors=None, points_m=None,
              depth_m: float = 0.6, window_size: tuple[int, int] = (640, 480)):
    """pyvista plotter: the posed body, the rig's frusta (with their ``images (K, H, W, 3)``
    drawn on them, upright as each camera saw them) and optional points ``(N, 3)``, seen from
    above and in front so that every camera is in view."""
    from vhakit.viz.scenes import add_body, add_cameras, add_points, front_view, new_plotter

    pl = new_plotter(window_size)
    add_body(pl, vertices_m, faces, vertex_colors=vertex_colors)
    add_cameras(pl, cameras.K, cameras.R, cameras.t, cameras.image_size,
                None if images is None else to_numpy(images, np.uint8), depth_m=depth_m)
    if points_m is not None:
        add_points(pl, points_m, color=(0.85, 0.1, 0.1))
    everything = np.vstack([to_numpy(vertices_m, np.float64).reshape(-1, 3),
                            to_numpy(cameras.centre, np.float64).reshape(-1, 3)])
    front_view(pl, everything, azimuth_deg=35.0, elevation_deg=35.0)
    return pl
