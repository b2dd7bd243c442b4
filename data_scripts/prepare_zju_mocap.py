"""Prepare LightStage (ZJU-MoCap) as multi-view vhakit datasets.

    python data_scripts/prepare_zju_mocap.py ZJU_ROOT OUTPUT_DIR [--body smpl --smpl-dir PATH]

ZJU_ROOT holds ``CoreView_<id>/`` folders with ``annots.npy`` (cameras K, D, R, T in mm; image
lists), the images (``Camera_B<k>/%06d.jpg``, or the long names of 313/315), optional masks
(``mask_cihp/`` or ``mask/``) and SMPL parameters (``new_params/<i>.npy``: EasyMocap's
``poses, Rh, Th, shapes``, or SMPL-style files such as smplx ``transfer_model`` output for the
SMPL-X release; see docs/datasets.md). Cameras 0, 6, 12, 18 (1, 7, 13, 19), every 5th frame;
sequences 363-371 and 377-384 -> ``OUTPUT_DIR/train``, 385-388 -> ``OUTPUT_DIR/test``. Rh/Th
become SMPL's global_orient/transl (:func:`vhakit.data.real.zju_to_smpl`), the world is turned
y-up, and each view is undistorted, cropped to the person box (from the mask, else from the
projected mesh) and resized to ``--image-size``.
"""
from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import torch
from _common import (
    PartSummary,
    add_multiview_args,
    build_part,
    crop_views,
    keep_betas,
    load_body,
    make_parser,
    pelvis_rest,
    read_rgb,
    run_body,
    run_main,
    signature,
    views_visibility,
)

from vhakit.data.real import (
    ZJU_CAMERAS,
    ZJU_TEST_SEQUENCES,
    ZJU_TRAIN_SEQUENCES,
    distort,
    load_pickle,
    read_zju_annots,
    read_zju_params,
    smpl_change_frame,
    square_box,
    up_rotation,
    zju_param_index,
    zju_to_smpl,
)
from vhakit.data.store import write_image
from vhakit.geometry.rotations import axis_angle_to_matrix


def _ids(text: str) -> list[int]:
    """``"363-371,377"`` -> [363, ..., 371, 377]."""
    out = []
    for part in filter(None, text.split(",")):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def build_parser():
    p = make_parser("prepare_zju_mocap.py", __doc__.splitlines()[0],
                    "folder holding the CoreView_<id>/ sequence folders")
    add_multiview_args(p, bbox_scale=1.2)
    g = p.add_argument_group("ZJU-MoCap")
    fmt = lambda ids: f"{ids[0]}-{ids[-1]}"  # noqa: E731
    g.add_argument("--train-seqs", default=f"{fmt(ZJU_TRAIN_SEQUENCES[:9])},"
                   f"{fmt(ZJU_TRAIN_SEQUENCES[9:])}", help="sequence ids for OUTPUT_DIR/train")
    g.add_argument("--test-seqs", default=fmt(ZJU_TEST_SEQUENCES),
                   help="sequence ids for OUTPUT_DIR/test")
    g.add_argument("--cameras", default=",".join(map(str, ZJU_CAMERAS)),
                   help="0-based indices into annots['cams'] (0,6,12,18 = cameras 1,7,13,19)")
    g.add_argument("--frame-step", type=int, default=5, help="keep every N-th frame")
    g.add_argument("--params", default="new_params",
                   help="SMPL parameters: a folder name inside each sequence, a path with {seq} "
                        "(e.g. /data/smpl/{seq}/merged.pkl), per-frame files or a merged.pkl")
    g.add_argument("--merged-first-index", type=int, default=0,
                   help="parameter index of row 0 of a merged.pkl")
    g.add_argument("--t-unit", choices=("mm", "m"), default="mm", help="unit of annots T")
    g.add_argument("--bbox-from", choices=("auto", "mask", "smpl"), default="auto",
                   help="person box from the mask (auto: when the mask file exists) or the mesh")
    return p


def _params_source(args, seq_dir: Path, seq: int) -> Path:
    text = args.params.format(seq=seq)
    path = Path(text) if ("/" in text or "{" in args.params) else seq_dir / text
    if not path.exists() and args.params == "new_params" and (seq_dir / "params").is_dir():
        path = seq_dir / "params"  # the older fits without pose blend shapes
    if not path.exists():
        raise FileNotFoundError(f"no SMPL parameters at {path}; pass --params (a folder of "
                                "<i>.npy files, or a transfer_model merged.pkl; docs/datasets.md)")
    return path


