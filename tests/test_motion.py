"""Motion sources: joint limits, MotionClip, AMASS reader, DeepMimic asset, procedural, sampler."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vhakit.data.joint_limits import (
    JOINT_LIMITS_DEG,
    MIRROR_JOINT,
    clamp_to_limits,
    limit_violation_deg,
    within_limits,
)
from vhakit.data.motion import (
    DEEPMIMIC_ASSET,
    MotionClip,
    load_amass_npz,
    load_clips,
    load_deepmimic,
    save_clips,
)
from vhakit.data.pose_sampler import sample_poses
from vhakit.data.procedural import ACTIONS, action_poses, make_clip, sample_params

PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# An approximate SMPL-like rest skeleton (T-pose, metres, x left, y up, z forward), rounded.
REST_J = np.array([
    [0.0, -0.22, 0.03], [0.07, -0.31, 0.02], [-0.07, -0.31, 0.02], [0.0, -0.11, 0.0],
    [0.10, -0.68, 0.01], [-0.10, -0.68, 0.01], [0.0, 0.02, 0.03], [0.09, -1.09, -0.03],
    [-0.09, -1.09, -0.03], [0.0, 0.08, 0.03], [0.12, -1.14, 0.09], [-0.12, -1.14, 0.09],
    [-0.01, 0.29, -0.02], [0.05, 0.21, 0.02], [-0.05, 0.21, 0.02], [0.01, 0.36, 0.04],
    [0.17, 0.24, -0.01], [-0.17, 0.24, -0.01], [0.44, 0.22, -0.04], [-0.44, 0.22, -0.04],
    [0.70, 0.23, -0.04], [-0.70, 0.23, -0.04], [0.78, 0.22, -0.05], [-0.78, 0.22, -0.05]])


def rodrigues(aa: np.ndarray) -> np.ndarray:
    """Independent numpy reference: one axis-angle (3,) -> rotation matrix (3, 3)."""
    theta = np.linalg.norm(aa)
    if theta < 1e-12:
        return np.eye(3)
    k = aa / theta
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(theta) * K + (1 - math.cos(theta)) * K @ K


def fk_loop(poses: np.ndarray, transl: np.ndarray, rest=REST_J) -> np.ndarray:
    """Naive forward kinematics of SMPL's tree: (T, 72), (T, 3) -> joints (T, 24, 3)."""
    out = np.zeros((len(poses), 24, 3))
    for t in range(len(poses)):
        G = [None] * 24
        for j in range(24):
            R = rodrigues(poses[t, 3 * j:3 * j + 3])
            p = PARENTS[j]
            if p < 0:
                G[j], out[t, j] = R, rest[0] + transl[t]
            else:
                G[j] = G[p] @ R
                out[t, j] = out[t, p] + G[p] @ (rest[j] - rest[p])
    return out


