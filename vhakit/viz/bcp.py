"""Looking inside BCP's front end (notebook 04): per-view feature maps unprojected into the cuboid
(:mod:`vhakit.models.unproject`), drawn slice by slice, and the visual hull they carve.

With the person's silhouette as a 1-channel "feature", each view's volume is the cone of rays
through the silhouette; a voxel that every view sees inside its silhouette is in the **visual
hull**. :func:`silhouette_masks` makes such masks, dilated by a margin (:func:`voxel_margin_px`)
large enough that the voxel containing any mesh vertex samples exactly 1 in every view, so the
hull provably contains the body at voxel resolution (tested).

Frame and slices as :mod:`vhakit.viz.heatmaps`: metres, SMPL axes (x = the body's left, y up,
z = facing direction); a slice along ``axis`` at index ``i`` is the plane of voxel centres
``c - s/2 + (i + 1/2) s/G`` (:func:`slice_coords`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from vhakit._util import check_shape
from vhakit.geometry.camera import Camera
from vhakit.heatmaps.core import Cuboid, voxel_index
from vhakit.models.unproject import aggregate_views, unproject_features

__all__ = ["ViewVolumes", "silhouette_masks", "voxel_margin_px", "unproject_views",
           "slice_coords", "slice_index", "values_at_points", "plot_volume_slices",
           "visibility_accuracy", "predict_visibility_logits"]

_AXIS = "xyz"
#: Drawn plane of a slice along each axis: (horizontal, vertical) axes of the picture.
_PLANES = {2: (0, 1), 0: (2, 1), 1: (0, 2)}  # z: front (x-y); x: side (z-y); y: top (x-z)


def _cameras(K, R, t, dist, image_size) -> Camera:
    for name, x, tail in (("K", K, (3, 3)), ("R", R, (3, 3)), ("t", t, (3,))):
        if not isinstance(x, torch.Tensor) or x.dim() != len(tail) + 1 or tuple(x.shape[1:]) != tail:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape (V, {', '.join(map(str, tail))}) (one per "
                             f"view), got {shape}")
    return Camera(K=K, R=R, t=t, dist=dist, image_size=(int(image_size[0]), int(image_size[1])))


@dataclass(frozen=True)
class ViewVolumes:
    """One sample's unprojected views: ``per_view (V, C, Gx, Gy, Gz)`` (0 where not seen),
    ``valid (V, Gx, Gy, Gz)`` bool (in front of the camera and inside its image) and the
    ``cuboid`` (batch 1) they fill."""

    per_view: torch.Tensor
    valid: torch.Tensor
    cuboid: Cuboid

    def aggregate(self, method: str = "softmax", weights: torch.Tensor | None = None
                  ) -> torch.Tensor:
        """``(C, Gx, Gy, Gz)``: :func:`~vhakit.models.unproject.aggregate_views` over the views
        (``weights (V, C)`` or None)."""
        V, C = self.per_view.shape[:2]
        w = None if weights is None else weights[None]
        out = aggregate_views(self.per_view.reshape(1, V, C, -1), self.valid.reshape(1, V, -1),
                              w, method)  # (1, C, P)
        return out.view(C, *self.cuboid.resolution)


def silhouette_masks(verts_world_m: torch.Tensor, faces: torch.Tensor, K: torch.Tensor,
                     R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                     dist: torch.Tensor | None = None, dilate_px: int = 0) -> torch.Tensor:
    """Binary person masks ``(V, 1, H, W)`` float (1 = person) of a posed mesh in every view.

    A pixel is set when the rasteriser covers its centre (:func:`vhakit.data.render.rasterize`)
    or a mesh vertex projects into it (so thin parts never vanish), then the mask is dilated
    with a ``(2 dilate_px + 1)``-pixel square.

    Args:
        verts_world_m: ``(Nm, 3)`` the full mesh, metres. faces: ``(F, 3)`` long.
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)`` of the images; dist ``(V, 5)`` or None.
        image_size: ``(W, H)`` px. dilate_px: >= 0, e.g. :func:`voxel_margin_px`.
    """
    from vhakit.data.render import rasterize

    if not isinstance(verts_world_m, torch.Tensor) or verts_world_m.dim() != 2 or \
            verts_world_m.shape[-1] != 3:
        raise ValueError(f"verts_world_m must have shape (Nm, 3) metres, got "
                         f"{getattr(verts_world_m, 'shape', type(verts_world_m).__name__)}")
    if int(dilate_px) < 0:
        raise ValueError(f"dilate_px must be >= 0, got {dilate_px}")
    W, H = int(image_size[0]), int(image_size[1])
    cams = _cameras(K, R, t, dist, (W, H))
    verts = verts_world_m.to(K.dtype)
    uv = cams.project(verts)  # (V, Nm, 2)
    depth = cams.world_to_camera(verts)[..., 2]  # (V, Nm)
    mask = rasterize(uv, depth, faces, (W, H)) >= 0  # (V, H, W)
    px = uv.round().long()  # the pixel each vertex falls into (centres at integers)
    inside = (px[..., 0] >= 0) & (px[..., 0] < W) & (px[..., 1] >= 0) & (px[..., 1] < H) & (depth > 0)
    view = torch.arange(len(uv), device=uv.device)[:, None].expand_as(inside)
    mask[view[inside], px[..., 1][inside], px[..., 0][inside]] = True
    out = mask[:, None].to(K.dtype)  # (V, 1, H, W)
    r = int(dilate_px)
    return F.max_pool2d(out, 2 * r + 1, stride=1, padding=r) if r else out


def voxel_margin_px(points_world_m: torch.Tensor, cuboid: Cuboid, K: torch.Tensor,
                    R: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """``(V,)`` px: per view, the largest distance between a point's projection and the
    projection of a corner of the voxel containing it.

    A pinhole camera maps a box in front of it into the convex hull of its projected corners, so
    any point of the voxel, its centre included, projects within this distance of the point.
    Dilating a silhouette by ``ceil(margin + 1.5)`` px (+1.5: the point's own pixel and the
    bilinear footprint) therefore makes the unprojected mask exactly 1 at the voxel of every
    point that lies on the silhouette (no lens distortion assumed).

    Args:
        points_world_m: ``(N, 3)`` metres; a point outside ``cuboid`` (batch 1) is paired with
            the nearest voxel (the bound still holds: the voxel's centre lies in the convex hull
            of its projected corners, and the distance to a point is largest at a corner).
        K, R, t: ``(V, 3, 3)``, ``(V, 3, 3)``, ``(V, 3)``.
    """
    cams = _cameras(K, R, t, None, (1, 1))
    pts = points_world_m.to(K.dtype)
    idx = voxel_index(pts[None], cuboid.to(dtype=pts.dtype), outside="clamp")[0]  # (N, 3)
    vs = cuboid.voxel_size.to(pts.dtype)
    lo = cuboid.lower[0].to(pts.dtype) + idx * vs  # (N, 3) the voxels' minimum corners
    offsets = torch.tensor(list(itertools.product((0, 1), repeat=3)), dtype=pts.dtype)
    corners = (lo[:, None] + offsets * vs).reshape(-1, 3)  # (N * 8, 3)
    uv_p = cams.project(pts)[:, :, None]  # (V, N, 1, 2)
    uv_c = cams.project(corners).view(len(K), len(pts), 8, 2)  # (V, N, 8, 2)
    return (uv_c - uv_p).norm(dim=-1).flatten(1).amax(1)


def unproject_views(features: torch.Tensor, center_m: torch.Tensor, K: torch.Tensor,
                    R: torch.Tensor, t: torch.Tensor, image_size: tuple[int, int],
                    side_m: float = 2.0, grid: int = 16, dist: torch.Tensor | None = None
                    ) -> ViewVolumes:
    """Unproject one sample's per-view maps ``features (V, C, h, w)`` (any stride over the
    ``(W, H)`` image) into a ``grid``^3 cuboid of ``side_m`` around ``center_m (3,)``: the
    library's :func:`~vhakit.models.unproject.unproject_features` with a batch of one."""
    check_shape(features, "features", ("V", "C", "h", "w"))
    V, C = features.shape[:2]
    check_shape(center_m, "center_m", (3,), hint=" (metres)")
    cuboid = Cuboid(center_m[None].to(features.dtype), side_m, grid)
    points = cuboid.voxel_centres().flatten(1, 3)  # (1, G^3, 3)
    vols, valid = unproject_features(features[None], points, K[None], R[None], t[None],
                                     None if dist is None else dist[None], image_size)
    res = cuboid.resolution
    return ViewVolumes(vols[0].view(V, C, *res), valid[0].view(V, *res), cuboid)


