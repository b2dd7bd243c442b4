"""Tiny fixture files in the exact published layouts of AMASS, Learnable Triangulation's
Human3.6M and ZJU-MoCap (docs/datasets.md), with the ground truth they were made from.

Ground truth is built with the body model directly in each dataset's own world (z up, mm where the
format says mm) and the dataset's own conventions (MoSh per-camera roots with the pi flip,
EasyMocap's Rh/Th about the origin, Human3.6M's distortion formula), so the scripts' conversions
are checked against an independent construction, not against themselves.
"""
from __future__ import annotations

import math
import pickle
from pathlib import Path

import cv2
import numpy as np
import torch

from vhakit.body.model import BodyModel
from vhakit.geometry.camera import look_at

#: (x, y, z) -> (x, z, -y): the kit's y-up world from a z-up one.
Y_FROM_Z = np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
RX90 = np.array([[1.0, 0, 0], [0, 0, -1.0], [0, 1.0, 0]])  # body y (up) -> world z


def rodrigues(aa) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(aa, np.float64).reshape(3, 1))[0]


def aa_of(R) -> np.ndarray:
    return cv2.Rodrigues(np.asarray(R, np.float64))[0].ravel()


def rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


@torch.no_grad()
def body_vertices(body: BodyModel, poses, betas, transl) -> tuple[np.ndarray, np.ndarray]:
    """``(vertices (N, V, 3), joints (N, 24, 3))`` float64 of standard SMPL parameters."""
    t = lambda a: torch.as_tensor(np.asarray(a, np.float64), dtype=torch.float32)  # noqa: E731
    out = body.from_poses(t(poses), t(betas), t(transl))
    return out.vertices.double().numpy(), out.joints.double().numpy()


def small_poses(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    p = rng.normal(0, 0.15, (n, width))
    return p


# ------------------------------------------------------------------------------------ AMASS
def write_amass_file(path: Path, rng: np.random.Generator, kind: str = "smplh", T: int = 25,
                     fps: float = 120.0, gender: str | bytes = "male") -> dict:
    """One AMASS sequence: ``kind="smplh"`` -> ``*_poses.npz`` keys (poses (T, 156),
    mocap_framerate, betas (16,), dmpls); ``"smplx"`` -> ``*_stageii.npz`` keys (poses (T, 165),
    mocap_frame_rate, surface_model_type, ...). Z up, metres; the body stands upright."""
    width = 156 if kind == "smplh" else 165
    poses = small_poses(rng, T, width)
    for t in range(T):  # upright in the z-up world, turning about z
        poses[t, :3] = aa_of(rot_z(0.05 * t + 0.3) @ RX90)
    trans = np.stack([np.linspace(0, 0.5, T), np.linspace(0.2, 0.4, T), np.full(T, 0.9)], 1)
    betas = rng.normal(0, 0.5, 16 if kind == "smplh" else 10)
    data = {"poses": poses, "trans": trans, "betas": betas, "gender": np.array(gender)}
    if kind == "smplh":
        data.update(mocap_framerate=np.array(fps), dmpls=np.zeros((T, 8)))
    else:
        data.update(mocap_frame_rate=np.array(fps), surface_model_type=np.array("smplx"),
                    mocap_time_length=np.array(T / fps), num_betas=np.array(10),
                    root_orient=poses[:, :3], pose_body=poses[:, 3:66],
                    pose_hand=poses[:, 75:165], pose_jaw=poses[:, 66:69],
                    pose_eye=poses[:, 69:75])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **data)
    return data


