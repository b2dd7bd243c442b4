"""Build ``vhakit/assets/open_body.npz``: a licence-free body model in SMPL's format, from Anny.

Anny (NAVER, code Apache-2.0, MakeHuman-derived assets CC0) is a parametric human body driven
by a few phenotype sliders (gender, age, muscle, weight, height, proportions). This script turns
it into the arrays SMPL stores, so ``smplx.SMPL`` (and every SMPL tool) can drive it:

1. sample ``--samples`` adult Anny bodies at rest (phenotypes from Anny's
   ``SimpleShapeDistribution``, morphological ages 18-70);
2. change frame (Anny: x left, y back, z up -> SMPL: x left, y up, z front; metres);
3. merge Anny's 104 bone weights into SMPL's 24 joints (SMPL semantics) and place the joints;
4. pose every body from Anny's A-pose into SMPL's T-pose (collar, shoulder, elbow, wrist) and
   use that as the new rest pose ("re-rest"); the skinning weights are unchanged;
5. keep the body surface only (drop eyeballs and the mouth cavity), decimate it to ~6890
   vertices *symmetrically* (left half decimated, mirrored), and carry all per-vertex data over
   barycentrically;
6. PCA of the bodies -> ``v_template`` + ``shapedirs`` (10 components, betas ~ N(0, 1));
7. ``J_regressor``: per joint a convex combination of nearby vertices fitted to all bodies;
8. smooth the merged weights a little across group borders; the 108 subsampled vertices.

``posedirs`` are zero (Anny has no pose-corrective blend shapes) and are not stored.

Usage:  ANNY_CACHE_DIR=/work/anny_cache python data_scripts/build_open_body_model.py
"""
from __future__ import annotations

import argparse
import datetime
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch

from vhakit.body.model import JOINT_NAMES, SMPL_PARENTS
from vhakit.body.subsample import compute_subsample_indices

# Anny (Blender-style: x left, y back, z up) -> SMPL (x left, y up, z front): rows of the rotation.
ANNY_TO_SMPL = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])

# SMPL joint -> Anny bones merged into it (".S" is expanded to ".L" / ".R").
JOINT_BONES = {
    "pelvis": ["root", "pelvis.L", "pelvis.R", "spine05"],
    "left_hip": ["upperleg01.L", "upperleg02.L"], "right_hip": ["upperleg01.R", "upperleg02.R"],
    "spine1": ["spine04", "spine03"],
    "left_knee": ["lowerleg01.L", "lowerleg02.L"], "right_knee": ["lowerleg01.R", "lowerleg02.R"],
    "spine2": ["spine02"],
    "left_ankle": ["foot.L"], "right_ankle": ["foot.R"],
    "spine3": ["spine01"],
    "left_foot": ["toe*.L"], "right_foot": ["toe*.R"],
    "neck": ["neck01", "neck02", "neck03"],
    "left_collar": ["clavicle.L", "shoulder01.L"], "right_collar": ["clavicle.R", "shoulder01.R"],
    "head": ["head", "eye.L", "eye.R"],
    "left_shoulder": ["upperarm01.L", "upperarm02.L"],
    "right_shoulder": ["upperarm01.R", "upperarm02.R"],
    "left_elbow": ["lowerarm01.L", "lowerarm02.L"], "right_elbow": ["lowerarm01.R", "lowerarm02.R"],
    # SMPL's wrist joint moves the palm, its hand joint (at the knuckles) the fingers.
    "left_wrist": ["wrist.L", "metacarpal*.L"], "right_wrist": ["wrist.R", "metacarpal*.R"],
    "left_hand": ["finger*.L"], "right_hand": ["finger*.R"],
}
# SMPL joint -> Anny bone heads averaged to place it.
JOINT_HEADS = {
    "pelvis": ["root"], "spine1": ["spine04"], "spine2": ["spine02"], "spine3": ["spine01"],
    "neck": ["neck01"], "head": ["head"],
    "left_hip": ["upperleg01.L"], "left_knee": ["lowerleg01.L"], "left_ankle": ["foot.L"],
    "left_foot": [f"toe{k}-1.L" for k in range(1, 6)],
    "left_collar": ["clavicle.L", "shoulder01.L"], "left_shoulder": ["upperarm01.L"],
    "left_elbow": ["lowerarm01.L"], "left_wrist": ["wrist.L"],
    "left_hand": [f"finger{k}-1.L" for k in range(2, 6)],
}
for _name in list(JOINT_HEADS):
    if _name.startswith("left_"):
        JOINT_HEADS["right_" + _name[5:]] = [b[:-2] + ".R" for b in JOINT_HEADS[_name]]