def geodesic_deg(R1: torch.Tensor, R2: torch.Tensor) -> torch.Tensor:
    cos = ((R1.transpose(-1, -2) @ R2).diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2
    return torch.rad2deg(torch.arccos(cos.clamp(-1, 1)))


# ------------------------------------------------------------------ joint limits
def test_joint_limits_table_is_ordered_mirrored_and_hinged():
    lim = JOINT_LIMITS_DEG
    assert lim.shape == (24, 3, 2) and not lim.flags.writeable
    assert (lim[..., 0] <= lim[..., 1]).all()
    for j, m in enumerate(MIRROR_JOINT):  # reflection x -> -x: (x, y, z) -> (x, -y, -z)
        np.testing.assert_array_equal(lim[m, 0], lim[j, 0])
        np.testing.assert_array_equal(lim[m, 1:], -lim[j, 1:, ::-1])
    for knee in (4, 5):  # knees flex about +x only
        assert lim[knee, 0, 0] == 0 and lim[knee, 0, 1] >= 120
        assert (lim[knee, 1:] == 0).all()
    assert lim[18, 1, 1] == 0 and lim[18, 1, 0] <= -120 and (lim[18, 2] == 0).all()  # L elbow -y
    assert lim[19, 1, 0] == 0 and lim[19, 1, 1] >= 120  # R elbow +y


def test_limit_violation_matches_a_loop_and_clamp_lands_inside():
    g = torch.Generator().manual_seed(0)
    poses = torch.randn(16, 72, generator=g, dtype=torch.float64) * 1.5
    viol = limit_violation_deg(poses)
    ref = np.zeros((16, 24, 3))
    for b in range(16):
        for j in range(24):
            for a in range(3):
                v = math.degrees(float(poses[b, 3 * j + a]))
                lo, hi = JOINT_LIMITS_DEG[j, a]
                ref[b, j, a] = max(0.0, v - hi, lo - v)
    np.testing.assert_allclose(viol.numpy(), ref, atol=1e-9)
    assert not within_limits(poses).all()
    assert within_limits(clamp_to_limits(poses)).all()


# ------------------------------------------------------------------ MotionClip
def _clip(T=5, **kw) -> MotionClip:
    g = np.random.default_rng(0)
    args = dict(poses=g.normal(0, 0.2, (T, 72)), betas=g.normal(0, 1, 10),
                transl=g.normal(0, 1, (T, 3)), fps=30.0, name="x", source="test")
    return MotionClip(**(args | kw))


def test_clip_roundtrip_and_torch_accessors(tmp_path):
    a, b = _clip(5), _clip(3, name="y", fps=60.0, gender="female")
    save_clips(tmp_path / "c.npz", [a, b])
    a2, b2 = load_clips(tmp_path / "c.npz")
    for x, y in ((a, a2), (b, b2)):
        for k in ("poses", "betas", "transl"):
            np.testing.assert_array_equal(getattr(x, k), getattr(y, k))
        assert (x.fps, x.name, x.source, x.gender) == (y.fps, y.name, y.source, y.gender)
    a.save(tmp_path / "one.npz")
    assert MotionClip.load(tmp_path / "one.npz").name == "x"
    t = a.to_torch(dtype=torch.float64)
    assert t["poses"].shape == (5, 72) and t["betas"].shape == (5, 10) and t["transl"].dtype == \
        torch.float64
    half = a.frames(slice(0, None, 2))
    assert half.num_frames == 3 and half.fps == 15.0
    assert not a.poses.flags.writeable


@pytest.mark.parametrize("kw, err", [
    (dict(poses=np.zeros((5, 69))), ValueError), (dict(transl=np.zeros((4, 3))), ValueError),
    (dict(betas=np.zeros(16)), ValueError), (dict(fps=0.0), ValueError),
    (dict(poses=np.full((5, 72), np.nan)), ValueError), (dict(name=3), TypeError)])
def test_clip_validation(kw, err):
    with pytest.raises(err):
        _clip(5, **kw)


# ------------------------------------------------------------------ AMASS reader
A_ZUP_TO_YUP = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])  # -90 degrees about x


def _amass_fixture(path, width=156, rate_key="mocap_framerate", gender="male", T=4, drop=()):
    g = np.random.default_rng(1)
    data = dict(poses=g.normal(0, 0.3, (T, width)), trans=g.normal(0, 1, (T, 3)),
                betas=g.normal(0, 1, 16), gender=np.array(gender), dmpls=np.zeros((T, 8)))
    data[rate_key] = np.array(120.0)
    for k in drop:
        data.pop(k)
    np.savez(path, **data)
    return data


@pytest.mark.parametrize("width, rate_key, gender", [
    (156, "mocap_framerate", "male"),
    (165, "mocap_frame_rate", b"female")])
def test_amass_reader_layouts(tmp_path, width, rate_key, gender):
    src = _amass_fixture(tmp_path / "seq_poses.npz", width, rate_key, gender)
    clip = load_amass_npz(tmp_path / "seq_poses.npz")
    assert clip.fps == 120.0 and clip.gender in ("male", "female") and clip.num_frames == 4
    np.testing.assert_allclose(clip.poses[:, 3:66], src["poses"][:, 3:66], atol=1e-6)
    assert (clip.poses[:, 66:] == 0).all()  # SMPL hands zero, NOT poses[:, 66:72]
    np.testing.assert_allclose(clip.betas, src["betas"][:10], atol=1e-6)
    for t in range(4):
        R_ref = A_ZUP_TO_YUP @ rodrigues(src["poses"][t, :3])
        np.testing.assert_allclose(rodrigues(clip.poses[t, :3].astype(np.float64)), R_ref,
                                   atol=1e-5)
    np.testing.assert_allclose(clip.transl, src["trans"] @ A_ZUP_TO_YUP.T, atol=1e-6)


def test_amass_reader_with_pelvis_is_an_exact_change_of_frame(tmp_path):
    src = _amass_fixture(tmp_path / "s.npz")
    clip = load_amass_npz(tmp_path / "s.npz", pelvis_rest_m=REST_J[0])
    smpl_pose = np.concatenate([src["poses"][:, :66], np.zeros((4, 6))], 1)
    joints_zup = fk_loop(smpl_pose, src["trans"])
    joints_yup = fk_loop(clip.poses.astype(np.float64), clip.transl.astype(np.float64))
    np.testing.assert_allclose(joints_yup, joints_zup @ A_ZUP_TO_YUP.T, atol=1e-5)


