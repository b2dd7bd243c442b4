"""Rotation conversions used across the kit (axis-angle <-> rotation matrix).

Conventions: rotation matrices act on column vectors (``x' = R @ x``); an axis-angle vector
``aa`` has direction = unit rotation axis and norm = angle in radians (right-hand rule), as in
SMPL's pose vectors. Everything is torch, batched over any leading dimensions, and keeps the
input's device and dtype.
"""
from __future__ import annotations

import torch

from vhakit._util import check_tensor

__all__ = ["axis_angle_to_matrix", "matrix_to_axis_angle", "skew"]


def skew(v: torch.Tensor) -> torch.Tensor:
    """Cross-product matrix ``[v]_x`` with ``[v]_x @ w == cross(v, w)``.

    Args:
        v: ``(..., 3)``.
    Returns:
        ``(..., 3, 3)``.
    """
    check_tensor(v, "v", (..., 3))
    x, y, z = v.unbind(-1)
    o = torch.zeros_like(x)
    return torch.stack([o, -z, y, z, o, -x, -y, x, o], dim=-1).reshape(*v.shape, 3)


def axis_angle_to_matrix(aa: torch.Tensor) -> torch.Tensor:
    """Rodrigues' formula ``R = I + sin(t)/t K + (1 - cos(t))/t^2 K^2`` with ``K = [aa]_x``.

    Smooth at ``aa = 0`` (Taylor series of both coefficients), so gradients are finite there.

    Args:
        aa: axis-angle vectors ``(..., 3)``, radians.
    Returns:
        rotation matrices ``(..., 3, 3)``.
    """
    check_tensor(aa, "aa", (..., 3))
    theta2 = (aa * aa).sum(-1, keepdim=True).unsqueeze(-1)  # (..., 1, 1)
    small = theta2 < 1e-8
    safe2 = torch.where(small, torch.ones_like(theta2), theta2)
    theta = safe2.sqrt()
    a = torch.where(small, 1.0 - theta2 / 6.0, torch.sin(theta) / theta)
    b = torch.where(small, 0.5 - theta2 / 24.0, (1.0 - torch.cos(theta)) / safe2)
    K = skew(aa)
    eye = torch.eye(3, dtype=aa.dtype, device=aa.device).expand(K.shape)
    return eye + a * K + b * (K @ K)


def matrix_to_axis_angle(R: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`axis_angle_to_matrix`, returning angles in ``[0, pi]``.

    Uses the quaternion route (Shepperd's method: the largest of ``w, x, y, z`` is computed from
    the diagonal), which is stable near 0 and near pi, where the ``arccos``/antisymmetric-part
    formula loses the axis.

    Args:
        R: rotation matrices ``(..., 3, 3)``.
    Returns:
        axis-angle vectors ``(..., 3)``.
    """
    check_tensor(R, "R", (..., 3, 3))
    m = R
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    # Four candidate (unnormalised) quaternions; row k is numerically best when its scale is max.
    cand = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2],
                     m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22,
                     m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0],
                     1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0],
                     m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], dim=-2)  # (..., 4, 4): candidate k, components (w, x, y, z)
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22,
                        1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)  # (..., 4)
    best = diag.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True)
    q = torch.where(q[..., :1] < 0, -q, q)  # w >= 0 -> angle in [0, pi]
    w, xyz = q[..., 0], q[..., 1:]
    s = xyz.norm(dim=-1)
    angle = 2.0 * torch.atan2(s, w)
    # angle / sin(angle/2) with its Taylor limit 2 + angle^2/12 near 0.
    small = s < 1e-6
    factor = torch.where(small, 2.0 + angle * angle / 12.0,
                         angle / torch.where(small, torch.ones_like(s), s))
    return xyz * factor[..., None]