def _check_axis(axis: int) -> None:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be 0, 1 or 2 (x, y, z), got {axis!r}")


def slice_coords(cuboid: Cuboid, axis: int, indices) -> torch.Tensor:
    """``(S,)`` metres: the ``axis`` coordinate of the voxel centres of slices ``indices``."""
    _check_axis(axis)
    idx = torch.as_tensor(indices, dtype=torch.long)
    G = cuboid.resolution[axis]
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= G):
        raise ValueError(f"indices must be in [0, {G}) along {_AXIS[axis]}, got {idx.tolist()}")
    return cuboid.axis_coords(axis)[0, idx]


def slice_index(cuboid: Cuboid, axis: int, coords_m) -> torch.Tensor:
    """``(S,)`` long: the slice (voxel index along ``axis``) containing each coordinate (metres),
    clamped into the grid; the inverse of :func:`slice_coords` on voxel centres."""
    _check_axis(axis)
    c = torch.as_tensor(coords_m, dtype=cuboid.center.dtype).reshape(-1)
    G = cuboid.resolution[axis]
    u = (c - cuboid.lower[0, axis]) * (G / cuboid.side)
    return torch.floor(u).long().clamp(0, G - 1)


def values_at_points(volume: torch.Tensor, cuboid: Cuboid, points_m: torch.Tensor) -> torch.Tensor:
    """``(..., N)``: ``volume (..., Gx, Gy, Gz)`` at the voxels containing ``points_m (N, 3)``
    (points outside the cuboid: the nearest voxel)."""
    idx = voxel_index(points_m[None].to(cuboid.center.dtype), cuboid, outside="clamp")[0]  # (N, 3)
    return volume[..., idx[:, 0], idx[:, 1], idx[:, 2]]


