"""Calibrated pinhole cameras with OpenCV distortion, crop/resize updates and camera rigs.

Conventions (pinned by ``tests/test_camera.py``; see ``docs/conventions.md``):

* ``x_cam = R @ x_world + t``: ``R`` rotates world to camera, ``t`` in metres. The camera centre
  in the world is ``-R^T t``.
* Camera frame: OpenCV's, x right, y down, z forward (depth = ``x_cam[..., 2]``).
* World frame of the synthetic world: the body model's, y up, the person faces +z.
* Pixels: OpenCV's, u right, v down, the *centre* of pixel ``(col, row)`` at ``(u, v) = (col, row)``;
  the image covers ``[-0.5, W - 0.5] x [-0.5, H - 0.5]``.
* Distortion: OpenCV's 5-vector ``(k1, k2, p1, p2, k3)``, the same model as ``cv2.projectPoints``.
  (Human3.6M's own tangential formula differs slightly; convert on load.)

A ``Camera`` may carry leading batch dimensions: a rig of V views is a ``Camera`` whose tensors
have a leading view dimension, ``K (V, 3, 3)``; index it like a tensor (``rig[0]``) and build it
with :meth:`Camera.stack`. All views share one ``image_size``.

A ``Camera`` is checked when it is built (:class:`CameraValueError` names the value and the first
bad camera of a batch): finite entries; ``K`` with positive focal lengths ``fx = K[0, 0]``,
``fy = K[1, 1]``, ``K[1, 0] = 0`` and last row ``(0, 0, 1)`` (the entries :meth:`Camera.project`
relies on); ``R`` orthonormal within :data:`ROTATION_ATOL` with determinant +1. The checks are
skipped while ``torch.compile`` traces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple, Sequence

import cv2
import numpy as np
import torch

from vhakit._util import check_tensor
from vhakit.runtime import compiling

__all__ = ["Camera", "CameraValueError", "Projection", "RigJitter", "look_at", "make_rig",
           "crop_resize_matrix", "crop_and_resize_image", "DEFAULT_FIELD_HEIGHT_M",
           "ROTATION_ATOL"]

#: Default rig focal length frames this much height (m) at the target distance: a standing adult
#: (about 1.8 m) plus margin fills most of the image height.
DEFAULT_FIELD_HEIGHT_M = 2.2
#: Largest entry of ``|R R^T - I|`` accepted for a rotation. float32 rotations are orthonormal to
#: ~1e-7; 1e-3 still admits a calibration printed with 4-5 decimals, and its effect (a 0.1 %
#: scale or shear) is a few millimetres at 3 m.
ROTATION_ATOL = 1e-3
#: Tolerance of the structural zeros and the 1 in ``K`` (its ``K[1, 0]`` relative to ``fy``).
_K_ATOL = 1e-6


class CameraValueError(ValueError):
    """A camera parameter that does not describe a pinhole camera.

    Attributes:
        arg: the parameter, ``"K"``, ``"R"``, ``"t"`` or ``"dist"``.
        index: the batch index of the first bad camera (``()`` for a single camera).
        reason: what is wrong with it, with the values.
    """

    def __init__(self, arg: str, index: tuple[int, ...], reason: str) -> None:
        where = f"{arg}[{', '.join(map(str, index))}]" if index else arg
        super().__init__(f"{where}: {reason}")
        self.arg, self.index, self.reason = arg, index, reason


class Projection(NamedTuple):
    """Result of :meth:`Camera.project_with_depth`."""

    uv: torch.Tensor  # (..., N, 2) pixels; NaN where not in_front
    depth: torch.Tensor  # (..., N) metres along the optical axis (camera z)
    in_front: torch.Tensor  # (..., N) bool: depth > 0


def _as_tensor(x, name: str, like: torch.Tensor | None = None,
               dtype: torch.dtype | None = None) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        raise TypeError(f"{name} must be a torch.Tensor or a sequence of numbers, got a numpy "
                        "array; convert it with torch.as_tensor(...)")
    if not isinstance(x, torch.Tensor):
        x = torch.as_tensor(x, dtype=dtype or (like.dtype if like is not None else torch.float32))
    if like is not None:
        x = x.to(device=like.device, dtype=like.dtype)
    return x


def _check(x: torch.Tensor, name: str, tail: tuple[int, ...], finite: bool = True) -> None:
    check_tensor(x, name, (..., *tail), floating=True)
    if finite and not compiling() and not bool(torch.isfinite(x).all()):  # (vhakit.runtime)
        raise ValueError(f"{name} contains NaN or inf; clean the input before projecting")


@dataclass(frozen=True, kw_only=True, eq=False)
class Camera:
    """A pinhole camera (or a batch of them) with OpenCV distortion.

    Attributes:
        K: intrinsics ``(..., 3, 3)`` in pixels.
        R: world-to-camera rotation ``(..., 3, 3)``.
        t: world-to-camera translation ``(..., 3)`` in metres.
        dist: OpenCV distortion ``(..., 5)`` = ``(k1, k2, p1, p2, k3)``; ``None`` means zeros.
        image_size: ``(W, H)`` in pixels, shared by every camera of the batch.
    """

    K: torch.Tensor
    R: torch.Tensor
    t: torch.Tensor
    dist: torch.Tensor | None = None
    image_size: tuple[int, int]

    def __post_init__(self) -> None:
        _check(self.K, "K", (3, 3), finite=False)  # finiteness: _check_pinhole, one sync for all
        _check(self.R, "R", (3, 3), finite=False)
        _check(self.t, "t", (3,), finite=False)
        dist = self.dist if self.dist is not None else self.K.new_zeros(5)
        _check(dist, "dist", (5,), finite=False)
        for name in ("R", "t"):
            x = getattr(self, name)
            if x.dtype != self.K.dtype or x.device != self.K.device:
                raise TypeError(f"{name} has dtype/device {x.dtype}/{x.device} but K has "
                                f"{self.K.dtype}/{self.K.device}; convert with .to(K)")
        try:
            batch = torch.broadcast_shapes(self.K.shape[:-2], self.R.shape[:-2],
                                           self.t.shape[:-1], dist.shape[:-1])
        except RuntimeError as err:
            raise ValueError(f"batch shapes of K {tuple(self.K.shape)}, R {tuple(self.R.shape)}, "
                             f"t {tuple(self.t.shape)}, dist {tuple(dist.shape)} do not broadcast"
                             ) from err
        object.__setattr__(self, "K", self.K.expand(*batch, 3, 3))
        object.__setattr__(self, "R", self.R.expand(*batch, 3, 3))
        object.__setattr__(self, "t", self.t.expand(*batch, 3))
        object.__setattr__(self, "dist", dist.to(self.K).expand(*batch, 5))
        if not compiling():  # (vhakit.runtime)
            _check_pinhole(self.K, self.R, self.t, self.dist)
        size = tuple(int(s) for s in self.image_size)
        if len(size) != 2 or min(size) <= 0:
            raise ValueError(f"image_size must be (W, H) with positive ints, got {self.image_size}")
        object.__setattr__(self, "image_size", size)

    # ---- batching helpers ---------------------------------------------------------------------
    @property
    def batch_shape(self) -> torch.Size:
        """Leading batch dimensions, e.g. ``(V,)`` for a rig, ``()`` for one camera."""
        return self.K.shape[:-2]

    def __len__(self) -> int:
        if not self.batch_shape:
            raise TypeError("a single Camera has no len(); only a batch/rig of cameras has")
        return self.batch_shape[0]

    def __getitem__(self, idx) -> Camera:
        """Index the batch dimensions like a tensor: ``rig[0]``, ``rig[1:3]``, ``rig[[0, 2]]``."""
        if not self.batch_shape:
            raise IndexError("cannot index a single Camera (it has no batch dimension)")
        return replace(self, K=self.K[idx], R=self.R[idx], t=self.t[idx], dist=self.dist[idx])

    @classmethod
    def stack(cls, cameras: Sequence[Camera], dim: int = 0) -> Camera:
        """Stack cameras of equal batch shape and image size along a new dimension ``dim``."""
        cameras = list(cameras)
        if not cameras:
            raise ValueError("cameras is empty; pass at least one Camera")
        sizes = {c.image_size for c in cameras}
        if len(sizes) != 1:
            raise ValueError(f"cameras must share one image_size to be stacked, got {sizes}; "
                             "crop_and_resize them to a common size first")
        return cls(K=torch.stack([c.K for c in cameras], dim),
                   R=torch.stack([c.R for c in cameras], dim),
                   t=torch.stack([c.t for c in cameras], dim),
                   dist=torch.stack([c.dist for c in cameras], dim),
                   image_size=cameras[0].image_size)

    def to(self, device: torch.device | str | None = None,
           dtype: torch.dtype | None = None) -> Camera:
        return replace(self, K=self.K.to(device, dtype), R=self.R.to(device, dtype),
                       t=self.t.to(device, dtype), dist=self.dist.to(device, dtype))

    # ---- geometry -----------------------------------------------------------------------------
    def world_to_camera(self, points_world: torch.Tensor) -> torch.Tensor:
        """``x_cam = R x_world + t``: ``(..., N, 3)`` world points -> ``(..., N, 3)`` camera points;
        the camera's batch shape broadcasts against the points' leading dimensions."""
        _check(points_world, "points_world", (3,))
        if points_world.dim() < 2:
            raise ValueError(f"points_world must have shape (..., N, 3), got "
                             f"{tuple(points_world.shape)}; add a point dimension with [None]")
        return points_world @ self.R.transpose(-1, -2) + self.t.unsqueeze(-2)

    def camera_to_world(self, points_cam: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`world_to_camera`: ``x_world = R^T (x_cam - t)``."""
        _check(points_cam, "points_cam", (3,))
        return (points_cam - self.t.unsqueeze(-2)) @ self.R

    @property
    def centre(self) -> torch.Tensor:
        """Camera centre in world coordinates ``(..., 3)`` m, ``-R^T t``."""
        return -(self.R.transpose(-1, -2) @ self.t.unsqueeze(-1)).squeeze(-1)

    def projection_matrix(self) -> torch.Tensor:
        """Undistorted projection ``P = K [R | t]`` ``(..., 3, 4)``."""
        return self.K @ torch.cat([self.R, self.t.unsqueeze(-1)], dim=-1)

    def project(self, points_world: torch.Tensor) -> torch.Tensor:
        """Project world points to pixels with OpenCV's distortion model (as ``cv2.projectPoints``).

        Args:
            points_world: ``(..., N, 3)`` metres; leading dimensions broadcast with the camera's
                batch shape (a rig ``(V,)`` and points ``(N, 3)`` give ``(V, N, 2)``).
        Returns:
            ``(..., N, 2)`` pixel coordinates ``(u, v)``. Points at or behind the camera plane
            (depth <= 0) give meaningless values (a mirrored pixel, or NaN/inf at depth 0): use
            :meth:`project_with_depth` where points may lie behind a camera.
        """
        return self._pixels(self.world_to_camera(points_world))

    def project_with_depth(self, points_world: torch.Tensor) -> Projection:
        """Project world points and say which ones the camera can see at all.

        Args:
            points_world: ``(..., N, 3)`` metres, broadcast as in :meth:`project`.
        Returns:
            :class:`Projection` ``(uv, depth, in_front)``: ``uv (..., N, 2)`` equals
            :meth:`project` where ``in_front (..., N)`` (``depth > 0``) and is NaN elsewhere, so a
            point behind the camera never passes for a pixel; ``depth (..., N)`` metres. Gradients
            stay finite for every point (those behind the camera get zero).
        """
        p = self.world_to_camera(points_world)  # (..., N, 3)
        depth = p[..., 2]  # (..., N)
        in_front = depth > 0
        ahead = p.new_tensor([0.0, 0.0, 1.0])  # stands in for the points behind: no 0 division
        uv = self._pixels(torch.where(in_front[..., None], p, ahead))  # (..., N, 2)
        return Projection(torch.where(in_front[..., None], uv, uv.new_tensor(math.nan)), depth,
                          in_front)

    def _pixels(self, p: torch.Tensor) -> torch.Tensor:
        """Camera-frame points ``(..., N, 3)`` -> distorted pixels ``(..., N, 2)``."""
        xy = p[..., :2] / p[..., 2:]  # (..., N, 2) normalised image coordinates
        x, y = xy.unbind(-1)
        k1, k2, p1, p2, k3 = (c.unsqueeze(-1) for c in self.dist.unbind(-1))  # each (..., 1)
        r2 = x * x + y * y
        radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
        xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
        yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
        K = self.K.unsqueeze(-3)  # (..., 1, 3, 3)
        u = K[..., 0, 0] * xd + K[..., 0, 1] * yd + K[..., 0, 2]
        v = K[..., 1, 1] * yd + K[..., 1, 2]
        return torch.stack([u, v], dim=-1)

    def crop_and_resize(self, bbox_xyxy, out_size: tuple[int, int]) -> Camera:
        """The camera of the image cropped to ``bbox_xyxy`` and resized to ``out_size``.

        Args:
            bbox_xyxy: ``(..., 4)`` = ``(left, top, right, bottom)`` in pixel-index units, the box
                you would slice as ``image[top:bottom, left:right]`` (fractional values allowed);
                it broadcasts against the camera's batch shape.
            out_size: ``(W_out, H_out)`` of the new image.
        Returns:
            a new ``Camera`` with ``K' = A K`` (``A`` from :func:`crop_resize_matrix`), same
            ``R, t, dist`` and ``image_size = out_size``. Apply the same crop to the pixels with
            :func:`crop_and_resize_image`.
        """
        A = crop_resize_matrix(_as_tensor(bbox_xyxy, "bbox_xyxy", like=self.K), out_size)
        return replace(self, K=A @ self.K, image_size=tuple(out_size))


