"""Prepare Human3.6M (Learnable Triangulation layout + MoSh SMPL fits) as multi-view datasets.

    python data_scripts/prepare_h36m.py H36M_ROOT OUTPUT_DIR --mosh-dir MOSH_DIR [--body smpl ...]

H36M_ROOT is LT's ``data/human36m``: ``extra/human36m-multiview-labels-GTbboxes.npy`` and
``processed/<S>/<Action>/imageSequence[-undistorted]/<camera>/img_%06d.jpg`` (frame_idx + 1).
MOSH_DIR holds the MoSh fits as ``<S>/<name>_cam<i>_aligned.pkl`` (``new_poses`` one per 5
frames, ``betas``); ``<name>`` is the LT action (``Directions-1``) or Human3.6M's original name
(``Directions 1``, mapped through ``metadata.xml``). Each frame's root rotation is brought from
the cameras' frames to the world (``R_cam^T Rodrigues(root) Rx(pi)``, averaged over the cameras
that have a fit), the translation puts the body's pelvis on the ground-truth pelvis, and the
world is turned y-up. Subjects S1, S5, S6, S7, S8 -> ``OUTPUT_DIR/train``, S9, S11 ->
``OUTPUT_DIR/test``; the 4 views are cropped by LT's boxes and resized to ``--image-size``.
"""
from __future__ import annotations

import math
from pathlib import Path

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
    read_rgb,
    run_body,
    run_main,
    signature,
    views_visibility,
)

from vhakit.data.real import (
    H36M_DAMAGED_ACTIONS,
    H36M_MOSH_STEP,
    H36M_TEST_SUBJECTS,
    H36M_TRAIN_SUBJECTS,
    geodesic_deg,
    h36m_root_to_world,
    mean_rotation,
    mosh_file,
    read_h36m_metadata,
    read_lt_labels,
    read_mosh_fit,
    square_box,
    up_rotation,
)
from vhakit.data.store import write_image
from vhakit.geometry.rotations import matrix_to_axis_angle

PARTS = {"train": H36M_TRAIN_SUBJECTS, "test": H36M_TEST_SUBJECTS}
PELVIS, HEAD = 6, 9  # LT's 17-joint order: 6 = hip (root), 9 = head
VIEW_ARRAYS = ("K", "R", "t", "dist", "visibility", "bboxes")
LAYOUT = "processed/<S>/<Action>/imageSequence/<camera>/img_%06d.jpg (frame_idx + 1)"


def build_parser():
    p = make_parser("prepare_h36m.py", __doc__.splitlines()[0],
                    "Learnable Triangulation's human36m folder (holds processed/ and extra/)")
    add_multiview_args(p, bbox_scale=1.0)
    g = p.add_argument_group("Human3.6M")
    g.add_argument("--mosh-dir", type=Path, required=True,
                   help="folder with <S>/<action>_cam<i>_aligned.pkl MoSh fits")
    g.add_argument("--labels", type=Path, default=None,
                   help="default: INPUT_DIR/extra/human36m-multiview-labels-GTbboxes.npy")
    g.add_argument("--metadata", type=Path, default=None,
                   help="Human3.6M metadata.xml, to find MoSh files under the original action "
                        "names (default: INPUT_DIR/metadata.xml if present)")
    g.add_argument("--undistorted", action="store_true",
                   help="read LT's imageSequence-undistorted/ (else undistort while cropping)")
    g.add_argument("--train-every", type=int, default=1, help="keep every N-th train frame")
    g.add_argument("--test-every", type=int, default=1,
                   help="keep every N-th test frame (LT's retain_every_n_frames_in_test)")
    g.add_argument("--with-damaged-actions", action="store_true",
                   help="keep S9 Greeting-2, SittingDown-2, Waiting-1 in the test set")
    g.add_argument("--parts", default="train,test", help="comma-separated parts to write")
    return p


def _load_fits(args, subject: str, action: str, meta_map) -> dict[int, tuple]:
    """``{camera index: (new_poses (N, 72), betas (10,))}`` for the cameras that have a file."""
    fits = {}
    for c in range(4):
        path = mosh_file(args.mosh_dir, subject, action, c, meta_map)
        if path is not None:
            fits[c] = read_mosh_fit(path)
    return fits


