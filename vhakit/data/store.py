"""The kit's on-disk dataset format (one format for synthetic and real data).

A dataset is a directory::

    DIR/
      meta.json            written LAST: its presence marks a complete dataset
      arrays/NAME.npy      one array per name, first axis = frame (F)
      images/000123.png    (optional) the V views of frame 123 tiled left to right, RGB on disk
                           as PNG (H, V*W, 3)
      .partial/            (only while building) chunks of an unfinished build, for resuming

Arrays (float32 metres unless stated):

========================  =================  ==============================================
name                      shape              meaning
========================  =================  ==============================================
``poses``                 (F, 72)            SMPL axis-angle: global orient + 23 body joints
``betas``                 (F, 10)            shape coefficients
``transl``                (F, 3)             SMPL translation
``vertices108``           (F, 108, 3)        the subsampled vertices (world frame)
``joints``                (F, 24, 3)         the body model's joints (world frame)
``K``                     (F, V, 3, 3)       intrinsics of the stored (cropped, resized) images, px
``R``, ``t``              (F, V, 3, 3), (F, V, 3)  world -> camera (OpenCV camera frame)
``dist``                  (F, V, 5)          OpenCV distortion k1, k2, p1, p2, k3
``visibility``            (F, V, 108) bool   is each subsampled vertex visible in each view
``bboxes``                (F, V, 4)          person box x0, y0, x1, y1 in the ORIGINAL image, px
========================  =================  ==============================================

Mesh-only datasets (e.g. AMASS for VHA) have no images and no camera arrays. ``meta.json`` holds
``format``, ``version``, ``num_frames``, ``num_views``, ``image_size`` ([W, H] or null),
``body_model``, ``source``, ``split``, ``part``, ``seed``, ``frame_names`` (optional list), and
``arrays`` ({name: [shape, dtype]}), which the reader checks against the files.

Writes are atomic (temporary file in the same folder, then ``os.replace``), so an interrupted
build never leaves a half-written file where a reader looks; ``.npy`` and PNG bytes are
deterministic, so the same seed gives a byte-identical dataset.
"""
from __future__ import annotations

import io
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["FORMAT", "VERSION", "DatasetCorrupt", "atomic_write_bytes", "atomic_save_npy",
           "write_meta", "read_meta", "load_array", "image_path", "write_image", "read_image",
           "DatasetInfo", "open_dataset"]

FORMAT = "vhakit-dataset"
VERSION = 1
MESH_ARRAYS = ("poses", "betas", "transl", "vertices108", "joints")
VIEW_ARRAYS = ("K", "R", "t", "dist", "visibility", "bboxes")


class DatasetCorrupt(ValueError):
    """A dataset directory is incomplete, corrupt or from an incompatible version."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide the file from other users
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """``np.save`` made atomic (and deterministic: ``.npy`` has no timestamps)."""
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def write_meta(root: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write ``meta.json`` (sorted keys, so it is byte-identical for identical content)."""
    meta = {"format": FORMAT, "version": VERSION, **meta}
    atomic_write_bytes(Path(root) / "meta.json",
                       (json.dumps(meta, indent=1, sort_keys=True) + "\n").encode())