@torch.no_grad()
def _check_pinhole(K: torch.Tensor, R: torch.Tensor, t: torch.Tensor, dist: torch.Tensor) -> None:
    """CameraValueError for the first camera of a batch whose ``K (..., 3, 3)``, ``R (..., 3, 3)``,
    ``t (..., 3)`` or ``dist (..., 5)`` (one batch shape) is not a valid pinhole camera; one device
    sync when all are valid."""
    fx, fy = K[..., 0, 0], K[..., 1, 1]
    last_row = (K[..., 2, :] - K.new_tensor([0.0, 0.0, 1.0])).abs().amax(-1)  # (...)
    eye = torch.eye(3, dtype=R.dtype, device=R.device)
    ortho = (R @ R.transpose(-1, -2) - eye).abs().flatten(-2).amax(-1)  # (...)
    det = (torch.linalg.cross(R[..., 0, :], R[..., 1, :]) * R[..., 2, :]).sum(-1)  # (...)
    checks = [  # (parameter, ok per camera, the reason given the camera's index)
        ("K", torch.isfinite(K).flatten(-2).all(-1), lambda i: f"contains NaN or inf: {K[i].tolist()}"),
        ("R", torch.isfinite(R).flatten(-2).all(-1), lambda i: f"contains NaN or inf: {R[i].tolist()}"),
        ("t", torch.isfinite(t).all(-1), lambda i: f"contains NaN or inf: {t[i].tolist()}"),
        ("dist", torch.isfinite(dist).all(-1), lambda i: f"contains NaN or inf: {dist[i].tolist()}"),
        ("K", (fx > 0) & (fy > 0), lambda i: (
            f"has focal lengths fx = K[0, 0] = {fx[i].item():g}, fy = K[1, 1] = {fy[i].item():g} "
            "px; both must be positive (an all-zero or unset K?)")),
        ("K", (last_row <= _K_ATOL) & (K[..., 1, 0].abs() <= _K_ATOL * fy.abs()), lambda i: (
            f"is {K[i].tolist()}; an intrinsic matrix has K[1, 0] = 0 and last row (0, 0, 1): "
            "divide K by K[2, 2], or transpose it if it was stored column-major")),
        ("R", ortho <= ROTATION_ATOL, lambda i: (
            f"is not a rotation: max |R R^T - I| = {ortho[i].item():.3g} > ROTATION_ATOL = "
            f"{ROTATION_ATOL:g} (R = {R[i].tolist()}); pass the world-to-camera rotation "
            "matrix, orthonormalised (e.g. with vhakit.geometry.rotations)")),
        ("R", det > 0, lambda i: (
            f"has determinant {det[i].item():.3g}; a rotation has +1 and this R is a "
            "reflection (a left-handed camera or world frame?): convert it to OpenCV's "
            "right-handed camera frame (x right, y down, z forward)")),
    ]
    ok = torch.stack([c[1].reshape(-1) for c in checks])  # (checks, cameras)
    if bool(ok.all()):
        return
    for arg, good, reason in checks:
        if not bool(good.all()):
            index = tuple(int(j) for j in (~good).nonzero()[0]) if good.dim() else ()
            raise CameraValueError(arg, index, reason(index))