def write_amass_tree(root: Path, seed: int = 0) -> dict[str, dict]:
    """An AMASS root with train (CMU, SMPL+H; KIT, SMPL-X), vald (HumanEva, SMPL-X, bytes
    gender, 60 fps), test (Transitions_mocap) files, plus files every loader must skip."""
    rng = np.random.default_rng(seed)
    files = {
        "CMU/01/01_01_poses.npz": dict(kind="smplh", gender="male"),
        "CMU/02/02_05_poses.npz": dict(kind="smplh", gender=b"female", T=31),
        "KIT/3/walking_stageii.npz": dict(kind="smplx", gender="neutral", fps=100.0),
        "HumanEva/S1/box_stageii.npz": dict(kind="smplx", gender=b"female", fps=60.0, T=21),
        "Transitions_mocap/mazen/jump_poses.npz": dict(kind="smplh", fps=120.00004577636719),
        "ACCAD/Female1/run_poses.npz": dict(kind="smplh"),  # not in the official split
    }
    out = {rel: write_amass_file(root / rel, rng, **kw) for rel, kw in files.items()}
    np.savez(root / "CMU/01/shape.npz", betas=np.zeros(16), gender="male")
    np.savez(root / "KIT/3/female_stagei.npz", betas=np.zeros(10))
    return out


# ------------------------------------------------------------------------------------ ZJU-MoCap
ZJU_SIZE = 64  # fixture images are 64 x 64 (the real ones 1024 x 1024)
ZJU_NUM_CAMERAS = 21


def zju_cameras(rng: np.random.Generator, centre: np.ndarray) -> dict[str, list]:
    """21 cameras on a ring 3 m around ``centre`` (z-up world), annots.npy layout (T in mm)."""
    out = {"K": [], "D": [], "R": [], "T": []}
    for i in range(ZJU_NUM_CAMERAS):
        a = 2 * math.pi * i / ZJU_NUM_CAMERAS
        eye = centre + np.array([3.0 * math.cos(a), 3.0 * math.sin(a), 0.3])
        cam = look_at(torch.tensor(eye), torch.tensor(centre), up=(0.0, 0.0, 1.0))
        f = 40.0 + rng.uniform(-2, 2)
        out["K"].append(np.array([[f, 0, 31.5 + rng.uniform(-1, 1)], [0, f, 31.5], [0, 0, 1]]))
        out["D"].append(np.array([[-0.08], [0.02], [0.002], [-0.001], [0.0]]))
        out["R"].append(cam.R.numpy())
        out["T"].append(cam.t.numpy().reshape(3, 1) * 1000.0)
    return out


def write_zju_sequence(root: Path, seq: int, body: BodyModel, seed: int = 0, frames: int = 10,
                       params_dir: str = "new_params") -> dict:
    """``CoreView_<seq>/``: annots.npy, images of the cameras 0, 6, 12, 18 (Camera_B<k>/%06d.jpg),
    mask_cihp/ masks and ``params_dir/<i>.npy`` EasyMocap parameters (Rh/Th about the origin).
    Returns the ground truth: world vertices per frame (z-up, m), cameras and person boxes."""
    rng = np.random.default_rng(seed + seq)
    seq_dir = root / f"CoreView_{seq}"
    Th0 = np.array([0.3, -0.2, 0.95])
    cams = zju_cameras(rng, Th0)
    shapes = rng.normal(0, 0.5, (1, 10))
    ims, gt = [], {"vertices": [], "boxes": {}}
    for i in range(frames):
        poses = small_poses(rng, 1, 72)
        poses[:, :3] = 0.0  # ZJU: the global rotation lives in Rh
        Rh = aa_of(rot_z(0.2 * i) @ RX90)[None]
        Th = (Th0 + np.array([0.02 * i, 0.0, 0.0]))[None]
        np.save(_mkdir(seq_dir / params_dir) / f"{i}.npy",
                {"poses": poses, "Rh": Rh, "Th": Th, "shapes": shapes}, allow_pickle=True)
        X, _ = body_vertices(body, poses, shapes, np.zeros((1, 3)))  # EasyMocap: rotate about 0
        V = X[0] @ rodrigues(Rh[0]).T + Th[0]
        gt["vertices"].append(V)
        names = [f"Camera_B{c + 1}/{i:06d}.jpg" for c in range(ZJU_NUM_CAMERAS)]
        ims.append({"ims": names})
        for c in (0, 6, 12, 18):
            uv = cv2.projectPoints(V, cv2.Rodrigues(cams["R"][c])[0], cams["T"][c] / 1000.0,
                                   cams["K"][c], cams["D"][c])[0].reshape(-1, 2)
            mask = np.zeros((ZJU_SIZE, ZJU_SIZE), np.uint8)
            for u, v in np.round(uv).astype(int):
                cv2.circle(mask, (int(u), int(v)), 1, 1, -1)
            img = rng.integers(0, 60, (ZJU_SIZE, ZJU_SIZE, 3), dtype=np.uint8)
            img[mask > 0] = (200, 120, 80)
            _mkdir((seq_dir / names[c]).parent)
            cv2.imwrite(str(seq_dir / names[c]), img)
            mpath = seq_dir / "mask_cihp" / names[c].replace(".jpg", ".png")
            _mkdir(mpath.parent)
            cv2.imwrite(str(mpath), mask * 7)  # CIHP part labels: any positive value is the person
            ys, xs = np.nonzero(mask)
            gt["boxes"][(i, c)] = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])
    np.save(seq_dir / "annots.npy", {"cams": cams, "ims": ims}, allow_pickle=True)
    gt["cams"] = cams
    gt["shapes"] = shapes
    return gt


