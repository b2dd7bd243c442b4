"""The kit's on-disk dataset format (one format for synthetic and real data).

A dataset is a directory::

    DIR/
      meta.json            written LAST: its presence marks a complete dataset
      arrays/NAME.npy      one array per name, first axis = frame (F)
      images/000123.png    (optional) the V views of frame 123 tiled left to right, RGB on disk
                           as PNG (H, V*W, 3)
      .partial/            (only while building) chunks of an unfinished build, for resuming
      .vhakit-dataset      (``vhakit make-data`` only) marks the folder as the kit's and lists
                           every file the kit wrote there, one relative path per line

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

Ownership: ``vhakit make-data`` writes only into a new or empty folder, or one holding its
``.vhakit-dataset`` marker (:func:`claim_dir`). Each file is listed in the marker before it is
written (:func:`record_files`), so a rebuild deletes exactly the files the kit wrote
(:func:`remove_recorded`) and nothing a user put beside them.

Writes are atomic (temporary file in the same folder, then ``os.replace``), so an interrupted
build never leaves a half-written file where a reader looks; ``.npy`` and PNG bytes are
deterministic, so the same seed gives a byte-identical dataset.
"""
from __future__ import annotations

import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vhakit._util import atomic_write_bytes

__all__ = ["FORMAT", "VERSION", "DatasetCorrupt", "atomic_write_bytes", "atomic_save_npy",
           "write_meta", "read_meta", "load_array", "image_path", "write_image", "read_image",
           "DatasetInfo", "open_dataset", "MARKER", "is_kit_dir", "claim_dir", "record_files",
           "recorded_files", "remove_recorded"]

FORMAT = "vhakit-dataset"
VERSION = 1
MESH_ARRAYS = ("poses", "betas", "transl", "vertices108", "joints")
VIEW_ARRAYS = ("K", "R", "t", "dist", "visibility", "bboxes")


MARKER = ".vhakit-dataset"
_MARKER_HEAD = ("vhakit-dataset-files 1\n"
                "# Written by `vhakit make-data`: the files it wrote in this folder, one per line.\n"
                "# A rebuild deletes only these files. Keep this file while the dataset is used.\n")


class DatasetCorrupt(ValueError):
    """A dataset directory is incomplete, corrupt or from an incompatible version."""


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