def crop_resize_matrix(bbox_xyxy: torch.Tensor, out_size: tuple[int, int]) -> torch.Tensor:
    """Affine map ``(..., 3, 3)`` from old to new pixel coordinates for a crop + resize.

    The box ``[left, right) x [top, bottom)`` in pixel-index units covers the continuous region
    ``[left - 1/2, right - 1/2]`` (pixel centres at integers), which is stretched onto
    ``[-1/2, W_out - 1/2]``: ``u' = (u - left + 1/2) * W_out / (right - left) - 1/2`` (and the same
    for ``v``). This is exactly the map of ``cv2.resize`` applied to ``image[top:bottom,
    left:right]``.
    """
    _check(bbox_xyxy, "bbox_xyxy", (4,))
    W, H = (int(s) for s in out_size)
    if W <= 0 or H <= 0:
        raise ValueError(f"out_size must be (W, H) with positive ints, got {out_size}")
    left, top, right, bottom = bbox_xyxy.unbind(-1)
    if bool(((right - left) <= 0).any() or ((bottom - top) <= 0).any()):
        raise ValueError(f"bbox_xyxy must satisfy right > left and bottom > top, got {bbox_xyxy}")
    sx, sy = W / (right - left), H / (bottom - top)
    zero, one = torch.zeros_like(sx), torch.ones_like(sx)
    rows = [sx, zero, (0.5 - left) * sx - 0.5, zero, sy, (0.5 - top) * sy - 0.5, zero, zero, one]
    return torch.stack(rows, dim=-1).reshape(*sx.shape, 3, 3)


