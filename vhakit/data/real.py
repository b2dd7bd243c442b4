"""Real datasets in the kit's conventions: AMASS, Human3.6M (Learnable Triangulation layout +
MoSh SMPL fits) and LightStage (ZJU-MoCap). The ``data_scripts/prepare_*.py`` scripts call these
functions; formats are described in ``docs/datasets.md``.

Conventions applied to every dataset:

* metres (H36M cameras/keypoints and ZJU camera translations come in millimetres);
* the kit's world is y up (SMPL's rest frame): a dataset whose world is z up (AMASS, H36M, ZJU)
  is rotated by a proper rotation ``A`` (:func:`up_rotation`), cameras become ``R A^T``;
* SMPL rotates the body about the rest pelvis ``J0`` (which depends on the betas), so a rigid
  change of world ``x' = A x + b`` maps ``(global_orient G, transl T)`` to
  ``(A G, A (T + J0) + b - J0)`` (:func:`smpl_change_frame`). EasyMocap's ``Rh, Th`` (ZJU) rotate
  about the model origin instead; they are exactly such a change of frame applied to a body with
  ``T = 0`` (:func:`zju_to_smpl`).
* images are undistorted while they are cropped (:func:`undistort_crop`), so stored cameras are
  pinhole (``dist = 0``).

Dataset files that are pickles (ZJU ``annots.npy``, LT labels, MoSh ``.pkl``) are read with an
allow-listed unpickler (numpy arrays, dtypes, scalars only; :func:`load_pickle`).
"""
from __future__ import annotations

import math
import pickle
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from vhakit.body.smpl_files import SafeUnpickler
from vhakit.data.render import vertex_visibility
from vhakit.geometry.camera import Camera, crop_resize_matrix
from vhakit.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = [
    "load_pickle", "check_metres", "check_millimetres", "up_rotation", "smpl_change_frame",
    "zju_to_smpl", "h36m_root_to_world", "mean_rotation", "geodesic_deg", "distort",
    "square_box", "undistort_crop", "mesh_visibility",
    "AMASS_OFFICIAL_SPLIT", "amass_part", "find_amass_files", "check_amass_clip",
    "H36M_TRAIN_SUBJECTS", "H36M_TEST_SUBJECTS", "H36M_DAMAGED_ACTIONS", "H36M_MOSH_STEP",
    "LTLabels", "read_lt_labels", "read_h36m_metadata", "mosh_file", "read_mosh_fit",
    "ZJU_TRAIN_SEQUENCES", "ZJU_TEST_SEQUENCES", "ZJU_CAMERAS", "ZJUAnnots", "read_zju_annots",
    "zju_param_index", "read_zju_params",
]

# ------------------------------------------------------------------------------------ loading
#: Beyond the SMPL allow-list (numpy, scipy sparse, chumpy stand-ins): numpy's buffer helper.
_NUMPY_EXTRA = frozenset({("numpy.core.numeric", "_frombuffer"),
                          ("numpy._core.numeric", "_frombuffer")})


