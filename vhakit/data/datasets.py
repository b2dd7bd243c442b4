"""Torch datasets over the kit's data: meshes for VHA, multi-view images for BCP and the baseline.

Samples are dicts of tensors (float32, metres):

- :class:`MeshDataset`: ``vertices108 (108, 3)``, ``pelvis (3,)`` (= joint 0), ``joints (24, 3)``,
  ``betas (10,)``, ``poses (72,)``, ``transl (3,)``.
- :class:`MultiViewDataset`: the same plus ``images (V, 3, H, W)`` in [0, 1], cameras
  ``K (V, 3, 3)``, ``R (V, 3, 3)``, ``t (V, 3)``, ``dist (V, 5)`` and ``visibility (V, 108)``
  (1.0 = visible).

Heatmaps are never stored: the trainers build them on the device from ``vertices108``.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from vhakit._util import check_shape
from vhakit.data.store import MESH_ARRAYS, DatasetCorrupt, DatasetInfo, open_dataset, read_image

__all__ = ["MeshDataset", "MultiViewDataset", "mesh_arrays_from_params", "as_multiview_dataset"]


def mesh_arrays_from_params(body, poses: np.ndarray, betas: np.ndarray, transl: np.ndarray,
                            batch_size: int = 256) -> dict[str, np.ndarray]:
    """Pose the body model: ``poses (F, 72)``, ``betas (F, 10)``, ``transl (F, 3)`` ->
    ``vertices108 (F, 108, 3)`` and ``joints (F, 24, 3)`` (float32), in batches, no gradients."""
    poses = np.asarray(poses, dtype=np.float32)
    F = len(poses)
    for name, arr, width in (("poses", poses, 72), ("betas", betas, 10), ("transl", transl, 3)):
        check_shape(np.asarray(arr), name, (F, width))
    v108 = np.empty((F, 108, 3), np.float32)
    joints = np.empty((F, 24, 3), np.float32)
    with torch.no_grad():
        for s in range(0, F, batch_size):
            e = min(F, s + batch_size)
            out = body.from_poses(torch.as_tensor(poses[s:e]),
                                  torch.as_tensor(np.asarray(betas[s:e], np.float32)),
                                  torch.as_tensor(np.asarray(transl[s:e], np.float32)))
            v108[s:e] = out.vertices108.numpy()
            joints[s:e] = out.joints.numpy()
    return {"vertices108": v108, "joints": joints}


def _finite_array(info: DatasetInfo, name: str) -> np.ndarray:
    """``info.array(name)``, checked for NaN/inf: the error names the file and the first bad
    frame, so that a broken dataset is found where it is stored, not in a later computation."""
    arr = info.array(name)
    if arr.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(arr.reshape(len(arr), -1)).all(axis=1))
        if len(bad):
            names = info.meta.get("frame_names") or []
            label = f" ({names[bad[0]]})" if bad[0] < len(names) else ""
            raise DatasetCorrupt(f"{info.root / 'arrays' / f'{name}.npy'} contains NaN or inf "
                                 f"in {len(bad)} of {len(arr)} frames, first frame {bad[0]}"
                                 f"{label}; repair those frames or rebuild {info.root}")
    return arr


class MeshDataset(Dataset):
    """Body meshes for VHA: a sample is the 108 vertices of one posed body and its pelvis.

    Build it from a dataset folder (:meth:`from_dir`), from a named split in memory with no
    images (:meth:`from_split`, e.g. ``prior_pool``), or from arrays.

    Args:
        arrays: ``poses (F, 72)``, ``betas (F, 10)``, ``transl (F, 3)``, ``vertices108 (F, 108, 3)``,
            ``joints (F, 24, 3)``.
        names: optional per-frame labels.
    """

    def __init__(self, arrays: dict[str, np.ndarray], names: list[str] | None = None):
        missing = [k for k in MESH_ARRAYS if k not in arrays]
        if missing:
            raise ValueError(f"arrays lacks {missing}; need {list(MESH_ARRAYS)}")
        F = len(arrays["poses"])
        for key in MESH_ARRAYS:
            if len(arrays[key]) != F:
                raise ValueError(f"arrays[{key!r}] has {len(arrays[key])} frames, poses has {F}")
        v = np.asarray(arrays["vertices108"])
        check_shape(v, "vertices108", ("F", "N", 3))
        if not np.isfinite(v).all():
            raise ValueError("vertices108 contains NaN or inf; rebuild the dataset")
        self.arrays = {k: torch.as_tensor(np.asarray(arrays[k], dtype=np.float32))
                       for k in MESH_ARRAYS}
        self.names = list(names) if names is not None else [f"frame {i}" for i in range(F)]

    @classmethod
    def from_dir(cls, root: str | Path) -> "MeshDataset":
        info = open_dataset(root)
        return cls({k: _finite_array(info, k) for k in MESH_ARRAYS}, info.meta.get("frame_names"))

    @classmethod
    def from_split(cls, split: str, part: str = "train", size: str = "tiny", seed: int = 0,
                   body=None) -> "MeshDataset":
        """Pose the body model on the frames of a named split (see :mod:`vhakit.data.splits`)."""
        from vhakit.body.model import BodyModel
        from vhakit.data.splits import split_frames

        body = body if body is not None else BodyModel.open()
        fr = split_frames(split, part=part, size=size, seed=seed)
        arrays = {k: fr[k] for k in ("poses", "betas", "transl")}
        arrays.update(mesh_arrays_from_params(body, fr["poses"], fr["betas"], fr["transl"]))
        return cls(arrays, list(fr.get("names", [])) or None)

    def subset(self, indices) -> "MeshDataset":
        """A new dataset holding the frames ``indices`` (e.g. a smaller training set)."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        out = object.__new__(type(self))
        out.arrays = {k: v[idx] for k, v in self.arrays.items()}
        out.names = [self.names[i] for i in idx.tolist()]
        return out

    def __len__(self) -> int:
        return len(self.arrays["poses"])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = {k: v[i] for k, v in self.arrays.items()}
        s["pelvis"] = s["joints"][0]
        return s