ARM_CHAIN = ["collar", "shoulder", "elbow", "wrist", "hand"]


def _match(label: str, pattern: str) -> bool:
    if "*" in pattern:
        head, tail = pattern.split("*")
        return label.startswith(head) and label.endswith(tail)
    return label == pattern


def bone_groups(bone_labels: list[str]) -> np.ndarray:
    """(n_bones,) index of the SMPL joint each Anny bone is merged into."""
    group = np.full(len(bone_labels), -1)
    for j, name in enumerate(JOINT_NAMES):
        for i, label in enumerate(bone_labels):
            if any(_match(label, p) for p in JOINT_BONES[name]):
                group[i] = j
    missing = [bone_labels[i] for i in np.flatnonzero(group < 0)]
    if missing:
        raise RuntimeError(f"Anny bones not mapped to an SMPL joint: {missing}")
    return group


def sample_anny(n: int, seed: int, batch: int = 100) -> dict:
    """Rest vertices (n, Va, 3), bone heads (n, 104, 3) in the SMPL frame, and the rig data."""
    import anny
    from anny.shape_distribution import SimpleShapeDistribution

    model = anny.Anny()
    torch.manual_seed(seed)  # Anny's distributions draw from torch's global generator
    ages = torch.distributions.Uniform(torch.tensor(18.0, dtype=model.dtype),
                                       torch.tensor(70.0, dtype=model.dtype))
    dist = SimpleShapeDistribution(model, morphological_age_distribution=ages)
    verts, heads = [], []
    with torch.no_grad():
        for start in range(0, n, batch):
            _, pheno = dist.sample(min(batch, n - start))
            out = model(phenotype_kwargs=pheno)
            verts.append(out["rest_vertices"].numpy())
            heads.append(out["rest_bone_heads"].numpy())
    from anny.skinning.skinning import dense_bone_weights

    weights = dense_bone_weights(model.vertex_bone_weights, model.vertex_bone_indices,
                                 model.bone_count).numpy()
    return dict(vertices=np.concatenate(verts) @ ANNY_TO_SMPL.T,
                heads=np.concatenate(heads) @ ANNY_TO_SMPL.T,
                faces=model.get_triangular_faces().numpy(), bone_weights=weights,
                bone_labels=list(model.bone_labels), version=anny.__version__)


def _rotation_between(a: np.ndarray, b: np.ndarray, fraction: float = 1.0) -> np.ndarray:
    """(N, 3, 3) rotations turning a (N, 3) towards b (N, 3) by `fraction` of the angle between."""
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    axis = np.cross(a, b)
    s = np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = np.arctan2(s[:, 0], (a * b).sum(-1)) * fraction
    axis = axis / np.maximum(s, 1e-12)
    rotvec = torch.from_numpy(axis * angle[:, None])
    from vhakit.geometry.rotations import axis_angle_to_matrix

    return axis_angle_to_matrix(rotvec).numpy()


