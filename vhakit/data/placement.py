"""Placing posed bodies in the world: floor contact and planted feet (translation only).

* :func:`skeleton_joints`: joint positions by forward kinematics of SMPL's tree from the rest
  joints; equal to the body model's posed joints, at a fraction of the cost of skinning.
* :func:`lowest_vertex_height`: the height of each frame's lowest vertex (needs the mesh).
* :func:`place_on_floor`: shift a clip vertically so that it stands on ``y = 0``.
* :func:`foot_lock_xz`: the horizontal translation that keeps planted feet where they are.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from vhakit._util import check_shape
from vhakit.data.motion import MotionClip
from vhakit.geometry.rotations import axis_angle_to_matrix

__all__ = ["SMPL_PARENTS", "FOOT_JOINTS", "skeleton_joints", "rest_joints",
           "lowest_vertex_height", "place_on_floor", "foot_lock_xz"]

SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
FOOT_JOINTS = {"left": (7, 10), "right": (8, 11)}  # (ankle, toe) joints of each foot
_BATCH = 256  # frames per skinning call: bounds the memory of linear blend skinning


def _device(module: torch.nn.Module) -> torch.device | None:
    tensors = [*module.parameters(), *module.buffers()]
    return tensors[0].device if tensors else None


def skeleton_joints(poses: torch.Tensor, rest_joints_m: torch.Tensor) -> torch.Tensor:
    """Forward kinematics: ``poses (T, 72)`` radians, ``rest_joints_m (24, 3)`` -> ``(T, 24, 3)``.

    Joint ``j`` is placed at ``p_parent + G_parent (J_j - J_parent)`` with ``G_j = G_parent R_j``
    (no translation: add ``transl`` yourself). dtype and device follow ``poses``.
    """
    T = poses.shape[0]
    rot = axis_angle_to_matrix(poses.reshape(T, 24, 3))  # (T, 24, 3, 3) local rotations
    rest = rest_joints_m.to(poses)
    glob, pos = [rot[:, 0]], [rest[0].expand(T, 3)]
    for j in range(1, 24):
        p = SMPL_PARENTS[j]
        pos.append(pos[p] + glob[p] @ (rest[j] - rest[p]))
        glob.append(glob[p] @ rot[:, j])
    return torch.stack(pos, 1)


@torch.no_grad()
def rest_joints(body_model: torch.nn.Module, betas: torch.Tensor) -> torch.Tensor:
    """``(24, 3)`` rest-pose (T-pose) joints of the body with shape ``betas (10,)``, metres."""
    dev = _device(body_model)
    out = body_model.from_poses(torch.zeros(1, 72, device=dev),
                                betas.reshape(1, 10).float().to(dev), torch.zeros(1, 3, device=dev))
    return out.joints[0].double().cpu()


@torch.no_grad()
def lowest_vertex_height(poses: torch.Tensor, betas: torch.Tensor,
                         body_model: torch.nn.Module) -> torch.Tensor:
    """``(T,)`` float64: y of the lowest vertex of each frame with ``transl = 0``.

    Args:
        poses: ``(T, 72)``; betas: ``(T, 10)`` or ``(10,)``.
    """
    dev, T = _device(body_model), poses.shape[0]
    betas = betas.reshape(-1, 10).expand(T, 10)
    lows = []
    for s in range(0, T, _BATCH):
        p = poses[s:s + _BATCH].float().to(dev)
        out = body_model.from_poses(p, betas[s:s + _BATCH].float().to(dev),
                                    torch.zeros(len(p), 3, device=dev))
        lows.append(out.vertices[..., 1].amin(-1).double().cpu())
    return torch.cat(lows) if lows else torch.zeros(0, dtype=torch.float64)


def place_on_floor(clip: MotionClip, body_model: torch.nn.Module, mode: str = "clip",
                   lift_m: np.ndarray | None = None) -> MotionClip:
    """Shift ``transl`` vertically so that the body's lowest vertex touches ``y = 0``.

    Args:
        clip: the clip to ground.
        body_model: a :class:`vhakit.body.BodyModel` (anything with ``from_poses``).
        mode: ``"clip"``: one shift for the whole clip (the lowest vertex over all frames ends on
            the floor; right for real motion with flight phases). ``"frame"``: a shift per frame,
            so every frame touches the floor.
        lift_m: optional ``(T,)`` metres added to the shift (a per-frame clearance).
    Returns:
        the clip with a new ``transl``.
    """
    if mode not in ("clip", "frame"):
        raise ValueError(f"mode must be 'clip' or 'frame', got {mode!r}")
    t = clip.to_torch(dtype=torch.float64)
    low = (lowest_vertex_height(t["poses"], t["betas"], body_model) +
           t["transl"][:, 1]).numpy()  # (T,) with the clip's own transl
    shift = -low if mode == "frame" else np.full_like(low, -low.min())
    if lift_m is not None:
        lift = np.asarray(lift_m, dtype=np.float64).reshape(-1)
        check_shape(lift, "lift_m", (clip.num_frames,))
        shift = shift + lift
    transl = clip.transl.astype(np.float64).copy()
    transl[:, 1] += shift
    return replace(clip, transl=transl)


def foot_lock_xz(joints_m: torch.Tensor, lock: str) -> torch.Tensor:
    """Horizontal translation ``(T, 2)`` (x, z) that keeps the planted foot in place.

    Args:
        joints_m: ``(T, 24, 3)`` joints with ``transl = 0``.
        lock: ``"both"`` (the mid-point of the two feet stays put), ``"left"`` / ``"right"``
            (that foot stays put), or ``"stance"`` (at each step the lower foot is planted: its
            motion is integrated, so a gait moves the body forward; the path is centred).
    """
    feet = {s: joints_m[:, list(j)].mean(1)[:, [0, 2]] for s, j in FOOT_JOINTS.items()}  # (T, 2)
    if lock == "both":
        anchor = 0.5 * (feet["left"] + feet["right"])
    elif lock in ("left", "right"):
        anchor = feet[lock]
    elif lock == "stance":
        height = torch.stack([joints_m[:, list(FOOT_JOINTS[s]), 1].amin(1)
                              for s in ("left", "right")], 1)  # (T, 2)
        left_down = (height[:, 0] <= height[:, 1])[1:, None]  # (T-1, 1) planted foot per step
        step = torch.where(left_down, feet["left"].diff(dim=0), feet["right"].diff(dim=0))
        xz = torch.cat([torch.zeros_like(step[:1]), -step.cumsum(0)])
        return xz - xz.mean(0)
    else:
        raise ValueError(f"lock must be 'both', 'left', 'right' or 'stance', got {lock!r}")
    return -(anchor - anchor[:1])