@pytest.mark.parametrize("change, match", [
    (dict(drop=("trans",)), "missing AMASS keys"),
    (dict(drop=("mocap_framerate",)), "mocap_framerate"),
    (dict(width=72), r"\(T, 156\)")])
def test_amass_reader_rejects_malformed_files(tmp_path, change, match):
    _amass_fixture(tmp_path / "bad.npz", **change)
    with pytest.raises(ValueError, match=match):
        load_amass_npz(tmp_path / "bad.npz")


def test_amass_reader_other_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_amass_npz(tmp_path / "absent.npz")
    np.savez(tmp_path / "t.npz", poses=np.zeros((4, 156)), trans=np.zeros((3, 3)),
             betas=np.zeros(16), mocap_framerate=60.0)
    with pytest.raises(ValueError, match="trans must have shape"):
        load_amass_npz(tmp_path / "t.npz")
    np.savez(tmp_path / "o.npz", poses=np.zeros((4, 156)), trans=np.zeros((4, 3)),
             betas=np.zeros(16), mocap_framerate=60.0, gender=np.array([None], dtype=object))
    with pytest.raises(ValueError, match="pickle"):
        load_amass_npz(tmp_path / "o.npz")


@pytest.fixture(scope="module")
def body():
    try:
        from vhakit.body.model import BodyModel
        return BodyModel.open()
    except (ImportError, FileNotFoundError) as err:
        pytest.skip(f"open body model not available ({err}); build it first")


# ------------------------------------------------------------------ DeepMimic asset
@pytest.fixture(scope="module")
def deepmimic():
    if not DEEPMIMIC_ASSET.is_file():
        pytest.fail(f"{DEEPMIMIC_ASSET} missing: run data_scripts/import_deepmimic_motions.py")
    return {c.name: c for c in load_deepmimic()}


WALKS = ("walk", "walker_0walk_forward", "walker_turn_left0", "walker_turn_right0")


def test_deepmimic_asset_contents(deepmimic):
    assert len(deepmimic) == 20 and sum(c.num_frames for c in deepmimic.values()) == 1810
    assert {"walk", "run", "jump", "cartwheel", "backflip", "crawl", "punch"} <= set(deepmimic)
    for c in deepmimic.values():
        assert c.source == "deepmimic" and 15 <= c.fps <= 61
        assert np.isfinite(c.poses).all() and np.isfinite(c.transl).all()
        p = c.poses.reshape(-1, 24, 3)
        for hinge, zero_axes in ((4, (1, 2)), (5, (1, 2)), (18, (0, 2)), (19, (0, 2))):
            assert (p[:, hinge, list(zero_axes)] == 0).all()
        assert (p[:, 4:6, 0] >= 0).all() and (p[:, 18, 1] <= 0).all() and (p[:, 19, 1] >= 0).all()


def test_deepmimic_walk_knee_range(deepmimic):
    knees = np.degrees(deepmimic["walk"].poses.reshape(-1, 24, 3)[:, [4, 5], 0])
    assert knees.min() >= 0 and knees.max() <= 80
    assert knees.max() >= 50  # a walk does bend the knee in swing


def _joints(clip, body):
    if body is None:
        return fk_loop(clip.poses.astype(np.float64), clip.transl.astype(np.float64))
    t = clip.to_torch()
    with torch.no_grad():
        return body.from_poses(t["poses"], t["betas"], t["transl"]).joints.double().numpy()


