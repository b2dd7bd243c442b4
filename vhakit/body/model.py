"""Body models in SMPL's format: the shipped licence-free "open" body, or licensed SMPL.

Both are driven by ``smplx.SMPL`` (linear blend skinning with SMPL's 24 joints) and share one
interface, :class:`BodyModel`::

    body = BodyModel.open()                      # ships with vhakit (built from Anny, CC0/Apache)
    body = BodyModel.smpl("~/models/smpl")       # your licensed SMPL_NEUTRAL.pkl
    out = body(betas=betas, body_pose=body_pose, global_orient=go, transl=t)
    out.vertices  # (B, V, 3) m     out.joints  # (B, 24, 3) m     out.vertices108  # (B, 108, 3)

Conventions (SMPL's): metres, y up, the body faces +z, x points to the body's left; zero pose is
a T-pose; pose vectors are axis-angle per joint in SMPL's joint order :data:`JOINT_NAMES`, each
joint rotating relative to its parent :data:`SMPL_PARENTS`. A positive x-rotation of
``left_knee`` bends the shin backwards, on both models.

The open model has no pose-corrective blend shapes (``posedirs`` = 0), ~6890 vertices (not SMPL's
topology) and 10 shape components from a PCA of adult Anny bodies (betas ~ N(0, 1); keep them in
about [-2, 2]). See ``vhakit/assets/README.md``.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from vhakit._util import check_tensor

__all__ = ["JOINT_NAMES", "SMPL_PARENTS", "BodyOutput", "BodyModel", "smpl_available",
           "OPEN_MODEL_PATH", "H36M_JOINT_NAMES", "H36M_REGRESSOR_ENV", "h36m_regressor"]

JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar",
    "right_collar", "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow",
    "left_wrist", "right_wrist", "left_hand", "right_hand",
)
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
OPEN_MODEL_PATH = Path(__file__).resolve().parents[1] / "assets" / "open_body.npz"
#: The 17 Human3.6M joints in the order of the official regressor ``J_regressor_h36m.npy``
#: (names as in I2L-MeshNet's ``Human36M.py``; joint 0, the pelvis, is the root of H36M's MPJPE).
H36M_JOINT_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "nose", "head_top", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
#: Environment variable naming the official ``J_regressor_h36m.npy`` ((17, 6890), shipped with
#: SPIN / licensed SMPL data; never here), used for licensed SMPL bodies.
H36M_REGRESSOR_ENV = "VHAKIT_H36M_REGRESSOR"
NUM_BETAS = 10
NUM_POSE_BASIS = 207  # SMPL's pose-corrective basis size: 23 joints x 9 rotation entries


@dataclass(frozen=True)
class BodyOutput:
    """Posed body, metres: ``vertices (B, V, 3)``, ``joints (B, 24, 3)`` (SMPL's joints, in
    :data:`JOINT_NAMES` order) and ``vertices108 (B, 108, 3)`` = ``vertices[:, subsample_indices]``.
    """

    vertices: torch.Tensor
    joints: torch.Tensor
    vertices108: torch.Tensor


def smpl_available(path_or_dir: str | os.PathLike | None = None, gender: str = "neutral") -> bool:
    """True if a licensed SMPL file for `gender` is found (argument or ``$VHAKIT_SMPL_DIR``)."""
    from vhakit.body.smpl_files import find_smpl_file

    try:
        find_smpl_file(path_or_dir, gender)
    except FileNotFoundError:
        return False
    return True


def _check_param(x, name: str, width: int) -> torch.Tensor | None:
    if x is None:
        return None
    one = isinstance(x, torch.Tensor) and x.dim() == 1
    check_tensor(x, name, ("B", width), floating=True,
                 hint="; add a batch dimension with x[None]" if one else "")
    if not torch.isfinite(x).all():
        raise ValueError(f"{name} contains NaN or inf values")
    return x


class BodyModel(torch.nn.Module):
    """An SMPL-format body model (24 joints, 10 betas) with the 108 subsampled vertices.

    Build it with :meth:`open` or :meth:`smpl`. Attributes: ``faces (F, 3)`` long,
    ``parents (24,)`` long, ``subsample_indices (108,)`` long, ``part_labels (V,)`` long (the
    joint with the largest skinning weight per vertex), ``joint_names``, ``num_vertices``,
    ``num_betas`` (10), ``name`` ("open", "smpl-neutral", ...). Move with ``.to(device)``.
    """

    num_betas = NUM_BETAS

    def __init__(self, arrays: dict, name: str, subsample_indices: np.ndarray,
                 vertex_ids: dict | None = None) -> None:
        super().__init__()
        import smplx

        weights = np.asarray(arrays["weights"], np.float32)
        n_vertices = weights.shape[0]
        posedirs = arrays.get("posedirs")
        if posedirs is None:  # the open model has no pose correctives
            posedirs = np.zeros((n_vertices, 3, NUM_POSE_BASIS), np.float32)
        data = SimpleNamespace(
            v_template=np.asarray(arrays["v_template"], np.float32),
            shapedirs=np.asarray(arrays["shapedirs"], np.float32)[:, :, :NUM_BETAS],
            posedirs=np.asarray(posedirs, np.float32),
            J_regressor=np.asarray(arrays["J_regressor"], np.float32),
            weights=weights, kintree_table=np.asarray(arrays["kintree_table"]).astype(np.int64),
            f=np.asarray(arrays["f"]).astype(np.int64))
        kwargs = {}
        if vertex_ids is not None:  # smplx's default extra-keypoint ids are SMPL vertex ids
            kwargs["vertex_ids"] = vertex_ids
        # smplx prints "WARNING: You are using a SMPL model, with only 10 shape coefficients."
        # whenever shapedirs has fewer than 300 columns; 10 is what we ask for, so hide it.
        with contextlib.redirect_stdout(io.StringIO()):
            self._smpl = smplx.SMPL(model_path="", data_struct=data, num_betas=NUM_BETAS,
                                    create_betas=False, create_global_orient=False,
                                    create_body_pose=False, create_transl=False, **kwargs)
        self.name = name
        # smplx's SMPL keypoint vertices (nose, eyes, ...): the model's own ids, or SMPL's
        self.landmarks = dict(vertex_ids if vertex_ids is not None
                              else smplx.vertex_ids.vertex_ids["smplh"])
        self.joint_names = JOINT_NAMES
        self.num_vertices = n_vertices
        self.register_buffer("faces", torch.as_tensor(data.f, dtype=torch.long), persistent=False)
        self.register_buffer("parents", torch.tensor(SMPL_PARENTS, dtype=torch.long),
                             persistent=False)
        self.register_buffer("subsample_indices",
                             torch.as_tensor(np.asarray(subsample_indices), dtype=torch.long),
                             persistent=False)
        self.register_buffer("part_labels", torch.as_tensor(weights.argmax(1), dtype=torch.long),
                             persistent=False)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def open(cls, path: str | os.PathLike | None = None) -> BodyModel:
        """The licence-free open body shipped in ``vhakit/assets/open_body.npz``."""
        path = Path(path) if path is not None else OPEN_MODEL_PATH
        if not path.is_file():
            raise FileNotFoundError(f"open body model not found at {path}; rebuild it with "
                                    "data_scripts/build_open_body_model.py")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        vertex_ids = {str(k): int(v) for k, v in zip(arrays["landmark_names"],
                                                      arrays["landmark_indices"], strict=True)}
        return cls(arrays, "open", arrays["subsample_indices"], vertex_ids=vertex_ids)

    @classmethod
    def smpl(cls, path_or_dir: str | os.PathLike | None = None, gender: str = "neutral",
             subsample_indices: str | os.PathLike | np.ndarray | None = None) -> BodyModel:
        """Licensed SMPL (``SMPL_{NEUTRAL,MALE,FEMALE}.pkl/.npz``) from `path_or_dir` or
        ``$VHAKIT_SMPL_DIR``; pickles are read without chumpy (see :mod:`vhakit.body.smpl_files`).

        Args:
            subsample_indices: the 108 vertex indices as an array or a ``.npy``/``.txt`` file; by
                default they are computed once (:func:`vhakit.body.subsample.compute_subsample_indices`)
                and cached in ``$VHAKIT_CACHE_DIR`` (default ``~/.cache/vhakit``).
        Raises:
            FileNotFoundError: no model file; the message says where to get SMPL.
        """
        from vhakit.body.smpl_files import find_smpl_file, load_smpl_file

        arrays = load_smpl_file(find_smpl_file(path_or_dir, gender))
        if subsample_indices is None:
            idx = _cached_subsample_indices(arrays)
        elif isinstance(subsample_indices, (str, os.PathLike)):
            p = Path(subsample_indices)
            idx = np.load(p) if p.suffix == ".npy" else np.loadtxt(p, dtype=np.int64)
        else:
            idx = np.asarray(subsample_indices)
        n_vertices = np.asarray(arrays["v_template"]).shape[0]
        idx = np.asarray(idx).astype(np.int64).ravel()
        if idx.shape != (108,) or idx.min() < 0 or idx.max() >= n_vertices:
            raise ValueError(f"subsample_indices must be 108 indices in [0, {n_vertices}), got "
                             f"shape {idx.shape}")
        return cls(arrays, f"smpl-{gender}", idx)

    # ------------------------------------------------------------------ forward
    def forward(self, betas: torch.Tensor | None = None, body_pose: torch.Tensor | None = None,
                global_orient: torch.Tensor | None = None,
                transl: torch.Tensor | None = None) -> BodyOutput:
        """Pose and shape the body.

        Args:
            betas: ``(B, 10)`` shape coefficients (~N(0, 1)); None = mean shape.
            body_pose: ``(B, 69)`` axis-angle of joints 1..23 (radians); None = T-pose.
            global_orient: ``(B, 3)`` axis-angle of the pelvis about the pelvis joint.
            transl: ``(B, 3)`` translation in metres.
            Batch size 1 is broadcast against the others. Inputs are cast to the model's dtype
            and must be on its device.
        Returns:
            :class:`BodyOutput` with ``vertices (B, V, 3)``, ``joints (B, 24, 3)`` and
            ``vertices108 (B, 108, 3)`` in metres.
        """
        params = {"betas": _check_param(betas, "betas", NUM_BETAS),
                  "body_pose": _check_param(body_pose, "body_pose", 69),
                  "global_orient": _check_param(global_orient, "global_orient", 3),
                  "transl": _check_param(transl, "transl", 3)}
        sizes = {k: v.shape[0] for k, v in params.items() if v is not None}
        batch = max(sizes.values(), default=1)
        bad = {k: b for k, b in sizes.items() if b not in (1, batch)}
        if bad:
            raise ValueError(f"batch sizes differ: {sizes}; use one batch size B (or 1)")
        ref = self._smpl.v_template
        width = {"betas": NUM_BETAS, "body_pose": 69, "global_orient": 3, "transl": 3}
        for key, value in params.items():
            if value is None:
                value = ref.new_zeros(batch, width[key])
            elif value.device != ref.device:
                raise ValueError(f"{key} is on {value.device} but the body model is on "
                                 f"{ref.device}; call model.to({value.device}) or move {key}")
            params[key] = value.to(ref.dtype).expand(batch, -1).contiguous()
        out = self._smpl(**params, return_verts=True)
        vertices = out.vertices  # (B, V, 3)
        joints = out.joints[:, : len(JOINT_NAMES)]  # (B, 24, 3): drop smplx's extra keypoints
        return BodyOutput(vertices=vertices, joints=joints,
                          vertices108=vertices[:, self.subsample_indices])

    def from_poses(self, poses: torch.Tensor, betas: torch.Tensor | None = None,
                   transl: torch.Tensor | None = None) -> BodyOutput:
        """``forward`` with SMPL's 72-vector: ``poses (B, 72)`` = global orient + body pose."""
        poses = _check_param(poses, "poses", 72)
        return self(betas=betas, body_pose=poses[:, 3:], global_orient=poses[:, :3],
                    transl=transl)

    @property
    def v_template(self) -> torch.Tensor:
        """``(V, 3)`` rest (T-pose) template, metres."""
        return self._smpl.v_template

    @property
    def lbs_arrays(self) -> dict[str, torch.Tensor]:
        """The arrays smplx's ``lbs`` uses (for independent checks and teaching)."""
        s = self._smpl
        return {"v_template": s.v_template, "shapedirs": s.shapedirs, "posedirs": s.posedirs,
                "J_regressor": s.J_regressor, "parents": s.parents, "lbs_weights": s.lbs_weights}

    def extra_repr(self) -> str:
        return f"name={self.name!r}, num_vertices={self.num_vertices}, num_betas={NUM_BETAS}"