def plan_part(args, labels, subjects, test: bool, meta_map, A, keep: bool):
    """Rows of the part and their world SMPL parameters (kit world, before translation)."""
    table = labels.table
    subj = np.array(labels.subject_names)[table["subject_idx"]]
    act = np.array(labels.action_names)[table["action_idx"]]
    frame = table["frame_idx"].astype(np.int64)
    no_view = (table["bbox_by_camera_tlbr"] == 0).all(-1).any(-1)
    notes: dict[str, int] = {"frames without all 4 views": 0, "frames past the MoSh fit": 0}
    rows, poses, betas, spread, seqs, no_fit = [], [], [], [], [], []
    damaged = set() if args.with_damaged_actions or not test else set(H36M_DAMAGED_ACTIONS)
    for s in subjects:
        for a in sorted(set(act[subj == s])):
            if (s, a) in damaged:
                continue
            sel = np.nonzero((subj == s) & (act == a) & (frame % H36M_MOSH_STEP == 0))[0]
            notes["frames without all 4 views"] += int(no_view[sel].sum())
            sel = sel[~no_view[sel]]
            if not len(sel):
                continue
            fits = _load_fits(args, s, a, meta_map)
            if not fits:
                no_fit.append(f"{s}/{a}")
                continue
            n_fit = min(len(f[0]) for f in fits.values())
            ok = frame[sel] // H36M_MOSH_STEP < n_fit
            notes["frames past the MoSh fit"] += int((~ok).sum())
            sel = sel[ok]
            k = frame[sel] // H36M_MOSH_STEP
            s_idx = labels.subject_names.index(s)
            roots = torch.stack([h36m_root_to_world(
                torch.as_tensor(fits[c][0][k, :3]),
                torch.as_tensor(labels.camera(s_idx, c)["R"])) for c in sorted(fits)], 1)
            world = mean_rotation(roots)  # (n, 3, 3), H36M world
            spread.append(geodesic_deg(roots, world[:, None]).amax(1))
            first = fits[min(fits)]
            go = matrix_to_axis_angle(torch.as_tensor(A) @ world).numpy()
            poses.append(np.concatenate([go, first[0][k, 3:]], 1))
            betas.append(np.repeat((first[1] if keep else np.zeros(10))[None], len(sel), 0))
            rows.append(sel)
            seqs.append(f"{s}/{a}")
    every = args.test_every if test else args.train_every
    if not rows:
        return None
    cat = lambda xs: np.concatenate(xs)[::every]  # noqa: E731
    seq_of_row = np.concatenate([np.full(len(r), i) for i, r in enumerate(rows)])[::every]
    spread_deg = float(torch.cat(spread).max()) if spread else 0.0
    return dict(rows=cat(rows), poses=cat(poses), betas=cat(betas), seq=seq_of_row,
                sequences=seqs, notes=notes, no_fit=no_fit, spread_deg=spread_deg)