def _frame_params(src: Path, index: int, merged: dict | None, first: int) -> dict:
    if merged is not None:
        return read_zju_params(merged, row=index - first)
    for name in (f"{index}.npy", f"{index}.npz", f"{index}.pkl", f"{index:06d}.pkl",
                 f"{index:06d}.npz", f"{index:06d}.npy"):
        if (src / name).is_file():
            return read_zju_params(src / name)
    raise FileNotFoundError(f"no SMPL parameter file for frame {index} in {src} (tried {index}.npy,"
                            f" {index:06d}.pkl, ...)")


def plan_sequence(args, root: Path, seq: int, cams_idx: list[int], body, keep: bool) -> dict:
    """Frames, kit-world SMPL parameters and cameras of one sequence."""
    seq_dir = root / f"CoreView_{seq}"
    ann = read_zju_annots(seq_dir / "annots.npy", args.t_unit)
    if max(cams_idx) >= len(ann.K):
        raise ValueError(f"{seq_dir}/annots.npy has {len(ann.K)} cameras; --cameras asks for "
                         f"index {max(cams_idx)}")
    src = _params_source(args, seq_dir, seq)
    merged = load_pickle(src) if src.is_file() else None
    frames = list(range(0, len(ann.images), args.frame_step))
    prm = [_frame_params(src, zju_param_index(ann.images[f][cams_idx[0]]), merged,
                         args.merged_first_index) for f in frames]
    stack = lambda k: torch.as_tensor(np.stack([p[k] for p in prm]))  # noqa: E731
    poses, Rh, Th, shapes = stack("poses"), stack("Rh"), stack("Th"), stack("shapes")
    betas = shapes if keep else torch.zeros_like(shapes)
    J0 = torch.as_tensor(pelvis_rest(body, betas.numpy()))
    body_up = (axis_angle_to_matrix(Rh) @ axis_angle_to_matrix(poses[:, :3]))[:, :, 1]
    A, up = up_rotation(args.up, body_up.numpy())
    go, body_pose, transl = zju_to_smpl(poses, Rh, Th, J0)  # the ZJU world
    go, transl = smpl_change_frame(go, transl, J0, torch.as_tensor(A))  # the kit's y-up world
    c = cams_idx
    return {"dir": seq_dir, "frames": frames, "images": [[ann.images[f][i] for i in c]
                                                         for f in frames],
            "poses": torch.cat([go, body_pose], 1).numpy(), "betas": betas.numpy(),
            "transl": transl.numpy(), "K": ann.K[c], "dist": ann.dist[c], "R": ann.R[c] @ A.T,
            "t": ann.t[c], "up": up}


def _mask_box(seq_dir: Path, image_rel: str) -> np.ndarray | None:
    for folder in ("mask_cihp", "mask"):
        p = (seq_dir / folder / image_rel).with_suffix(".png")
        if p.is_file():
            m = cv2.imread(str(p), cv2.IMREAD_GRAYSCALE)
            if m is not None and (m > 0).any():
                ys, xs = np.nonzero(m > 0)
                return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    return None


def _mesh_box(verts: np.ndarray, K, dist, R, t) -> np.ndarray:
    x = verts @ R.T + t
    uv = distort(x[:, :2] / x[:, 2:], dist) @ K[:2, :2].T + K[:2, 2]
    return np.concatenate([uv.min(0) - 0.5, uv.max(0) + 0.5])


def _frame_views(args, q: dict, j: int, verts: np.ndarray, body) -> tuple[np.ndarray, dict]:
    """The V crops of frame ``j`` of sequence ``q`` and their per-view arrays."""
    boxes, from_mask = [], []
    for v, rel in enumerate(q["images"][j]):
        box = _mask_box(q["dir"], rel) if args.bbox_from != "smpl" else None
        if box is None and args.bbox_from == "mask":
            raise FileNotFoundError(f"no mask for {q['dir'] / rel} in mask_cihp/ or mask/; use "
                                    "--bbox-from smpl")
        from_mask.append(box is not None)
        if box is None:
            box = _mesh_box(verts, q["K"][v], q["dist"][v], q["R"][v], q["t"][v])
        boxes.append(square_box(box, args.bbox_scale))
    boxes = np.stack(boxes)
    imgs = [read_rgb(q["dir"] / rel, "the image paths listed in annots.npy")
            for rel in q["images"][j]]
    views, K = crop_views(imgs, q["K"], q["dist"], boxes, args.image_size, "opencv")
    vis = views_visibility(body, verts, K, q["R"], q["t"], args.image_size, args.visibility_size)
    return views, {"K": K, "R": q["R"], "t": q["t"], "dist": np.zeros((len(K), 5)),
                   "visibility": vis, "bboxes": boxes, "bbox_from_mask": np.array(from_mask)}


