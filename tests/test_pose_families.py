"""Everyday pose families: the new procedural actions are what they claim (closed-form geometry on
the posed body), stay within the joint limits, are held out of ``prior_pool``, and the per-family
report measures the VHA exactly as ``evaluate_vha`` does."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vhakit.config import vha_configs
from vhakit.data.joint_limits import limit_violation_deg, within_limits
from vhakit.data.procedural import EVERYDAY_ACTIONS, action_poses, sample_params
from vhakit.data.splits import split_frames
from vhakit.evaluation.pose_families import (
    FAMILY_ACTIONS,
    REAL_FLOOR,
    REFERENCE,
    family_frames,
    pose_family_report,
    pose_family_table,
)
from vhakit.geometry.rotations import axis_angle_to_matrix
from vhakit.models.vha import VHA

PELVIS, L_KNEE, R_KNEE, HEAD, L_HIP, R_HIP, L_WRIST, R_WRIST = 0, 4, 5, 15, 1, 2, 20, 21
FRAMES = 24  # per family: 4 clips of 6 frames at 6 fps


@pytest.fixture(scope="module")
def posed(open_body):
    """family -> (frames dict, joints (F, 24, 3), standing pelvis height (F,) of each body)."""
    out = {}
    for family in FAMILY_ACTIONS:
        fr = {k: torch.as_tensor(v, dtype=torch.float32)
              for k, v in family_frames(family, FRAMES, seed=0).items()}
        with torch.no_grad():
            body = open_body.from_poses(fr["poses"], fr["betas"], fr["transl"])
            stand = open_body.from_poses(torch.zeros_like(fr["poses"]), fr["betas"],
                                         torch.zeros_like(fr["transl"]))
        stand_h = stand.joints[:, PELVIS, 1] - stand.vertices[..., 1].amin(1)  # (F,) m
        assert body.vertices[..., 1].amin(1).abs().max() < 1e-4  # grounded: pelvis y = height
        out[family] = (fr, body.joints, stand_h)
    return out


@pytest.mark.parametrize("action", EVERYDAY_ACTIONS)
def test_everyday_actions_designed_within_limits_and_smooth(action):
    t_s = torch.arange(240, dtype=torch.float64) / 30.0
    g = torch.Generator().manual_seed(7)
    for _ in range(12):  # covers every style branch (supine / side / prone, up / forward)
        params = sample_params(action, g)
        raw = action_poses(action, t_s, params, clamp=False)
        assert limit_violation_deg(raw).max() < 0.5, "the designed curves leave the limits"
        R = axis_angle_to_matrix(action_poses(action, t_s, params).reshape(-1, 24, 3))
        cos = ((R[1:] * R[:-1]).sum((-1, -2)) - 1) / 2  # (T-1, 24) cos of the frame-to-frame angle
        speed = torch.rad2deg(torch.arccos(cos.clamp(-1, 1))) * 30.0
        assert speed.max() < 500, f"{action}: {float(speed.max()):.0f} deg/s"


def test_families_within_limits_deterministic_and_held_out(posed):
    pool = split_frames("prior_pool", "train", "tiny", seed=0)
    pool_bodies = set(map(tuple, pool["betas"].astype(np.float64)))
    for family, (fr, _, _) in posed.items():
        assert fr["poses"].shape == (FRAMES, 72)
        assert within_limits(fr["poses"].double()).all(), family
        assert not set(map(tuple, fr["betas"].double().numpy())) & pool_bodies  # other bodies
        again = family_frames(family, FRAMES, seed=0)
        np.testing.assert_array_equal(again["poses"], fr["poses"].double().numpy())
        assert not np.allclose(family_frames(family, FRAMES, seed=1)["poses"], again["poses"])
    with pytest.raises(ValueError, match="family must be one of"):
        family_frames("handstand", 4)


def test_sit_knees_flexed_and_pelvis_lowered(posed):
    fr, joints, stand_h = posed["sit"]
    knee_deg = torch.rad2deg(fr["poses"].reshape(-1, 24, 3)[:, [L_KNEE, R_KNEE]].norm(dim=-1))
    assert knee_deg.min() >= 60  # the knee is a hinge: its angle is the axis-angle norm
    assert (joints[:, PELVIS, 1] < 0.75 * stand_h).all()  # seated: ~0.45 m of ~0.9 m


def test_crouch_pelvis_below_60_percent_of_standing(posed):
    _, joints, stand_h = posed["crouch"]
    assert (joints[:, PELVIS, 1] < 0.6 * stand_h).all()


def test_lie_head_to_pelvis_axis_near_horizontal(posed):
    _, joints, stand_h = posed["lie"]
    axis = joints[:, HEAD] - joints[:, PELVIS]  # (F, 3)
    elevation = torch.rad2deg(torch.asin(axis[:, 1].abs() / axis.norm(dim=-1)))
    assert elevation.max() < 30
    assert (joints[:, PELVIS, 1] < 0.5 * stand_h).all()


def test_reach_wrist_above_head_or_far_in_front(posed):
    _, joints, _ = posed["reach"]
    wrists = joints[:, [L_WRIST, R_WRIST]]  # (F, 2, 3)
    above = (wrists[..., 1] > joints[:, HEAD:HEAD + 1, 1]).any(1)
    left = joints[:, L_HIP] - joints[:, R_HIP]  # body's +x, in the world
    forward = torch.linalg.cross(left, torch.tensor([0.0, 1.0, 0.0]).expand_as(left))
    forward = forward / forward.norm(dim=-1, keepdim=True)  # (F, 3) horizontal facing direction
    ahead = ((wrists - joints[:, None, PELVIS]) * forward[:, None]).sum(-1).amax(1)  # (F,) m
    assert (above | (ahead >= 0.5)).all()


def test_report_matches_a_direct_mpve(open_body):
    torch.manual_seed(0)
    vha = VHA(vha_configs("tiny").model).eval()
    rep = pose_family_report(vha, families=("sit", "lie"), frames_per_family=8, seed=0)
    assert list(rep) == ["sit", "lie", REAL_FLOOR, REFERENCE]
    assert rep["sit"]["frames"] == 8 and rep[REAL_FLOOR]["frames"] > 0
    fr = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in family_frames("lie", 8).items()}
    with torch.no_grad():
        body = open_body.from_poses(fr["poses"], fr["betas"], fr["transl"])
        out = vha(body.vertices108, body.joints[:, PELVIS], return_logits=False)
    direct = (out.vertices - body.vertices108).norm(dim=-1).mean() * 1000  # mm
    assert rep["lie"]["mpve_mm"] == pytest.approx(float(direct), rel=1e-4)
    table = pose_family_table(rep)
    assert table.count("\n") == 1 + len(rep) and f"| lie | 8 | {rep['lie']['mpve_mm']:.1f} |" \
        in table
    assert math.isfinite(rep[REFERENCE]["mpve_mm"])