def read_image(root: str | os.PathLike, frame: int, num_views: int,
               image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Read the views of one frame -> ``(V, H, W, 3)`` uint8 RGB; ``image_size`` ``(W, H)`` of
    one view (meta.json's ``image_size``), when given, is checked."""
    import cv2

    path = image_path(root, frame)
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DatasetCorrupt(f"image {path} is missing or unreadable; rebuild {Path(root)}")
    H, VW, _ = img.shape
    if image_size is not None and (VW, H) != (num_views * image_size[0], image_size[1]):
        W1, H1 = image_size
        raise DatasetCorrupt(f"image {path} is {VW}x{H} px, but this dataset's frames are "
                             f"{num_views} views of {W1}x{H1} px side by side, {num_views * W1}x"
                             f"{H1} px (meta.json image_size); replace it with an image of that "
                             f"size or rebuild {Path(root)}")
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


def is_kit_dir(root: str | os.PathLike) -> bool:
    """Whether ``root`` holds the ``.vhakit-dataset`` marker of a folder the kit wrote."""
    try:
        with open(Path(root) / MARKER, "rb") as fh:
            return fh.readline() == _MARKER_HEAD.splitlines(keepends=True)[0].encode()
    except OSError:
        return False


def claim_dir(root: str | os.PathLike) -> Path:
    """Make ``root`` a folder the kit may write in, before anything is written there.

    A missing folder is created and an empty one used; either gets the marker. A folder holding
    the marker is the kit's already. Anything else (a file, a folder with other content) raises
    ``ValueError`` saying what to do: the kit never writes into, or deletes from, a folder whose
    files it cannot prove it wrote.
    """
    root = Path(root)
    if root.exists() and not root.is_dir():
        raise ValueError(f"the output folder {root} is a file; pass a new or empty folder as "
                         "the output (--out)")
    if root.is_dir():
        if is_kit_dir(root):
            return root
        if any(root.iterdir()):
            unlisted = f"(it has no {MARKER} file listing what make-data wrote)"
            rebuild = f", or delete {root} yourself to rebuild it there"
            try:
                read_meta(root)
                what = f"holds a vhakit dataset made by another tool or an older vhakit {unlisted}"
            except (DatasetCorrupt, OSError):
                if (root / ".partial").is_dir():
                    what = f"holds an unfinished build of an older vhakit {unlisted}"
                else:
                    what, rebuild = f"is not empty and is not a make-data folder {unlisted}", ""
            raise ValueError(f"the output folder {root} {what}, so make-data will neither write "
                             "into it nor delete anything in it; pass a new or empty folder as "
                             f"the output (--out), e.g. {os.path.join(root, 'dataset')}{rebuild}")
    else:
        try:
            root.mkdir(parents=True)
        except (FileExistsError, NotADirectoryError) as err:
            raise ValueError(f"cannot create the output folder {root}: {err.strerror} "
                             f"({err.filename}); pass a folder whose parents are folders") from err
    atomic_write_bytes(root / MARKER, _MARKER_HEAD.encode())
    return root


def record_files(root: str | os.PathLike, relpaths) -> None:
    """List ``relpaths`` (relative to ``root``, ``/``-separated) in the marker, durably, before
    the kit writes them: a crash then never leaves a file of the kit's that the list lacks."""
    text = "".join(f"{p}\n" for p in relpaths)
    with open(Path(root) / MARKER, "a", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())


def recorded_files(root: str | os.PathLike) -> list[str]:
    """The files the marker lists, each once, in order; only complete, plain relative paths
    (a line cut short by a crash, or one leaving the folder, is ignored)."""
    path = Path(root) / MARKER
    if not is_kit_dir(root):
        return []
    seen: dict[str, None] = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)[1:]:
        rel = line.rstrip("\n")
        if not line.endswith("\n") or not rel or rel.startswith("#"):
            continue
        parts = rel.split("/")
        if rel.startswith("/") or "\\" in rel or any(p in ("", ".", "..") for p in parts):
            continue
        seen[rel] = None
    return list(seen)


def remove_recorded(root: str | os.PathLike, keep=()) -> None:
    """Delete the files the marker lists, except ``keep``, and the kit's own leftovers beside
    them (temporary files of interrupted atomic writes, folders left empty); then the marker
    lists exactly the kept files that exist. Only plain files inside ``root`` are deleted."""
    root = Path(root)
    if not is_kit_dir(root):
        return
    top = root.resolve()
    keep = set(keep)
    listed = recorded_files(root)
    names_by_dir: dict[Path, set[str]] = {}
    for rel in listed + [MARKER]:
        p = root / rel
        names_by_dir.setdefault(p.parent, set()).add(p.name)
        if rel in keep or rel == MARKER or not p.is_file() or p.is_symlink():
            continue
        if not p.resolve().is_relative_to(top):
            continue
        p.unlink()
    for folder, names in names_by_dir.items():
        if not folder.is_dir() or not folder.resolve().is_relative_to(top):
            continue
        for entry in folder.iterdir():  # ".NAME.XXXXXXXX.tmp" from atomic_write_bytes
            name = entry.name
            if (name.startswith(".") and name.endswith(".tmp") and entry.is_file()
                    and name[1:-4].rsplit(".", 1)[0] in names):
                entry.unlink()
    for folder in sorted(names_by_dir, key=lambda f: len(f.parts), reverse=True):
        while folder != root and folder.is_dir() and not folder.is_symlink() \
                and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent
    kept = sorted(rel for rel in listed if rel in keep and (root / rel).is_file())
    atomic_write_bytes(root / MARKER, (_MARKER_HEAD + "".join(f"{r}\n" for r in kept)).encode())
