"""Plumbing shared by ``prepare_amass.py``, ``prepare_h36m.py`` and ``prepare_zju_mocap.py``:
command-line options, the body model, chunked resumable builds and the final summary.

A build writes the kit's dataset format (:mod:`vhakit.data.store`) part by part (``train``,
``test``, ...) into ``OUTPUT_DIR/<part>/``. Each part is cut into chunks planned up front; a
finished chunk is saved atomically as ``.partial/chunk_NNNNN.npz`` (images go straight to
``images/`` under their final frame numbers), so a re-run with the same command skips the
finished chunks. At the end the chunks are concatenated into ``arrays/*.npy``, ``meta.json`` is
written last and ``.partial/`` removed. ``VHAKIT_PREPARE_FAIL_AFTER_CHUNKS=N`` makes a run stop
with :class:`BuildInterrupted` after N new chunks (to test resuming).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from tqdm import tqdm

from vhakit._util import atomic_write_bytes
from vhakit.body.model import BodyModel
from vhakit.data.store import DatasetCorrupt, atomic_save_npy, read_meta, write_meta

FAIL_ENV = "VHAKIT_PREPARE_FAIL_AFTER_CHUNKS"
BUILD_VERSION = 1  # bump when a script's output changes for the same inputs


class BuildInterrupted(RuntimeError):
    """Raised by the test hook :data:`FAIL_ENV` (an interrupted run, resumable)."""


# ------------------------------------------------------------------------------------ CLI
def make_parser(prog: str, description: str, input_help: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("input_dir", type=Path, help=input_help)
    p.add_argument("output_dir", type=Path, help="where to write OUTPUT_DIR/<part>/ datasets")
    g = p.add_argument_group("body model")
    g.add_argument("--body", choices=("open", "smpl"), default="open",
                   help="open: the shipped licence-free body; smpl: your licensed SMPL files")
    g.add_argument("--smpl-dir", default=None,
                   help="folder with SMPL_NEUTRAL.pkl etc. (default: $VHAKIT_SMPL_DIR)")
    g.add_argument("--gender", choices=("neutral", "male", "female"), default="neutral",
                   help="SMPL file to use with --body smpl")
    g.add_argument("--betas", choices=("auto", "keep", "zero"), default="auto",
                   help="keep the dataset's SMPL betas, or zero them; auto = keep with --body "
                        "smpl, zero with --body open (its shape space is not SMPL's)")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, help="torch device (default: cuda if available)")
    g.add_argument("--chunk-size", type=int, default=256,
                   help="frames (AMASS: files) per resumable chunk")
    g.add_argument("--batch-size", type=int, default=256, help="frames per body-model call")
    g.add_argument("--workers", type=int, default=1,
                   help="processes building chunks in parallel (CPU only; output is identical)")
    g.add_argument("--restart", action="store_true",
                   help="discard an unfinished build made with other options and start over")
    return p


def add_multiview_args(p: argparse.ArgumentParser, bbox_scale: float) -> None:
    g = p.add_argument_group("images")
    g.add_argument("--image-size", type=int, default=384, help="side of the stored square crops")
    g.add_argument("--bbox-scale", type=float, default=bbox_scale,
                   help="scale of the (squared) person box before cropping")
    g.add_argument("--visibility-size", type=int, default=128,
                   help="image size for the per-vertex visibility test (exact at any size; "
                        "smaller is faster)")
    g.add_argument("--up", default="auto", help="world axis pointing up (+z, -y, ...) or auto")


def run_main(run: Callable[[argparse.Namespace], list["PartSummary"]],
             parser: argparse.ArgumentParser, argv: list[str] | None) -> int:
    """Parse, run, print the summary; user errors become one line on stderr and exit code 1."""
    args = parser.parse_args(argv)
    if args.chunk_size < 1 or args.batch_size < 1 or args.workers < 1:
        parser.error("--chunk-size, --batch-size and --workers must be >= 1")
    start = time.perf_counter()
    try:
        parts = run(args)
    except (FileNotFoundError, ValueError) as err:  # includes DatasetCorrupt
        print(f"{parser.prog}: error: {err}", file=sys.stderr)
        return 1
    print_summary(parts, time.perf_counter() - start)
    return 0


# ------------------------------------------------------------------------------------ body
def load_body(args: argparse.Namespace) -> BodyModel:
    from vhakit.runtime import default_device

    device = default_device(args.device)
    if args.workers > 1 and device.type != "cpu":
        raise ValueError(f"--workers {args.workers} runs forked CPU processes; add --device cpu "
                         f"(or use --workers 1 on {device})")
    body = BodyModel.open() if args.body == "open" else BodyModel.smpl(args.smpl_dir, args.gender)
    return body.to(device)


def keep_betas(args: argparse.Namespace) -> bool:
    return args.betas == "keep" or (args.betas == "auto" and args.body == "smpl")


def _t(x, body: BodyModel) -> torch.Tensor:
    ref = body.v_template
    return torch.as_tensor(np.asarray(x), dtype=ref.dtype).to(ref.device)


@torch.no_grad()
def pelvis_rest(body: BodyModel, betas: np.ndarray) -> np.ndarray:
    """``(N, 3)`` rest-pose pelvis ``J0`` for betas ``(N, 10)``."""
    return body(betas=_t(betas, body)).joints[:, 0].double().cpu().numpy()


@torch.no_grad()
def run_body(body: BodyModel, poses: np.ndarray, betas: np.ndarray, transl: np.ndarray,
             batch_size: int, full: bool = False) -> dict[str, np.ndarray]:
    """Pose the body in batches: ``vertices108 (N, 108, 3)``, ``joints (N, 24, 3)`` float32 (and
    ``vertices (N, V, 3)`` with ``full``)."""
    out: dict[str, list] = {"vertices108": [], "joints": [], **({"vertices": []} if full else {})}
    for s in range(0, len(poses), batch_size):
        o = body.from_poses(_t(poses[s:s + batch_size], body), _t(betas[s:s + batch_size], body),
                            _t(transl[s:s + batch_size], body))
        for key in out:
            out[key].append(getattr(o, key).float().cpu().numpy())
    tail = {"vertices108": (108, 3), "joints": (24, 3), "vertices": (body.num_vertices, 3)}
    return {k: np.concatenate(v) if v else np.zeros((0, *tail[k]), np.float32)
            for k, v in out.items()}


# ------------------------------------------------------------------------------------ views
def read_rgb(path: Path, what: str) -> np.ndarray:
    """``(H, W, 3)`` uint8 RGB; a missing file raises a message naming the expected layout."""
    import cv2

    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(f"image {path} is missing or unreadable; expected {what}")
    return np.ascontiguousarray(img[..., ::-1])


def crop_views(images: list[np.ndarray], K: np.ndarray, dist: np.ndarray, boxes: np.ndarray,
               size: int, model: str) -> tuple[np.ndarray, np.ndarray]:
    """Undistort + crop + resize each view: ``(V, size, size, 3)`` uint8, ``K_crop (V, 3, 3)``."""
    from vhakit.data.real import undistort_crop

    crops = [undistort_crop(img, K[v], dist[v], boxes[v], (size, size), model)
             for v, img in enumerate(images)]
    return np.stack([c[0] for c in crops]), np.stack([c[1] for c in crops])


@torch.no_grad()
def views_visibility(body: BodyModel, verts_world_m: np.ndarray, K_crop: np.ndarray,
                     R: np.ndarray, t: np.ndarray, size: int, vis_size: int) -> np.ndarray:
    """``(V, 108)`` bool visibility of the subsampled vertices in the stored (pinhole) crops,
    z-buffered at ``vis_size`` px."""
    from vhakit.data.real import mesh_visibility
    from vhakit.geometry.camera import Camera, crop_resize_matrix

    dev = body.v_template.device
    to = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=dev)  # noqa: E731
    scale = crop_resize_matrix(torch.tensor([0.0, 0.0, size, size]), (vis_size, vis_size))
    cams = Camera(K=to(scale.numpy() @ K_crop), R=to(R), t=to(t), image_size=(vis_size, vis_size))
    return mesh_visibility(to(verts_world_m), body.faces, cams,
                           body.subsample_indices).cpu().numpy()


# ------------------------------------------------------------------------------------ builds
@dataclass
class PartSummary:
    """One written dataset, for the final summary."""

    part: str
    out_dir: Path
    frames: int
    sequences: int
    subjects: int
    cameras: int
    notes: list[str] = field(default_factory=list)


def signature(args: argparse.Namespace, exclude: tuple[str, ...] = (), **extra: Any) -> dict:
    """What a build depends on (options + inputs), JSON-normalised; resumes must match it."""
    skip = {"output_dir", "device", "restart", "batch_size", "workers", *exclude}
    opts = {k: (str(v.resolve()) if isinstance(v, Path) else v) for k, v in vars(args).items()
            if k not in skip}
    return json.loads(json.dumps({"build_version": BUILD_VERSION, "options": opts, **extra},
                                 sort_keys=True, default=str))


def _save_chunk(path: Path, arrays: dict[str, np.ndarray]) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())


# A worker process's chunk builder. Pool workers are forked, so they inherit it without pickling
# (closures cannot be pickled); it is set once per worker by _init_worker and never changes.
_WORKER: dict[str, Any] = {}


def _init_worker(make_chunk, chunks) -> None:
    torch.set_num_threads(1)
    _WORKER.update(make_chunk=make_chunk, chunks=chunks)


def _worker_chunk(k: int) -> int:
    _save_chunk(_WORKER["chunks"][k], _WORKER["make_chunk"](k))
    return k


def build_part(out_dir: Path, sig: dict, num_chunks: int,
               make_chunk: Callable[[int], dict[str, np.ndarray]], meta: dict[str, Any],
               desc: str, restart: bool = False, workers: int = 1) -> dict[str, Any]:
    """Build (or resume, or recognise as complete) one dataset directory; returns its meta.

    ``make_chunk(k)`` returns chunk ``k``'s arrays (first axis = its frames, in order) and may
    write its images under their final frame numbers; ``workers > 1`` runs it in forked
    processes (CPU only).
    """
    out_dir = Path(out_dir)
    partial = out_dir / ".partial"
    if (out_dir / "meta.json").exists():
        try:
            done = read_meta(out_dir)
        except DatasetCorrupt:
            done = None
        if done is not None and done.get("build") == sig:
            print(f"{desc}: {out_dir} is already complete; skipping")
            shutil.rmtree(partial, ignore_errors=True)
            return done
        raise ValueError(f"{out_dir} already holds a dataset made from other inputs or options; "
                         "delete it (or choose another OUTPUT_DIR) to rebuild")
    if num_chunks < 1:
        raise ValueError(f"{desc}: nothing to write (no frames selected)")
    plan = partial / "plan.json"
    if plan.exists() and json.loads(plan.read_text()) != sig:
        if not restart:
            raise ValueError(f"{out_dir} holds an unfinished build made with other inputs or "
                             "options: re-run the same command to resume it, or add --restart "
                             "to discard it")
        shutil.rmtree(partial)
    if not plan.exists():
        atomic_write_bytes(plan, json.dumps(sig, sort_keys=True).encode())
    fail_after = int(os.environ[FAIL_ENV]) if os.environ.get(FAIL_ENV) else None
    chunks = [partial / f"chunk_{k:05d}.npz" for k in range(num_chunks)]
    todo = [k for k in range(num_chunks) if not chunks[k].exists()]
    bar = tqdm(total=num_chunks, initial=num_chunks - len(todo), desc=desc, unit="chunk",
               dynamic_ncols=True)
    pool = None
    if workers > 1 and len(todo) > 1:
        import multiprocessing

        pool = multiprocessing.get_context("fork").Pool(
            min(workers, len(todo)), initializer=_init_worker, initargs=(make_chunk, chunks))
        done_iter = pool.imap_unordered(_worker_chunk, todo)
    else:
        def sequential():
            for k in todo:
                _save_chunk(chunks[k], make_chunk(k))
                yield k

        done_iter = sequential()
    try:
        for new, _k in enumerate(done_iter, start=1):
            bar.update()
            if fail_after is not None and new >= fail_after and new < len(todo):
                raise BuildInterrupted(f"{FAIL_ENV}={fail_after}: stopped after {new} new chunks")
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
    with np.load(chunks[0]) as z:
        names = sorted(z.files)
    shapes = {}
    for name in names:
        parts = []
        for c in chunks:
            with np.load(c) as z:
                parts.append(z[name])
        arr = np.concatenate(parts)
        atomic_save_npy(out_dir / "arrays" / f"{name}.npy", arr)
        shapes[name] = [list(arr.shape), str(arr.dtype)]
    meta = {**meta, "num_frames": shapes[names[0]][0][0], "arrays": shapes, "build": sig}
    write_meta(out_dir, meta)
    shutil.rmtree(partial)
    return read_meta(out_dir)


def print_summary(parts: list[PartSummary], seconds: float) -> None:
    print(f"\n{'part':<8}{'frames':>9}{'sequences':>11}{'subjects':>10}{'cameras':>9}  output")
    for p in parts:
        print(f"{p.part:<8}{p.frames:>9}{p.sequences:>11}{p.subjects:>10}{p.cameras:>9}  "
              f"{p.out_dir}")
        for note in p.notes:
            print(f"         note: {note}")
    total = sum(p.frames for p in parts)
    print(f"total: {total} frames in {len(parts)} parts, {seconds:.1f} s")
