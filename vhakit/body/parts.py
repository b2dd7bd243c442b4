"""The body-part palette: one colour per SMPL part (a vertex's part is the joint it follows
most, ``BodyModel.part_labels``), used by the renderer of the synthetic data and by the figures.
"""
from __future__ import annotations

import torch

__all__ = ["PART_COLORS", "part_colors"]

# fmt: off
#: Base RGB colour (0-255) of each SMPL part (joint order of vhakit.body.JOINT_NAMES). Left limbs
#: are warm (red/orange/yellow), right limbs cool (blue/cyan/green), the trunk neutral.
PART_COLORS = (
    (110, 110, 120), (220, 40, 40), (40, 80, 220),      # pelvis, left_hip, right_hip
    (150, 150, 110), (240, 130, 30), (30, 170, 220),    # spine1, left_knee, right_knee
    (160, 160, 120), (245, 200, 40), (40, 200, 150),    # spine2, left_ankle, right_ankle
    (170, 170, 130), (250, 220, 90), (60, 220, 120),    # spine3, left_foot, right_foot
    (210, 180, 150), (230, 90, 150), (120, 90, 230),    # neck, left_collar, right_collar
    (225, 190, 160), (200, 40, 110), (80, 60, 200),     # head, left_shoulder, right_shoulder
    (250, 110, 60), (50, 130, 250), (255, 170, 90),     # left_elbow, right_elbow, left_wrist
    (90, 240, 200), (255, 200, 130), (120, 250, 160),   # right_wrist, left_hand, right_hand
)
# fmt: on
_TRUNK_PARTS = (0, 3, 6, 9, 12)  # pelvis, spines, neck: darker back, striped front
_HEAD = 15
_HAIR_RGB = (70, 45, 30)


def part_colors(part_labels: torch.Tensor, verts_rest_m: torch.Tensor | None = None,
                stripe_period_m: float = 0.08) -> torch.Tensor:
    """Per-vertex colours ``(V, 3)`` in [0, 1] from SMPL part labels.

    Left and right limbs have distinct hues. Given the rest-pose vertices ``(V, 3)`` (person facing
    +z), the back of the trunk is darker, its front carries horizontal stripes and the back of the
    head is hair-coloured, so front and back views differ too.
    """
    if part_labels.dim() != 1 or part_labels.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"part_labels must be an integer (V,) tensor, got "
                         f"{tuple(part_labels.shape)} {part_labels.dtype}")
    if bool((part_labels < 0).any() or (part_labels > 23).any()):
        raise ValueError("part_labels must lie in 0..23 (SMPL joints)")
    table = torch.tensor(PART_COLORS, dtype=torch.float32, device=part_labels.device) / 255
    colors = table[part_labels]
    if verts_rest_m is None:
        return colors
    if verts_rest_m.shape != (part_labels.shape[0], 3):
        raise ValueError(f"verts_rest_m must have shape ({part_labels.shape[0]}, 3), got "
                         f"{tuple(verts_rest_m.shape)}")
    v = verts_rest_m.to(colors)
    centre_z = torch.zeros(24, device=v.device).index_add_(0, part_labels, v[:, 2])
    count = torch.zeros(24, device=v.device).index_add_(0, part_labels, torch.ones_like(v[:, 2]))
    front = v[:, 2] > (centre_z / count.clamp(min=1))[part_labels]  # (V,)
    trunk = torch.isin(part_labels, torch.tensor(_TRUNK_PARTS, device=v.device))
    stripe = torch.sin(2 * torch.pi * v[:, 1] / stripe_period_m) > 0.3
    colors = torch.where((trunk & ~front)[:, None], colors * 0.5, colors)
    colors = torch.where((trunk & front & stripe)[:, None], 0.5 + 0.5 * colors, colors)
    hair = torch.tensor(_HAIR_RGB, dtype=colors.dtype, device=v.device) / 255
    return torch.where(((part_labels == _HEAD) & ~front)[:, None], hair, colors)