class MultiViewDataset(MeshDataset):
    """Calibrated multi-view images of posed bodies, for BCP and the baseline.

    Args:
        root: a dataset folder with images (``vhakit make-data`` or a ``prepare_*`` script).
        views: optional subset of view indices to use.
    """

    def __init__(self, root: str | Path, views: list[int] | None = None):
        info: DatasetInfo = open_dataset(root, require_images=True)
        super().__init__({k: _finite_array(info, k) for k in MESH_ARRAYS},
                         info.meta.get("frame_names"))
        self.root = Path(root)
        self.num_views = info.num_views
        size = info.meta.get("image_size")
        self.image_size = (int(size[0]), int(size[1])) if size else None  # (W, H) of one view
        self.views = list(range(self.num_views)) if views is None else list(views)
        if not self.views or any(not 0 <= v < self.num_views for v in self.views):
            raise ValueError(f"views must be indices in [0, {self.num_views}), got {views}")
        sel = torch.as_tensor(self.views)
        for key in ("K", "R", "t", "dist", "visibility"):
            self.arrays[key] = torch.as_tensor(_finite_array(info, key).astype(np.float32))[:, sel]
        self._check_cameras(info.meta.get("frame_names") or [])
        self.frame_index = torch.arange(len(self))

    def _check_cameras(self, frame_names: list[str]) -> None:
        """DatasetCorrupt naming the file, frame and view of the first camera that is not a
        pinhole camera (a zero focal length, a non-rotation R; see :mod:`vhakit.geometry.camera`)."""
        from vhakit.geometry.camera import Camera, CameraValueError

        try:
            Camera(K=self.arrays["K"], R=self.arrays["R"], t=self.arrays["t"],
                   dist=self.arrays["dist"], image_size=(1, 1))  # (F, V) cameras
        except CameraValueError as err:
            frame, view = err.index
            name = f" ({frame_names[frame]})" if frame < len(frame_names) else ""
            raise DatasetCorrupt(f"{self.root / 'arrays' / f'{err.arg}.npy'}: frame {frame}{name}, "
                                 f"view {self.views[view]}: {err.arg} {err.reason}; repair it or "
                                 f"rebuild {self.root}") from err

    def subset(self, indices) -> "MultiViewDataset":
        out = super().subset(indices)
        out.root, out.num_views, out.views = self.root, self.num_views, self.views
        out.image_size = self.image_size
        out.frame_index = self.frame_index[torch.as_tensor(indices, dtype=torch.long)]
        return out

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s = super().__getitem__(i)
        imgs = read_image(self.root, int(self.frame_index[i]), self.num_views,
                          self.image_size)[self.views]
        s["images"] = torch.from_numpy(imgs).permute(0, 3, 1, 2).float() / 255.0  # (V, 3, H, W)
        return s


def as_multiview_dataset(data, name: str = "data") -> Dataset | None:
    """``data`` as a multi-view Dataset: a Dataset (or None) as it is, a dataset folder opened
    as :class:`MultiViewDataset`; ``name`` is the argument's name in the errors."""
    if data is None or isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        if not Path(data).is_dir():
            raise FileNotFoundError(f"{name}: no dataset folder at {data}; build one with "
                                    "`vhakit make-data`")
        return MultiViewDataset(data)
    raise TypeError(f"{name} must be a torch Dataset of multi-view samples or a dataset folder, "
                    f"got {type(data).__name__}")
