"""Per-joint, per-axis limits of SMPL pose parameters for the data generator (the fitter's own,
independent anatomical limits are ``vhakit.fitting.pose_prior.FIT_LIMITS_DEG``).

Convention
----------
A pose is SMPL's ``(72,)`` vector: 24 joints x 3 axis-angle components, joint ``j`` at
``poses[3 j : 3 j + 3]``, each a rotation *relative to the parent joint* (local), expressed in the
body frame of the rest pose (a T-pose): **x points to the body's left, y up, z forward**. A limit
is a closed box ``[lo, hi]`` (degrees) on each of the three components of the axis-angle vector.
For moderate angles the components act like Euler angles about the three axes; at large angles
they mix, so the box is an approximation of the anatomical range, deliberately a bit generous.

What the axes mean (right-hand rule; read "+x" as "a positive rotation about the x axis"):

* spine1/2/3, neck, head: +x bends forward (flexion), -x backward; +y twists to the left;
  +z bends sideways to the right (the person's right is -x).
* hips: -x swings the thigh forward (flexion), +x backward (extension); left hip +z abducts
  (leg out to the left), +y turns the toes outward. The right hip mirrors the left.
* knees: hinge, flexion about **+x only** (0 = straight). No twist, no side bend.
* ankles: +x points the toes down (plantar flexion), -x pulls them up (dorsiflexion);
  z tilts the sole (inversion/eversion). feet (toe joints): -x lifts the toes.
* collars (clavicles): left collar +z shrugs the shoulder up, -y pulls it forward.
* shoulders: in the T-pose the arm points along +x (left) / -x (right). Left shoulder -z lowers
  the arm (-90 degrees = arm hanging at the side), +z raises it overhead; -y swings the arm
  forward; x twists the arm about its own axis. Once the arm is lowered, x also carries the
  forward (-x) and backward (+x) swing of the hanging arm, hence its wide range.
* elbows: hinge, left elbow flexes about **-y**, right elbow about **+y** (forearm forward);
  x is forearm twist (pronation/supination).
* wrists: z flexes/extends the hand, y deviates it sideways, x twists.
* hands: the finger base joint of SMPL (AMASS readers set it to 0); a small range only.

Mirror symmetry: reflecting the body through the sagittal plane (x -> -x) maps an axis-angle
``(x, y, z)`` on the left to ``(x, -y, -z)`` on the right, so right-side limits are derived from
the left ones, never typed twice.
"""
from __future__ import annotations

import numpy as np
import torch

from vhakit._util import check_shape

__all__ = ["JOINT_LIMITS_DEG", "ROOT_JOINT", "MIRROR_JOINT", "joint_limits_rad",
           "limit_violation_deg", "within_limits", "clamp_to_limits"]

ROOT_JOINT = 0  # global orientation: not an anatomical joint, unlimited (+-180 degrees)

# Left and centre joints, degrees, rows (x, y, z), columns (lo, hi). SMPL joint order.
_LEFT_AND_CENTRE_DEG: dict[int, tuple[tuple[float, float], ...]] = {
    0: ((-180, 180), (-180, 180), (-180, 180)),  # pelvis: global orientation
    1: ((-125, 35), (-40, 55), (-35, 55)),       # left hip
    3: ((-20, 45), (-25, 25), (-20, 20)),        # spine1 (lower back)
    4: ((0, 160), (0, 0), (0, 0)),               # left knee: hinge
    6: ((-20, 40), (-25, 25), (-20, 20)),        # spine2
    7: ((-45, 55), (-35, 35), (-35, 35)),        # left ankle (wide: mocap feet are noisy)
    9: ((-20, 35), (-25, 25), (-20, 20)),        # spine3 (chest)
    10: ((-50, 25), (-5, 5), (-5, 5)),           # left foot (toes)
    12: ((-35, 45), (-45, 45), (-30, 30)),       # neck
    13: ((-15, 15), (-25, 15), (-20, 35)),       # left collar
    15: ((-30, 35), (-40, 40), (-25, 25)),       # head
    16: ((-135, 100), (-120, 50), (-100, 100)),  # left shoulder
    18: ((-60, 60), (-155, 0), (0, 0)),          # left elbow: hinge + forearm twist
    20: ((-45, 45), (-30, 35), (-75, 75)),       # left wrist
    22: ((-15, 15), (-15, 15), (-15, 15)),       # left hand
}

