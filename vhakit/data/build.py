"""``vhakit make-data``: render a split of the synthetic world into an on-disk dataset.

Each frame of a split (:func:`vhakit.data.splits.split_frames`) is posed with the body model and
seen by a ring of calibrated cameras, as in a capture studio: ``num_views`` cameras around the
clip's mean pelvis, jittered per clip. As in the paper's pre-processing, each view is cropped to a
square box around the person in the original ``sensor_px`` image and resized to ``image_px``; the
stored ``K`` is the intrinsics of the cropped image, ``bboxes`` the box in the original image.
Instead of rendering the full sensor image and resampling it, the kit renders directly through the
cropped camera (the same pixels, without resampling blur and ~60x fewer pixels at the sensor size).

Determinism and crash safety: every random choice is drawn from a generator seeded by
``(seed, split, part, frame)`` or ``(seed, split, part, clip)``, so frames do not depend on chunk
boundaries or on a resume. Chunks of frames go to ``DIR/.partial/`` and images to ``DIR/images/``,
each written atomically; re-running the same command after a crash continues where it stopped;
``meta.json`` is written last. The same seed gives a byte-identical dataset.

Safety of the user's files: every argument is checked before anything is written. The kit writes
only into a new or empty folder, which it marks with ``.vhakit-dataset``, or into a folder holding
that marker; each file is listed in the marker before it is written, and a restart or
``overwrite`` deletes only the listed files (:func:`vhakit.data.store.claim_dir`,
:func:`~vhakit.data.store.remove_recorded`). Files a user put beside them stay.
"""
from __future__ import annotations

import hashlib
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from vhakit.data import store

__all__ = ["DataPreset", "DATA_PRESETS", "get_data_preset", "build_dataset", "ensure_dataset",
           "default_data_dir", "frame_cameras"]