def prepare_part(args, part: str, seqs: list[dict], names: list[str], body) -> PartSummary:
    """Write ``OUTPUT_DIR/<part>`` from the planned sequences (resumable, chunks of frames)."""
    out, cs, size = args.output_dir / part, args.chunk_size, args.image_size
    index = [(s, j) for s, q in enumerate(seqs) for j in range(len(q["frames"]))]

    def make_chunk(k: int) -> dict[str, np.ndarray]:
        items = index[k * cs:(k + 1) * cs]
        pick = lambda key: np.stack([seqs[s][key][j] for s, j in items])  # noqa: E731
        arr = {"poses": pick("poses"), "betas": pick("betas"), "transl": pick("transl"),
               "sequence_index": np.array([s for s, _ in items]),
               "frame_index": np.array([seqs[s]["frames"][j] for s, j in items])}
        posed = run_body(body, arr["poses"], arr["betas"], arr["transl"], args.batch_size,
                         full=True)
        arr.update(vertices108=posed["vertices108"], joints=posed["joints"])
        per_view: dict[str, list] = {}
        for n, (s, j) in enumerate(items):
            views, frame_arrays = _frame_views(args, seqs[s], j, posed["vertices"][n], body)
            write_image(out, k * cs + n, views)
            for key, val in frame_arrays.items():
                per_view.setdefault(key, []).append(val)
        arr.update({key: np.stack(v) for key, v in per_view.items()})
        return {key: np.asarray(v).astype(bool if key in ("visibility", "bbox_from_mask")
                                          else np.int32 if key.endswith("index")
                                          else np.float32) for key, v in arr.items()}

    sig = signature(args, part=part, sequences=names, frames=[len(q["frames"]) for q in seqs])
    meta = {"body_model": body.name, "source": "zju_mocap", "split": "zju_mocap", "part": part,
            "seed": None, "num_views": len(seqs[0]["K"]), "image_size": [size, size],
            "has_images": True, "sequences": names,
            "camera_indices": [int(c) for c in args.cameras.split(",")],
            "frame_names": [f"{names[s]}/{seqs[s]['frames'][j]:06d}" for s, j in index],
            "world_up": {n: q["up"] for n, q in zip(names, seqs, strict=True)}}
    done = build_part(out, sig, math.ceil(len(index) / cs), make_chunk, meta, f"ZJU {part}",
                      args.restart, args.workers)
    from_mask = np.load(out / "arrays" / "bbox_from_mask.npy")
    notes = [f"{int((~from_mask).sum())} of {from_mask.size} boxes from the mesh (no mask)"] \
        if not from_mask.all() else []
    return PartSummary(part, out, done["num_frames"], len(names), len(names), len(seqs[0]["K"]),
                       notes)


def run(args) -> list[PartSummary]:
    root = args.input_dir
    if not root.is_dir():
        raise FileNotFoundError(f"INPUT_DIR {root} is not a folder; pass the folder holding "
                                "CoreView_<id>/")
    if args.frame_step < 1:
        raise ValueError(f"--frame-step must be >= 1, got {args.frame_step}")
    cams_idx = [int(c) for c in args.cameras.split(",")]
    body = load_body(args)
    results = []
    for part, ids in (("train", _ids(args.train_seqs)), ("test", _ids(args.test_seqs))):
        found = [i for i in ids if (root / f"CoreView_{i}" / "annots.npy").is_file()]
        if not found:
            if ids:
                print(f"ZJU {part}: none of the sequences {ids} is under {root}; skipping")
            continue
        seqs = [plan_sequence(args, root, i, cams_idx, body, keep_betas(args)) for i in found]
        results.append(prepare_part(args, part, seqs, [f"CoreView_{i}" for i in found], body))
        missing = [i for i in ids if i not in found]
        if missing:
            results[-1].notes.append(f"sequences not found: {missing}")
    if not results:
        raise FileNotFoundError(f"no CoreView_<id>/annots.npy under {root} for the sequences "
                                f"{args.train_seqs} / {args.test_seqs}; see docs/datasets.md")
    return results


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