def prepare_part(args, part: str, labels, plan: dict, A: np.ndarray, up: str, body
                 ) -> PartSummary:
    """Write ``OUTPUT_DIR/<part>`` from the planned rows (resumable, chunks of frames)."""
    root, out = args.input_dir, args.output_dir / part
    table, cs, size = labels.table[plan["rows"]], args.chunk_size, args.image_size
    cams = {s: [labels.camera(s, c) for c in range(4)] for s in set(table["subject_idx"])}
    image_dir = "imageSequence-undistorted" if args.undistorted else "imageSequence"

    def make_chunk(k: int) -> dict[str, np.ndarray]:
        sl = slice(k * cs, (k + 1) * cs)
        rows = table[sl]
        n = len(rows)
        kp_w = rows["keypoints"].astype(np.float64) / 1000.0 @ A.T  # (n, 17, 3) kit world m
        posed = run_body(body, plan["poses"][sl], plan["betas"][sl], np.zeros((n, 3)),
                         args.batch_size, full=True)
        transl = kp_w[:, PELVIS] - posed["joints"][:, 0]  # (n, 3): pelvis on the GT pelvis
        for key in ("vertices108", "joints", "vertices"):
            posed[key] = posed[key] + transl[:, None].astype(np.float32)
        arr = {"poses": plan["poses"][sl], "betas": plan["betas"][sl], "transl": transl,
               "keypoints_h36m": kp_w, "sequence_index": plan["seq"][sl],
               "frame_index": rows["frame_idx"], "vertices108": posed["vertices108"],
               "joints": posed["joints"]}
        views_arr: dict[str, list] = {key: [] for key in VIEW_ARRAYS}
        for j, row in enumerate(rows):
            cam = cams[row["subject_idx"]]
            boxes = square_box(row["bbox_by_camera_tlbr"][:, [1, 0, 3, 2]], args.bbox_scale)
            seq_dir = root / "processed" / plan["sequences"][plan["seq"][sl][j]]
            imgs = [read_rgb(seq_dir / image_dir / labels.camera_names[c] /
                             f"img_{row['frame_idx'] + 1:06d}.jpg", LAYOUT) for c in range(4)]
            dist = np.zeros((4, 5)) if args.undistorted else np.stack([c["dist"] for c in cam])
            views, K = crop_views(imgs, np.stack([c["K"] for c in cam]), dist, boxes, size, "h36m")
            R = np.stack([c["R"] for c in cam]) @ A.T  # world->camera of the y-up world
            t = np.stack([c["t"] for c in cam])
            write_image(out, k * cs + j, views)
            vis = views_visibility(body, posed["vertices"][j], K, R, t, size, args.visibility_size)
            for key, val in zip(VIEW_ARRAYS, (K, R, t, np.zeros((4, 5)), vis, boxes), strict=True):
                views_arr[key].append(val)
        arr.update({key: np.stack(v) for key, v in views_arr.items()})
        return {key: np.asarray(v).astype(bool if key == "visibility" else np.int32
                                          if key.endswith("index") else np.float32)
                for key, v in arr.items()}

    sig = signature(args, part=part, labels_rows=len(labels.table),
                    mosh=sorted(str(p.relative_to(args.mosh_dir)) for p in
                                args.mosh_dir.rglob("*_aligned.pkl")))
    meta = {"body_model": body.name, "source": "h36m", "split": "h36m", "part": part,
            "seed": None, "num_views": 4, "image_size": [size, size], "has_images": True,
            "sequences": plan["sequences"], "camera_names": labels.camera_names,
            "frame_names": [f"{plan['sequences'][q]}/{f:06d}" for q, f in
                            zip(plan["seq"], table["frame_idx"], strict=True)],
            "world_up": up, "mosh_root_spread_deg": round(plan["spread_deg"], 3)}
    done = build_part(out, sig, math.ceil(len(table) / cs), make_chunk, meta, f"H36M {part}",
                      args.restart, args.workers)
    notes = [f"{v} {k} dropped" for k, v in plan["notes"].items() if v]
    if plan["no_fit"]:
        notes.append(f"no MoSh fit, skipped: {plan['no_fit']}")
    if plan["spread_deg"] > 10:
        notes.append(f"the cameras' MoSh roots disagree by up to {plan['spread_deg']:.1f} deg")
    return PartSummary(part, out, done["num_frames"], len(plan["sequences"]),
                       len({s.split("/")[0] for s in plan["sequences"]}), 4, notes)


def run(args) -> list[PartSummary]:
    root = args.input_dir
    if not root.is_dir():
        raise FileNotFoundError(f"INPUT_DIR {root} is not a folder; pass LT's data/human36m")
    if not args.mosh_dir.is_dir():
        raise FileNotFoundError(f"--mosh-dir {args.mosh_dir} is not a folder of MoSh fits "
                                "(<S>/<action>_cam<i>_aligned.pkl); see docs/datasets.md")
    wanted = [p for p in args.parts.split(",") if p]
    if not wanted or any(p not in PARTS for p in wanted):
        raise ValueError(f"--parts must list some of {tuple(PARTS)}, got {args.parts!r}")
    labels = read_lt_labels(args.labels or root / "extra" / "human36m-multiview-labels-GTbboxes.npy")
    meta_path = args.metadata or (root / "metadata.xml")
    if args.metadata and not meta_path.is_file():
        raise FileNotFoundError(f"--metadata {args.metadata} does not exist")
    meta_map = read_h36m_metadata(meta_path) if meta_path.is_file() else None
    kp = labels.table["keypoints"].astype(np.float64)
    A, up = up_rotation(args.up, kp[:, HEAD] - kp[:, PELVIS])
    body = load_body(args)
    results = []
    for part in wanted:
        plan = plan_part(args, labels, PARTS[part], part == "test", meta_map, A,
                         keep_betas(args))
        if plan is None:
            raise ValueError(f"no {part} frame of subjects {PARTS[part]} has all 4 views and a "
                             f"MoSh fit in {args.mosh_dir} (expected <S>/<action>_cam<i>_aligned"
                             ".pkl with the LT action name, or the original names + --metadata)")
        results.append(prepare_part(args, part, labels, plan, A, up, body))
    return results


def main(argv: list[str] | None = None) -> int:
    return run_main(run, build_parser(), argv)


if __name__ == "__main__":
    raise SystemExit(main())
