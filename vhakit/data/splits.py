"""Named data splits that mirror the paper's datasets with the kit's own motion.

=================  ===========================================================================
``h36m_like``      Human3.6M's protocol: 7 everyday actions, 7 fixed subjects (body shapes);
                   subjects S1, S5, S6, S7, S8 train, S9 and S11 test (paper, section 4.1).
``lightstage_like`` LightStage (ZJU-MoCap)'s small-data regime: 6 other, more athletic actions and
                   6 other subjects; sequences subsampled every 5th frame as in the paper; full
                   size ~2,700 train / ~540 test frames.
``prior_pool``     the pose pool for the vertex-heatmap autoencoder (the paper uses AMASS): half
                   :func:`~vhakit.data.pose_sampler.sample_poses`, half procedural clips of every
                   action, the everyday ones too (sit, crouch, reach, lie), in equal shares at
                   every size, each sequence with its own random body shape; ``transl = 0``.
``real_mocap``     the 20 real DeepMimic clips (:func:`~vhakit.data.motion.load_deepmimic`):
                   cross-dataset evaluation only (``part="test"``).
=================  ===========================================================================

:func:`split_frames` turns a split into per-frame arrays, deterministically from ``seed``.
Subjects' shapes are fixed literals (not drawn), so "S9" is the same body for every seed.
"""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from types import MappingProxyType

import numpy as np
import torch

from vhakit.data.motion import load_deepmimic
from vhakit.data.pose_sampler import sample_poses
from vhakit.data.procedural import ALL_ACTIONS, action_poses, make_clip, sample_betas, sample_params

__all__ = ["Subject", "SplitSpec", "SPLITS", "SIZES", "PARTS", "get_split", "split_frames"]

SIZES = ("tiny", "teaching", "full")
PARTS = ("train", "test")


@dataclass(frozen=True)
class Subject:
    """A body: ``name`` and its 10 shape coefficients ``betas``."""

    name: str
    betas: tuple[float, ...]


@dataclass(frozen=True)
class SplitSpec:
    """How a split is made.

    kind: ``"procedural"`` (subjects x actions sequences), ``"prior"`` or ``"mocap"``.
    frames: one entry per size in :data:`SIZES` order: frames per sequence (procedural), frames
        per part ``(train, test)`` (prior) or the stride over the real clips (mocap).
    stride: keep every ``stride``-th frame of the 30 fps motion (procedural / prior clips).
    """

    name: str
    kind: str
    description: str
    actions: tuple[str, ...] = ()
    train_subjects: tuple[Subject, ...] = ()
    test_subjects: tuple[Subject, ...] = ()
    frames: tuple = ()
    stride: int = 5
    fps: float = 30.0


def _subjects(names: str, rows: tuple[tuple[float, ...], ...]) -> tuple[Subject, ...]:
    return tuple(Subject(n, tuple(r)) for n, r in zip(names.split(), rows, strict=True))


_H36M = _subjects("S1 S5 S6 S7 S8 S9 S11", (
    (-1.20, 0.32, -1.63, -0.60, 0.08, 1.13, -1.37, -0.88, 0.54, 1.20),
    (0.40, -0.05, -0.83, -0.40, 1.34, -0.55, 1.80, -0.32, -0.08, 0.96),
    (1.10, 0.07, -0.95, 0.67, 0.92, -0.33, 0.63, 0.20, 0.43, 1.15),
    (-0.30, 0.79, -0.95, -1.12, 0.39, 0.87, -1.51, 0.01, 0.90, 0.22),
    (0.90, -0.18, 0.34, 0.16, 1.09, 0.50, -0.95, -1.07, 0.16, 1.50),
    (-0.70, -0.65, -1.28, 0.82, 0.44, 0.76, 1.20, -1.80, -1.51, -1.80),
    (1.50, -1.33, 0.50, -0.30, -0.79, -0.19, 0.95, 0.74, 1.34, 0.61)))
_LIGHTSTAGE = _subjects("LS1 LS2 LS3 LS4 LS5 LS6", (
    (0.60, 0.12, -1.58, 0.41, 1.80, -1.04, -0.04, 0.75, 1.80, 0.57),
    (-1.00, 1.64, 0.18, 0.02, -0.86, -0.30, -0.64, 0.77, 0.33, -0.59),
    (1.30, -1.01, -1.19, -0.42, -1.61, -0.48, 0.32, 1.80, -1.55, 0.06),
    (-0.20, -0.25, 0.27, -0.12, 1.15, 0.04, -0.91, 0.44, 1.40, -1.04),
    (-1.50, 0.11, 0.67, -0.15, 0.75, 0.68, 1.35, -0.29, 0.87, 1.80),
    (0.20, -0.10, -0.12, 0.51, -0.36, 0.44, 0.33, 0.24, 0.65, -0.07)))

SPLITS: MappingProxyType = MappingProxyType({s.name: s for s in (
    SplitSpec("h36m_like", "procedural", "Human3.6M-like: everyday actions, subjects 1-5 train, "
              "6-7 test", actions=("walk", "turn", "wave", "arm_raise", "bend_pick_up", "squat",
                                   "idle"),
              train_subjects=_H36M[:5], test_subjects=_H36M[5:],
              frames=(6, 60, 300)),
    SplitSpec("lightstage_like", "procedural", "LightStage-like small-data regime: athletic "
              "actions, other subjects (5 train, 1 test)",
              actions=("boxing", "kick", "jumping_jacks", "lunge", "run", "kneel"),
              train_subjects=_LIGHTSTAGE[:5], test_subjects=_LIGHTSTAGE[5:],
              frames=(5, 45, 90)),
    SplitSpec("prior_pool", "prior", "AMASS-like pose pool for the autoencoder: sampler + all "
              "procedural actions (sitting, crouching, reaching, lying included), random shapes",
              actions=ALL_ACTIONS, stride=3,
              frames=((512, 128), (20000, 2000), (200000, 10000))),
    SplitSpec("real_mocap", "mocap", "20 real DeepMimic clips retargeted to SMPL (evaluation "
              "only)", frames=(10, 3, 1)),
)})


