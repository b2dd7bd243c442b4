"""Unprojection of per-view 2D feature maps into the cuboid and aggregation over views
(method notes 1.4: learnable-triangulation's ``unproject_heatmaps``, used by LMT and by BCP).

For every voxel centre ``X`` (world, metres) and view ``v`` with camera ``(K, R, t, dist)``:

1. ``x_cam = R X + t``; the voxel is *seen* by the view only if ``x_cam.z > MIN_DEPTH_M``.
2. ``(u, v) = camera.project(X)`` in pixels of the **input image** (OpenCV convention: pixel
   centres at integers, the image spans ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``; distortion as
   :meth:`vhakit.geometry.camera.Camera.project`).
3. The feature map is sampled bilinearly (zero padding) at the feature-pixel coordinates of
   ``(u, v)``: with feature pixel ``j`` centred on image pixel ``s j + o`` (``pixel_centre =
   (s, o)``, stride ``s = W / w``) that is ``j = (u - o) / s``, i.e. ``grid_sample(features_v,
   ((2 (u - o) + s) / W - 1, ...), align_corners=False)``. The kit's backbone gives
   ``(4, 0)`` (:data:`vhakit.models.backbone.FEATURE_PIXEL_CENTRE`: its strided convolutions
   centre feature pixel ``j`` on image pixel ``4j``). Without ``pixel_centre`` the map is taken
   to tile the image (``o = (s - 1) / 2``, as average pooling or resizing make it, and any map
   at the image's own resolution): ``((2u + 1) / W - 1, (2v + 1) / H - 1)``, the "clean"
   convention of method notes 1.4 step 5 (learnable-triangulation uses ``2u / W - 1`` with
   ``align_corners=True``, a shrink of up to one pixel, and divides x by the height).
4. Voxels behind the camera or projecting outside the image get weight 0 (``valid = False``)
   and value 0. (A map with ``o < (s - 1) / 2`` ends ``(s - 1) / 2 - o`` px before the right
   and bottom image edges: points there are valid and sample towards the zero padding.)

Aggregation over the ``V`` views (per voxel and channel ``c``), with optional per-view,
per-channel weights ``w (B, V, C)`` in ``[0, 1]`` (BCP derives them from the predicted vertex
visibility) and the validity mask ``m (B, V, P)``; write ``a_v = m_v w_v``:

* ``"sum"``: ``sum_v a_v F_v`` (learnable-triangulation ``sum`` / ``conf`` when weighted).
* ``"mean"``: ``sum_v a_v F_v / sum_v a_v`` (0 where no view sees the voxel).
* ``"softmax"``: ``sum_v a_v exp(F_v) F_v / sum_v a_v exp(F_v)``, i.e. a softmax over views of
  ``F_v + log a_v`` used as weights of ``F_v`` (learnable-triangulation's default ``softmax``
  aggregation, with the weights entering as log-priors; views with ``a_v = 0`` drop out).

All three are symmetric in the views: permuting the views (with their cameras and weights)
leaves the result unchanged.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from vhakit._util import check_shape
from vhakit.geometry.camera import Camera

__all__ = ["AGGREGATIONS", "MIN_DEPTH_M", "project_to_views", "unproject_features",
           "aggregate_views", "unproject_and_aggregate"]

AGGREGATIONS = ("softmax", "sum", "mean")
MIN_DEPTH_M = 1e-3  # voxels closer to the camera plane than 1 mm (or behind it) are not seen
_EPS = 1e-6  # guards the division of "mean" where no view sees a voxel
_OUTSIDE = -4.0  # normalised sampling coordinate of unseen points (two map widths outside)
_UNSEEN_LOGIT = 1e4  # subtracted from the softmax logits of views that do not see a voxel


def _check_cameras(K, R, t, dist, B: int, V: int) -> None:
    for name, x, tail in (("K", K, (3, 3)), ("R", R, (3, 3)), ("t", t, (3,)), ("dist", dist, (5,))):
        if x is None and name == "dist":
            continue
        if not isinstance(x, torch.Tensor) or tuple(x.shape) != (B, V, *tail):
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"{name} must have shape {(B, V, *tail)} (batch, views, ...) to match "
                             f"the features, got {shape}")


def project_to_views(points_world: torch.Tensor, K: torch.Tensor, R: torch.Tensor,
                     t: torch.Tensor, dist: torch.Tensor | None, image_size: tuple[int, int],
                     pixel_centre: tuple[float, float] | None = None
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalised sampling coordinates and visibility of world points in every view.

    Args:
        points_world: ``(B, P, 3)`` metres.
        K, R, t, dist: ``(B, V, 3, 3)``, ``(B, V, 3, 3)``, ``(B, V, 3)``, ``(B, V, 5)`` or None.
        image_size: ``(W, H)`` of the images the intrinsics refer to, pixels.
        pixel_centre: ``(s, o)``: the sampled map's pixel ``j`` is centred on image pixel
            ``s j + o`` (its size is ``(W / s, H / s)``); None: a map that tiles the image
            (module docstring, step 3).
    Returns:
        ``grid (B, V, P, 2)`` in ``grid_sample``'s ``align_corners=False`` coordinates (x, y),
        set to a point far outside the image where not valid, and ``valid (B, V, P)`` bool: in
        front of the camera and inside the image.
    """
    W, H = int(image_size[0]), int(image_size[1])
    cams = Camera(K=K, R=R, t=t, dist=dist, image_size=(W, H))
    pts = points_world[:, None]  # (B, 1, P, 3), broadcasts over the views
    depth = cams.world_to_camera(pts)[..., 2]  # (B, V, P)
    in_front = depth > MIN_DEPTH_M
    # Points behind the camera are moved in front before projecting, so that no inf/NaN reaches
    # the (masked) sampling coordinates or their gradients.
    uv = cams.project(torch.where(in_front[..., None], pts, _safe_points(cams, pts)))  # (B, V, P, 2)
    size = torch.tensor([W, H], dtype=uv.dtype, device=uv.device)
    inside = ((uv >= -0.5) & (uv <= size - 0.5)).all(-1)  # (B, V, P)
    if pixel_centre is None:
        grid = (2 * uv + 1) / size - 1  # (B, V, P, 2)
    else:
        stride, offset = pixel_centre
        grid = (2 * (uv - offset) + stride) / size - 1  # (B, V, P, 2)
    valid = in_front & inside
    # Unseen points sample far outside the map: bilinear sampling with zero padding gives exactly 0.
    return torch.where(valid[..., None], grid, torch.full_like(grid, _OUTSIDE)), valid