@dataclass(frozen=True)
class DataPreset:
    """How a split is rendered.

    Attributes:
        size: the split size (``"tiny"``, ``"teaching"``, ``"full"``; see :mod:`~vhakit.data.splits`).
        image_px: side of the stored square crops, px (paper: 384).
        sensor_px: side of the cameras' original square images, px (LightStage: 1024).
        num_views: cameras in the ring (paper: 4, LightStage cameras 1/7/13/19).
        distance_m, height_m: ring radius and camera height above the clip's mean pelvis.
        focal_px: focal length of the original cameras, px.
        box_margin: the crop box is the vertices' square bounding box enlarged by this fraction.
        jitter_*: per-clip half-widths of the uniform rig perturbations.
        chunk: frames per resumable chunk.
    """

    size: str = "tiny"
    image_px: int = 64
    sensor_px: int = 1024
    num_views: int = 4
    distance_m: float = 3.5
    height_m: float = 0.4
    focal_px: float = 1400.0
    box_margin: float = 0.15
    jitter_distance_m: float = 0.3
    jitter_height_m: float = 0.2
    jitter_yaw_deg: float = 10.0
    chunk: int = 64

    def __post_init__(self) -> None:
        from vhakit.data.splits import SIZES

        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        for name in ("image_px", "sensor_px", "num_views", "chunk"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive int, got {getattr(self, name)}")


DATA_PRESETS: dict[str, DataPreset] = {
    "tiny": DataPreset(size="tiny", image_px=64),
    "teaching": DataPreset(size="teaching", image_px=128),
    "paper": DataPreset(size="full", image_px=384),
}


def get_data_preset(name: str) -> DataPreset:
    if name not in DATA_PRESETS:
        raise ValueError(f"unknown data preset {name!r}; choose one of {sorted(DATA_PRESETS)}")
    return DATA_PRESETS[name]


def default_data_dir(preset: str, split: str, part: str, seed: int = 0,
                     root: str | Path = "data") -> Path:
    """Where :func:`ensure_dataset` keeps a built split: ``root/PRESET/SPLIT-PART-sSEED``."""
    return Path(root) / preset / f"{split}-{part}-s{seed}"


def _seed(*keys) -> int:
    digest = hashlib.sha256("/".join(str(k) for k in keys).encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def frame_cameras(preset: DataPreset, target_m: torch.Tensor, seed: int):
    """The (uncropped) ring of cameras of one clip, batch shape ``(V,)``, float64."""
    from vhakit.geometry.camera import RigJitter, make_rig

    gen = torch.Generator().manual_seed(seed)
    jitter = RigJitter(distance_m=preset.jitter_distance_m, height_m=preset.jitter_height_m,
                       yaw_deg=preset.jitter_yaw_deg)
    yaw0 = float(torch.rand((), generator=gen, dtype=torch.float64)) * 360.0
    return make_rig(num_views=preset.num_views, distance_m=preset.distance_m,
                    height_m=preset.height_m, yaw0_deg=yaw0, focal_px=preset.focal_px,
                    image_size=(preset.sensor_px, preset.sensor_px), target_m=target_m,
                    jitter=jitter, generator=gen, dtype=torch.float64)


def _square_boxes(uv: torch.Tensor, margin: float) -> torch.Tensor:
    """``uv (V, N, 2)`` px -> square boxes ``(V, 4)`` (left, top, right, bottom), whole pixels."""
    lo, hi = uv.amin(dim=1), uv.amax(dim=1)
    centre, half = (lo + hi) / 2, (hi - lo).amax(dim=-1) * (1 + margin) / 2 + 2.0
    left, top = torch.floor(centre[:, 0] - half), torch.floor(centre[:, 1] - half)
    side = torch.ceil(2 * half)
    return torch.stack([left, top, left + side, top + side], dim=-1)


def _render_chunk(body, frames: dict, idx: np.ndarray, preset: DataPreset, key: tuple,
                  out_dir: Path, images: bool, colors: torch.Tensor) -> dict[str, np.ndarray]:
    from vhakit.data.render import render_views

    with torch.no_grad():
        out = body.from_poses(torch.as_tensor(frames["poses"][idx]),
                              torch.as_tensor(frames["betas"][idx]),
                              torch.as_tensor(frames["transl"][idx]))
    res: dict[str, list] = {k: [] for k in ("vertices108", "joints", "K", "R", "t", "dist",
                                            "visibility", "bboxes")}
    for j, f in enumerate(idx):
        res["vertices108"].append(out.vertices108[j].numpy())
        res["joints"].append(out.joints[j].numpy())
        if not images:
            continue
        clip = str(frames["clip"][f])
        cams = frame_cameras(preset, torch.as_tensor(frames["clip_centre"][f], dtype=torch.float64),
                             _seed(*key, "rig", clip))
        verts = out.vertices[j].double()
        boxes = _square_boxes(cams.project(verts), preset.box_margin)
        crop = cams.crop_and_resize(boxes, (preset.image_px, preset.image_px)).to(dtype=torch.float32)
        gen = torch.Generator().manual_seed(_seed(*key, "frame", int(f)))
        r = render_views(verts.float(), body.faces, crop, colors,
                         visibility_index=body.subsample_indices, generator=gen)
        store.write_image(out_dir, int(f), r.images.numpy())
        res["K"].append(crop.K.numpy())
        res["R"].append(crop.R.numpy())
        res["t"].append(crop.t.numpy())
        dist = crop.dist if crop.dist is not None else torch.zeros(preset.num_views, 5)
        res["dist"].append(dist.numpy())
        res["visibility"].append(r.visibility.numpy())
        res["bboxes"].append(boxes.float().numpy())
    return {k: np.stack(v).astype(bool if k == "visibility" else np.float32)
            for k, v in res.items() if v}


def build_dataset(preset: str | DataPreset = "tiny", split: str = "h36m_like",
                  part: str = "train", out_dir: str | Path = "data/tiny/h36m_like-train-s0",
                  seed: int = 0, overwrite: bool = False, images: bool | None = None,
                  progress: bool = True, body=None, max_frames: int | None = None) -> Path:
    """Render ``split``'s ``part`` into ``out_dir`` (see the module docstring).

    Args:
        preset: a :data:`DATA_PRESETS` name or a :class:`DataPreset`.
        split, part: see :func:`vhakit.data.splits.split_frames` (``real_mocap``: part ``test``).
        seed: everything random (motion, rig jitter, backgrounds, pixel noise) derives from it.
        overwrite: replace a complete dataset built with other settings (otherwise an error).
        images: render the views (default: yes, except for the mesh-only ``prior_pool``).
        body: the body model (default :meth:`BodyModel.open`).
        max_frames: keep only the first frames (quick looks and tests).
    Returns:
        ``out_dir`` as a Path, holding a complete dataset.
    """
    from vhakit.body.model import BodyModel
    from vhakit.data.splits import split_frames

    cfg = _check_build_args(preset, seed, max_frames)
    out_dir = Path(out_dir)
    images = (split != "prior_pool") if images is None else bool(images)
    body = body if body is not None else BodyModel.open()
    recipe = {"preset": asdict(cfg), "split": split, "part": part, "seed": int(seed),
              "images": images, "body_model": body.name,
              "max_frames": None if max_frames is None else int(max_frames)}
    if _is_built(out_dir, recipe):
        return out_dir
    # Checks split and part (and that there are frames) before anything is written.
    frames = split_frames(split, part=part, size=cfg.size, seed=seed, body_model=body)
    F = len(frames["poses"]) if max_frames is None else min(max_frames, len(frames["poses"]))
    if F == 0:
        raise ValueError(f"split {split!r} part {part!r} at size {cfg.size!r} has no frames")
    _start_build(out_dir, recipe, overwrite)
    frames["clip_centre"] = _clip_centres(body, frames, F, images)
    arrays = _render_chunks(body, frames, F, cfg, (int(seed), split, part), out_dir, images,
                            progress)
    arrays.update({k: frames[k][:F].astype(np.float32) for k in ("poses", "betas", "transl")})
    meta = {"num_frames": F, "num_views": cfg.num_views if images else 0,
            "image_size": [cfg.image_px, cfg.image_px] if images else None,
            "has_images": images, "body_model": body.name, "source": "vhakit synthetic",
            "split": split, "part": part, "seed": int(seed), "preset": asdict(cfg),
            "recipe": recipe, "frame_names": [str(n) for n in frames["names"][:F]],
            "arrays": {k: [list(v.shape), str(v.dtype)] for k, v in sorted(arrays.items())}}
    store.record_files(out_dir, [f"arrays/{name}.npy" for name in arrays] + ["meta.json"])
    for name, arr in arrays.items():
        store.atomic_save_npy(out_dir / "arrays" / f"{name}.npy", arr)
    store.write_meta(out_dir, meta)
    store.remove_recorded(out_dir, keep=_dataset_files(meta))  # .partial/ goes
    return out_dir


def _check_build_args(preset, seed, max_frames) -> DataPreset:
    """The :class:`DataPreset` of ``preset``, once ``seed`` and ``max_frames`` are checked."""
    cfg = get_data_preset(preset) if isinstance(preset, str) else preset
    if not isinstance(cfg, DataPreset):
        raise TypeError(f"preset must be a name in {sorted(DATA_PRESETS)} or a DataPreset, got "
                        f"{type(preset).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if max_frames is not None and (isinstance(max_frames, bool) or
                                   not isinstance(max_frames, (int, np.integer)) or max_frames < 1):
        raise ValueError(f"max_frames must be None (all frames) or a positive int, got "
                         f"{max_frames!r}")
    return cfg


def _is_built(out_dir: Path, recipe: dict) -> bool:
    """``out_dir`` holds the complete dataset of ``recipe`` (the clean-up of a build that stopped
    after writing ``meta.json`` is finished here)."""
    if not (out_dir / "meta.json").is_file():
        return False
    try:
        done = store.read_meta(out_dir)
    except store.DatasetCorrupt:
        return False
    if done.get("recipe") != recipe:
        return False
    if (out_dir / ".partial").exists():  # stopped after meta.json: finish the clean-up
        try:
            store.remove_recorded(out_dir, keep=_dataset_files(done))
        except OSError:  # e.g. a read-only copy: the dataset is complete all the same
            pass
    return True


def _start_build(out_dir: Path, recipe: dict, overwrite: bool) -> None:
    """Claim ``out_dir`` and record ``recipe`` in ``.partial/``: a dataset built with other
    settings goes (only with ``overwrite``), and so does an unfinished build of another recipe;
    an unfinished build of this recipe is continued."""
    store.claim_dir(out_dir)  # refuses a file, or a folder holding files the kit did not write
    if (out_dir / "meta.json").exists():
        if not overwrite:
            raise FileExistsError(f"{out_dir} already holds a dataset built with other settings; "
                                  "pass overwrite=True (--overwrite) to replace it, or choose "
                                  "another output folder")
        store.remove_recorded(out_dir)
    partial = out_dir / ".partial"
    recipe_file = partial / "recipe.json"
    recipe_bytes = (json.dumps(recipe, sort_keys=True, indent=1) + "\n").encode()
    if partial.exists() and (not recipe_file.exists() or recipe_file.read_bytes() != recipe_bytes):
        store.remove_recorded(out_dir)  # an unfinished build of something else: start over
        if partial.is_dir() and not any(partial.iterdir()):
            partial.rmdir()
        if partial.exists():
            raise ValueError(f"{partial} holds files that vhakit make-data did not write (they "
                             f"are not listed in {out_dir / store.MARKER}); move them away or "
                             "choose another output folder")
    if not recipe_file.exists():
        store.record_files(out_dir, [".partial/recipe.json"])
        store.atomic_write_bytes(recipe_file, recipe_bytes)


def _clip_centres(body, frames: dict, F: int, images: bool) -> np.ndarray:
    """Per frame ``(3,)``: the mean pelvis of its clip, where the clip's rig looks (a studio set
    up around the performance); zeros without ``images`` and past the first ``F`` frames' clips."""
    centres = np.zeros((len(frames["poses"]), 3))
    for clip in np.unique(frames["clip"][:F]) if images else ():
        m = frames["clip"] == clip
        with torch.no_grad():  # pelvis = transl + the rest pelvis of the clip's shape
            rest = body.from_poses(torch.zeros(1, 72), torch.as_tensor(frames["betas"][m][:1]),
                                   torch.zeros(1, 3)).joints[0, 0].double().numpy()
        centres[m] = frames["transl"][m].astype(np.float64).mean(axis=0) + rest
    return centres


def _render_chunks(body, frames: dict, F: int, cfg: DataPreset, key: tuple, out_dir: Path,
                   images: bool, progress: bool) -> dict[str, np.ndarray]:
    """Render the first ``F`` frames chunk by chunk into ``.partial/`` (chunks already there are
    kept: a resumed build continues) and return their arrays, concatenated."""
    from tqdm.auto import tqdm

    from vhakit.body.parts import part_colors

    partial = out_dir / ".partial"
    colors = part_colors(body.part_labels, body.v_template)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: faster, and bitwise reproducible
    try:
        starts = range(0, F, cfg.chunk)
        bar = tqdm(total=F, desc=f"make-data {key[1]}/{key[2]}", unit="frame",
                   disable=not progress)
        for c, s in enumerate(starts):
            path = partial / f"chunk_{c:05d}.npz"
            idx = np.arange(s, min(F, s + cfg.chunk))
            if not path.exists():
                store.record_files(out_dir, [f".partial/{path.name}"] +
                                   ([_image_file(int(f)) for f in idx] if images else []))
                arrays = _render_chunk(body, frames, idx, cfg, key, out_dir, images, colors)
                buf = io.BytesIO()
                np.savez(buf, **arrays)
                store.atomic_write_bytes(path, buf.getvalue())
            bar.update(len(idx))
        bar.close()
        chunks = [dict(np.load(partial / f"chunk_{c:05d}.npz")) for c in range(len(starts))]
    finally:
        torch.set_num_threads(threads)
    return {k: np.concatenate([ch[k] for ch in chunks]) for k in chunks[0]}


def _image_file(frame: int) -> str:
    return store.image_path("", frame).as_posix()  # "images/000123.png"


def _dataset_files(meta: dict) -> list[str]:
    """The files of the complete dataset ``meta`` describes, relative to its folder."""
    files = ["meta.json"] + [f"arrays/{name}.npy" for name in meta["arrays"]]
    if meta.get("has_images"):
        files += [_image_file(i) for i in range(int(meta["num_frames"]))]
    return files


def ensure_dataset(preset: str = "tiny", split: str = "h36m_like", part: str = "train",
                   seed: int = 0, root: str | Path = "data", progress: bool = True,
                   **kwargs) -> Path:
    """The folder of a built split under ``root`` (:func:`default_data_dir`), building (or
    resuming) it first if needed."""
    out = default_data_dir(preset, split, part, seed, root)
    return build_dataset(preset, split, part, out, seed=seed, progress=progress, **kwargs)
