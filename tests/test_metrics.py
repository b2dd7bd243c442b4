"""vhakit.evaluation.metrics against an independent numpy implementation (per-frame loops, cv2/scipy-free
Rodrigues, Umeyama in numpy) and hand-computed cases."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from vhakit.body.model import H36M_JOINT_NAMES, H36M_REGRESSOR_ENV, JOINT_NAMES, h36m_regressor
from vhakit.evaluation.metrics import (
    angular_distance,
    geodesic_angle_deg,
    global_rotations,
    mpjpe,
    mpve,
    pa_mpjpe,
    regress_joints,
    summarize,
)
from vhakit.geometry.procrustes import procrustes_align, similarity_procrustes
from vhakit.geometry.rotations import axis_angle_to_matrix

# SMPL kinematic tree, written out here so the test does not depend on vhakit.body.
PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21]


# ---------------------------------------------------------------- numpy reference implementation
def np_rodrigues(aa: np.ndarray) -> np.ndarray:
    t = np.linalg.norm(aa)
    if t < 1e-12:
        return np.eye(3)
    k = aa / t
    K = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(t) * K + (1 - math.cos(t)) * K @ K


def np_mpjpe(p: np.ndarray, t: np.ndarray, root: int | None) -> np.ndarray:
    out = []
    for pf, tf in zip(p, t, strict=True):
        if root is not None:
            pf, tf = pf - pf[root], tf - tf[root]
        out.append(np.mean([np.sqrt(((a - b) ** 2).sum()) for a, b in zip(pf, tf, strict=True)]))
    return np.array(out)


def np_umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """SPIN-style compute_similarity_transform for one frame (N,3) -> aligned src."""
    mu1, mu2 = src.mean(0), dst.mean(0)
    X1, X2 = (src - mu1).T, (dst - mu2).T
    var1 = (X1 ** 2).sum()
    U, s, Vh = np.linalg.svd(X1 @ X2.T)
    V = Vh.T
    Z = np.eye(3)
    Z[-1, -1] *= np.sign(np.linalg.det(U @ V.T))
    R = V @ Z @ U.T
    scale = np.trace(R @ X1 @ X2.T) / var1
    t = mu2 - scale * R @ mu1
    return (scale * R @ src.T).T + t


def np_angle_deg(R1: np.ndarray, R2: np.ndarray) -> float:
    c = (np.trace(R1.T @ R2) - 1) / 2
    return math.degrees(math.acos(min(1.0, max(-1.0, c))))


def np_angular(pose_a: np.ndarray, pose_b: np.ndarray, joints, glob: bool) -> np.ndarray:
    out = []
    pairs = zip(pose_a.reshape(len(pose_a), -1, 3), pose_b.reshape(len(pose_b), -1, 3), strict=True)
    for a, b in pairs:
        Ra = [np_rodrigues(x) for x in a]
        Rb = [np_rodrigues(x) for x in b]
        if glob:
            for j in range(1, 24):  # parents precede children
                Ra[j] = Ra[PARENTS[j]] @ Ra[j]
                Rb[j] = Rb[PARENTS[j]] @ Rb[j]
        out.append(np.mean([np_angle_deg(Ra[j], Rb[j]) for j in joints]))
    return np.array(out)


def _rand(shape, seed, scale=1.0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64) * scale


# ---------------------------------------------------------------- positions
def test_mpjpe_matches_numpy_root_and_absolute():
    p, t = _rand((7, 24, 3), 0, 0.3), _rand((7, 24, 3), 1, 0.3)
    for align, root in (("root", 0), ("none", None)):
        ref = np_mpjpe(p.numpy(), t.numpy(), root)
        assert np.allclose(mpjpe(p, t, align=align).numpy(), ref, atol=1e-12)
    ref = np_mpjpe(p.numpy(), t.numpy(), 5)
    assert np.allclose(mpjpe(p, t, root_index=5).numpy(), ref, atol=1e-12)


def test_translated_copy_root_zero_absolute_offset():
    t = _rand((4, 24, 3), 2, 0.3)
    offset = torch.tensor([0.3, -0.4, 1.2], dtype=torch.float64)
    p = t + offset
    assert torch.allclose(mpjpe(p, t), torch.zeros(4, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(mpjpe(p, t, align="none"),
                          torch.full((4,), 1.3, dtype=torch.float64), atol=1e-12)
    # 13 mm offset on every vertex -> 13 mm MPVE; summarize reports millimetres.
    v = _rand((2, 500, 3), 3, 0.3)
    err = mpve(v + torch.tensor([0.0, 0.005, 0.012], dtype=torch.float64), v, align="none")
    assert summarize(mpve=err) == pytest.approx({"mpve_mm": 13.0})


def test_pa_mpjpe_of_similarity_copy_is_zero_and_matches_numpy():
    t = _rand((6, 17, 3), 4, 0.4)
    R = axis_angle_to_matrix(_rand((6, 3), 5))
    s = torch.rand(6, generator=torch.Generator().manual_seed(6), dtype=torch.float64) + 0.5
    p = s[:, None, None] * t @ R.transpose(1, 2) + _rand((6, 1, 3), 7)
    assert pa_mpjpe(p, t).abs().max() < 1e-10
    assert mpjpe(p, t).min() > 1e-3  # not trivially zero without the alignment
    # Against SPIN-style numpy Umeyama on noisy data.
    q = p + _rand((6, 17, 3), 8, 0.05)
    ref = np.array([np.mean(np.linalg.norm(np_umeyama(a, b) - b, axis=-1))
                    for a, b in zip(q.numpy(), t.numpy(), strict=True)])
    assert np.allclose(pa_mpjpe(q, t).numpy(), ref, atol=1e-10)


def test_procrustes_handles_reflection():
    t = _rand((3, 30, 3), 9, 0.4)
    mirrored = t * torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64)
    s, R, _ = similarity_procrustes(mirrored, t)
    det = torch.linalg.det(R)
    assert torch.allclose(det, torch.ones(3, dtype=torch.float64), atol=1e-10)
    assert (s > 0).all()
    # The best proper rotation cannot undo a mirror image: the residual stays positive.
    assert (procrustes_align(mirrored, t) - t).norm(dim=-1).mean() > 1e-2


def test_mpve_root_alignment_and_procrustes():
    v, root = _rand((3, 200, 3), 10, 0.3), _rand((3, 3), 11, 0.3)
    shift = torch.tensor([1.0, 2.0, 3.0], dtype=torch.float64)
    err = mpve(v + shift, v, align="root", pred_root=root + shift, target_root=root)
    assert err.abs().max() < 1e-12
    noisy = v + _rand((3, 200, 3), 12, 0.01)
    ref = np.array([np.mean(np.linalg.norm(np_umeyama(a, b) - b, axis=-1))
                    for a, b in zip(noisy.numpy(), v.numpy(), strict=True)])
    assert np.allclose(mpve(noisy, v, align="procrustes").numpy(), ref, atol=1e-10)
    with pytest.raises(ValueError, match="pred_root"):
        mpve(v, v)  # align="root" without roots


# ---------------------------------------------------------------- rotations
@pytest.mark.parametrize("seed", range(5))
def test_ninety_degrees_about_any_axis(seed):
    axis = torch.nn.functional.normalize(_rand((3,), seed), dim=0)
    R1 = axis_angle_to_matrix(_rand((3,), 100 + seed))
    R2 = R1 @ axis_angle_to_matrix(axis * math.pi / 2)
    assert geodesic_angle_deg(R1, R2).item() == pytest.approx(90.0, abs=1e-9)
    assert geodesic_angle_deg(R1, R1).item() == pytest.approx(0.0, abs=1e-6)


def test_angle_accurate_near_zero_and_pi():
    axis = torch.tensor([0.0, 0.6, 0.8], dtype=torch.float64)
    for deg in (1e-5, 0.01, 179.999, 180.0):
        R = axis_angle_to_matrix(axis * math.radians(deg))
        got = geodesic_angle_deg(torch.eye(3, dtype=torch.float64), R).item()
        assert got == pytest.approx(deg, rel=1e-6, abs=1e-9)


def test_identity_pose_zero_degrees():
    pose = _rand((5, 72), 13, 0.4)
    assert angular_distance(pose, pose).abs().max() < 1e-6
    assert angular_distance(pose, pose, rotations="global", parents=PARENTS).abs().max() < 1e-6


@pytest.mark.parametrize("glob", [False, True])
def test_angular_distance_matches_numpy(glob):
    a, b = _rand((4, 72), 14, 0.5), _rand((4, 72), 15, 0.5)
    joints = [0, 1, 2, 4, 5, 16, 17, 18, 19]
    kw = dict(rotations="global", parents=PARENTS) if glob else {}
    for js in (list(range(24)), joints):
        ref = np_angular(a.numpy(), b.numpy(), js, glob)
        got = angular_distance(a, b, joints=None if len(js) == 24 else js, **kw)
        assert np.allclose(got.numpy(), ref, atol=1e-7)
    # Matrices and (B, 24, 3) axis-angle inputs give the same answer.
    Ra = axis_angle_to_matrix(a.reshape(4, 24, 3))
    assert torch.allclose(angular_distance(Ra, b.reshape(4, 24, 3), **kw),
                          angular_distance(a, b, **kw), atol=1e-9)


def test_local_vs_global_differ_as_expected():
    """Rotating only the pelvis by 30 degrees: local error is 30 deg on one joint of 24; global
    error is 30 deg on every joint (all children inherit it)."""
    a = torch.zeros(1, 72, dtype=torch.float64)
    b = a.clone()
    b[0, 1] = math.radians(30)
    assert angular_distance(a, b).item() == pytest.approx(30 / 24)
    assert angular_distance(a, b, rotations="global", parents=PARENTS).item() == pytest.approx(30)
    assert angular_distance(a, b, rotations="global").item() == pytest.approx(30)  # body's tree
    per = angular_distance(a, b, per_joint=True)
    assert per.shape == (1, 24) and per[0, 0].item() == pytest.approx(30)


def test_global_rotations_chain():
    L = axis_angle_to_matrix(_rand((2, 24, 3), 16, 0.3))
    G = global_rotations(L, PARENTS)
    # left wrist (20): pelvis -> spine1 -> spine2 -> spine3 -> left_collar -> shoulder -> elbow.
    chain = [0, 3, 6, 9, 13, 16, 18, 20]
    ref = L[:, chain[0]]
    for j in chain[1:]:
        ref = ref @ L[:, j]
    assert torch.allclose(G[:, 20], ref, atol=1e-12)


def test_bad_inputs_raise_clear_errors():
    x = torch.zeros(2, 24, 3)
    with pytest.raises(ValueError, match="same shape"):
        mpjpe(x, torch.zeros(2, 23, 3))
    with pytest.raises(ValueError, match=r"\(B, N, 3\)"):
        mpjpe(torch.zeros(24, 3), torch.zeros(24, 3))
    with pytest.raises(TypeError, match="torch.as_tensor"):
        mpjpe(np.zeros((2, 24, 3)), x)
    with pytest.raises(ValueError, match="align"):
        mpjpe(x, x, align="pelvis")
    with pytest.raises(ValueError, match="axis-angle"):
        angular_distance(torch.zeros(2, 71), torch.zeros(2, 71))
    with pytest.raises(ValueError, match="joints"):
        angular_distance(torch.zeros(2, 72), torch.zeros(2, 72), joints=[24])
    with pytest.raises(ValueError, match="NaN"):
        summarize(mpjpe=torch.tensor([float("nan")]))


# ---------------------------------------------------------------- joint sets (H36M 17)
def test_one_hot_regressor_reproduces_the_selected_vertices():
    v = _rand((3, 50, 3), 40)
    idx = [7, 0, 49, 7]
    onehot = torch.zeros(len(idx), 50, dtype=torch.float64)
    onehot[torch.arange(len(idx)), idx] = 1.0
    assert torch.equal(regress_joints(v, onehot), v[:, idx])
    # a dense regressor against a loop over frames, joints and vertices
    W = torch.rand(4, 50, generator=torch.Generator().manual_seed(41), dtype=torch.float64)
    ref = np.zeros((3, 4, 3))
    for b in range(3):
        for j in range(4):
            for i in range(50):
                ref[b, j] += W[j, i].item() * v[b, i].numpy()
    assert np.allclose(regress_joints(v, W).numpy(), ref, atol=1e-12)
    with pytest.raises(ValueError, match=r"\(J, 50\)"):
        regress_joints(v, W[:, :49])
    with pytest.raises(TypeError, match="torch.as_tensor"):
        regress_joints(v, W.numpy())


def test_h36m_equivalent_on_the_open_body(open_body):
    """The documented 17-joint definition, checked row by row against its ingredients."""
    reg, source = h36m_regressor(open_body)
    assert source == "mesh-equivalent" and reg.shape == (17, open_body.num_vertices)
    assert (reg >= 0).all() and torch.allclose(reg.sum(1), torch.ones(17), atol=1e-6)
    J = open_body.lbs_arrays["J_regressor"].float()
    row = dict(zip(H36M_JOINT_NAMES, reg, strict=True))
    smpl = dict(zip(JOINT_NAMES, J, strict=True))
    for name in ("right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
                 "left_shoulder", "left_elbow", "left_wrist", "right_shoulder", "right_elbow",
                 "right_wrist"):
        assert torch.allclose(row[name], smpl[name], atol=1e-7), name
    assert torch.allclose(row["pelvis"], (smpl["left_hip"] + smpl["right_hip"]) / 2, atol=1e-7)
    thorax = (smpl["left_shoulder"] + smpl["right_shoulder"]) / 2
    assert torch.allclose(row["thorax"], thorax, atol=1e-7)
    assert torch.allclose(row["spine"], (row["pelvis"] + thorax) / 2, atol=1e-7)
    # vertex rings: equal weights on the keypoint and its neighbours
    nose = row["nose"]
    assert nose[open_body.landmarks["nose"]] > 0 and torch.allclose(
        nose[nose > 0], nose[nose > 0][0].expand(int((nose > 0).sum())))
    rest = regress_joints(open_body.v_template[None].float(), reg)[0]  # (17, 3) T-pose
    top = rest[H36M_JOINT_NAMES.index("head_top")]
    assert top[1] == rest[:, 1].max() and abs(top[1] - open_body.v_template[:, 1].max()) < 0.01
    assert rest[H36M_JOINT_NAMES.index("nose"), 2] > rest[H36M_JOINT_NAMES.index("thorax"), 2]


def test_h36m_regressor_files_are_checked(open_body, tmp_path, monkeypatch):
    official = tmp_path / "J_regressor_h36m.npy"
    np.save(official, np.zeros((17, 6890), np.float32))  # SMPL's vertex count
    with pytest.raises(ValueError, match=r"\(17, 6889\)"):
        h36m_regressor(open_body, official)
    with pytest.raises(FileNotFoundError, match="J_regressor_h36m"):
        h36m_regressor(open_body, tmp_path / "missing.npy")
    mine = tmp_path / "mine.npy"
    W = np.random.default_rng(0).random((17, open_body.num_vertices)).astype(np.float32)
    np.save(mine, W)
    reg, source = h36m_regressor(open_body, mine)
    assert source == "official:mine.npy" and np.array_equal(reg.numpy(), W)
    # the environment variable is for licensed SMPL: the open body keeps its own equivalent
    monkeypatch.setenv(H36M_REGRESSOR_ENV, str(official))
    assert h36m_regressor(open_body)[1] == "mesh-equivalent"


def test_trunk_tilt_deg_known_geometry_and_smpl_bodies():
    """Closed form: a trunk tipped by a known angle about a horizontal axis; then smplx-posed
    open bodies: upright at rest, and a 60-degree hip-flexion bend of the root reads 60."""
    import math

    from vhakit.body.model import BodyModel
    from vhakit.evaluation.metrics import trunk_tilt_deg

    angles = torch.tensor([0.0, 10.0, 45.0, 90.0, 135.0, 180.0])
    joints = torch.zeros(len(angles), 24, 3)
    rad = torch.deg2rad(angles)
    # neck 0.5 m from the pelvis, tipped about the axis (cos 30, 0, sin 30): the tilt is the angle
    joints[:, 12] = 0.5 * torch.stack([-torch.sin(rad) * math.sin(math.pi / 6), torch.cos(rad),
                                       torch.sin(rad) * math.cos(math.pi / 6)], -1)
    joints += torch.tensor([0.3, 0.9, -1.2])  # translation does not matter
    torch.testing.assert_close(trunk_tilt_deg(joints), angles, atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="joints must have shape"):
        trunk_tilt_deg(joints[:, :17])

    body = BodyModel.open()
    orient = torch.tensor([[0.0, 0.0, 0.0], [math.radians(60), 0.0, 0.0]])
    out = body(betas=torch.zeros(2, 10), global_orient=orient, body_pose=torch.zeros(2, 69),
               transl=torch.zeros(2, 3))
    rest = float(trunk_tilt_deg(out.joints[:1]))
    assert rest < 10.0  # the rest pose's spine is near vertical
    # rotating the whole body by 60 degrees about x tips the trunk by 60 +- the rest lean
    assert abs(float(trunk_tilt_deg(out.joints[1:])) - 60.0) <= rest + 1e-3