def _safe_points(cams: Camera, pts: torch.Tensor) -> torch.Tensor:
    """A point 1 m in front of every camera (its centre + the optical axis), ``(B, V, 1, 3)``."""
    axis = cams.R[..., 2, :]  # (B, V, 3) optical axis in world coordinates
    return (cams.centre + axis)[..., None, :].expand(*cams.batch_shape, pts.shape[-2], 3)


def unproject_features(features: torch.Tensor, points_world: torch.Tensor, K: torch.Tensor,
                       R: torch.Tensor, t: torch.Tensor, dist: torch.Tensor | None,
                       image_size: tuple[int, int],
                       pixel_centre: tuple[float, float] | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample every view's feature map at the projections of ``points_world``.

    Args:
        features: ``(B, V, C, h, w)`` per-view feature maps covering the whole input image (any
            stride).
        points_world: ``(B, P, 3)`` metres, e.g. ``cuboid.voxel_centres().flatten(1, 3)``.
        K, R, t, dist: cameras ``(B, V, ...)`` of the *input images* (see :func:`project_to_views`).
        image_size: ``(W, H)`` of the input images, pixels.
        pixel_centre: ``(s, o)``: feature pixel ``j`` is centred on image pixel ``s j + o``
            (the backbone's ``pixel_centre``; ``W = s w`` and ``H = s h`` are required); None:
            the map tiles the image, any stride (module docstring, step 3).
    Returns:
        ``volumes (B, V, C, P)`` (0 where not valid; float64 for float64 features, else
        float32) and ``valid (B, V, P)`` bool.
    """
    check_shape(features, "features", ("B", "V", "C", "h", "w"))
    B, V, C, h, w = features.shape  # batch, views, channels, feature height, width
    check_shape(points_world, "points_world", (B, "P", 3))
    _check_cameras(K, R, t, dist, B, V)
    if pixel_centre is not None and (w * pixel_centre[0] != image_size[0]
                                     or h * pixel_centre[0] != image_size[1]):
        raise ValueError(f"pixel_centre={tuple(pixel_centre)} has stride {pixel_centre[0]}, but "
                         f"the feature maps ({w} x {h}) and the images {tuple(image_size)} differ "
                         "by another factor; pass the pixel_centre of the network that made them")
    P = points_world.shape[1]
    # Geometry and sampling in float32 at least: bf16/fp16 pixel coordinates (autocast) would be
    # off by pixels at 384 px.
    dtype = torch.float64 if features.dtype == torch.float64 else torch.float32
    grid, valid = project_to_views(points_world.to(dtype), K.to(dtype), R.to(dtype), t.to(dtype),
                                   None if dist is None else dist.to(dtype), image_size,
                                   pixel_centre)
    with torch.autocast(features.device.type, enabled=False):
        sampled = F.grid_sample(features.reshape(B * V, C, h, w).to(dtype),
                                grid.reshape(B * V, 1, P, 2), mode="bilinear",
                                padding_mode="zeros", align_corners=False)
    return sampled.view(B, V, C, P), valid  # 0 where not valid (see project_to_views)


def aggregate_views(volumes: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor | None = None,
                    method: str = "softmax") -> torch.Tensor:
    """Combine per-view volumes into one (see the module docstring for the formulas).

    Args:
        volumes: ``(B, V, C, P)`` from :func:`unproject_features` (0 where not valid).
        valid: ``(B, V, P)`` bool.
        weights: ``(B, V, C)`` positive per-view, per-channel weights, or None (all 1).
        method: ``"softmax"`` | ``"sum"`` | ``"mean"``.
    Returns:
        ``(B, C, P)``; 0 where no view sees a voxel.
    """
    if method not in AGGREGATIONS:
        raise ValueError(f"method must be one of {AGGREGATIONS}, got {method!r}")
    check_shape(volumes, "volumes", ("B", "V", "C", "P"))
    B, V, C, P = volumes.shape
    check_shape(valid, "valid", (B, V, P))
    if weights is None:
        weights = volumes.new_ones(B, V, C)
    else:
        check_shape(weights, "weights", (B, V, C))
    m = valid.to(volumes.dtype)  # (B, V, P)
    if method == "sum":
        return torch.einsum("bvcp,bvc,bvp->bcp", volumes, weights, m)
    if method == "mean":
        num = torch.einsum("bvcp,bvc,bvp->bcp", volumes, weights, m)
        return num / (torch.einsum("bvc,bvp->bcp", weights, m) + _EPS)
    # softmax over views of F_v + log a_v; unseen voxels get a large negative logit, so they drop
    # out (weight exp(-1e4) = 0 in float32) unless no view sees the voxel: then the volumes are
    # all 0 and so is the result. One fused softmax instead of masks, max and divisions.
    bias = torch.log(weights)[..., None] + (m[:, :, None] - 1) * _UNSEEN_LOGIT  # (B, V, C|1, P)
    probs = torch.softmax(volumes + bias, dim=1)  # (B, V, C, P)
    return (probs * volumes).sum(1)


def unproject_and_aggregate(features: torch.Tensor, points_world: torch.Tensor, K: torch.Tensor,
                            R: torch.Tensor, t: torch.Tensor, dist: torch.Tensor | None,
                            image_size: tuple[int, int], weights: torch.Tensor | None = None,
                            method: str = "softmax",
                            pixel_centre: tuple[float, float] | None = None) -> torch.Tensor:
    """:func:`unproject_features` then :func:`aggregate_views`: ``(B, C, P)``."""
    volumes, valid = unproject_features(features, points_world, K, R, t, dist, image_size,
                                        pixel_centre)
    return aggregate_views(volumes, valid, weights, method)