def _cache_dir() -> Path:
    return Path(os.environ.get("VHAKIT_CACHE_DIR", Path.home() / ".cache" / "vhakit"))


def _cached_subsample_indices(arrays: dict) -> np.ndarray:
    """Compute the 108 indices for a licensed mesh once; cache them keyed by the mesh's hash."""
    from vhakit.body.subsample import compute_subsample_indices

    v = np.ascontiguousarray(arrays["v_template"], np.float64)
    f = np.ascontiguousarray(arrays["f"], np.int64)
    key = hashlib.sha1(v.tobytes() + f.tobytes()).hexdigest()[:16]
    path = _cache_dir() / f"subsample108_{key}.npy"
    if path.is_file():
        return np.load(path)
    labels = np.asarray(arrays["weights"]).argmax(1)
    idx = compute_subsample_indices(v, f, 108, part_labels=labels)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, idx)
    except OSError:  # read-only home: recompute next time
        pass
    return idx


def _vertex_ring(faces: torch.Tensor, vertex: int, num_vertices: int) -> torch.Tensor:
    """``(V,)`` weights: 1/n on ``vertex`` and its one-ring neighbours (the n vertices sharing a
    triangle with it), 0 elsewhere."""
    ring = torch.unique(faces[(faces == vertex).any(1)])
    w = torch.zeros(num_vertices, dtype=torch.float64)
    w[ring] = 1.0 / ring.numel()
    return w