def _mkdir(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


# ------------------------------------------------------------------------------------ Human3.6M
H36M_SUBJECTS = ["S1", "S5", "S6", "S7", "S8", "S9", "S11"]
H36M_CAMERAS = ["54138969", "55011271", "58860488", "60457274"]
H36M_ACTIONS = [f"{a}-{k}" for a in (
    "Directions", "Discussion", "Eating", "Greeting", "Phoning", "Posing", "Purchases", "Sitting",
    "SittingDown", "Smoking", "TakingPhoto", "Waiting", "Walking", "WalkingDog",
    "WalkingTogether") for k in (1, 2)]
#: LT's 17 joints from SMPL's 24 (ankle, knee, hip R; hip, knee, ankle L; pelvis, spine, thorax,
#: head, wrist, elbow, shoulder R; shoulder, elbow, wrist L; neck).
H36M_FROM_SMPL = [8, 5, 2, 1, 4, 7, 0, 6, 12, 15, 21, 19, 17, 16, 18, 20, 12]
H36M_SIZE = 64
H36M_DIST = np.array([-0.12, 0.05, 0.003, -0.004, 0.01])


def h36m_distort(xy: np.ndarray, d: np.ndarray) -> np.ndarray:
    """una-dinosauria ``project_point_radial`` on normalised points (N, 2), written as there."""
    XX = xy.T
    r2 = XX[0] ** 2 + XX[1] ** 2
    radial = 1 + d[0] * r2 + d[1] * r2 ** 2 + d[4] * r2 ** 3
    p = d[2:4]
    tan = p[0] * XX[1] + p[1] * XX[0]
    out = XX * np.tile(radial + tan, (2, 1)) + np.outer(np.array([p[1], p[0]]), r2)
    return out.T


def h36m_project(X_m: np.ndarray, cam) -> np.ndarray:
    """World points (N, 3) m -> pixels (N, 2) with Human3.6M's distortion."""
    x = X_m @ cam["R"].astype(np.float64).T + cam["t"].astype(np.float64).ravel() / 1000.0
    uv = h36m_distort(x[:, :2] / x[:, 2:], cam["dist"].astype(np.float64))
    K = cam["K"].astype(np.float64)
    return uv @ K[:2, :2].T + K[:2, 2]


def _h36m_cameras(rng: np.random.Generator) -> np.ndarray:
    dtype = [("R", np.float32, (3, 3)), ("t", np.float32, (3, 1)), ("K", np.float32, (3, 3)),
             ("dist", np.float32, (5,))]
    cams = np.zeros((len(H36M_SUBJECTS), 4), dtype)
    for s in range(len(H36M_SUBJECTS)):
        for c in range(4):
            a = math.pi / 4 + math.pi / 2 * c + rng.uniform(-0.1, 0.1)
            eye = np.array([4.5 * math.cos(a), 4.5 * math.sin(a), 1.6])
            cam = look_at(torch.tensor(eye), torch.tensor([0.0, 0.0, 0.9]), up=(0.0, 0.0, 1.0))
            cams[s, c]["R"] = cam.R.numpy()
            cams[s, c]["t"] = cam.t.numpy().reshape(3, 1) * 1000.0
            f = 70.0 + rng.uniform(-3, 3)
            cams[s, c]["K"] = [[f, 0, 31.5 + rng.uniform(-1, 1)], [0, f, 32.0], [0, 0, 1]]
            cams[s, c]["dist"] = H36M_DIST
    return cams


def write_h36m(root: Path, mosh_dir: Path, body: BodyModel, seed: int = 0) -> dict:
    """LT's ``extra/human36m-multiview-labels-GTbboxes.npy`` + ``processed/`` images (64 x 64
    JPEG, a bright dot on the pelvis), Human3.6M's ``metadata.xml`` and MoSh ``*_aligned.pkl``
    fits. Sequences: S1 Directions-1 (frames 0, 3, 5, 10, 15; 15 misses a view; MoSh file under
    the original name "Directions 1"), S9 Walking-1 (0, 5, 10; no fit for camera 2) and the
    damaged S9 Greeting-2 (0, 5). Ground truth: vertices / joints in the H36M world (z up, m)."""
    rng = np.random.default_rng(seed)
    cams = _h36m_cameras(rng)
    seqs = {("S1", "Directions-1"): [0, 3, 5, 10, 15], ("S9", "Walking-1"): [0, 5, 10],
            ("S9", "Greeting-2"): [0, 5]}
    table_dtype = [("subject_idx", np.int8), ("action_idx", np.int8), ("frame_idx", np.int16),
                   ("keypoints", np.float32, (17, 3)), ("bbox_by_camera_tlbr", np.int16, (4, 4))]
    rows, gt = [], {}
    for (subject, action), frames in seqs.items():
        s_idx = H36M_SUBJECTS.index(subject)
        betas = rng.normal(0, 0.5, (1, 10))
        n_fit = max(frames) // 5 + 1
        new_poses = np.zeros((4, n_fit, 72))
        for f in frames:
            G = rot_z(0.3 * f + 0.5) @ RX90  # body upright in the z-up world
            pose = np.concatenate([aa_of(G), small_poses(rng, 1, 69)[0]])
            T = np.array([0.1 + 0.01 * f, -0.2, 0.0])
            V, Jt = body_vertices(body, pose[None], betas, T[None])
            gt[(subject, action, f)] = {"vertices": V[0], "joints": Jt[0], "betas": betas[0],
                                        "G": G}
            bbox = np.zeros((4, 4), np.int16)
            for c in range(4):
                cam = cams[s_idx, c]
                uv = h36m_project(V[0], cam)
                x0, y0 = np.floor(uv.min(0)) - 2
                x1, y1 = np.ceil(uv.max(0)) + 2
                side = max(x1 - x0, y1 - y0)
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                left, top = int(round(cx - side / 2)), int(round(cy - side / 2))
                bbox[c] = [top, left, top + int(side), left + int(side)]  # TLBR, squared
                img = rng.integers(0, 50, (H36M_SIZE, H36M_SIZE, 3), dtype=np.uint8)
                pu, pv = h36m_project(Jt[0, :1], cam)[0]
                cv2.circle(img, (int(round(pu * 16)), int(round(pv * 16))), 24, (255, 255, 255),
                           -1, cv2.LINE_AA, shift=4)
                path = (root / "processed" / subject / action / "imageSequence" /
                        H36M_CAMERAS[c] / f"img_{f + 1:06d}.jpg")
                _mkdir(path.parent)
                cv2.imwrite(str(path), img, [cv2.IMWRITE_JPEG_QUALITY, 100])
                if f % 5 == 0:
                    R_cam = cam["R"].astype(np.float64)
                    flip = np.diag([1.0, -1.0, -1.0])  # Rodrigues([pi, 0, 0])
                    new_poses[c, f // 5] = np.concatenate([aa_of(R_cam @ G @ flip), pose[3:]])
            if f == 15:
                bbox[2] = 0  # this view is missing
            kp = Jt[0][H36M_FROM_SMPL] * 1000.0
            rows.append((s_idx, H36M_ACTIONS.index(action), f, kp, bbox))
        for c in range(4):
            if (subject, action) == ("S9", "Walking-1") and c == 2:
                continue
            name = "Directions 1" if subject == "S1" else action
            path = _mkdir(mosh_dir / subject) / f"{name}_cam{c}_aligned.pkl"
            path.write_bytes(pickle.dumps({"new_poses": new_poses[c], "betas": betas[0],
                                           "trans": np.zeros((n_fit, 3))}, protocol=2))
    labels = {"subject_names": H36M_SUBJECTS, "camera_names": H36M_CAMERAS,
              "action_names": H36M_ACTIONS, "cameras": cams,
              "table": np.array(rows, dtype=table_dtype)}
    np.save(_mkdir(root / "extra") / "human36m-multiview-labels-GTbboxes.npy", labels,
            allow_pickle=True)
    _write_h36m_metadata(root / "metadata.xml")
    return {"gt": gt, "labels": labels}


def _write_h36m_metadata(path: Path) -> None:
    """A Human3.6M ``metadata.xml`` with the parts the scripts read (mapping, actionnames)."""
    subjects = [f"S{i}" for i in range(1, 12)]
    cells = lambda xs: "".join(f"<td>{x}</td>" for x in xs)  # noqa: E731
    rows = [cells(["action", "subaction", *subjects])]
    rows.append(cells(["2", "1", *(["Directions 1"] + ["Directions"] * 10)]))
    rows.append(cells(["2", "2", *(["Directions"] + ["Directions 1"] * 10)]))
    rows.append(cells(["14", "1", *(["Walking"] * 11)]))
    names = "".join(f"<item>{a}</item>" for a in ["_ALL", "Directions", "Discussion", "Eating",
                                                 "Greeting", "Phoning", "Posing", "Purchases",
                                                 "Sitting", "SittingDown", "Smoking",
                                                 "TakingPhoto", "Waiting", "Walking"])
    xml = ("<?xml version='1.0'?><metadata><mapping>" + "".join(f"<tr>{r}</tr>" for r in rows)
           + f"</mapping><actionnames>{names}</actionnames></metadata>")
    path.write_text(xml)


# ------------------------------------------------------------------------------------ SMPL
def write_stand_in_smpl(path: Path) -> None:
    """``SMPL_NEUTRAL.pkl`` in SMPL's pickle layout (protocol 2, scipy CSC J_regressor, Python-2
    era module names) holding the open body's arrays, so ``--body smpl`` runs without a licence
    and must give the same vertices as ``--body open``."""
    import scipy.sparse as sp

    from vhakit.body.model import OPEN_MODEL_PATH

    with np.load(OPEN_MODEL_PATH) as z:
        a = {k: z[k] for k in z.files}
    n = a["v_template"].shape[0]
    data = {"v_template": a["v_template"].astype(np.float64),
            "shapedirs": a["shapedirs"].astype(np.float64),
            "posedirs": np.zeros((n, 3, 207)), "J_regressor": sp.csc_matrix(a["J_regressor"]),
            "weights": a["weights"].astype(np.float64),
            "kintree_table": a["kintree_table"].astype(np.int64), "f": a["f"].astype(np.uint32),
            "bs_type": "lrotmin", "bs_style": "lbs"}
    raw = pickle.dumps(data, protocol=2)
    for new, old in ((b"numpy._core.multiarray", b"numpy.core.multiarray"),
                     (b"scipy.sparse._csc", b"scipy.sparse.csc")):
        raw = raw.replace(new, old)
    _mkdir(path.parent)
    path.write_bytes(raw)
