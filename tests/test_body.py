"""vhakit.body: the open body model, the SMPL file loader and the BodyModel interface.

References: smplx.lbs.lbs on the arrays read straight from the npz, a naive numpy loop over the
kinematic tree, closed-form expectations (SMPL's joint semantics, T-pose, mirror symmetry) and a
stand-in SMPL pickle written in the official layout.
"""
from __future__ import annotations

import math
import os
import pickle
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from smplx.lbs import lbs as smplx_lbs

from vhakit.body.model import JOINT_NAMES, OPEN_MODEL_PATH, SMPL_PARENTS, BodyModel, smpl_available
from vhakit.body.smpl_files import UnsafePickleError, load_smpl_file

J = {name: i for i, name in enumerate(JOINT_NAMES)}


def _npz():
    with np.load(OPEN_MODEL_PATH, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _pose(batch: int = 1, **joints) -> torch.Tensor:
    """(B, 72) SMPL pose with the named joints' axis-angle set."""
    p = torch.zeros(batch, 72, dtype=torch.float64)
    for name, aa in joints.items():
        p[:, 3 * J[name]: 3 * J[name] + 3] = torch.tensor(aa, dtype=torch.float64)
    return p


def _random_poses(n: int, g: torch.Generator) -> torch.Tensor:
    """(n, 72) poses within simple joint limits: small rotations, hinge-like knees and elbows."""
    p = (torch.randn(n, 24, 3, generator=g) * 0.25).clamp(-0.6, 0.6)
    p[:, 0] = 0.0
    p[:, 0, 1] = torch.rand(n, generator=g) * 2 * math.pi - math.pi  # any heading
    for knee in ("left_knee", "right_knee"):
        p[:, J[knee]] = 0.0
        p[:, J[knee], 0] = torch.rand(n, generator=g) * 2.0  # flexion only
    for elbow, sign in (("left_elbow", -1.0), ("right_elbow", 1.0)):
        p[:, J[elbow]] = 0.0
        p[:, J[elbow], 1] = sign * torch.rand(n, generator=g) * 2.0
    return p.reshape(n, 72)


def _numpy_lbs(arr: dict, betas: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Naive single-body linear blend skinning: a loop over the kinematic tree (no posedirs)."""
    v = arr["v_template"] + arr["shapedirs"] @ betas
    joints = arr["J_regressor"] @ v
    world = []
    for j in range(24):
        aa = pose[3 * j: 3 * j + 3]
        angle = np.linalg.norm(aa)
        k = aa / angle if angle > 0 else np.zeros(3)
        kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
        rot = np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * kx @ kx
        local = np.eye(4)
        local[:3, :3] = rot
        parent = SMPL_PARENTS[j]
        local[:3, 3] = joints[j] - (joints[parent] if parent >= 0 else 0)
        world.append(local if parent < 0 else world[parent] @ local)
    out = np.zeros_like(v)
    for j in range(24):
        g = world[j].copy()
        g[:3, 3] -= g[:3, :3] @ joints[j]  # transform relative to the rest pose
        out += arr["weights"][:, j: j + 1] * (v @ g[:3, :3].T + g[:3, 3])
    return out


# ---------------------------------------------------------------------------------------------
# The forward pass against independent references
# ---------------------------------------------------------------------------------------------
def test_matches_independent_smplx_lbs_on_npz_arrays(open_body):
    arr = _npz()
    g = torch.Generator().manual_seed(0)
    betas = torch.randn(3, 10, generator=g).clamp(-2, 2)
    pose = _random_poses(3, g)
    transl = torch.randn(3, 3, generator=g)
    out = open_body.from_poses(pose, betas, transl)
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    posedirs = torch.zeros(207, arr["v_template"].size, dtype=torch.float64)
    parents = torch.tensor(SMPL_PARENTS)
    v_ref, j_ref = smplx_lbs(betas.double(), pose.double(), t(arr["v_template"]),
                             t(arr["shapedirs"]), posedirs, t(arr["J_regressor"]), parents,
                             t(arr["weights"]))
    v_ref = v_ref + transl[:, None].double()
    j_ref = j_ref + transl[:, None].double()
    assert (out.vertices.double() - v_ref).abs().max() <= 1e-6
    assert (out.joints.double() - j_ref).abs().max() <= 1e-6
    idx = arr["subsample_indices"]
    assert torch.equal(out.vertices108, out.vertices[:, idx])


def test_matches_naive_numpy_loop(open_body):
    arr = {k: np.asarray(v, np.float64) for k, v in _npz().items()
           if k in ("v_template", "shapedirs", "J_regressor", "weights")}
    g = torch.Generator().manual_seed(1)
    betas = torch.randn(1, 10, generator=g).clamp(-2, 2)
    pose = _random_poses(1, g)
    expected = _numpy_lbs(arr, betas[0].double().numpy(), pose[0].double().numpy())
    got = open_body.from_poses(pose, betas).vertices[0].double().numpy()
    assert np.abs(got - expected).max() < 2e-5  # float32 model vs float64 loop


def test_batched_equals_per_item(open_body):
    g = torch.Generator().manual_seed(2)
    betas, pose = torch.randn(4, 10, generator=g), _random_poses(4, g)
    batched = open_body.from_poses(pose, betas).vertices
    single = torch.cat([open_body.from_poses(pose[i:i + 1], betas[i:i + 1]).vertices
                        for i in range(4)])
    assert torch.allclose(batched, single, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# The open model's anatomy and conventions
# ---------------------------------------------------------------------------------------------
def _standing_height(vertices: torch.Tensor) -> torch.Tensor:
    """(B,) head top minus lowest foot point, y up."""
    return vertices[..., 1].amax(-1) - vertices[..., 1].amin(-1)


def test_heights_and_random_poses_are_plausible(open_body):
    g = torch.Generator().manual_seed(3)
    betas = torch.randn(200, 10, generator=g).clamp(-2, 2)
    rest = open_body(betas=betas)
    heights = _standing_height(rest.vertices)
    assert heights.min() > 1.2 and heights.max() < 2.2
    assert heights.min() < 1.55 and heights.max() > 1.85  # spans short to tall adults
    posed = open_body.from_poses(_random_poses(200, g), betas)
    assert torch.isfinite(posed.vertices).all() and torch.isfinite(posed.joints).all()
    # nothing flies away from the pelvis: a posed body fits in a 1.3 m ball around it
    reach = (posed.vertices - posed.joints[:, :1]).norm(dim=-1).amax(-1)
    assert reach.max() < 1.3


def test_beta0_is_height(open_body):
    b = torch.zeros(3, 10)
    b[:, 0] = torch.tensor([-2.0, 0.0, 2.0])
    h = _standing_height(open_body(betas=b).vertices)
    assert h[0] < 1.55 < h[1] < 1.8 < h[2]


def test_zero_pose_is_t_pose(open_body):
    g = torch.Generator().manual_seed(4)
    out = open_body(betas=torch.randn(16, 10, generator=g).clamp(-2, 2))
    for side in ("left", "right"):
        for part in ("elbow", "wrist", "hand"):
            dy = out.joints[:, J[f"{side}_{part}"], 1] - out.joints[:, J[f"{side}_shoulder"], 1]
            assert dy.abs().max() < 0.03, (side, part)
    # arms stretched sideways: wrists far from the body axis
    assert (out.joints[:, J["left_wrist"], 0] > 0.5).all()
    assert (out.joints[:, J["right_wrist"], 0] < -0.5).all()


def test_rest_mesh_is_mirror_symmetric(open_body):
    from scipy.spatial import cKDTree

    g = torch.Generator().manual_seed(5)
    v = open_body(betas=torch.randn(3, 10, generator=g).clamp(-2, 2)).vertices.numpy()
    for body in np.concatenate([open_body.v_template.numpy()[None], v]):
        dist, _ = cKDTree(body).query(body * np.array([-1.0, 1.0, 1.0]))
        assert dist.max() <= 0.005


def test_skinning_weights_and_regressor_are_convex():
    arr = _npz()
    w, reg = arr["weights"], arr["J_regressor"]
    assert w.shape == (arr["v_template"].shape[0], 24) and (w >= 0).all()
    assert np.allclose(w.sum(1), 1.0, atol=1e-5)
    assert (reg >= 0).all() and np.allclose(reg.sum(1), 1.0, atol=1e-5)
    assert "posedirs" not in arr  # zero by construction, documented in assets/README.md


@pytest.mark.parametrize("joint, axis, sign, chain", [
    ("left_elbow", 1, -1.0, ("left_shoulder", "left_elbow", "left_wrist")),
    ("right_elbow", 1, 1.0, ("right_shoulder", "right_elbow", "right_wrist")),
    ("left_knee", 0, 1.0, ("left_hip", "left_knee", "left_ankle")),
])
def test_bend_keeps_segment_lengths(open_body, joint, axis, sign, chain):
    """A 90 degree elbow (knee) bend keeps the upper-arm and forearm (thigh and shin) lengths.

    The lengths are measured between joints *regressed from the posed mesh* (J_regressor @
    vertices, as H36M-style evaluation does), so a mesh that collapses or stretches at the joint,
    or a regressor that spreads its vertices along the bone, fails.
    """
    aa = [0.0, 0.0, 0.0]
    aa[axis] = sign * math.pi / 2
    out = open_body.from_poses(torch.cat([_pose(), _pose(**{joint: aa})]).float())
    regressor = open_body.lbs_arrays["J_regressor"]
    regressed = torch.einsum("jv,bvc->bjc", regressor, out.vertices)  # (2, 24, 3)
    a, b, c = (J[name] for name in chain)
    # the bend is real: the distal segment turned by ~90 degrees
    d0 = out.joints[0, c] - out.joints[0, b]
    d1 = out.joints[1, c] - out.joints[1, b]
    assert abs(torch.dot(d0, d1) / (d0.norm() * d1.norm())) < 0.05
    for start, end in ((a, b), (b, c)):
        rest_len = (regressed[0, end] - regressed[0, start]).norm()
        bent_len = (regressed[1, end] - regressed[1, start]).norm()
        assert abs(bent_len / rest_len - 1) < 0.02, (JOINT_NAMES[start], JOINT_NAMES[end],
                                                     float(rest_len), float(bent_len))
    assert (regressed[1, b] - out.joints[1, b]).norm() < 0.01  # regressed ~ kinematic joint


def test_subsample_indices_cover_every_part(open_body):
    idx = open_body.subsample_indices
    assert idx.shape == (108,) and len(torch.unique(idx)) == 108
    assert idx.min() >= 0 and idx.max() < open_body.num_vertices
    counts = torch.bincount(open_body.part_labels[idx], minlength=24)
    assert (counts >= 2).all(), dict(zip(JOINT_NAMES, counts.tolist(), strict=True))


def test_smpl_semantics(open_body):
    assert tuple(open_body.joint_names) == JOINT_NAMES
    assert JOINT_NAMES[:4] == ("pelvis", "left_hip", "right_hip", "spine1")
    assert open_body.parents.tolist() == list(SMPL_PARENTS)
    rest = open_body().joints[0]
    for name in JOINT_NAMES:
        if name.startswith("left_"):
            assert rest[J[name], 0] > 0.02, name
            assert rest[J["right_" + name[5:]], 0] < -0.02, name
    # positive x-rotation of the left knee: the ankle goes backwards (-z) and up (+y)
    bent = open_body.from_poses(_pose(left_knee=[0.8, 0, 0]).float()).joints[0]
    move = bent[J["left_ankle"]] - rest[J["left_ankle"]]
    assert move[2] < -0.2 and move[1] > 0.05
    # head is above the pelvis, the front of the feet is +z
    assert rest[J["head"], 1] > rest[J["pelvis"], 1] + 0.4
    assert rest[J["left_foot"], 2] > rest[J["left_ankle"], 2] + 0.05


def test_model_attributes_and_extra_keypoints(open_body):
    assert open_body.name == "open" and open_body.num_betas == 10
    assert open_body.faces.dtype == torch.long and open_body.faces.shape[1] == 3
    assert open_body.faces.max() == open_body.num_vertices - 1
    assert 6000 < open_body.num_vertices < 7500
    # smplx's extra keypoints use our own vertex ids, all inside the mesh
    selector = open_body._smpl.vertex_joint_selector.extra_joints_idxs
    assert selector.max() < open_body.num_vertices
    assert open_body().joints.shape == (1, 24, 3)


def test_dtype_follows_the_module(open_body):
    body64 = BodyModel.open().double()
    out = body64(betas=torch.zeros(2, 10))
    assert out.vertices.dtype == torch.float64
    assert torch.allclose(out.vertices.float(), open_body(betas=torch.zeros(2, 10)).vertices,
                          atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, match", [
    ({"betas": torch.zeros(2, 9)}, r"betas must have shape \(B, 10\), got \(2, 9\)"),
    ({"body_pose": torch.zeros(69)}, r"body_pose must have shape \(B, 69\), got \(69,\)"),
    ({"global_orient": torch.zeros(1, 3, 1)}, r"global_orient must have shape \(B, 3\)"),
    ({"transl": torch.full((1, 3), float("nan"))}, r"transl contains NaN"),
    ({"betas": torch.full((1, 10), float("inf"))}, r"betas contains NaN or inf"),
    ({"betas": torch.zeros(2, 10), "transl": torch.zeros(3, 3)}, r"batch sizes differ"),
])
def test_bad_inputs_raise_value_error(open_body, kwargs, match):
    with pytest.raises(ValueError, match=match):
        open_body(**kwargs)


def test_bad_input_types(open_body):
    with pytest.raises(TypeError, match="betas must be a torch.Tensor"):
        open_body(betas=np.zeros((1, 10)))
    with pytest.raises(TypeError, match="floating-point"):
        open_body(betas=torch.zeros(1, 10, dtype=torch.long))
    with pytest.raises(ValueError, match=r"poses must have shape \(B, 72\)"):
        open_body.from_poses(torch.zeros(1, 69))


# ---------------------------------------------------------------------------------------------
# Licensed-SMPL loading: a stand-in file in SMPL's pickle layout, and a malicious one
# ---------------------------------------------------------------------------------------------
class _FakeCh:
    """Pickles like chumpy.ch.Ch: class chumpy.ch.Ch, state = its __dict__ with the array 'x'."""

    def __init__(self, x):
        self.x = x
        self._dirty_vars = set()
        self._itr = None

    def __getstate__(self):
        return dict(self.__dict__)


def _write_stand_in_smpl(path, monkeypatch, g: np.random.Generator) -> dict:
    """A small SMPL-layout pickle (protocol 2, Python-2 module names) from the open model."""
    arr = _npz()
    n = arr["v_template"].shape[0]
    fake = types.ModuleType("chumpy.ch")
    _FakeCh.__module__, _FakeCh.__qualname__, _FakeCh.__name__ = "chumpy.ch", "Ch", "Ch"
    fake.Ch = _FakeCh
    monkeypatch.setitem(sys.modules, "chumpy", types.ModuleType("chumpy"))
    monkeypatch.setitem(sys.modules, "chumpy.ch", fake)
    data = {
        "v_template": arr["v_template"].astype(np.float64),
        "shapedirs": _FakeCh(arr["shapedirs"].astype(np.float64)),
        "posedirs": g.normal(0, 1e-3, (n, 3, 207)),
        "J_regressor": sp.csc_matrix(arr["J_regressor"].astype(np.float64)),
        "weights": arr["weights"].astype(np.float64),
        "kintree_table": arr["kintree_table"].astype(np.int64),
        "f": arr["f"].astype(np.uint32),
        "J": arr["J_regressor"] @ arr["v_template"],
        "bs_type": "lrotmin", "bs_style": "lbs",
        "weights_prior": arr["weights"].astype(np.float64),
        "vert_sym_idxs": np.arange(n),
    }
    raw = pickle.dumps(data, protocol=2)
    for new, old in ((b"numpy._core.multiarray", b"numpy.core.multiarray"),
                     (b"scipy.sparse._csc", b"scipy.sparse.csc")):
        raw = raw.replace(new, old)  # the module names a Python-2-era SMPL file holds
    path.write_bytes(raw)
    return data


def test_loads_stand_in_smpl_pickle_without_chumpy(tmp_path, monkeypatch):
    monkeypatch.setenv("VHAKIT_CACHE_DIR", str(tmp_path / "cache"))
    data = _write_stand_in_smpl(tmp_path / "SMPL_NEUTRAL.pkl", monkeypatch,
                                np.random.default_rng(0))
    monkeypatch.delitem(sys.modules, "chumpy.ch")  # the loader must not need it
    loaded = load_smpl_file(tmp_path / "SMPL_NEUTRAL.pkl")
    assert np.array_equal(loaded["shapedirs"], data["shapedirs"].x)
    assert np.array_equal(loaded["J_regressor"], data["J_regressor"].toarray())
    assert loaded["f"].dtype == np.uint32

    body = BodyModel.smpl(tmp_path, gender="neutral")
    assert body.name == "smpl-neutral" and len(torch.unique(body.subsample_indices)) == 108
    assert list((tmp_path / "cache").glob("subsample108_*.npy"))  # computed once, cached
    g = torch.Generator().manual_seed(6)
    betas, pose = torch.randn(2, 10, generator=g), _random_poses(2, g)
    out = body.from_poses(pose, betas)
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64))  # noqa: E731
    v_ref, _ = smplx_lbs(betas.double(), pose.double(), t(data["v_template"]),
                         t(data["shapedirs"].x), t(data["posedirs"]).reshape(-1, 207).T,
                         t(data["J_regressor"].toarray()), torch.tensor(SMPL_PARENTS),
                         t(data["weights"]))
    assert (out.vertices.double() - v_ref).abs().max() <= 1e-5  # posedirs are used

    idx_file = tmp_path / "idx.txt"
    np.savetxt(idx_file, np.arange(108), fmt="%d")
    body2 = BodyModel.smpl(tmp_path / "SMPL_NEUTRAL.pkl", subsample_indices=idx_file)
    assert body2.subsample_indices.tolist() == list(range(108))


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned > vhakit_pwned.txt",))


class _EvalReduce:
    def __reduce__(self):
        return (eval, ("1 + 1",))


@pytest.mark.parametrize("payload", [_Evil(), _EvalReduce()], ids=["os.system", "eval"])
def test_malicious_pickle_is_refused(tmp_path, monkeypatch, payload):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps({"v_template": payload}, protocol=2))
    with pytest.raises(UnsafePickleError, match="refusing to load global"):
        load_smpl_file(path)
    with pytest.raises(UnsafePickleError):
        BodyModel.smpl(tmp_path)
    assert not (tmp_path / "vhakit_pwned.txt").exists()


def test_missing_smpl_files_explain_where_to_get_them(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as err:
        BodyModel.smpl(tmp_path, gender="female")
    msg = str(err.value)
    assert "SMPL_FEMALE.pkl" in msg and str(tmp_path) in msg and "smpl.is.tue.mpg.de" in msg
    monkeypatch.delenv("VHAKIT_SMPL_DIR", raising=False)
    with pytest.raises(FileNotFoundError, match="VHAKIT_SMPL_DIR"):
        BodyModel.smpl()
    assert not smpl_available()
    with pytest.raises(ValueError, match="gender"):
        BodyModel.smpl(tmp_path, gender="other")


def test_npz_layout_is_accepted(tmp_path):
    arr = _npz()
    np.savez(tmp_path / "SMPL_MALE.npz", posedirs=np.zeros((len(arr["weights"]), 3, 207)),
             **{k: arr[k] for k in ("v_template", "shapedirs", "J_regressor", "weights",
                                    "kintree_table", "f")})
    body = BodyModel.smpl(tmp_path, gender="male", subsample_indices=arr["subsample_indices"])
    ref = BodyModel.open()
    assert body.name == "smpl-male"
    assert torch.allclose(body().vertices, ref().vertices, atol=1e-6)


# ---------------------------------------------------------------------------------------------
# Licensed SMPL (skipped unless VHAKIT_SMPL_DIR points at the official files)
# ---------------------------------------------------------------------------------------------
needs_smpl = pytest.mark.skipif(not smpl_available(), reason="licensed SMPL not available: set "
                                "VHAKIT_SMPL_DIR to a folder with SMPL_NEUTRAL.pkl")


@pytest.mark.smpl
@needs_smpl
def test_licensed_smpl_semantics_match_open_model(open_body):
    body = BodyModel.smpl()
    assert body.num_vertices == 6890 and len(torch.unique(body.subsample_indices)) == 108
    for model in (body, open_body):
        rest = model().joints[0]
        bent = model.from_poses(_pose(left_knee=[0.8, 0, 0]).float()).joints[0]
        move = bent[J["left_ankle"]] - rest[J["left_ankle"]]
        assert move[2] < -0.2 and move[1] > 0.05
        assert rest[J["left_shoulder"], 0] > 0


def test_broadcast_and_gradients(open_body):
    g = torch.Generator().manual_seed(7)
    betas = torch.randn(3, 10, generator=g, requires_grad=True)
    body_pose = (torch.randn(1, 69, generator=g) * 0.2).requires_grad_()
    out = open_body(betas=betas, body_pose=body_pose)  # pose of batch 1 broadcast to 3
    assert out.vertices.shape == (3, open_body.num_vertices, 3)
    assert torch.allclose(out.vertices[1], open_body(betas=betas[1:2], body_pose=body_pose)
                          .vertices[0], atol=1e-6)
    out.vertices108.square().sum().backward()
    for grad in (betas.grad, body_pose.grad):
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0