def t_pose(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
           collar_fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Pose bodies (N, V, 3) with joints (N, 24, 3) into SMPL's T-pose by linear blend skinning.

    Each arm is straightened along +-x: the collar takes `collar_fraction` of the upper-arm
    elevation, the shoulder the rest, then elbow and wrist are straightened. Returns the posed
    vertices and joints, which become the new rest pose.
    """
    n = len(vertices)
    rot = np.tile(np.eye(3), (n, 24, 1, 1))
    for side, sign in (("left", 1.0), ("right", -1.0)):
        target = np.tile([sign, 0.0, 0.0], (n, 1))
        idx = [JOINT_NAMES.index(f"{side}_{p}") for p in ARM_CHAIN]
        world = np.tile(np.eye(3), (n, 1, 1))  # accumulated world rotation of the chain
        for k in range(4):  # collar, shoulder, elbow, wrist: aim the next segment along x
            seg = joints[:, idx[k + 2]] - joints[:, idx[k + 1]] if k == 0 else \
                joints[:, idx[k + 1]] - joints[:, idx[k]]
            seg = np.einsum("nij,nj->ni", world, seg)
            frac = collar_fraction if k == 0 else 1.0
            new_world = _rotation_between(seg, target, frac) @ world
            parent_world = world
            rot[:, idx[k]] = np.swapaxes(parent_world, 1, 2) @ new_world
            world = new_world
    return skin(vertices, joints, weights, rot)


def skin(vertices: np.ndarray, joints: np.ndarray, weights: np.ndarray,
         rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Linear blend skinning of bodies (N, V, 3) with joints (N, 24, 3), weights (V, 24) and
    local joint rotations (N, 24, 3, 3); returns posed vertices and joints."""
    from smplx.lbs import batch_rigid_transform

    posed_joints, rel = batch_rigid_transform(torch.from_numpy(rot), torch.from_numpy(joints),
                                              torch.tensor(SMPL_PARENTS), dtype=torch.float64)
    blend = np.einsum("vj,njab->nvab", weights, rel.numpy())  # (N, V, 4, 4)
    posed = np.einsum("nvab,nvb->nva", blend[..., :3, :3], vertices) + blend[..., :3, 3]
    return posed, posed_joints.numpy()


def random_rotations(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 24, 3, 3) local rotations within simple joint limits (hinge-like knees and elbows)."""
    from vhakit.geometry.rotations import axis_angle_to_matrix

    aa = np.clip(rng.normal(0.0, 0.3, (n, 24, 3)), -0.8, 0.8)
    aa[:, 0] = 0.0
    for name, axis, sign in (("left_knee", 0, 1), ("right_knee", 0, 1),
                             ("left_elbow", 1, -1), ("right_elbow", 1, 1)):
        j = JOINT_NAMES.index(name)
        aa[:, j] = 0.0
        aa[:, j, axis] = sign * rng.uniform(0.0, 2.0, n)
    return axis_angle_to_matrix(torch.from_numpy(aa)).numpy()


def _polydata(points: np.ndarray, faces: np.ndarray):
    import pyvista as pv

    return pv.PolyData(np.asarray(points, float),
                       np.hstack([np.full((len(faces), 1), 3), faces]).ravel())


def _faces_of(mesh) -> np.ndarray:
    return np.asarray(mesh.faces).reshape(-1, 4)[:, 1:]


def largest_component(points: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the largest connected component (the body surface)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(points),) * 2)
    _, label = connected_components(adj, directed=False)
    return np.flatnonzero(label == np.bincount(label).argmax())


def boundary_vertices(faces: np.ndarray) -> np.ndarray:
    """Vertices on edges used by a single triangle."""
    e = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    uniq, count = np.unique(e, axis=0, return_counts=True)
    return np.unique(uniq[count == 1])


def decimate_symmetric(points: np.ndarray, faces: np.ndarray, n_target: int,
                       tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Quadric decimation of a mirror-symmetric closed mesh (x -> -x) into an exactly symmetric one.

    The half x >= 0 is decimated with boundary constraints (its boundary is the midline), its
    boundary vertices are snapped to x = 0, and it is mirrored. The reduction is searched so the
    whole mesh has about `n_target` vertices.
    """
    x = points[:, 0]
    half = faces[(x[faces] >= -tol).all(1)]
    used = np.unique(half)
    remap = np.full(len(points), -1)
    remap[used] = np.arange(len(used))
    mesh = _polydata(points[used], remap[half])

    def run(reduction):
        dec = mesh.decimate(reduction, volume_preservation=True, boundary_constraints=True,
                            boundary_weight=1.0)
        p, f = np.array(dec.points, float), _faces_of(dec)
        mid = np.isin(np.arange(len(p)), boundary_vertices(f))
        # an interior edge joining two midline vertices would be doubled by the mirror
        e = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, count = np.unique(e, axis=0, return_counts=True)
        chord = (mid[uniq].all(1) & (count == 2)).any()
        ok = (not chord and np.abs(p[mid, 0]).max() < 5e-3 and (p[~mid, 0] > 1e-4).all())
        return p, f, mid, ok

    lo, hi = 0.0, 0.95
    for _ in range(40):  # bisection on the reduction for the vertex count
        r = 0.5 * (lo + hi)
        p, f, mid, ok = run(r)
        n_full = 2 * len(p) - mid.sum()
        if n_full == n_target:
            break
        lo, hi = (r, hi) if n_full > n_target else (lo, r)
    for k in range(200):  # then nudge it until the mirrored mesh is a clean manifold
        if ok and abs(n_full - n_target) <= 2:
            break
        p, f, mid, ok = run(r + (k // 2 + 1) * 1e-5 * (1 if k % 2 else -1))
        n_full = 2 * len(p) - mid.sum()
    else:
        raise RuntimeError("no clean symmetric decimation found near the target count")
    p[mid, 0] = 0.0
    n_half = len(p)
    right_index = np.arange(n_half) + n_half
    right_index[mid] = np.flatnonzero(mid)  # midline vertices are shared
    keep_right = np.flatnonzero(~mid)
    new_index = np.arange(n_half)
    new_index_right = np.empty(n_half, int)
    new_index_right[mid] = np.flatnonzero(mid)
    new_index_right[keep_right] = n_half + np.arange(len(keep_right))
    mirrored = p[keep_right] * np.array([-1.0, 1.0, 1.0])
    all_points = np.concatenate([p, mirrored])
    right_faces = new_index_right[f][:, ::-1]  # mirror flips orientation
    all_faces = np.concatenate([new_index[f], right_faces])
    return all_points, all_faces


def closest_point_barycentric(points_src: np.ndarray, faces_src: np.ndarray,
                              query: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each query point (Q, 3): the closest source triangle (Q,), barycentric weights (Q, 3)
    of the closest point on it, and the distance (Q,)."""
    mesh = _polydata(points_src, faces_src)
    cell, closest = mesh.find_closest_cell(query, return_closest_point=True)
    tri = points_src[faces_src[cell]]  # (Q, 3, 3)
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    v0, v1, v2 = b - a, c - a, closest - a
    d00, d01, d11 = (v0 * v0).sum(1), (v0 * v1).sum(1), (v1 * v1).sum(1)
    d20, d21 = (v2 * v0).sum(1), (v2 * v1).sum(1)
    den = d00 * d11 - d01 * d01
    w1 = (d11 * d20 - d01 * d21) / den
    w2 = (d00 * d21 - d01 * d20) / den
    bary = np.clip(np.stack([1 - w1 - w2, w1, w2], 1), 0.0, 1.0)
    bary /= bary.sum(1, keepdims=True)
    return cell, bary, np.linalg.norm(closest - query, axis=1)


def place_joints(heads: np.ndarray, bone_labels: list[str]) -> np.ndarray:
    """(N, 24, 3) SMPL joints from Anny's rest bone heads (N, 104, 3)."""
    pos = {label: i for i, label in enumerate(bone_labels)}
    return np.stack([heads[:, [pos[b] for b in JOINT_HEADS[name]]].mean(1)
                     for name in JOINT_NAMES], axis=1)


def fit_joint_regressor(verts: np.ndarray, joints: np.ndarray, template: np.ndarray,
                        weights: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, dict]:
    """J_regressor (24, V): per joint a convex combination (w >= 0, sum 1) of nearby vertices.

    Fitted by non-negative least squares (the sum-to-one constraint as a heavily weighted extra
    row) to the rest joints of the training bodies *and* to the joints of one randomly posed copy
    of each (posed by `weights`). Without the posed copies the fit spreads its vertices along the
    bone and the joint regressed from a bent limb lands centimetres off (elbow: 6 cm); with them
    it stays within ~5 mm, as SMPL's regressor does. Errors are reported on held-out bodies.
    """
    from scipy.optimize import nnls

    n = len(verts)
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_test = int(round(holdout * n))
    test, train = order[:n_test], order[n_test:]
    posed, posed_joints = [], []
    for s in range(0, n, 200):  # one random pose per body
        rot = random_rotations(len(verts[s:s + 200]), rng)
        p, pj = skin(verts[s:s + 200], joints[s:s + 200], weights, rot)
        posed.append(p)
        posed_joints.append(pj)
    posed, posed_joints = np.concatenate(posed), np.concatenate(posed_joints)
    mean_joints = joints.mean(0)
    reg = np.zeros((24, verts.shape[1]))
    for j in range(24):
        d = np.linalg.norm(template - mean_joints[j], axis=1)
        cand = np.argsort(d)[:1500]  # nearby: within 4x the closest distance + 5 cm
        cand = cand[d[cand] <= 4.0 * d.min() + 0.05]
        a = np.concatenate([verts[train][:, cand], posed[train][:, cand]])  # (2 Ntr, C, 3)
        a = a.transpose(0, 2, 1).reshape(-1, len(cand))  # (6 Ntr, C)
        b = np.concatenate([joints[train, j], posed_joints[train, j]]).reshape(-1)
        lam = 10.0
        w, _ = nnls(np.vstack([a, lam * np.ones((1, len(cand)))]), np.append(b, lam),
                    maxiter=20 * len(cand))
        reg[j, cand] = w / w.sum()
    err = np.linalg.norm(np.einsum("jv,nvc->njc", reg, verts[test]) - joints[test], axis=-1)
    err_posed = np.linalg.norm(np.einsum("jv,nvc->njc", reg, posed[test]) - posed_joints[test],
                               axis=-1)
    stats = {"mean_m": float(err.mean()), "max_m": float(err.max()),
             "posed_mean_m": float(err_posed.mean()), "posed_max_m": float(err_posed.max()),
             "per_joint_mean_m": {JOINT_NAMES[j]: float(err[:, j].mean()) for j in range(24)},
             "nonzeros_per_joint": [int((reg[j] > 0).sum()) for j in range(24)]}
    return reg, stats


def landmarks(verts: np.ndarray, dominant_bone: np.ndarray, bone_labels: list[str],
              heads: np.ndarray) -> dict[str, int]:
    """smplx's extra keypoints (nose, eyes, ears, toes, heels, finger tips) as our vertex ids."""
    pos = {label: i for i, label in enumerate(bone_labels)}
    lab = np.array(bone_labels)[dominant_bone]
    out = {}
    head = np.flatnonzero(np.isin(lab, ["head"]))
    mid = head[np.abs(verts[head, 0]) < 1e-6]
    out["nose"] = int(mid[np.argmax(verts[mid, 2])])
    for s, side in (("l", "L"), ("r", "R")):
        eye = heads[pos[f"eye.{side}"]]
        out[f"{s}eye"] = int(np.argmin(np.linalg.norm(verts - eye, axis=1)))
        band = head[np.abs(verts[head, 1] - eye[1]) < 0.03]
        out[f"{s}ear"] = int(band[np.argmax(verts[band, 0] * (1 if side == "L" else -1))])
        for key, toe in (("BigToe", "toe1"), ("SmallToe", "toe5")):
            ids = np.flatnonzero(np.char.startswith(lab, toe) & np.char.endswith(lab, side))
            out[f"{side}{key}"] = int(ids[np.argmax(verts[ids, 2])])
        foot = np.flatnonzero(lab == f"foot.{side}")
        out[f"{side}Heel"] = int(foot[np.argmin(verts[foot, 2] + 0.2 * verts[foot, 1])])
        wrist = heads[pos[f"wrist.{side}"]]
        for k, name in enumerate(["thumb", "index", "middle", "ring", "pinky"], start=1):
            ids = np.flatnonzero(lab == f"finger{k}-3.{side}")
            out[f"{s}{name}"] = int(ids[np.argmax(np.linalg.norm(verts[ids] - wrist, axis=1))])
    return out


def smooth_weights(weights: np.ndarray, faces: np.ndarray, iterations: int,
                   alpha: float = 0.5) -> np.ndarray:
    """Laplacian smoothing of skinning weights (rows stay convex); 0 iterations = unchanged."""
    from scipy.sparse import coo_matrix, diags

    n = len(weights)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    adj = coo_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])),
                     shape=(n, n)).tocsr()
    adj.data[:] = 1.0
    avg = diags(1.0 / np.asarray(adj.sum(1)).ravel()) @ adj
    w = weights.copy()
    for _ in range(iterations):
        w = (1 - alpha) * w + alpha * (avg @ w)
    return w / w.sum(1, keepdims=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--vertices", type=int, default=6890, help="target vertex count")
    parser.add_argument("--collar-fraction", type=float, default=0.25,
                        help="share of the A- to T-pose arm elevation taken by the collar")
    parser.add_argument("--smooth-iterations", type=int, default=2)
    parser.add_argument("--holdout", type=float, default=0.2)
    parser.add_argument("--out", type=Path,
                        default=Path(__file__).resolve().parents[1] / "vhakit/assets/open_body.npz")
    args = parser.parse_args(argv)
    t_start = time.time()
    log = lambda msg: print(f"[{time.time() - t_start:6.1f} s] {msg}", flush=True)  # noqa: E731

    raw = sample_anny(args.samples, args.seed)
    log(f"sampled {args.samples} Anny bodies, {raw['vertices'].shape[1]} vertices")
    faces_all, labels = raw["faces"], raw["bone_labels"]
    keep = largest_component(raw["vertices"][0], faces_all)  # drop eyeballs and mouth cavity
    remap = np.full(raw["vertices"].shape[1], -1)
    remap[keep] = np.arange(len(keep))
    faces = remap[faces_all[(remap[faces_all] >= 0).all(1)]]
    verts = raw["vertices"][:, keep]
    bone_w = raw["bone_weights"][keep]
    group = bone_groups(labels)
    w24 = bone_w @ np.eye(24)[group]  # (V, 24)
    joints = place_joints(raw["heads"], labels)
    heights_a = verts[..., 1].max(1) - verts[..., 1].min(1)

    tverts, tjoints = [], []
    for s in range(0, len(verts), 100):  # A-pose -> T-pose, re-rest
        v, j = t_pose(verts[s:s + 100], joints[s:s + 100], w24, args.collar_fraction)
        tverts.append(v)
        tjoints.append(j)
    verts, joints = np.concatenate(tverts), np.concatenate(tjoints)
    del tverts
    log("posed into T-pose")

    mean = verts.mean(0)
    points, dec_faces = decimate_symmetric(mean, faces, args.vertices)
    cell, bary, dist = closest_point_barycentric(mean, faces, points)
    corners = faces[cell]  # (Vd, 3)

    def carry(data):  # per-vertex data (..., V, C) -> (..., Vd, C)
        return np.einsum("...vkc,vk->...vc", data[..., corners, :], bary)

    dverts = carry(verts)
    weights = carry(w24)
    dom_bone = carry(bone_w).argmax(1)
    log(f"decimated to {len(points)} vertices / {len(dec_faces)} faces; projection distance "
        f"mean {dist.mean() * 1e3:.3f} mm, max {dist.max() * 1e3:.3f} mm")

    n = len(dverts)
    flat = dverts.reshape(n, -1)
    mu = flat.mean(0)
    centred = flat - mu
    evals, evecs = np.linalg.eigh(centred @ centred.T)  # (N, N) Gram matrix: cheap for N << 3V
    evals, evecs = np.clip(evals[::-1], 0, None), evecs[:, ::-1]
    vt = (evecs[:, :10].T @ centred) / np.sqrt(evals[:10])[:, None]  # principal directions
    var = evals / (n - 1)
    comps = vt[:10] * np.sqrt(var[:10])[:, None]  # beta ~ N(0, 1)
    template = mu.reshape(-1, 3)
    coords = (flat - mu) @ vt[:10].T
    heights = dverts[..., 1].max(1) - dverts[..., 1].min(1)
    for k in range(10):  # deterministic signs; beta[0] > 0 = taller
        ref = np.corrcoef(coords[:, k], heights)[0, 1] if k == 0 else comps[k][
            np.argmax(np.abs(comps[k]))]
        if ref < 0:
            comps[k] *= -1
    shapedirs = comps.reshape(10, -1, 3).transpose(1, 2, 0)  # (Vd, 3, 10)
    recon = mu + coords @ vt[:10]
    rec_err = np.linalg.norm((recon - flat).reshape(n, -1, 3), axis=-1)
    explained = np.cumsum(var) / var.sum()
    log(f"PCA: cumulative explained variance {np.round(explained[:10], 4).tolist()}; "
        f"10-component error mean {rec_err.mean() * 1e3:.2f} mm, p99 "
        f"{np.percentile(rec_err, 99) * 1e3:.2f} mm")

    weights = smooth_weights(weights, dec_faces, args.smooth_iterations)
    j_reg, j_stats = fit_joint_regressor(dverts, joints, template, weights, args.holdout,
                                         args.seed)
    log(f"J_regressor held-out error: rest mean {j_stats['mean_m'] * 1e3:.1f} mm, max "
        f"{j_stats['max_m'] * 1e3:.1f} mm; posed mean {j_stats['posed_mean_m'] * 1e3:.1f} mm, "
        f"max {j_stats['posed_max_m'] * 1e3:.1f} mm")
    part_labels = weights.argmax(1)
    marks = landmarks(template, dom_bone, labels, raw["heads"].mean(0))
    subsample = compute_subsample_indices(template, dec_faces, 108, part_labels=part_labels)
    log("subsample indices done")

    def height_at(b0):
        v = template + shapedirs[:, :, 0] * b0
        return float(v[:, 1].max() - v[:, 1].min())

    kintree = np.stack([np.array(SMPL_PARENTS), np.arange(24)]).astype(np.int64)
    kintree[0, 0] = 4294967295  # like the official SMPL files (smplx sets it to -1)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    meta = {
        "source": "Anny (github.com/naver/anny): code Apache-2.0, MakeHuman assets CC0",
        "anny_version": raw["version"], "build_date": datetime.date.today().isoformat(),
        "seed": args.seed, "samples": args.samples, "collar_fraction": args.collar_fraction,
        "smooth_iterations": args.smooth_iterations, "posedirs": "zero (not stored)",
        "explained_variance_cumulative": explained[:10].tolist(),
        "pca10_error_mean_m": float(rec_err.mean()),
        "pca10_error_p99_m": float(np.percentile(rec_err, 99)),
        "heights_m": {"min": float(heights.min()), "mean": float(heights.mean()),
                      "max": float(heights.max()),
                      "a_pose_min": float(heights_a.min()), "a_pose_max": float(heights_a.max())},
        "height_at_beta0_m": {"-2": height_at(-2), "0": height_at(0), "+2": height_at(2)},
        "joint_regressor": j_stats,
        "projection_distance_max_m": float(dist.max()),
        "build_seconds": time.time() - t_start, "peak_memory_mb": peak_mb,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out, v_template=template.astype(np.float32),
        shapedirs=shapedirs.astype(np.float32), J_regressor=j_reg.astype(np.float32),
        weights=weights.astype(np.float32), kintree_table=kintree,
        f=dec_faces.astype(np.int32), subsample_indices=subsample.astype(np.int64),
        part_labels=part_labels.astype(np.int64),
        landmark_names=np.array(list(marks)), landmark_indices=np.array(list(marks.values())),
        joint_names=np.array(JOINT_NAMES), metadata=np.array(json.dumps(meta)))
    log(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); peak memory {peak_mb:.0f} MB")
    print(json.dumps({k: meta[k] for k in ("heights_m", "height_at_beta0_m")}, indent=1))


if __name__ == "__main__":
    main()