def load_pickle(path: str | Path) -> Any:
    """Read a ``.pkl`` or a pickled ``.npy`` (``np.save`` of a dict) without running foreign code.

    Returns the unpickled object; a 0-d object ``.npy`` gives its item (the dict). Raises
    :class:`vhakit.body.smpl_files.UnsafePickleError` if the file asks for anything but numpy data.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no file at {path}")
    with open(path, "rb") as fh:
        if path.suffix == ".npy":
            version = np.lib.format.read_magic(fh)
            read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                    else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read(fh)
            if not dtype.hasobject:
                return np.load(path, allow_pickle=False)
        try:
            obj = SafeUnpickler(fh, _NUMPY_EXTRA).load()
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError) as err:
            raise ValueError(f"{path} cannot be read safely ({err}); it should hold only numpy "
                             "arrays, lists, dicts and strings") from err
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        return obj.item()
    return obj


# ------------------------------------------------------------------------------------ units
def check_metres(values, name: str, max_abs_m: float, fix: str) -> None:
    """Raise if ``values`` (expected metres) are larger than ``max_abs_m``: probably millimetres."""
    v = np.abs(np.asarray(values, dtype=np.float64))
    v = v[np.isfinite(v)]
    if v.size and v.max() > max_abs_m:
        raise ValueError(f"{name} reaches {v.max():.4g}, which looks like millimetres: metres are "
                         f"expected here (|values| < {max_abs_m:g} m). {fix}")


def check_millimetres(lengths, name: str, min_median_mm: float, fix: str) -> None:
    """Raise if typical ``lengths`` (expected millimetres) are below ``min_median_mm``: metres?"""
    v = np.abs(np.asarray(lengths, dtype=np.float64)).ravel()
    v = v[np.isfinite(v)]
    if v.size and np.median(v) < min_median_mm:
        raise ValueError(f"{name} has a typical size of {np.median(v):.4g}, which looks like "
                         f"metres: this format stores millimetres (expected > {min_median_mm:g}). "
                         f"{fix}")


# ------------------------------------------------------------------------------------ geometry
_AXES = {"+x": (0, 1.0), "-x": (0, -1.0), "+y": (1, 1.0), "-y": (1, -1.0), "+z": (2, 1.0),
         "-z": (2, -1.0)}


def up_rotation(up: str = "auto", up_dirs: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """The proper rotation ``A (3, 3)`` taking a dataset's up axis to the kit's +y.

    Args:
        up: ``"+z"``, ``"-y"``, ... or ``"auto"``: the signed axis nearest to the mean of
            ``up_dirs``.
        up_dirs: ``(N, 3)`` directions that point up in the dataset's world (e.g. pelvis -> head,
            or each frame's body y axis); needed for ``"auto"``.
    Returns:
        ``(A, axis)``; for ``"+z"`` ``A`` is ``(x, y, z) -> (x, z, -y)`` (-90 degrees about x).
    """
    if up == "auto":
        d = np.asarray(up_dirs, dtype=np.float64) if up_dirs is not None else np.zeros((0, 3))
        if d.ndim != 2 or d.shape[1] != 3 or len(d) == 0:
            raise ValueError(f"up='auto' needs up_dirs of shape (N, 3), N >= 1, got {d.shape}")
        d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(1e-12)
        mean = d.mean(0)
        k = int(np.abs(mean).argmax())
        if np.linalg.norm(mean) < 0.5 or abs(mean[k]) < 0.7 * np.linalg.norm(mean):
            raise ValueError(f"cannot tell which world axis points up (mean body up direction "
                             f"{np.round(mean, 2).tolist()}); pass the up axis explicitly, "
                             "e.g. --up +z")
        up = ("+" if mean[k] > 0 else "-") + "xyz"[k]
    if up not in _AXES:
        raise ValueError(f"up must be 'auto' or one of {sorted(_AXES)}, got {up!r}")
    k, sign = _AXES[up]
    src = np.zeros(3)
    src[k] = sign
    dst = np.array([0.0, 1.0, 0.0])
    axis = np.cross(src, dst)
    if np.linalg.norm(axis) < 1e-9:  # +y: identity; -y: 180 degrees about x
        A = np.eye(3) if sign > 0 else np.diag([1.0, -1.0, -1.0])
    else:  # 90 degrees about src x dst
        A = axis_angle_to_matrix(torch.as_tensor(axis * math.pi / 2)).numpy()
    return np.round(A, 12) + 0.0, up


def smpl_change_frame(global_orient: torch.Tensor, transl: torch.Tensor, pelvis_rest: torch.Tensor,
                      rotation: torch.Tensor, offset: torch.Tensor | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """SMPL parameters of the same body after the rigid change of frame ``x' = A x + b``.

    Args:
        global_orient: ``(B, 3)`` axis-angle; transl: ``(B, 3)`` m.
        pelvis_rest: ``(B, 3)`` or ``(3,)`` rest pelvis ``J0`` of the body model for these betas
            (``model(betas=betas).joints[:, 0]``).
        rotation: ``A``, ``(3, 3)`` or ``(B, 3, 3)``; offset: ``b``, ``(3,)`` or ``(B, 3)`` (0).
    Returns:
        ``(global_orient', transl')``: ``A G`` and ``A (T + J0) + b - J0``.
    """
    A = rotation.to(global_orient).expand(global_orient.shape[0], 3, 3)
    J0 = pelvis_rest.to(transl).expand_as(transl)
    G = A @ axis_angle_to_matrix(global_orient)
    T = ((transl + J0).unsqueeze(-2) @ A.transpose(-1, -2)).squeeze(-2) - J0
    if offset is not None:
        T = T + offset.to(T)
    return matrix_to_axis_angle(G), T


def zju_to_smpl(poses: torch.Tensor, Rh: torch.Tensor, Th: torch.Tensor,
                pelvis_rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """EasyMocap/ZJU ``V = R(Rh) X(poses, shapes) + Th`` -> SMPL's ``(global_orient, body_pose,
    transl)`` giving the same vertices (``X`` rotates by ``poses[:, :3]`` about ``J0``).

    Args: ``poses (B, 72)``, ``Rh (B, 3)``, ``Th (B, 3)`` m, ``pelvis_rest (B, 3)`` or ``(3,)``.
    Returns: ``global_orient (B, 3)``, ``body_pose (B, 69)``, ``transl (B, 3)``.
    """
    go, transl = smpl_change_frame(poses[:, :3], torch.zeros_like(Th), pelvis_rest,
                                   axis_angle_to_matrix(Rh), Th)
    return go, poses[:, 3:], transl


def h36m_root_to_world(root_aa_cam: torch.Tensor, R_world_to_cam: torch.Tensor) -> torch.Tensor:
    """World root rotation ``(..., 3, 3)`` of a MoSh ``*_cam{i}_aligned.pkl`` fit: the file's root
    is in camera ``i``'s frame up to a pi flip about x (``Rodrigues(aa) Rx(pi)``, mmhuman3d's
    ``H36mConverter``); world = ``R_cam^T`` times it. All four cameras should agree."""
    flip = torch.diag(torch.tensor([1.0, -1.0, -1.0])).to(root_aa_cam)
    return R_world_to_cam.transpose(-1, -2).to(root_aa_cam) @ axis_angle_to_matrix(root_aa_cam) @ flip


def mean_rotation(R: torch.Tensor) -> torch.Tensor:
    """Chordal L2 mean of rotations ``(..., N, 3, 3) -> (..., 3, 3)``: the rotation nearest (in
    Frobenius norm) to their sum, from its SVD with the sign fixed so that ``det = +1``."""
    U, _, Vh = torch.linalg.svd(R.sum(-3))
    d = torch.linalg.det(U @ Vh)  # (...,) +-1
    fix = torch.ones(*d.shape, 3, dtype=R.dtype, device=R.device)
    fix[..., 2] = d
    return U @ torch.diag_embed(fix) @ Vh


def geodesic_deg(Ra: torch.Tensor, Rb: torch.Tensor) -> torch.Tensor:
    """Angle in degrees between rotations ``(..., 3, 3)``."""
    tr = (Ra @ Rb.transpose(-1, -2)).diagonal(dim1=-2, dim2=-1).sum(-1)
    return torch.rad2deg(torch.arccos(((tr - 1) / 2).clamp(-1, 1)))


# ------------------------------------------------------------------------------------ images
def distort(xy: np.ndarray, dist: np.ndarray, model: str = "opencv") -> np.ndarray:
    """Apply lens distortion to normalised image points ``(..., 2)``.

    ``dist = (k1, k2, p1, p2, k3)``. ``"opencv"``: ``x' = x r + 2 p1 x y + p2 (r^2 + 2 x^2)``,
    ``y' = y r + p1 (r^2 + 2 y^2) + 2 p2 x y``. ``"h36m"`` (Human3.6M's ``project_point_radial``,
    used by Learnable Triangulation): ``x' = x r + p1 x y + p2 (r^2 + x^2)``,
    ``y' = y r + p2 x y + p1 (r^2 + y^2)``; ``r = 1 + k1 r^2 + k2 r^4 + k3 r^6``.
    """
    xd, yd = _distort_xy(xy[..., 0], xy[..., 1], dist, model)
    return np.stack([xd, yd], -1)


def _distort_xy(x: np.ndarray, y: np.ndarray, dist: np.ndarray, model: str):
    """:func:`distort` on broadcastable coordinate arrays ``x``, ``y``."""
    k1, k2, p1, p2, k3 = (float(c) for c in np.asarray(dist, np.float64).ravel()[:5])
    r2 = x * x + y * y
    radial = 1 + r2 * (k1 + r2 * (k2 + r2 * k3))
    if model == "opencv":
        return (x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x),
                y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y)
    if model == "h36m":
        return (x * radial + p1 * x * y + p2 * (r2 + x * x),
                y * radial + p2 * x * y + p1 * (r2 + y * y))
    raise ValueError(f"model must be 'opencv' or 'h36m', got {model!r}")


def square_box(box_xyxy: np.ndarray, scale: float = 1.0) -> np.ndarray:
    """Square boxes ``(..., 4)`` (side = the longer side times ``scale``) with the same centre."""
    b = np.asarray(box_xyxy, dtype=np.float64)
    c = (b[..., :2] + b[..., 2:]) / 2
    half = np.maximum(b[..., 2] - b[..., 0], b[..., 3] - b[..., 1])[..., None] * scale / 2
    return np.concatenate([c - half, c + half], -1)


def undistort_crop(image: np.ndarray, K: np.ndarray, dist: np.ndarray, box_xyxy: np.ndarray,
                   out_size: tuple[int, int], model: str = "opencv",
                   max_supersample: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """Crop ``image`` to ``box_xyxy``, resize to ``out_size`` and remove lens distortion, in one
    resampling: each output pixel looks up where its pinhole ray lands in the distorted image.

    Args:
        image: ``(H, W, 3)`` uint8. K: ``(3, 3)`` px; dist: ``(5,)`` (``model`` as in
            :func:`distort`). box_xyxy: ``(4,)`` in the original image (may leave it: black fill).
        out_size: ``(W_out, H_out)``. Shrinking more than 1.5x renders at an integer multiple
            (<= ``max_supersample``) and area-averages down, so fine texture does not alias.
    Returns:
        ``(crop (H_out, W_out, 3) uint8, K_crop (3, 3))``; ``K_crop`` is the pinhole camera of the
        crop (:meth:`vhakit.geometry.camera.Camera.crop_and_resize` with the same box and size).
    """
    W, H = (int(s) for s in out_size)
    box = torch.as_tensor(np.asarray(box_xyxy, np.float64))
    side = max(float(box[2] - box[0]) / W, float(box[3] - box[1]) / H)
    n = int(min(max_supersample, max(1, math.ceil(side - 0.5)))) if side > 1.5 else 1
    K = np.asarray(K, np.float64)
    K_hi = crop_resize_matrix(box, (W * n, H * n)).numpy() @ K
    # K_hi is upper triangular: y = (v - cy) / fy, x = (u - cx - s y) / fx, as broadcast grids
    fx, s_, cx, fy, cy = K_hi[0, 0], K_hi[0, 1], K_hi[0, 2], K_hi[1, 1], K_hi[1, 2]
    y = ((np.arange(H * n) - cy) / fy).astype(np.float32)[:, None]  # (Hn, 1)
    x = ((np.arange(W * n) - cx) / fx).astype(np.float32)[None, :] - np.float32(s_ / fx) * y
    xd, yd = _distort_xy(x, y, dist, model)  # (Hn, Wn) each
    map_x = (K[0, 0] * xd + K[0, 1] * yd + K[0, 2]).astype(np.float32)
    map_y = np.broadcast_to(K[1, 1] * yd + K[1, 2], map_x.shape).astype(np.float32)
    out = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT,
                    borderValue=0)
    if n > 1:
        out = cv2.resize(out, (W, H), interpolation=cv2.INTER_AREA)
    return out, crop_resize_matrix(box, (W, H)).numpy() @ K


def mesh_visibility(verts_world_m: torch.Tensor, faces: torch.Tensor, cameras: Camera,
                    index: torch.Tensor) -> torch.Tensor:
    """Visibility ``(K, N)`` of the vertices ``index`` in the K views: inside the image and not
    hidden by the mesh (:func:`vhakit.data.render.vertex_visibility`). ``verts_world_m (V, 3)``,
    ``cameras`` with batch shape ``(K,)`` (pinhole or distorted)."""
    verts = verts_world_m.to(cameras.K)
    uv = cameras.project(verts)  # (K, V, 2)
    depth = cameras.world_to_camera(verts)[..., 2]  # (K, V)
    return vertex_visibility(uv, depth, faces, cameras.image_size, index)


# ------------------------------------------------------------------------------------ AMASS
#: nghorbani/amass ``prepare_data.py``: validation / test / train sub-datasets (ACCAD and the
#: later additions are in none of them). Keys are folder names lower-cased without "_" / "-";
#: the names changed between releases, hence the aliases.
AMASS_OFFICIAL_SPLIT = {
    "vald": ("humaneva", "mpihdm05", "hdm05", "sfu", "mpimosh", "mosh"),
    "test": ("transitionsmocap", "transitions", "ssmsynced", "ssm"),
    "train": ("cmu", "mpilimits", "poseprior", "totalcapture", "eyesjapandataset", "kit", "bml",
              "biomotionlabntroje", "bmlrub", "ekut", "tcdhandmocap", "tcdhands"),
}


def amass_part(folder: str) -> str | None:
    """``"train"``, ``"vald"``, ``"test"`` for an AMASS sub-dataset folder, None if unlisted."""
    key = re.sub(r"[^a-z0-9]", "", folder.lower())
    return next((p for p, names in AMASS_OFFICIAL_SPLIT.items() if key in names), None)


def find_amass_files(root: str | Path, fmt: str = "auto") -> list[Path]:
    """Sequence files under ``root`` (recursive, sorted): ``*_poses.npz`` (SMPL+H, ``fmt="smplh"``)
    and/or ``*_stageii.npz`` (SMPL-X, ``fmt="smplx"``); ``shape.npz`` / ``*_stagei.npz`` skipped."""
    root = Path(root)
    patterns = {"smplh": ["*_poses.npz"], "smplx": ["*_stageii.npz"],
                "auto": ["*_poses.npz", "*_stageii.npz"]}
    if fmt not in patterns:
        raise ValueError(f"fmt must be one of {sorted(patterns)}, got {fmt!r}")
    files = sorted({p for pat in patterns[fmt] for p in root.rglob(pat)},
                   key=lambda p: p.relative_to(root).as_posix())
    if fmt == "auto":
        stems = {}
        for p in files:
            stems.setdefault((p.parent, re.sub(r"_(poses|stageii)$", "", p.stem)), []).append(p)
        both = [v for v in stems.values() if len(v) > 1]
        if both:
            raise ValueError(f"{len(both)} sequences exist in both releases (e.g. {both[0][0]} and "
                             f"{both[0][1].name}); choose one with --format smplh or --format smplx")
    return files


def check_amass_clip(clip, path: str | Path) -> None:
    """Unit checks of a :class:`vhakit.data.motion.MotionClip` read from AMASS."""
    check_metres(clip.transl, f"{path}: trans", 100.0,
                 "AMASS stores the root translation in metres; convert the file (trans / 1000).")
    if np.abs(clip.poses).max() > 4 * math.pi:
        raise ValueError(f"{path}: poses reach {np.abs(clip.poses).max():.1f}, which looks like "
                         "degrees: AMASS stores axis-angle in radians (convert with np.deg2rad)")


# ------------------------------------------------------------------------------------ Human3.6M
H36M_TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8")
H36M_TEST_SUBJECTS = ("S9", "S11")
#: Learnable Triangulation drops these test sequences unless ``with_damaged_actions=True``.
H36M_DAMAGED_ACTIONS = (("S9", "Greeting-2"), ("S9", "SittingDown-2"), ("S9", "Waiting-1"))
#: MoSh fits hold one pose per 5 video frames (10 fps of the 50 fps videos): row ``f // 5``.
H36M_MOSH_STEP = 5
_MM_FIX = ("LT's labels keep Human3.6M's millimetres; regenerate the file with LT's "
           "generate-labels-npy-multiview.py.")
_LT_HINT = ("Expected Learnable Triangulation's extra/human36m-multiview-labels-GTbboxes.npy "
            "(made by mvn/datasets/human36m_preprocessing/generate-labels-npy-multiview.py)")


@dataclass(frozen=True)
class LTLabels:
    """Learnable Triangulation's multi-view labels (``np.load(...).item()``), checked.

    ``cameras`` is a structured ``(S, 4)`` array (``R (3, 3)``, ``t (3, 1)`` mm, ``K (3, 3)``,
    ``dist (5,)``); ``table`` one row per (subject, action, frame) with ``keypoints (17, 3)`` world
    mm and ``bbox_by_camera_tlbr (4, 4)`` (top, left, bottom, right; zeros = view missing).
    """

    subject_names: list[str]
    camera_names: list[str]
    action_names: list[str]
    cameras: np.ndarray
    table: np.ndarray

    def camera(self, subject_idx: int, camera_idx: int) -> dict[str, np.ndarray]:
        """``K (3, 3)``, ``R (3, 3)`` world->camera, ``t (3,)`` **metres**, ``dist (5,)``
        (Human3.6M's distortion model: :func:`distort` with ``model="h36m"``)."""
        c = self.cameras[subject_idx, camera_idx]
        return {"K": np.asarray(c["K"], np.float64), "R": np.asarray(c["R"], np.float64),
                "t": np.asarray(c["t"], np.float64).reshape(3) / 1000.0,
                "dist": np.asarray(c["dist"], np.float64).reshape(5)}


def _need_fields(arr: Any, name: str, fields: dict[str, tuple[int, ...]], path: Path) -> None:
    names = getattr(getattr(arr, "dtype", None), "names", None) or ()
    missing = [f for f in fields if f not in names]
    if missing:
        raise ValueError(f"{path}: {name} lacks the fields {missing} (has {list(names)}). "
                         f"{_LT_HINT}")
    for f, shape in fields.items():
        if arr.dtype[f].shape != shape:
            raise ValueError(f"{path}: {name}['{f}'] has shape {arr.dtype[f].shape}, expected "
                             f"{shape}. {_LT_HINT}")


def read_lt_labels(path: str | Path) -> LTLabels:
    """Read and validate LT's labels ``.npy`` (keys, shapes and millimetre units)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no labels file at {path}. {_LT_HINT}; pass it with --labels")
    data = load_pickle(path)
    keys = ("subject_names", "camera_names", "action_names", "cameras", "table")
    missing = [k for k in keys if not isinstance(data, dict) or k not in data]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}. {_LT_HINT}")
    cams, table = data["cameras"], data["table"]
    _need_fields(cams, "cameras", {"R": (3, 3), "t": (3, 1), "K": (3, 3), "dist": (5,)}, path)
    _need_fields(table, "table", {"subject_idx": (), "action_idx": (), "frame_idx": (),
                                  "keypoints": (17, 3), "bbox_by_camera_tlbr": (4, 4)}, path)
    want = (len(data["subject_names"]), len(data["camera_names"]))
    if cams.shape != want:
        raise ValueError(f"{path}: cameras has shape {cams.shape}, expected (subjects, cameras) "
                         f"= {want}. {_LT_HINT}")
    check_millimetres(np.linalg.norm(cams["t"].reshape(-1, 3), axis=1), f"{path}: cameras['t']",
                      100.0, _MM_FIX)
    kp = table["keypoints"][:1000]
    check_millimetres(kp.max(1) - kp.min(1), f"{path}: table['keypoints'] (body extent)", 100.0,
                      _MM_FIX)
    return LTLabels([str(s) for s in data["subject_names"]], [str(c) for c in data["camera_names"]],
                    [str(a) for a in data["action_names"]], cams, table)


def read_h36m_metadata(path: str | Path) -> dict[tuple[str, str], str]:
    """Human3.6M's ``metadata.xml`` -> ``{(subject, LT action e.g. "Directions-1"): original
    file prefix e.g. "Directions 1"}`` (the name MoSh files carry)."""
    root = ET.parse(path).getroot()
    mapping, actions = root.find("mapping"), root.find("actionnames")
    if mapping is None or actions is None:
        raise ValueError(f"{path} lacks <mapping> or <actionnames>: not Human3.6M's metadata.xml")
    names = {str(i + 1): el.text for i, el in enumerate(actions)}
    rows = [[td.text for td in tr] for tr in mapping]
    subjects = rows[0][2:]
    out = {}
    for action_id, sub_id, *prefixes in rows[1:]:
        if action_id in names:
            for subject, prefix in zip(subjects, prefixes, strict=False):  # short rows
                out[(subject, f"{names[action_id]}-{sub_id}")] = prefix
    return out


def mosh_file(mosh_dir: str | Path, subject: str, action: str, camera_idx: int,
              metadata: dict[tuple[str, str], str] | None = None) -> Path | None:
    """``MOSH_DIR/<S>/<name>_cam<i>_aligned.pkl`` for an LT action: ``<name>`` is the LT name
    (``Directions-1``) or, given ``metadata`` (:func:`read_h36m_metadata`), H36M's original prefix
    (``Directions 1``). None if neither exists."""
    names = [action] + ([metadata[(subject, action)]] if metadata and (subject, action) in metadata
                        else [])
    for name in names:
        p = Path(mosh_dir) / subject / f"{name}_cam{camera_idx}_aligned.pkl"
        if p.is_file():
            return p
    return None


def read_mosh_fit(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(new_poses (N, 72), betas (10,))`` of a MoSh ``*_aligned.pkl`` (radians, checked)."""
    data = load_pickle(path)
    if not isinstance(data, dict) or "new_poses" not in data or "betas" not in data:
        raise ValueError(f"{path}: a MoSh fit needs the keys 'new_poses' (N, 72) and 'betas' (10,),"
                         f" found {sorted(data) if isinstance(data, dict) else type(data).__name__}")
    poses = np.asarray(data["new_poses"], np.float64)
    betas = np.asarray(data["betas"], np.float64).ravel()
    if poses.ndim != 2 or poses.shape[1] != 72 or betas.size < 10:
        raise ValueError(f"{path}: new_poses must be (N, 72) and betas (10,), got {poses.shape} "
                         f"and {betas.shape}")
    if np.abs(poses).max() > 4 * math.pi:
        raise ValueError(f"{path}: new_poses reach {np.abs(poses).max():.1f}: degrees? axis-angle "
                         "in radians is expected")
    return poses, betas[:10]