def _open_h36m_regressor(body: BodyModel) -> torch.Tensor:
    """The documented 17-joint equivalent of ``J_regressor_h36m`` built from ``body``'s mesh,
    ``(17, V)`` float64, rows convex combinations of vertices (docs/conventions.md, "Joint sets").

    From SMPL's 24-joint regressor rows ``J``: hips, knees, ankles, shoulders, elbows and
    wrists as they are; pelvis = midpoint of the hips (H36M's root lies between the hip joints,
    SMPL's pelvis joint higher up); thorax = midpoint of the shoulders; spine = midpoint of
    pelvis and thorax. From vertex rings (a vertex and its one-ring neighbours, equal weights):
    nose = the ring of the ``nose`` keypoint vertex; head top = the ring of the highest vertex of
    the rest template among the vertices skinned mostly to the head.
    """
    J = body.lbs_arrays["J_regressor"].detach().double().cpu()  # (24, V)
    name = {n: J[JOINT_NAMES.index(n)] for n in JOINT_NAMES}
    faces, V = body.faces.cpu(), body.num_vertices
    head = (body.part_labels.cpu() == JOINT_NAMES.index("head")).nonzero().flatten()
    top = int(head[body.v_template.detach().cpu()[head, 1].argmax()])
    pelvis = 0.5 * (name["left_hip"] + name["right_hip"])
    thorax = 0.5 * (name["left_shoulder"] + name["right_shoulder"])
    rows = {"pelvis": pelvis, "thorax": thorax, "spine": 0.5 * (pelvis + thorax),
            "nose": _vertex_ring(faces, int(body.landmarks["nose"]), V),
            "head_top": _vertex_ring(faces, top, V)}
    return torch.stack([rows[n] if n in rows else name[n] for n in H36M_JOINT_NAMES])


