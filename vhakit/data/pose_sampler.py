"""A broad pool of plausible SMPL poses within the joint limits (the kit's stand-in for AMASS).

:func:`sample_poses` mixes three sources, each component clamped into
:data:`vhakit.data.joint_limits.JOINT_LIMITS_DEG`:

1. procedural action poses (:mod:`vhakit.data.procedural`) at random times with random
   per-sequence parameters, plus Gaussian noise: everyday movements with their correlations;
2. a truncated Gaussian around the standing pose (std a sixth of each joint's range): natural
   variations of posture;
3. uniform within the limits: the far corners of the pose space, uncorrelated joints.
"""
from __future__ import annotations

import math

import torch

from vhakit.data.joint_limits import clamp_to_limits, joint_limits_rad
from vhakit.data.procedural import ACTIONS, ActionParams, _Pose, action_poses, sample_params
from vhakit.geometry.rotations import matrix_to_axis_angle

__all__ = ["sample_poses", "POSES_PER_PARAM_SET"]

POSES_PER_PARAM_SET = 8  # procedural poses drawn (at random times) from one parameter set
_STAND = ActionParams(freq_hz=0.2, amp=0.0, style=0.5, side=1, phase=0.0, heading=0.0)


def _procedural(m: int, gen: torch.Generator, perturb_deg: float) -> torch.Tensor:
    """``(m, 72)`` procedural poses (random action, parameters and time) plus noise."""
    out = torch.zeros(m, 72, dtype=torch.float64)
    actions = torch.randint(len(ACTIONS), (m,), generator=gen)
    for a, action in enumerate(ACTIONS):
        idx = torch.nonzero(actions == a).flatten()
        for chunk in idx.split(POSES_PER_PARAM_SET):
            params = sample_params(action, gen)
            t_s = torch.rand(len(chunk), generator=gen, dtype=torch.float64) * 10.0
            out[chunk] = action_poses(action, t_s, params)
    return out + torch.randn(m, 72, generator=gen, dtype=torch.float64) * math.radians(
        perturb_deg)


def sample_poses(n: int, seed: int | torch.Generator,
                 mix: tuple[float, float, float] = (0.5, 0.3, 0.2), perturb_deg: float = 8.0,
                 tilt_deg: float = 15.0) -> torch.Tensor:
    """Sample ``n`` poses from the mixture described in the module docstring.

    Args:
        n: number of poses (>= 0).
        seed: int or ``torch.Generator`` (same seed -> same poses).
        mix: weights of (procedural + noise, Gaussian around standing, uniform in limits).
        perturb_deg: std of the noise added to procedural poses, degrees.
        tilt_deg: std of the root's pitch and roll for the non-procedural sources (their
            heading is uniform; procedural poses keep their action's root rotation).
    Returns:
        ``(n, 72)`` float32 radians, every component within its joint limit.
    """
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}")
    if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
        raise ValueError(f"mix must be 3 non-negative weights with a positive sum, got {mix!r}")
    gen = seed if isinstance(seed, torch.Generator) else torch.Generator().manual_seed(int(seed))
    lo, hi = joint_limits_rad(dtype=torch.float64)
    w = torch.tensor(mix, dtype=torch.float64)
    kind = (torch.multinomial(w / w.sum(), n, replacement=True, generator=gen) if n
            else torch.zeros(0, dtype=torch.long))  # (n,) source of each pose
    out = torch.zeros(n, 72, dtype=torch.float64)
    out[kind == 0] = _procedural(int((kind == 0).sum()), gen, perturb_deg)
    stand = action_poses("idle", torch.zeros(1, dtype=torch.float64), _STAND)[0]  # (72,)
    g = kind == 1
    out[g] = stand + torch.randn(int(g.sum()), 72, generator=gen, dtype=torch.float64) * (
        hi - lo) / 6.0
    u = kind == 2
    out[u] = lo + (hi - lo) * torch.rand(int(u.sum()), 72, generator=gen, dtype=torch.float64)
    # Root of the non-procedural poses: uniform heading about y, then pitch (x) and roll (z).
    k = int((kind > 0).sum())
    root = _Pose(torch.zeros(k, dtype=torch.float64))
    root.rot(0, "y", torch.rand(k, generator=gen, dtype=torch.float64) * 360.0 - 180.0)
    root.rot(0, "x", torch.randn(k, generator=gen, dtype=torch.float64) * tilt_deg)
    root.rot(0, "z", torch.randn(k, generator=gen, dtype=torch.float64) * tilt_deg)
    out[kind > 0, :3] = matrix_to_axis_angle(root.R[:, 0])
    return clamp_to_limits(out).float()
