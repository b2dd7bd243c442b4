"""Motion clips: one record type for every pose source (real mocap, procedural, AMASS files).

World convention of the kit: metres, **y up**, the floor is the plane ``y = 0``, and a body at zero
global orientation faces **+z** with its left side towards **+x** (SMPL's own rest frame).

:class:`MotionClip` holds numpy arrays (it is an I/O record: saved, loaded, sliced, turned into
dataset files); :meth:`MotionClip.to_torch` gives the tensors the rest of the library consumes.

* Real motion: :func:`load_deepmimic` reads the committed asset ``vhakit/assets/deepmimic_smpl.npz``
  (20 DeepMimic clips from the pybullet wheel, zlib licence, retargeted to SMPL by
  ``data_scripts/import_deepmimic_motions.py``).
* Users' AMASS files: :func:`load_amass_npz` (SMPL+H and SMPL-X layouts, z-up -> y-up).
* Grounding (needs the body): :func:`vhakit.data.placement.place_on_floor`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vhakit._util import check_shape, to_numpy
from vhakit.geometry.rotations import axis_angle_to_matrix, matrix_to_axis_angle

__all__ = ["MotionClip", "save_clips", "load_clips", "load_deepmimic", "load_amass_npz",
           "DEEPMIMIC_ASSET", "Y_UP_FROM_Z_UP"]

NUM_POSE = 72   # 24 SMPL joints x 3 axis-angle values, radians
NUM_BETAS = 10  # SMPL shape coefficients used by the kit
CLIP_FORMAT_VERSION = 1
DEEPMIMIC_ASSET = Path(__file__).resolve().parents[1] / "assets" / "deepmimic_smpl.npz"
#: Rotation taking AMASS's z-up world to the kit's y-up world: -90 degrees about x,
#: ``(x, y, z) -> (x, z, -y)``.
Y_UP_FROM_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def _float_array(value: Any, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    arr = to_numpy(value)
    if arr.dtype.kind not in "fiu":
        raise TypeError(f"{name} must hold numbers, got dtype {arr.dtype}")
    check_shape(arr, name, tuple("T" if s is None else s for s in shape))
    arr = np.array(arr, dtype=np.float32, order="C")  # private copy
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf values")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True)
class MotionClip:
    """A sequence of SMPL poses of one body in the kit's world (y up, floor at y = 0, metres).

    Attributes:
        poses: ``(T, 72)`` float32, SMPL axis-angle in radians: global orientation (joint 0) then
            23 local joint rotations (joint limits: :mod:`vhakit.data.joint_limits`).
        betas: ``(10,)`` float32 shape coefficients of the body model.
        transl: ``(T, 3)`` float32 metres, SMPL's translation (added to every vertex).
        fps: frames per second (> 0).
        name: clip name, e.g. ``"walk"``.
        source: where it comes from: ``"deepmimic"``, ``"procedural"``, ``"amass:<file>"``, ...
        gender: ``"neutral"``, ``"male"`` or ``"female"`` (informative; the kit's body is neutral).

    Arrays are stored as read-only numpy copies; use :meth:`to_torch` for tensors.
    """

    poses: np.ndarray
    betas: np.ndarray
    transl: np.ndarray
    fps: float
    name: str
    source: str = ""
    gender: str = "neutral"

    def __post_init__(self) -> None:
        poses = _float_array(self.poses, "poses", (None, NUM_POSE))
        if poses.shape[0] < 1:
            raise ValueError("poses must hold at least one frame, got shape (0, 72)")
        transl = _float_array(self.transl, "transl", (poses.shape[0], 3))
        betas = _float_array(self.betas, "betas", (NUM_BETAS,))
        fps = float(self.fps)
        if not np.isfinite(fps) or fps <= 0:
            raise ValueError(f"fps must be a positive number, got {self.fps!r}")
        for key in ("name", "source", "gender"):
            if not isinstance(getattr(self, key), str):
                raise TypeError(f"{key} must be a str, got {type(getattr(self, key)).__name__}")
        object.__setattr__(self, "poses", poses)
        object.__setattr__(self, "transl", transl)
        object.__setattr__(self, "betas", betas)
        object.__setattr__(self, "fps", fps)

    @property
    def num_frames(self) -> int:
        return int(self.poses.shape[0])

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps

    def to_torch(self, device: torch.device | str | None = None,
                 dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """Tensors ``poses (T, 72)``, ``betas (T, 10)`` (repeated per frame), ``transl (T, 3)``."""
        t = {k: torch.as_tensor(np.array(getattr(self, k)), dtype=dtype, device=device)
             for k in ("poses", "betas", "transl")}
        t["betas"] = t["betas"].expand(self.num_frames, NUM_BETAS).contiguous()
        return t

    def frames(self, index: slice | np.ndarray | list[int]) -> MotionClip:
        """A clip made of the selected frames (``fps`` divided by a slice's step)."""
        step = index.step if isinstance(index, slice) and index.step else 1
        return replace(self, poses=self.poses[index], transl=self.transl[index],
                       fps=self.fps / step)

    def save(self, path: str | Path) -> None:
        """Write a single-clip ``.npz`` (see :func:`save_clips`)."""
        save_clips(path, [self])

    @classmethod
    def load(cls, path: str | Path) -> MotionClip:
        clips = load_clips(path)
        if len(clips) != 1:
            raise ValueError(f"{path} holds {len(clips)} clips; use load_clips(path) instead")
        return clips[0]


def save_clips(path: str | Path, clips: list[MotionClip]) -> None:
    """Write clips to one ``.npz``: frames concatenated, ``offsets (C+1,)`` delimit the clips."""
    if not clips or not all(isinstance(c, MotionClip) for c in clips):
        raise TypeError("clips must be a non-empty list of MotionClip")
    offsets = np.cumsum([0] + [c.num_frames for c in clips]).astype(np.int64)
    np.savez_compressed(
        path, format_version=np.int64(CLIP_FORMAT_VERSION), offsets=offsets,
        poses=np.concatenate([c.poses for c in clips]),
        transl=np.concatenate([c.transl for c in clips]),
        betas=np.stack([c.betas for c in clips]),
        fps=np.array([c.fps for c in clips], dtype=np.float64),
        names=np.array([c.name for c in clips]), sources=np.array([c.source for c in clips]),
        genders=np.array([c.gender for c in clips]))


def load_clips(path: str | Path) -> list[MotionClip]:
    """Read clips written by :func:`save_clips`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no motion file at {path}")
    with np.load(path, allow_pickle=False) as data:
        need = {"format_version", "offsets", "poses", "transl", "betas", "fps", "names"}
        missing = sorted(need - set(data.files))
        if missing:
            raise ValueError(f"{path} is not a vhakit clip file: missing keys {missing}")
        if int(data["format_version"]) != CLIP_FORMAT_VERSION:
            raise ValueError(f"{path}: clip format version {int(data['format_version'])}, this "
                             f"vhakit reads version {CLIP_FORMAT_VERSION}; re-create the file")
        off = data["offsets"]
        n = len(data["names"])
        sources = data["sources"] if "sources" in data.files else np.array([""] * n)
        genders = data["genders"] if "genders" in data.files else np.array(["neutral"] * n)
        return [MotionClip(poses=data["poses"][off[i]:off[i + 1]],
                           transl=data["transl"][off[i]:off[i + 1]], betas=data["betas"][i],
                           fps=float(data["fps"][i]), name=str(data["names"][i]),
                           source=str(sources[i]), gender=str(genders[i])) for i in range(n)]


def load_deepmimic(path: str | Path | None = None) -> list[MotionClip]:
    """The 20 real DeepMimic clips retargeted to SMPL (evaluation-only data in the kit's splits).

    Args:
        path: defaults to the committed asset :data:`DEEPMIMIC_ASSET`.
    Returns:
        clips in the asset's order (``humanoid3d_*`` then the ``walker`` clips), grounded for the
        open body model with ``betas = 0``.
    """
    path = DEEPMIMIC_ASSET if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"DeepMimic asset missing at {path}; rebuild it with `python "
                                "data_scripts/import_deepmimic_motions.py` (needs pybullet)")
    return load_clips(path)


def _decode_str(value: np.ndarray) -> str:
    item = value.item() if isinstance(value, np.ndarray) else value
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def load_amass_npz(path: str | Path, pelvis_rest_m: np.ndarray | None = None) -> MotionClip:
    """Read one AMASS sequence (SMPL+H ``*_poses.npz`` or SMPL-X ``*_stageii.npz``) as SMPL.

    * Pose: SMPL's 24 joints = root + 21 body joints (``poses[:, :66]``, the same joints in SMPL,
      SMPL+H and SMPL-X) + zeros for SMPL's hand joints 22 and 23. Never ``poses[:, :72]``: in
      SMPL+H those values are left-index-finger rotations.
    * Shape: ``betas[:10]`` (SMPL+H has 16; the spaces are only approximately compatible).
    * Frame rate: ``mocap_framerate`` (SMPL+H) or ``mocap_frame_rate`` (SMPL-X).
    * World: AMASS is z-up; the root orientation and translation are rotated by
      :data:`Y_UP_FROM_Z_UP` (-90 degrees about x). SMPL rotates the body about the pelvis joint
      ``J0``, so an exact change of frame also needs ``transl' = A (transl + J0) - J0``: pass
      ``pelvis_rest_m`` (``J0`` of the body model for these betas, ``(3,)`` m) to get it; without
      it the body lands ``(A - I) J0`` off (~0.3 m for SMPL), which
      :func:`vhakit.data.placement.place_on_floor` fixes vertically.

    Args:
        path: the ``.npz`` file.
        pelvis_rest_m: optional ``(3,)`` rest-pose pelvis joint, metres.
    Returns:
        a :class:`MotionClip` named after the file, ``source="amass:<file name>"``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no AMASS file at {path}")
    try:
        data = dict(np.load(path, allow_pickle=False))
    except ValueError as err:  # object arrays need pickle: not an AMASS release file
        raise ValueError(f"{path}: cannot read without pickle ({err}); AMASS files hold plain "
                         "arrays: poses, trans, betas, gender, mocap_framerate") from err
    fps_key = next((k for k in ("mocap_framerate", "mocap_frame_rate") if k in data), None)
    missing = [k for k in ("poses", "trans", "betas") if k not in data]
    if fps_key is None:
        missing.append("mocap_framerate (or mocap_frame_rate)")
    if missing:
        raise ValueError(f"{path}: missing AMASS keys {missing}; found {sorted(data)}. Expected "
                         "an AMASS *_poses.npz (SMPL+H) or *_stageii.npz (SMPL-X) file")
    poses = np.asarray(data["poses"], dtype=np.float64)
    if poses.ndim != 2 or poses.shape[1] not in (156, 165):
        raise ValueError(f"{path}: poses must have shape (T, 156) (SMPL+H) or (T, 165) (SMPL-X), "
                         f"got {poses.shape}")
    trans = np.asarray(data["trans"], dtype=np.float64)
    check_shape(trans, f"{path}: trans", (poses.shape[0], 3), hint="; one row per pose")
    betas = np.asarray(data["betas"], dtype=np.float64).reshape(-1)
    if betas.size < NUM_BETAS:
        raise ValueError(f"{path}: betas must hold at least {NUM_BETAS} values, got {betas.size}")
    fps = float(np.asarray(data[fps_key]))
    gender = _decode_str(data["gender"]) if "gender" in data else "neutral"

    out = np.zeros((poses.shape[0], NUM_POSE))
    out[:, :66] = poses[:, :66]  # root + 21 body joints; SMPL hands (joints 22, 23) stay 0
    A = torch.as_tensor(Y_UP_FROM_Z_UP)
    root = axis_angle_to_matrix(torch.as_tensor(out[:, :3]))  # (T, 3, 3)
    out[:, :3] = matrix_to_axis_angle(A @ root).numpy()
    transl = trans @ Y_UP_FROM_Z_UP.T
    if pelvis_rest_m is not None:
        j0 = _float_array(pelvis_rest_m, "pelvis_rest_m", (3,)).astype(np.float64)
        transl = transl + Y_UP_FROM_Z_UP @ j0 - j0
    return MotionClip(poses=out, betas=betas[:NUM_BETAS], transl=transl, fps=fps,
                      name=path.stem, source=f"amass:{path.name}", gender=gender)