# ------------------------------------------------------------------------------------ ZJU-MoCap
#: The kit's LightStage protocol: sequence ids (``CoreView_<id>``) and cameras 1, 7, 13, 19.
ZJU_TRAIN_SEQUENCES = (*range(363, 372), *range(377, 385))
ZJU_TEST_SEQUENCES = tuple(range(385, 389))
ZJU_CAMERAS = (0, 6, 12, 18)


@dataclass(frozen=True)
class ZJUAnnots:
    """``annots.npy`` of one sequence: C cameras (``K (C, 3, 3)``, ``dist (C, 5)`` OpenCV,
    ``R (C, 3, 3)`` world->camera, ``t (C, 3)`` **metres**) and per frame the C image paths."""

    K: np.ndarray
    dist: np.ndarray
    R: np.ndarray
    t: np.ndarray
    images: list[list[str]]


def read_zju_annots(path: str | Path, t_unit: str = "mm") -> ZJUAnnots:
    """Read and validate a ZJU-MoCap ``annots.npy`` (``cams``: K, D, R, T; ``ims``)."""
    path = Path(path)
    hint = "Expected ZJU-MoCap's annots.npy: {'cams': {'K','D','R','T'}, 'ims': [{'ims': [...]}]}"
    if not path.is_file():
        raise FileNotFoundError(f"no annots.npy at {path}. {hint}")
    data = load_pickle(path)
    cams = data.get("cams") if isinstance(data, dict) else None
    if not isinstance(cams, dict) or "ims" not in data:
        raise ValueError(f"{path} lacks 'cams' or 'ims'. {hint}")
    missing = [k for k in ("K", "D", "R", "T") if k not in cams]
    if missing:
        raise ValueError(f"{path}: cams lacks {missing}. {hint}")
    out = {}
    for key, shape in (("K", (3, 3)), ("D", (5,)), ("R", (3, 3)), ("T", (3,))):
        arrs = [np.asarray(a, np.float64) for a in cams[key]]
        bad = [i for i, a in enumerate(arrs) if a.size != math.prod(shape)]
        if bad or not arrs:
            raise ValueError(f"{path}: cams['{key}'] must hold one {shape} array per camera; camera "
                             f"{bad[0] if bad else 0} has shape "
                             f"{arrs[bad[0]].shape if bad else None}")
        out[key] = np.stack([a.reshape(shape) for a in arrs])
    C = {len(v) for v in out.values()}
    if len(C) != 1:
        raise ValueError(f"{path}: cams K, D, R, T list different numbers of cameras {C}")
    if t_unit == "mm":
        check_millimetres(np.linalg.norm(out["T"], axis=1), f"{path}: cams['T']", 100.0,
                          "ZJU-MoCap stores T in millimetres; if yours is in metres pass --t-unit m")
        t = out["T"] / 1000.0
    elif t_unit == "m":
        check_metres(out["T"], f"{path}: cams['T']", 50.0, "Pass --t-unit mm.")
        t = out["T"]
    else:
        raise ValueError(f"t_unit must be 'mm' or 'm', got {t_unit!r}")
    images = [list(f["ims"]) if isinstance(f, dict) and "ims" in f else None for f in data["ims"]]
    if any(f is None for f in images):
        raise ValueError(f"{path}: every entry of 'ims' must be a dict with key 'ims'. {hint}")
    return ZJUAnnots(out["K"], out["D"], out["R"], t, images)