def get_split(name: str) -> SplitSpec:
    """The :class:`SplitSpec` called ``name``; ValueError listing the valid names otherwise."""
    if name not in SPLITS:
        raise ValueError(f"unknown split {name!r}; valid splits: {', '.join(SPLITS)}")
    return SPLITS[name]


def _seed(seed: int, *keys: str) -> int:
    """A 63-bit seed from an int and names (stable across runs, unlike ``hash``)."""
    entropy = [int(seed) & 0xFFFFFFFF] + [zlib.crc32(k.encode()) for k in keys]
    return int(np.random.SeedSequence(entropy).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _pack(chunks: list[dict]) -> dict[str, np.ndarray]:
    out = {k: np.concatenate([c[k] for c in chunks]) for k in chunks[0]}
    out["names"] = np.char.add(np.char.add(out["clip"], "/"), np.char.zfill(
        out["frame"].astype(str), 5))  # unique per-frame label, e.g. "h36m_like/S1/walk/00015"
    return out


def _chunk(poses, betas, transl, clip: str, action: str, subject: str, frame) -> dict:
    n = len(poses)
    return {"poses": np.asarray(poses, np.float32), "betas": np.broadcast_to(
        np.asarray(betas, np.float32), (n, 10)).copy(), "transl": np.asarray(transl, np.float32),
        "clip": np.array([clip] * n), "action": np.array([action] * n),
        "subject": np.array([subject] * n), "frame": np.asarray(frame, np.int64)}


def split_frames(name: str, part: str = "train", size: str = "tiny", seed: int = 0,
                 body_model: torch.nn.Module | None = None) -> dict[str, np.ndarray]:
    """Per-frame arrays of a split.

    Args:
        name: a key of :data:`SPLITS`. part: ``"train"`` or ``"test"``.
        size: ``"tiny"`` (hundreds of frames, for CI), ``"teaching"`` or ``"full"``.
        seed: motion randomness (tempo, style, heading, ...); same seed -> same arrays.
        body_model: used to place procedural clips on the floor; default ``BodyModel.open()``.
    Returns:
        dict of numpy arrays over ``F`` frames: ``poses (F, 72)``, ``betas (F, 10)``,
        ``transl (F, 3)`` float32; ``clip``, ``action``, ``subject`` ``(F,)`` str; ``frame (F,)``
        int64 (index in its 30 fps source clip; for real_mocap, in the DeepMimic clip);
        ``names (F,)`` str, a unique label per frame (``"<clip>/<frame>"``).
    """
    spec = get_split(name)
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, got {part!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, got {size!r}")
    if spec.kind == "mocap":
        if part != "test":
            raise ValueError(f"split {name!r} is evaluation only: use part='test'")
        chunks = []
        for c in load_deepmimic():
            idx = np.arange(0, c.num_frames, spec.frames[SIZES.index(size)])
            chunks.append(_chunk(c.poses[idx], c.betas, c.transl[idx], f"{name}/{c.name}",
                                 c.name, "deepmimic", idx))
        return _pack(chunks)
    if spec.kind == "prior":
        return _prior_frames(spec, part, size, seed)
    if body_model is None:
        from vhakit.body.model import BodyModel
        body_model = BodyModel.open()
    chunks = []
    n = spec.frames[SIZES.index(size)]
    for subj in spec.train_subjects if part == "train" else spec.test_subjects:
        for action in spec.actions:
            gen = torch.Generator().manual_seed(_seed(seed, name, part, subj.name, action))
            # Made directly at fps / stride: the same frames as every stride-th one at fps.
            clip = make_clip(action, n, spec.fps / spec.stride, gen, betas=np.array(subj.betas),
                             body_model=body_model)
            chunks.append(_chunk(clip.poses, clip.betas, clip.transl,
                                 f"{name}/{subj.name}/{action}", action, subj.name,
                                 np.arange(n) * spec.stride))
    return _pack(chunks)


def _prior_frames(spec: SplitSpec, part: str, size: str, seed: int) -> dict[str, np.ndarray]:
    total = spec.frames[SIZES.index(size)][PARTS.index(part)]
    n_sampled = total // 2
    # Sequences of up to 32 frames, shorter when needed for every action to get one.
    seq_len = min(32, max(1, (total - n_sampled) // len(spec.actions)))
    gen = torch.Generator().manual_seed(_seed(seed, spec.name, part))
    chunks = [_chunk(sample_poses(n_sampled, gen).numpy(), np.zeros(10), np.zeros((n_sampled, 3)),
                     f"{spec.name}/sampler", "sampler", "random", np.arange(n_sampled))]
    betas = sample_betas(n_sampled, gen).numpy()  # one body per sampled pose
    chunks[0]["betas"] = betas.astype(np.float32)
    left, k = total - n_sampled, 0
    while left > 0:
        action = spec.actions[k % len(spec.actions)]
        m = min(seq_len, left)
        params = sample_params(action, gen)
        idx = np.arange(m) * spec.stride
        poses = action_poses(action, torch.as_tensor(idx / spec.fps), params).numpy()
        chunks.append(_chunk(poses, sample_betas(1, gen)[0].numpy(), np.zeros((m, 3)),
                             f"{spec.name}/{action}/{k}", action, f"random{k}", idx))
        left, k = left - m, k + 1
    return _pack(chunks)