def plot_volume_slices(axes, volumes: torch.Tensor, cuboid: Cuboid, axis: int, indices,
                       points_m: torch.Tensor | None = None, row_labels=None, vmax=None,
                       cmap: str = "viridis") -> list:
    """Draw slices ``indices`` along ``axis`` of several volumes: one row per volume.

    Args:
        axes: ``(R, S)`` matplotlib axes (R volumes, S slices).
        volumes: ``(R, Gx, Gy, Gz)`` (e.g. each view's volume, then the aggregated one).
        points_m: optional ``(N, 3)`` metres (the 108 vertices): those inside each slice's voxel
            layer drawn as red dots, the others as faint grey dots.
        row_labels: R strings; vmax: one colour scale for all rows (default: each row's max).
    Returns:
        the AxesImage objects, row by row.
    """
    _check_axis(axis)
    vol = volumes.detach().cpu().double()
    check_shape(vol, "volumes", ("R", *cuboid.resolution))
    idx = torch.as_tensor(indices, dtype=torch.long)
    axes = np.asarray(axes, dtype=object)
    if axes.size != vol.shape[0] * len(idx):
        raise ValueError(f"need ({vol.shape[0]}, {len(idx)}) axes (volumes x slices), got {axes.shape}")
    axes = axes.reshape(vol.shape[0], len(idx))
    hor, ver = _PLANES[axis]
    lo, side = cuboid.lower[0].double().numpy(), cuboid.side
    extent = [lo[hor], lo[hor] + side, lo[ver], lo[ver] + side]
    coords = slice_coords(cuboid, axis, idx).double().numpy()
    pts = None if points_m is None else points_m.detach().cpu().double().numpy()
    layer = None if pts is None else slice_index(cuboid, axis, pts[:, axis]).numpy()
    images = []
    for r, row in enumerate(axes):
        top = float(vol[r].max()) if vmax is None else vmax
        for s, ax in enumerate(row):
            sl = vol[r].select(axis, int(idx[s])).numpy()  # the two other axes, increasing order
            sl = sl if hor < ver else sl.T  # rows = horizontal axis
            images.append(ax.imshow(sl.T, origin="lower", extent=extent, cmap=cmap, vmin=0,
                                    vmax=max(top, 1e-12), interpolation="nearest"))
            if pts is not None:
                here = layer == int(idx[s])
                ax.scatter(pts[~here, hor], pts[~here, ver], s=2, c="0.8", alpha=0.4)
                ax.scatter(pts[here, hor], pts[here, ver], s=6, c="red")
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"{_AXIS[axis]} = {coords[s]:+.2f} m", fontsize=8)
        if row_labels is not None:
            row[0].set_ylabel(row_labels[r], fontsize=8)
    return images


def visibility_accuracy(logits: torch.Tensor, rendered: torch.Tensor) -> torch.Tensor:
    """``(V,)``: per view, the fraction of (frame, vertex) pairs where the predicted visibility
    (``logits > 0``, shape ``(F, V, N)``) agrees with the rendered one (``(F, V, N)``, bool or
    0/1)."""
    if logits.shape != rendered.shape or logits.dim() != 3:
        raise ValueError(f"logits and rendered must both have shape (F, V, N), got "
                         f"{tuple(logits.shape)} and {tuple(rendered.shape)}")
    return ((logits > 0) == (rendered > 0.5)).double().mean((0, 2))


@torch.no_grad()
def predict_visibility_logits(model: torch.nn.Module, data, batch_size: int = 4) -> torch.Tensor:
    """``(F, V, N)`` CPU float32: the visibility logits of BCP or the baseline for every sample of
    ``data`` (a Dataset of multi-view samples), in order, cuboid at the true pelvis (as
    :func:`vhakit.training.bcp.predict_vertices`)."""
    from torch.utils.data import DataLoader

    from vhakit.training.bcp import batch_center

    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for batch in DataLoader(data, batch_size=batch_size, shuffle=False):
            b = {k: v.to(device) for k, v in batch.items() if torch.is_tensor(v)}
            res = model(b["images"].float(), b["K"].float(), b["R"].float(), b["t"].float(),
                        batch_center(b, None, 0.0), b["dist"].float() if "dist" in b else None)
            out.append(res.visibility_logits.float().cpu())
    finally:
        model.train(was_training)
    if not out:
        raise ValueError("data is empty")
    return torch.cat(out)