def read_meta(root: str | os.PathLike) -> dict[str, Any]:
    """Read and check ``meta.json``; raise :class:`DatasetCorrupt` saying what to rebuild."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"dataset folder {root} does not exist; build one with "
                                "`vhakit make-data --preset tiny --split h36m_like --out DIR`")
    path = root / "meta.json"
    if not path.exists():
        partial = " (an unfinished build is there: re-run the same make-data command to " \
                  "resume it)" if (root / ".partial").exists() else ""
        raise DatasetCorrupt(f"{root} has no meta.json, so it is not a complete vhakit "
                             f"dataset{partial}. Rebuild it with `vhakit make-data ... --out "
                             f"{root}` or the matching data_scripts/prepare_*.py script.")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetCorrupt(f"{path} is corrupt ({err}); delete {root} and rebuild it with "
                             "the command that made it") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise DatasetCorrupt(f"{path} is not a vhakit dataset description (format "
                             f"{meta.get('format') if isinstance(meta, dict) else None!r}); "
                             "rebuild the dataset")
    if meta.get("version") != VERSION:
        raise DatasetCorrupt(f"{root} uses dataset format version {meta.get('version')}, this "
                             f"vhakit reads version {VERSION}; rebuild the dataset")
    for key in ("num_frames", "arrays"):
        if key not in meta:
            raise DatasetCorrupt(f"{path} lacks the key {key!r}; rebuild the dataset")
    return meta


def load_array(root: str | os.PathLike, name: str, meta: dict[str, Any] | None = None,
               mmap: bool = False) -> np.ndarray:
    """Load ``arrays/NAME.npy`` and check its shape and dtype against ``meta.json``."""
    root = Path(root)
    meta = meta if meta is not None else read_meta(root)
    if name not in meta["arrays"]:
        raise KeyError(f"dataset {root} has no array {name!r}; it has {sorted(meta['arrays'])}")
    path = root / "arrays" / f"{name}.npy"
    if not path.exists():
        raise DatasetCorrupt(f"{path} is missing although meta.json lists it; rebuild {root}")
    try:
        arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise DatasetCorrupt(f"{path} is unreadable ({err}); rebuild {root}") from err
    shape, dtype = meta["arrays"][name]
    if list(arr.shape) != list(shape) or str(arr.dtype) != dtype:
        raise DatasetCorrupt(f"{path} has shape {list(arr.shape)} {arr.dtype}, meta.json says "
                             f"{shape} {dtype}; rebuild {root}")
    return arr


def image_path(root: str | os.PathLike, frame: int) -> Path:
    return Path(root) / "images" / f"{frame:06d}.png"


def write_image(root: str | os.PathLike, frame: int, views_rgb: np.ndarray) -> None:
    """Write the views ``(V, H, W, 3)`` uint8 RGB of one frame as one tiled PNG, atomically."""
    import cv2

    if views_rgb.ndim != 4 or views_rgb.shape[-1] != 3 or views_rgb.dtype != np.uint8:
        raise ValueError(f"views_rgb must be uint8 (V, H, W, 3), got {views_rgb.dtype} "
                         f"{views_rgb.shape}")
    tiled = np.concatenate(list(views_rgb), axis=1)  # (H, V*W, 3)
    ok, png = cv2.imencode(".png", np.ascontiguousarray(tiled[..., ::-1]))
    if not ok:
        raise OSError(f"could not encode the image of frame {frame}")
    atomic_write_bytes(image_path(root, frame), png.tobytes())


def read_image(root: str | os.PathLike, frame: int, num_views: int) -> np.ndarray:
    """Read the views of one frame -> ``(V, H, W, 3)`` uint8 RGB."""
    import cv2

    path = image_path(root, frame)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetCorrupt(f"image {path} is missing or unreadable; rebuild {Path(root)}")
    H, VW, _ = img.shape
    if VW % num_views:
        raise DatasetCorrupt(f"image {path} is {VW} px wide, not a multiple of {num_views} views")
    return np.ascontiguousarray(img[..., ::-1].reshape(H, num_views, VW // num_views, 3)
                                .transpose(1, 0, 2, 3))


@dataclass(frozen=True)
class DatasetInfo:
    """A checked dataset directory: its root, its meta.json and the names of its arrays."""

    root: Path
    meta: dict[str, Any] = field(repr=False)

    @property
    def num_frames(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def num_views(self) -> int:
        return int(self.meta.get("num_views") or 0)

    @property
    def has_images(self) -> bool:
        return bool(self.meta.get("has_images"))

    def array(self, name: str, mmap: bool = False) -> np.ndarray:
        return load_array(self.root, name, self.meta, mmap=mmap)


def open_dataset(root: str | os.PathLike, require_images: bool = False) -> DatasetInfo:
    """Open and check a dataset directory (meta.json, the arrays it lists, images if needed)."""
    root = Path(root)
    meta = read_meta(root)
    F = int(meta["num_frames"])
    missing = [n for n in MESH_ARRAYS if n not in meta["arrays"]]
    if missing:
        raise DatasetCorrupt(f"dataset {root} lacks the arrays {missing}; rebuild it")
    for name, (shape, _dtype) in meta["arrays"].items():
        if not (root / "arrays" / f"{name}.npy").exists():
            raise DatasetCorrupt(f"dataset {root}: arrays/{name}.npy is missing; rebuild it")
        if shape[0] != F:
            raise DatasetCorrupt(f"dataset {root}: {name} has {shape[0]} frames, meta says {F}")
    info = DatasetInfo(root=root, meta=meta)
    if require_images:
        if not info.has_images:
            raise DatasetCorrupt(f"dataset {root} has no images (a mesh-only dataset); "
                                 "multi-view training needs `vhakit make-data` output or a "
                                 "prepared multi-view dataset")
        lacking = [n for n in VIEW_ARRAYS if n not in meta["arrays"]]
        if lacking:
            raise DatasetCorrupt(f"dataset {root} lacks the camera arrays {lacking}; rebuild it")
        if F and not image_path(root, F - 1).exists():
            raise DatasetCorrupt(f"dataset {root}: images/{F - 1:06d}.png is missing; rebuild it")
    return info