# Left joint -> right joint (and the centre joints map to themselves).
MIRROR_JOINT: tuple[int, ...] = (0, 2, 1, 3, 5, 4, 6, 8, 7, 9, 11, 10, 12, 14, 13, 15, 17, 16,
                                 19, 18, 21, 20, 23, 22)


def _build_table() -> np.ndarray:
    table = np.zeros((24, 3, 2), dtype=np.float64)
    for j, rows in _LEFT_AND_CENTRE_DEG.items():
        table[j] = np.asarray(rows, dtype=np.float64)
        m = MIRROR_JOINT[j]
        if m != j:  # right side: x kept, y and z negated (and their interval flipped)
            table[m, 0] = table[j, 0]
            table[m, 1:] = -table[j, 1:, ::-1]
    table.setflags(write=False)
    return table


#: ``(24, 3, 2)`` float64 array, read-only: ``JOINT_LIMITS_DEG[j, axis] = (lo, hi)`` in degrees
#: for SMPL joint ``j`` and axis-angle component ``axis`` (0 = x, 1 = y, 2 = z).
JOINT_LIMITS_DEG: np.ndarray = _build_table()


def joint_limits_rad(device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Lower and upper limits as flat pose vectors.

    Returns:
        ``(lo, hi)``, each ``(72,)`` radians, in SMPL pose layout (joint-major, then x, y, z).
    """
    lim = torch.as_tensor(np.deg2rad(JOINT_LIMITS_DEG), dtype=dtype, device=device)  # (24, 3, 2)
    return lim[..., 0].reshape(72), lim[..., 1].reshape(72)


def _as_pose_tensor(poses: torch.Tensor | np.ndarray, name: str = "poses") -> torch.Tensor:
    if isinstance(poses, np.ndarray):
        poses = torch.from_numpy(poses)
    if not isinstance(poses, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or numpy array, got {type(poses).__name__}")
    check_shape(poses, name, (..., 72), hint="; SMPL axis-angle poses are 24 joints x 3")
    return poses


def limit_violation_deg(poses: torch.Tensor | np.ndarray) -> torch.Tensor:
    """How far each component lies outside its limit, in degrees (0 inside).

    Args:
        poses: ``(..., 72)`` radians.
    Returns:
        ``(..., 24, 3)`` non-negative degrees.
    """
    poses = _as_pose_tensor(poses)
    lo, hi = joint_limits_rad(poses.device, poses.dtype if poses.is_floating_point()
                              else torch.float32)
    over = torch.clamp(poses - hi, min=0) + torch.clamp(lo - poses, min=0)  # (..., 72)
    return torch.rad2deg(over).reshape(*poses.shape[:-1], 24, 3)


def within_limits(poses: torch.Tensor | np.ndarray, tol_deg: float = 1e-3) -> torch.Tensor:
    """``(...,)`` bool: every component of the pose lies within its limit (+ ``tol_deg``)."""
    return (limit_violation_deg(poses) <= tol_deg).flatten(-2).all(-1)


def clamp_to_limits(poses: torch.Tensor) -> torch.Tensor:
    """Clamp every component into its box. ``(..., 72)`` -> ``(..., 72)``, same device/dtype."""
    poses = _as_pose_tensor(poses)
    lo, hi = joint_limits_rad(poses.device, poses.dtype)
    return torch.minimum(torch.maximum(poses, lo), hi)