@pytest.mark.parametrize("use_body", [False, True])
def test_deepmimic_walks_have_no_flipped_limbs(deepmimic, use_body, request):
    model = request.getfixturevalue("body") if use_body else None
    for name in WALKS:
        clip = deepmimic[name]
        J = _joints(clip, model)  # (T, 24, 3) world
        R_root = np.stack([rodrigues(r) for r in clip.poses[:, :3].astype(np.float64)])
        Jb = np.einsum("tji,tkj->tki", R_root, J - J[:, :1])  # body frame (x left, y up, z fwd)
        assert (Jb[:, 1, 0] > Jb[:, 2, 0]).all() and (Jb[:, 4, 0] > Jb[:, 5, 0]).all(), name
        if "turn" not in name:  # turning steps may cross the feet
            assert (Jb[:, 7, 0] > Jb[:, 8, 0]).all(), name
        shin = J[:, [7, 8]] - J[:, [4, 5]]  # (T, 2, 3) knee -> ankle, world
        down = -shin[..., 1] / np.linalg.norm(shin, axis=-1)  # cos(angle to straight down)
        assert (down > 0).all(), name  # shins never point up in a walk
        stance = np.argmin(J[:, [7, 8], 1], axis=1)  # the lower foot carries the body
        assert (down[np.arange(len(J)), stance] > math.cos(math.radians(35))).all(), name
        assert (J[:, [18, 19], 1] < J[:, [16, 17], 1]).all(), name  # elbows below shoulders
        fwd = R_root[:, :, 2] * np.array([1.0, 0.0, 1.0])  # heading: body z on the floor
        fwd /= np.linalg.norm(fwd, axis=1, keepdims=True)
        toe = J[:, [10, 11]] - J[:, [7, 8]]  # (T, 2, 3) ankle -> toe joint
        ahead = np.einsum("tfi,ti->tf", toe, fwd)[np.arange(len(J)), stance]
        assert (ahead > 0.05).all(), name  # the stance foot points forward
        assert (J[:, 15, 1] > J[:, 0, 1] + 0.3).all(), name  # head above pelvis
        yaw = np.degrees(np.unwrap(np.arctan2(fwd[:, 0], fwd[:, 2])))  # + = turned left
        if "turn_left" in name or "turn_right" in name:  # a mirrored retarget turns the other way
            assert (yaw[-1] - yaw[0]) * (1 if "left" in name else -1) > 20, name


def test_deepmimic_walk_feet_touch_the_floor(deepmimic, body):
    feet = torch.isin(body.part_labels, torch.tensor([7, 8, 10, 11]))
    for name in WALKS:
        t = deepmimic[name].to_torch()
        with torch.no_grad():
            v = body.from_poses(t["poses"], t["betas"], t["transl"]).vertices
        lowest_foot = v[:, feet, 1].amin(1)  # (T,) m: the stance foot's sole
        assert lowest_foot.min() > -0.01, name
        assert lowest_foot.max() < 0.05, name


# ------------------------------------------------------------------ procedural actions
T_S = torch.arange(240, dtype=torch.float64) / 30.0


@pytest.mark.parametrize("action", ACTIONS)
def test_procedural_design_within_limits_and_smooth(action):
    g = torch.Generator().manual_seed(7)
    for _ in range(6):
        params = sample_params(action, g)
        raw = action_poses(action, T_S, params, clamp=False)
        assert limit_violation_deg(raw).max() < 0.5, "the designed curves leave the limits"
        poses = action_poses(action, T_S, params)
        assert within_limits(poses).all()
        R = axis_angle_to_matrix_np(poses)
        speed = geodesic_deg(R[1:], R[:-1]) * 30.0  # (T-1, 24) degrees per second
        assert speed.max() < 1500, f"{action}: {float(speed.max()):.0f} deg/s"  # punches ~1000


def axis_angle_to_matrix_np(poses: torch.Tensor) -> torch.Tensor:
    from vhakit.geometry.rotations import axis_angle_to_matrix
    return axis_angle_to_matrix(poses.reshape(-1, 24, 3))


def test_procedural_params_are_seeded_and_varied():
    a = [sample_params("walk", torch.Generator().manual_seed(s)) for s in (0, 0, 1)]
    assert a[0] == a[1] and a[0] != a[2]
    with pytest.raises(ValueError, match="valid actions"):
        sample_params("moonwalk", torch.Generator())


@pytest.mark.parametrize("action", ["walk", "squat", "jumping_jacks", "kneel"])
def test_make_clip_grounded_and_feet_planted(action, body):
    clip = make_clip(action, 60, 30.0, seed=3, body_model=body)
    assert clip.poses.shape == (60, 72) and clip.source == "procedural"
    assert within_limits(torch.from_numpy(clip.poses.copy())).all()
    t = clip.to_torch()
    with torch.no_grad():
        out = body.from_poses(t["poses"], t["betas"], t["transl"])
    low = out.vertices[..., 1].amin(1)
    if action == "jumping_jacks":
        assert low.min().abs() < 1e-4 and low.max() > 0.03  # hops
    else:
        assert low.abs().max() < 1e-4  # every frame stands on y = 0
    if action in ("squat", "jumping_jacks"):  # both feet planted: their mid-point stays
        mid = out.joints[:, [7, 8, 10, 11]].mean(1)[:, [0, 2]]
        assert (mid - mid[0]).norm(dim=1).max() < 1e-4
    if action == "walk":
        assert (out.joints[-1, 0] - out.joints[0, 0])[[0, 2]].norm() > 1.0  # it goes somewhere
    again = make_clip(action, 60, 30.0, seed=3, body_model=body)
    np.testing.assert_array_equal(clip.transl, again.transl)


