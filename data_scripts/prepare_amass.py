"""Prepare AMASS as mesh-only vhakit datasets: the VHA's ``prior_pool`` from real motion capture.

    python data_scripts/prepare_amass.py AMASS_ROOT OUTPUT_DIR [--body smpl --smpl-dir PATH]

AMASS_ROOT holds the sub-dataset folders (``CMU/``, ``KIT/``, ...), searched recursively for
SMPL+H ``*_poses.npz`` and SMPL-X ``*_stageii.npz``. Each sequence is read by
:func:`vhakit.data.motion.load_amass_npz` (root + 21 body joints, zero SMPL hands, z-up -> y-up,
both frame-rate spellings, gender as str or bytes), every ``--stride``-th frame is kept (the
paper: every 10th; ``--target-fps`` picks a per-sequence stride instead), and the body model
gives ``vertices108`` and ``joints``. The official split by sub-dataset folder writes
``OUTPUT_DIR/train``, ``OUTPUT_DIR/vald`` and ``OUTPUT_DIR/test``. See ``docs/datasets.md``.
"""
from __future__ import annotations

import math
import zipfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
from _common import (
    PartSummary,
    build_part,
    keep_betas,
    load_body,
    make_parser,
    pelvis_rest,
    run_body,
    run_main,
    signature,
)

from vhakit.data.motion import load_amass_npz
from vhakit.data.real import amass_part, check_amass_clip, find_amass_files

PARTS = ("train", "vald", "test")


def build_parser():
    p = make_parser("prepare_amass.py", __doc__.splitlines()[0],
                    "AMASS root folder holding the sub-dataset folders (CMU/, KIT/, ...)")
    p.set_defaults(chunk_size=64)
    g = p.add_argument_group("AMASS")
    g.add_argument("--format", choices=("auto", "smplh", "smplx"), default="auto",
                   help="which release's files to read (auto: both; a sequence present in both "
                        "is an error)")
    g.add_argument("--stride", type=int, default=10, help="keep every N-th frame (the paper: 10)")
    g.add_argument("--target-fps", type=float, default=None,
                   help="instead of --stride: stride = round(mocap fps / target) per sequence")
    g.add_argument("--unlisted", choices=("skip", "train"), default="skip",
                   help="sub-datasets outside the official split (ACCAD, BMLmovi, GRAB, ...)")
    g.add_argument("--parts", default=",".join(PARTS), help="comma-separated parts to write")
    return p


def _stride(args, fps: float) -> int:
    return max(1, round(fps / args.target_fps)) if args.target_fps else args.stride


def read_sequence(path: Path, body, keep: bool, args) -> tuple:
    """``(clip, frame_indices)``: one AMASS file as a checked, subsampled MotionClip.

    ``--betas auto`` with ``--body smpl`` keeps the first 10 of SMPL+H's 16 betas (the common,
    approximate choice) but zeroes SMPL-X betas, whose shape space is not SMPL's."""
    if args.betas == "auto" and path.name.endswith("_stageii.npz"):
        keep = False
    try:
        with np.load(path, allow_pickle=False) as z:
            raw = np.asarray(z["betas"]).ravel() if "betas" in z.files else np.zeros(0)
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{path}: not a readable AMASS .npz ({err}); re-download the file") from err
    betas = raw[:10].astype(np.float64) if keep and raw.size >= 10 else np.zeros(10)
    clip = load_amass_npz(path, pelvis_rest_m=pelvis_rest(body, betas[None])[0])
    check_amass_clip(clip, path)
    if not keep:
        clip = replace(clip, betas=np.zeros(10))
    index = np.arange(0, clip.num_frames, _stride(args, clip.fps))
    return clip, index


def prepare_part(args, part: str, files: list[Path], body) -> PartSummary:
    """Write ``OUTPUT_DIR/<part>`` from the AMASS ``files`` (resumable, chunks of files)."""
    keep = keep_betas(args)
    rels = [f.relative_to(args.input_dir).as_posix() for f in files]
    cs = args.chunk_size

    def make_chunk(k: int) -> dict[str, np.ndarray]:
        cols: dict[str, list] = {n: [] for n in ("poses", "betas", "transl", "sequence_index",
                                                 "frame_index")}
        for j, path in enumerate(files[k * cs:(k + 1) * cs], start=k * cs):
            clip, idx = read_sequence(path, body, keep, args)
            cols["poses"].append(clip.poses[idx])
            cols["transl"].append(clip.transl[idx])
            cols["betas"].append(np.repeat(clip.betas[None], len(idx), 0))
            cols["sequence_index"].append(np.full(len(idx), j, np.int32))
            cols["frame_index"].append(idx.astype(np.int32))
        arrays = {n: np.concatenate(v).astype(np.int32 if n.endswith("index") else np.float32)
                  for n, v in cols.items()}
        arrays.update(run_body(body, arrays["poses"], arrays["betas"], arrays["transl"],
                               args.batch_size))
        return arrays

    sig = signature(args, part=part, files=[[r, f.stat().st_size]
                                            for r, f in zip(rels, files, strict=True)])
    meta = {"body_model": body.name, "source": "amass", "split": "amass", "part": part,
            "seed": None, "num_views": 0, "image_size": None, "has_images": False,
            "sequences": rels, "stride": args.stride, "target_fps": args.target_fps}
    done = build_part(args.output_dir / part, sig, math.ceil(len(files) / cs), make_chunk, meta,
                      f"AMASS {part}", args.restart, args.workers)
    subjects = {tuple(Path(r).parts[:2]) for r in rels}
    return PartSummary(part, args.output_dir / part, done["num_frames"], len(rels),
                       len(subjects), 0)


def run(args) -> list[PartSummary]:
    root = args.input_dir
    if not root.is_dir():
        raise FileNotFoundError(f"INPUT_DIR {root} is not a folder; pass the AMASS root that holds "
                                "the sub-dataset folders (CMU/, KIT/, ...)")
    wanted = [p for p in args.parts.split(",") if p]
    if not wanted or any(p not in PARTS for p in wanted):
        raise ValueError(f"--parts must list some of {PARTS}, got {args.parts!r}")
    if args.stride < 1 or (args.target_fps is not None and args.target_fps <= 0):
        raise ValueError("--stride must be >= 1 and --target-fps > 0")
    files = find_amass_files(root, args.format)
    if not files:
        raise FileNotFoundError(f"no *_poses.npz (SMPL+H) or *_stageii.npz (SMPL-X) files under "
                                f"{root}; INPUT_DIR must be the AMASS root (see docs/datasets.md)")
    by_part: dict[str, list[Path]] = {}
    skipped: Counter = Counter()
    for f in files:
        rel = f.relative_to(root)
        folder = rel.parts[0] if len(rel.parts) > 1 else ""
        part = amass_part(folder) or (args.unlisted if args.unlisted != "skip" else None)
        if part is None:
            skipped[folder or "(root)"] += 1
        else:
            by_part.setdefault(part, []).append(f)
    body = load_body(args)
    results = [prepare_part(args, part, by_part[part], body) for part in PARTS
               if part in wanted and part in by_part]
    if skipped and results:
        results[0].notes.append(f"skipped sub-datasets outside the official split (add "
                                f"--unlisted train to keep them): {dict(skipped)}")
    if not results:
        raise ValueError(f"no sequence falls in the parts {wanted}; found sub-datasets "
                         f"{sorted(skipped)} outside the official split (use --unlisted train)")
    return results


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