def crop_and_resize_image(image, bbox_xyxy, out_size: tuple[int, int],
                          border_value: float = 0.0):
    """Crop ``image`` to ``bbox_xyxy`` and resize it to ``out_size``, consistent with
    :meth:`Camera.crop_and_resize` (pixel centres map exactly as ``crop_resize_matrix`` says).

    Args:
        image: ``(H, W)`` or ``(H, W, C)`` numpy array or torch tensor (returned as the same type).
        bbox_xyxy: ``(4,)`` = ``(left, top, right, bottom)`` in pixel-index units; parts outside
            the image are filled with ``border_value``.
        out_size: ``(W_out, H_out)``.
    Integer boxes inside the image use slicing + ``cv2.resize`` (area averaging when shrinking, so
    no aliasing); other boxes use ``cv2.warpAffine`` with bilinear interpolation.
    """
    is_tensor = isinstance(image, torch.Tensor)
    img = image.detach().cpu().numpy() if is_tensor else image
    if not isinstance(img, np.ndarray) or img.ndim not in (2, 3):
        raise ValueError(f"image must be an (H, W) or (H, W, C) array, got "
                         f"{getattr(img, 'shape', type(img).__name__)}")
    box = torch.as_tensor(bbox_xyxy, dtype=torch.float64)
    A = crop_resize_matrix(box, out_size).numpy()  # validates box and size
    W, H = (int(s) for s in out_size)
    left, top, right, bottom = box.tolist()
    inside = left >= 0 and top >= 0 and right <= img.shape[1] and bottom <= img.shape[0]
    if inside and all(float(c).is_integer() for c in (left, top, right, bottom)):
        crop = img[int(top):int(bottom), int(left):int(right)]
        shrink = W < crop.shape[1] and H < crop.shape[0]
        out = cv2.resize(crop, (W, H), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    else:
        fill = (border_value,) * (1 if img.ndim == 2 else img.shape[2])
        out = cv2.warpAffine(img, A[:2], (W, H), flags=cv2.INTER_LINEAR,
                             borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    if img.ndim == 3 and out.ndim == 2:  # cv2 drops a singleton channel axis
        out = out[..., None]
    return torch.from_numpy(np.ascontiguousarray(out)) if is_tensor else out


def look_at(eye, target, up=(0.0, 1.0, 0.0), *, focal_px: float | None = None,
            image_size: tuple[int, int] = (128, 128), dist=None) -> Camera:
    """A camera at ``eye`` looking at ``target`` with the world's ``up`` pointing up in the image.

    Args:
        eye, target: ``(..., 3)`` world points (m); tensors or sequences.
        up: ``(..., 3)`` world up direction (default the body model's +y).
        focal_px: focal length in pixels (square pixels, principal point at the image centre
            ``((W - 1) / 2, (H - 1) / 2)``); default ``max(W, H)`` (53 degree field of view).
        image_size: ``(W, H)``.
        dist: optional ``(..., 5)`` OpenCV distortion.
    """
    eye = _as_tensor(eye, "eye")
    target = _as_tensor(target, "target", like=eye)
    up = _as_tensor(up, "up", like=eye)
    for name, v in (("eye", eye), ("target", target), ("up", up)):
        _check(v, name, (3,))
    z = target - eye
    if bool((z.norm(dim=-1) < 1e-9).any()):
        raise ValueError("eye and target coincide; the viewing direction is undefined")
    z = z / z.norm(dim=-1, keepdim=True)
    x = torch.linalg.cross(z, up.expand_as(z))  # camera right = forward x up
    if bool((x.norm(dim=-1) < 1e-6).any()):
        raise ValueError("up is parallel to the viewing direction (target - eye); choose another up")
    x = x / x.norm(dim=-1, keepdim=True)
    y = torch.linalg.cross(z, x)  # camera down
    R = torch.stack([x, y, z], dim=-2)  # rows: camera axes in world coordinates
    t = -(R @ eye.unsqueeze(-1)).squeeze(-1)
    W, H = image_size
    f = float(max(W, H)) if focal_px is None else float(focal_px)
    K = torch.tensor([[f, 0.0, (W - 1) / 2], [0.0, f, (H - 1) / 2], [0.0, 0.0, 1.0]],
                     dtype=eye.dtype, device=eye.device).expand(*R.shape[:-2], 3, 3)
    d = None if dist is None else _as_tensor(dist, "dist", like=eye)
    return Camera(K=K, R=R, t=t, dist=d, image_size=(W, H))


@dataclass(frozen=True)
class RigJitter:
    """Half-widths of uniform random perturbations of each rig camera (0 = none)."""

    distance_m: float = 0.3
    height_m: float = 0.2
    yaw_deg: float = 10.0


def make_rig(num_views: int = 4, distance_m: float = 3.0, height_m: float = 0.3,
             yaw0_deg: float = 0.0, focal_px: float | None = None,
             image_size: tuple[int, int] = (128, 128), target_m=(0.0, 0.0, 0.0),
             jitter: RigJitter | None = None, generator: torch.Generator | None = None,
             dist=None, dtype: torch.dtype = torch.float32) -> Camera:
    """A ring of ``num_views`` cameras around ``target_m``, all looking at it, y up.

    The default imitates LightStage (ZJU-MoCap) cameras 1/7/13/19 used by the paper: 4 views
    90 degrees apart. View ``k`` sits at yaw ``yaw0_deg + 360 k / num_views`` measured about +y
    from +z towards +x, so with ``yaw0_deg=0`` view 0 sees the person's front (they face +z),
    view 1 their left side, view 2 their back, view 3 their right side.

    Args:
        num_views: number of cameras V.
        distance_m: horizontal distance from the target.
        height_m: camera height above the target.
        yaw0_deg: yaw of view 0.
        focal_px: focal length; default frames ``DEFAULT_FIELD_HEIGHT_M`` of height at
            ``distance_m`` (``H * distance_m / 2.2``, about 175 px at 128 px and 3 m).
        image_size: ``(W, H)``.
        target_m: ``(3,)`` the point every camera looks at (e.g. the pelvis).
        jitter: optional :class:`RigJitter`; needs ``generator`` (a seeded ``torch.Generator``).
        dist: optional ``(5,)`` or ``(V, 5)`` distortion for every view.
    Returns:
        a ``Camera`` with batch shape ``(V,)``.
    """
    if num_views < 1:
        raise ValueError(f"num_views must be >= 1, got {num_views}")
    if jitter is not None and generator is None:
        raise ValueError("jitter needs a generator: pass generator=torch.Generator().manual_seed(s)")
    target = _as_tensor(target_m, "target_m", dtype=dtype)
    _check(target, "target_m", (3,))
    yaw = torch.deg2rad(yaw0_deg + 360.0 * torch.arange(num_views, dtype=dtype) / num_views)
    dist_h = torch.full((num_views,), float(distance_m), dtype=dtype)
    height = torch.full((num_views,), float(height_m), dtype=dtype)
    if jitter is not None:
        def uniform(half_width: float) -> torch.Tensor:
            u = torch.rand(num_views, generator=generator, dtype=torch.float64).to(dtype)
            return (2 * u - 1) * half_width
        dist_h = dist_h + uniform(jitter.distance_m)
        height = height + uniform(jitter.height_m)
        yaw = yaw + uniform(math.radians(jitter.yaw_deg))
    eye = target + torch.stack([dist_h * torch.sin(yaw), height, dist_h * torch.cos(yaw)], -1)
    f = image_size[1] * distance_m / DEFAULT_FIELD_HEIGHT_M if focal_px is None else focal_px
    return look_at(eye, target.expand_as(eye), focal_px=f, image_size=image_size, dist=dist)