def zju_param_index(image_rel: str) -> int:
    """Index of the SMPL parameter file of a frame from its image name: ``000123.jpg`` -> 123; the
    long names of sequences 313/315 (``..._Camera_(1)_0001_2019-...jpg``) -> 1 (1-based)."""
    name = Path(image_rel).name
    parts = name.split("_")
    if len(parts) >= 5 and parts[4].isdigit():
        return int(parts[4])
    stem = Path(name).stem
    if not stem.isdigit():
        raise ValueError(f"cannot read a frame number from the image name {image_rel!r}")
    return int(stem)


def read_zju_params(source: str | Path | dict, row: int = 0) -> dict[str, np.ndarray]:
    """One frame of SMPL parameters as EasyMocap's ``poses (72,)``, ``Rh (3,)``, ``Th (3,)`` m,
    ``shapes (10,)`` (float64).

    Accepts EasyMocap/ZJU ``params/<i>.npy`` dicts (``poses, Rh, Th, shapes``) and SMPL-style
    dicts (``global_orient, body_pose, transl, betas``; axis-angle or rotation matrices), e.g.
    smplx ``transfer_model`` output or its ``merged.pkl`` (frame ``row``); SMPL-style parameters
    become ``Rh = 0, Th = transl``, which is exact.
    """
    d = load_pickle(source) if not isinstance(source, dict) else source

    def get(key: str, width: int) -> np.ndarray:
        a = np.asarray(d[key], np.float64)
        if a.ndim >= 2 and a.shape[-2:] == (3, 3):  # rotation matrices (..., J, 3, 3)
            a = matrix_to_axis_angle(torch.as_tensor(a)).numpy()  # (..., J, 3)
        a = a[None] if a.ndim == 1 else a.reshape(a.shape[0], -1)  # (N, width or more)
        r = row if a.shape[0] > 1 else 0
        if r >= a.shape[0] or a.shape[1] < width:
            raise ValueError(f"{source}: '{key}' has shape {np.shape(d[key])}; expected (N, "
                             f"{width}) with row {row} present")
        return a[r, :width]

    if {"poses", "Rh", "Th", "shapes"} <= set(d):
        out = {"poses": get("poses", 72), "Rh": get("Rh", 3), "Th": get("Th", 3),
               "shapes": get("shapes", 10)}
    elif {"global_orient", "body_pose", "transl", "betas"} <= set(d):
        out = {"poses": np.concatenate([get("global_orient", 3), get("body_pose", 69)]),
               "Rh": np.zeros(3), "Th": get("transl", 3), "shapes": get("betas", 10)}
    else:
        raise ValueError(f"{source}: SMPL parameters need the keys poses, Rh, Th, shapes "
                         "(EasyMocap/ZJU) or global_orient, body_pose, transl, betas (SMPL, "
                         f"e.g. smplx transfer_model); found {sorted(d)}")
    check_metres(out["Th"], f"{source}: Th/transl", 50.0,
                 "SMPL translations are metres; divide by 1000.")
    return out