def h36m_regressor(body: BodyModel, path: str | os.PathLike | None = None
                   ) -> tuple[torch.Tensor, str]:
    """The 17-joint Human3.6M regressor for ``body``: ``(regressor (17, V) float32, source)``.

    Joints come out as ``regressor @ vertices`` in :data:`H36M_JOINT_NAMES` order
    (:func:`vhakit.evaluation.metrics.regress_joints`). The official ``J_regressor_h36m.npy`` is used when
    given by ``path``, or, for licensed SMPL bodies (``body.name`` ``"smpl-..."``), by
    ``$VHAKIT_H36M_REGRESSOR``; ``source`` is then ``"official:<file name>"``. Otherwise the
    documented equivalent built from the body's own mesh (``source = "mesh-equivalent"``; the
    open body has no official regressor: its mesh is not SMPL's).

    Raises:
        FileNotFoundError: ``path`` (or the variable) names no file.
        ValueError: the file is not a ``(17, V)`` array for this body's ``V`` vertices.
    """
    if path is None and body.name.startswith("smpl"):
        path = os.environ.get(H36M_REGRESSOR_ENV) or None
    if path is None:
        return _open_h36m_regressor(body).float(), "mesh-equivalent"
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"H36M joint regressor {path} not found (from the path argument "
                                f"or ${H36M_REGRESSOR_ENV}); it is J_regressor_h36m.npy of the "
                                "SMPL-based evaluation data (e.g. SPIN's), for licensed SMPL")
    reg = np.load(path, allow_pickle=False)
    if reg.shape != (17, body.num_vertices):
        raise ValueError(f"H36M joint regressor {path} has shape {reg.shape}, but the body model "
                         f"{body.name!r} has {body.num_vertices} vertices: it needs shape "
                         f"(17, {body.num_vertices}). The official file is for SMPL's 6890-vertex "
                         "mesh; use it with BodyModel.smpl(...), and the built-in equivalent "
                         "(path=None) with the open body")
    return torch.as_tensor(np.asarray(reg, np.float32)), f"official:{path.name}"
