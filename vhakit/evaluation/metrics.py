"""Evaluation metrics: MPJPE, PA-MPJPE, MPVE and the geodesic angular distance between rotations.

Conventions (see ``method_notes.md`` section 7 and ``data_formats.md`` section 6):

* Inputs are torch tensors in **metres**, batched over frames: points ``(B, N, 3)``.
* Every metric returns **one value per frame** ``(B,)`` in metres (distances) or degrees (angles);
  average over frames yourself or call :func:`summarize`, which reports means in mm / degrees.
* ``align`` picks the alignment applied to the prediction before measuring:
  ``"root"`` (subtract each skeleton's own root joint, the usual MPJPE), ``"none"`` (absolute,
  world frame: meaningful for calibrated multi-view setups) or ``"procrustes"`` (per-frame
  similarity transform: scale, rotation and translation, i.e. PA-MPJPE).
* Joint sets: SMPL's 24 kinematic joints (``BodyModel`` output), or joints regressed from the
  mesh (:func:`regress_joints`), e.g. Human3.6M's 17 (:func:`vhakit.body.h36m_regressor`), rooted
  at their joint 0 (the pelvis) as H36M protocols do. ``docs/conventions.md``, "Joint sets".
* Angular distance defaults: **local** (parent-relative, SMPL ``poses``) rotations of **all 24 SMPL
  joints, root included**, averaged arithmetically over joints (not a rotation average).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from vhakit._util import check_pair, check_points, check_shape, check_tensor
from vhakit.geometry.procrustes import procrustes_align, similarity_procrustes
from vhakit.geometry.rotations import axis_angle_to_matrix

__all__ = ["similarity_procrustes", "procrustes_align", "mpjpe", "pa_mpjpe", "mpve",
           "regress_joints", "geodesic_angle_deg", "global_rotations", "angular_distance",
           "summarize", "trunk_tilt_deg", "ALIGN_MODES"]

ALIGN_MODES = ("root", "none", "procrustes")


def _aligned(pred: torch.Tensor, target: torch.Tensor, align: str,
             pred_root: torch.Tensor | None, target_root: torch.Tensor | None
             ) -> tuple[torch.Tensor, torch.Tensor]:
    if align == "none":
        return pred, target
    if align == "procrustes":
        return procrustes_align(pred, target), target
    if align == "root":
        if pred_root is None or target_root is None:
            raise ValueError("align='root' needs pred_root and target_root (B, 3), e.g. the "
                             "pelvis joints of each mesh (joints[:, 0])")
        for name, r in (("pred_root", pred_root), ("target_root", target_root)):
            check_shape(r, name, (pred.shape[0], 3))
        return pred - pred_root[:, None], target - target_root[:, None]
    raise ValueError(f"align must be one of {ALIGN_MODES}, got {align!r}")


def mpjpe(pred_joints: torch.Tensor, target_joints: torch.Tensor, align: str = "root",
          root_index: int = 0) -> torch.Tensor:
    """Mean per-joint position error per frame, metres.

    ``MPJPE_f = (1/J) sum_j || a(x_hat)_fj - a(x)_fj ||_2`` where ``a`` is the alignment:
    ``"root"``: ``a(x)_fj = x_fj - x_f,root`` (each skeleton minus its own root joint);
    ``"none"``: absolute positions; ``"procrustes"``: PA-MPJPE, see :func:`pa_mpjpe`.

    Args:
        pred_joints, target_joints: ``(B, J, 3)`` metres.
        align: ``"root"`` (default), ``"none"`` or ``"procrustes"``.
        root_index: joint used as root for ``align="root"`` (0 = SMPL pelvis).
    Returns:
        ``(B,)`` metres.
    """
    check_pair(pred_joints, target_joints, ("pred_joints", "target_joints"))
    J = pred_joints.shape[1]
    if not -J <= root_index < J:
        raise ValueError(f"root_index must index one of the {J} joints, got {root_index}")
    p, t = _aligned(pred_joints, target_joints, align, pred_joints[:, root_index],
                    target_joints[:, root_index])
    return (p - t).norm(dim=-1).mean(-1)


def pa_mpjpe(pred_joints: torch.Tensor, target_joints: torch.Tensor) -> torch.Tensor:
    """Procrustes-aligned MPJPE per frame, metres.

    ``PA-MPJPE_f = (1/J) sum_j || s R x_hat_fj + t - x_fj ||_2`` with ``(s, R, t)`` the per-frame
    least-squares similarity transform of the prediction onto the target (reflections excluded,
    :func:`similarity_procrustes`).

    Args:
        pred_joints, target_joints: ``(B, J, 3)`` metres.
    Returns:
        ``(B,)`` metres.
    """
    return mpjpe(pred_joints, target_joints, align="procrustes")


def mpve(pred_vertices: torch.Tensor, target_vertices: torch.Tensor, align: str = "root",
         pred_root: torch.Tensor | None = None, target_root: torch.Tensor | None = None
         ) -> torch.Tensor:
    """Mean per-vertex error per frame, metres (full mesh: all ``V`` vertices).

    ``MPVE_f = (1/V) sum_i || a(v_hat)_fi - a(v)_fi ||_2`` with the alignment ``a`` of
    :func:`mpjpe`; for ``align="root"`` each mesh is shifted by its own root joint
    (``pred_root``/``target_root``, usually the pelvis ``joints[:, 0]``), as in METRO-style code.
    Use ``align="none"`` for absolute world-frame error.

    Args:
        pred_vertices, target_vertices: ``(B, V, 3)`` metres.
        align: ``"root"`` (default; needs the roots), ``"none"`` or ``"procrustes"``.
        pred_root, target_root: ``(B, 3)`` metres, for ``align="root"``.
    Returns:
        ``(B,)`` metres.
    """
    check_pair(pred_vertices, target_vertices, ("pred_vertices", "target_vertices"))
    p, t = _aligned(pred_vertices, target_vertices, align, pred_root, target_root)
    return (p - t).norm(dim=-1).mean(-1)


def regress_joints(vertices: torch.Tensor, regressor: torch.Tensor) -> torch.Tensor:
    """Joints as fixed linear combinations of mesh vertices: ``J_fj = sum_i W_ji v_fi``.

    Args:
        vertices: ``(B, V, 3)`` metres.
        regressor: ``(J, V)`` weights, e.g. :func:`vhakit.body.h36m_regressor` (``(17, V)``);
            rows summing to 1 make the joints move with a translated mesh.
    Returns:
        ``(B, J, 3)`` metres, in ``vertices``' dtype.
    """
    check_points(vertices, "vertices")
    check_tensor(regressor, "regressor", ("J", vertices.shape[1]),
                 hint=f"; meshes of {vertices.shape[1]} vertices need a regressor made for their "
                 "topology (e.g. SMPL's 6890 vertices)")
    return torch.einsum("jv,bvc->bjc", regressor.to(vertices), vertices)


def geodesic_angle_deg(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    """Geodesic distance between rotations, degrees in ``[0, 180]`` (Hartley et al. 2013).

    ``d(R1, R2) = arccos((tr(R1^T R2) - 1) / 2) = || log(R1^T R2) ||``. Computed as
    ``atan2(sin, cos)`` with ``cos = (tr(M) - 1)/2`` and ``sin = ||vee(M - M^T)|| / 2`` for
    ``M = R1^T R2``, which stays accurate near 0 and 180 degrees where ``arccos`` loses digits.

    Args:
        R1, R2: ``(..., 3, 3)`` rotation matrices (same shape).
    Returns:
        ``(...)`` degrees.
    """
    if R1.shape != R2.shape or R1.shape[-2:] != (3, 3):
        raise ValueError(f"R1 and R2 must both have shape (..., 3, 3), got {tuple(R1.shape)} "
                         f"and {tuple(R2.shape)}")
    M = R1.transpose(-1, -2) @ R2
    cos = (M.diagonal(dim1=-2, dim2=-1).sum(-1) - 1.0) / 2.0
    vee = torch.stack([M[..., 2, 1] - M[..., 1, 2], M[..., 0, 2] - M[..., 2, 0],
                       M[..., 1, 0] - M[..., 0, 1]], dim=-1)
    sin = vee.norm(dim=-1) / 2.0
    return torch.rad2deg(torch.atan2(sin, cos))


def _as_matrices(pose: torch.Tensor, name: str) -> torch.Tensor:
    """``(B, 72)`` / ``(B, J, 3)`` axis-angle or ``(B, J, 3, 3)`` matrices -> ``(B, J, 3, 3)``."""
    if not isinstance(pose, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(pose).__name__}")
    if pose.dim() == 2 and pose.shape[1] % 3 == 0:
        return axis_angle_to_matrix(pose.reshape(pose.shape[0], -1, 3))
    if pose.dim() == 3 and pose.shape[2] == 3:
        return axis_angle_to_matrix(pose)
    if pose.dim() == 4 and pose.shape[2:] == (3, 3):
        return pose
    raise ValueError(f"{name} must be axis-angle (B, 72) or (B, J, 3), or rotation matrices "
                     f"(B, J, 3, 3); got {tuple(pose.shape)}")


def global_rotations(local_R: torch.Tensor, parents: Sequence[int] | torch.Tensor
                     ) -> torch.Tensor:
    """Accumulate parent-relative rotations along the kinematic chain.

    ``G_j = G_parent(j) @ L_j`` with ``G_root = L_root`` (parents must precede children, as in
    SMPL's ordering).

    Args:
        local_R: ``(B, J, 3, 3)`` local rotations.
        parents: ``J`` parent indices, ``-1`` for the root.
    Returns:
        ``(B, J, 3, 3)`` global rotations.
    """
    par = [int(p) for p in parents]
    if len(par) != local_R.shape[1]:
        raise ValueError(f"parents has {len(par)} entries but the pose has {local_R.shape[1]} "
                         "joints")
    out: list[torch.Tensor] = []
    for j, p in enumerate(par):  # loop over the (fixed, tiny) skeleton, not over frames
        if p >= j:
            raise ValueError(f"parents[{j}] = {p}: parents must precede their children")
        out.append(local_R[:, j] if p < 0 else out[p] @ local_R[:, j])
    return torch.stack(out, dim=1)


def angular_distance(pred_pose: torch.Tensor, target_pose: torch.Tensor,
                     joints: Sequence[int] | None = None, rotations: str = "local",
                     parents: Sequence[int] | torch.Tensor | None = None,
                     per_joint: bool = False) -> torch.Tensor:
    """Mean geodesic angle between predicted and true joint rotations, degrees per frame.

    ``A_f = (1/|K|) sum_{k in K} arccos((tr(R_hat_fk^T R_fk) - 1) / 2) * 180 / pi``: the
    arithmetic mean of :func:`geodesic_angle_deg` over the joint set ``K``.

    Defaults: ``rotations="local"`` (SMPL's parent-relative rotations, the root's being the global
    orientation) over all 24 SMPL joints (``joints=None``, root included). ``rotations="global"``
    first accumulates them along the kinematic chain (:func:`global_rotations`), as the 3DPW
    evaluation does (its joint set is ``[0, 1, 2, 4, 5, 16, 17, 18, 19]``).

    Args:
        pred_pose, target_pose: axis-angle ``(B, 72)`` / ``(B, 24, 3)`` or matrices
            ``(B, 24, 3, 3)``; the two may use different representations.
        joints: indices of the joints to average over (default: all).
        rotations: ``"local"`` or ``"global"``.
        parents: kinematic tree for ``"global"`` (default: ``vhakit.body.SMPL_PARENTS``).
        per_joint: return ``(B, |K|)`` instead of the mean ``(B,)``.
    Returns:
        ``(B,)`` degrees (or ``(B, |K|)``).
    """
    Rp = _as_matrices(pred_pose, "pred_pose")
    Rt = _as_matrices(target_pose, "target_pose").to(Rp)
    if Rp.shape != Rt.shape:
        raise ValueError(f"pred_pose has {tuple(Rp.shape[:2])} (frames, joints) but target_pose "
                         f"has {tuple(Rt.shape[:2])}")
    if rotations == "global":
        if parents is None:
            from vhakit.body.model import SMPL_PARENTS as parents  # noqa: N811 (lazy: optional module)
        Rp, Rt = global_rotations(Rp, parents), global_rotations(Rt, parents)
    elif rotations != "local":
        raise ValueError(f"rotations must be 'local' or 'global', got {rotations!r}")
    if joints is not None:
        idx = torch.as_tensor(list(joints), dtype=torch.long, device=Rp.device)
        if idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= Rp.shape[1]:
            raise ValueError(f"joints must be a non-empty list of indices in [0, {Rp.shape[1]}), "
                             f"got {list(joints)}")
        Rp, Rt = Rp[:, idx], Rt[:, idx]
    ang = geodesic_angle_deg(Rp, Rt)  # (B, K)
    return ang if per_joint else ang.mean(-1)


def trunk_tilt_deg(joints: torch.Tensor) -> torch.Tensor:
    """How far each body leans or bends away from upright: the angle (degrees, ``[0, 180]``)
    between the pelvis-to-neck direction (SMPL joints 0 and 12) and the world's up axis (+y,
    the kit's convention). About 0-5 degrees standing or walking, 40-90 bending to pick up,
    ~90 lying.

    Args:
        joints: ``(B, 24, 3)`` SMPL joints, metres, y up.
    Returns:
        ``(B,)`` degrees.
    """
    check_tensor(joints, "joints", ("B", 24, 3), hint="; SMPL's 24 joints, y up")
    trunk = joints[:, 12] - joints[:, 0]
    # atan2(horizontal length, height): accurate near 0 and 180 degrees, unlike acos
    return torch.rad2deg(torch.atan2(trunk[:, [0, 2]].norm(dim=-1), trunk[:, 1]))


def summarize(**per_frame: torch.Tensor) -> dict[str, float]:
    """Means over frames, distances in mm and angles in degrees, for a results table.

    Keyword names decide the unit: names containing ``"angle"`` or ending in ``"_deg"`` are taken
    as degrees and kept; everything else is taken as metres and multiplied by 1000, with ``"_mm"``
    appended to the key. NaN frames are an error (they would silently poison the mean).

    Example:
        ``summarize(mpjpe=mpjpe(p, t), mpve=mpve(...), angle=angular_distance(...))``
        -> ``{"mpjpe_mm": 12.3, "mpve_mm": 15.0, "angle_deg": 4.1}``.
    """
    out: dict[str, float] = {}
    for key, v in per_frame.items():
        v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
        if v.numel() == 0:
            raise ValueError(f"{key} is empty: nothing to summarise")
        if torch.isnan(v).any():
            raise ValueError(f"{key} has NaN frames: check the inputs of the metric")
        if "angle" in key or key.endswith("_deg"):
            out[key if key.endswith("_deg") else f"{key}_deg"] = float(v.mean())
        else:
            out[f"{key}_mm"] = float(v.mean() * 1000.0)
    return out