# ------------------------------------------------------------------ sampler
def test_sampler_within_limits_deterministic_and_broad():
    a, b = sample_poses(600, 0), sample_poses(600, 0)
    assert a.shape == (600, 72) and a.dtype == torch.float32 and torch.equal(a, b)
    assert not torch.equal(a, sample_poses(600, 1))
    assert within_limits(a).all()
    span = torch.rad2deg(a.amax(0) - a.amin(0)).reshape(24, 3)[1:]  # root: heading + tilt only
    width = torch.as_tensor(JOINT_LIMITS_DEG[1:, :, 1] - JOINT_LIMITS_DEG[1:, :, 0])
    wide = width > 0
    assert (span[wide] / width[wide]).min() > 0.6  # every free axis explored
    assert (span[~wide] == 0).all()  # hinge axes stay exactly 0


def test_skeleton_joints_match_the_body_model(body):
    from vhakit.data.placement import rest_joints, skeleton_joints
    poses, betas = sample_poses(8, 3).double(), torch.linspace(-1, 1, 10, dtype=torch.float64)
    with torch.no_grad():
        ref = body.from_poses(poses.float(), betas.float().expand(8, 10), None).joints.double()
    got = skeleton_joints(poses, rest_joints(body, betas))
    assert (got - ref).abs().max() < 1e-5


def test_clip_made_at_a_low_rate_equals_every_fifth_frame(body):
    fast = make_clip("walk", 50, 30.0, seed=11, body_model=body)
    slow = make_clip("walk", 10, 6.0, seed=11, body_model=body)
    np.testing.assert_allclose(slow.poses, fast.poses[::5], atol=1e-6)
    step = np.linalg.norm(np.diff(slow.transl[:, [0, 2]], axis=0), axis=1)
    step_ref = np.linalg.norm(np.diff(fast.transl[::5, [0, 2]], axis=0), axis=1)
    np.testing.assert_allclose(step, step_ref, atol=0.02)  # fast: 2x finer foot integration


# ------------------------------------------------------------------ DeepMimic retarget conventions
def _retarget_script():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "data_scripts" / "import_deepmimic_motions.py"
    spec = importlib.util.spec_from_file_location("import_deepmimic_motions", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _dm_frame(**joints) -> np.ndarray:
    """One DeepMimic frame (44 values) at rest, with some joints set (quaternions w, x, y, z)."""
    layout = [("dt", 1), ("root_pos", 3), ("root", 4), ("chest", 4), ("neck", 4),
              ("right_hip", 4), ("right_knee", 1), ("right_ankle", 4), ("right_shoulder", 4),
              ("right_elbow", 1), ("left_hip", 4), ("left_knee", 1), ("left_ankle", 4),
              ("left_shoulder", 4), ("left_elbow", 1)]
    out = []
    for name, n in layout:
        rest = {1: [0.0], 3: [0.0, 0.9, 0.0], 4: [1.0, 0.0, 0.0, 0.0]}[n]
        out += list(joints.get(name, rest))
    return np.array([out])


def _quat(axis: str, deg: float) -> list[float]:
    h = math.radians(deg) / 2
    return [math.cos(h)] + [math.sin(h) if a == axis else 0.0 for a in "xyz"]


@pytest.mark.parametrize("joints, expect", [
    ({}, {}),  # rest: only the arms-down offset of the shoulders
    ({"root": _quat("y", 90)}, {0: (0, 90, 0)}),  # DeepMimic's y is the kit's y
    ({"root": _quat("z", 30)}, {0: (-30, 0, 0)}),  # DeepMimic's z (right) is the kit's -x
    ({"chest": _quat("x", 30)}, {3: (0, 0, 10), 6: (0, 0, 10), 9: (0, 0, 10)}),  # x -> z
    ({"left_hip": _quat("z", 40)}, {1: (-40, 0, 0)}),  # thigh forward = SMPL hip flexion (-x)
    ({"right_knee": [-0.5]}, {5: (math.degrees(0.5), 0, 0)}),  # knee flexes about +x
    ({"left_elbow": [0.7], "right_elbow": [0.7]},
     {18: (0, -math.degrees(0.7), 0), 19: (0, math.degrees(0.7), 0)}),
])
def test_deepmimic_retarget_conventions(joints, expect):
    mod = _retarget_script()
    poses = np.degrees(mod.retarget_poses(mod.parse_frames(_dm_frame(**joints)))[0]).reshape(24, 3)
    want = np.zeros((24, 3))
    want[16], want[17] = (0, 0, -90), (0, 0, 90)  # SMPL T-pose arm -> DeepMimic arm hanging down
    for j, v in expect.items():
        want[j] = v
    np.testing.assert_allclose(poses, want, atol=1e-4)
