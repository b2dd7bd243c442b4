"""Frames per second and accuracy of SMPL fitting (vhakit.fitting) by optimizer and batch size.

For each optimizer (Levenberg-Marquardt, batched L-BFGS, Adam; their default iteration counts)
and each batch size (1, 16, 64), fit the clean ground-truth 108 vertices of random test poses
(pose sampler, betas ~ N(0, 1) clipped) with the open body model and report frames/s, full-mesh
MPVE (mm) and angular distance (degrees, 24 local joints). Every configuration sees the same
frames; batch size 1 fits fewer frames (one call each), the others fit --frames frames.

CPU timings default to one thread (--threads, passed as FitConfig.cpu_threads) and to process CPU
time (--clock cpu), because a shared, loaded machine makes wall-clock timings erratic; --clock wall
measures wall time (always used on CUDA, after synchronising). With --clock cpu and several
threads, frames/s counts the CPU time of all threads.

  python benchmarks/bench_fitting.py                    # all optimizers, batch 1/16/64
  python benchmarks/bench_fitting.py --quick            # LM only, fewer frames
  python benchmarks/bench_fitting.py --device cuda
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vhakit.body.model import BodyModel  # noqa: E402
from vhakit.data.pose_sampler import sample_poses  # noqa: E402
from vhakit.data.procedural import sample_betas  # noqa: E402
from vhakit.evaluation.metrics import angular_distance, mpve  # noqa: E402
from vhakit.fitting.fit import FitConfig, fit_smpl  # noqa: E402
from vhakit.fitting.pose_prior import default_pose_gmm  # noqa: E402


def _clock(kind: str, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        return time.perf_counter()
    return time.process_time() if kind == "cpu" else time.perf_counter()


def run(optimizer: str, batch: int, frames: int, body: BodyModel, data: dict, clock: str,
        device: torch.device, threads: int) -> dict:
    cfg = FitConfig(optimizer=optimizer, cpu_threads=threads)
    gmm = default_pose_gmm(device)
    v108 = data["vertices108"][:frames]
    fit_smpl(v108[:batch], body, cfg, pose_prior=gmm)  # warm-up
    verts, poses, seconds = [], [], 0.0
    for chunk in v108.split(batch):
        t0 = _clock(clock, device)
        fit = fit_smpl(chunk, body, cfg, pose_prior=gmm)
        seconds += _clock(clock, device) - t0
        verts.append(fit.vertices)
        poses.append(fit.poses)
    err = mpve(torch.cat(verts).cpu(), data["vertices"][:frames], align="none") * 1000
    ang = angular_distance(torch.cat(poses).cpu(), data["poses"][:frames])
    return {"optimizer": optimizer, "batch": batch, "frames": frames, "fps": frames / seconds,
            "mpve_mm": err.mean().item(), "mpve_max_mm": err.max().item(),
            "angle_deg": ang.mean().item(), "angle_max_deg": ang.max().item()}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--optimizers", nargs="+", default=["lm", "lbfgs", "adam"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 16, 64])
    ap.add_argument("--frames", type=int, default=128, help="frames for batch sizes > 1")
    ap.add_argument("--frames-single", type=int, default=8, help="frames for batch size 1")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", choices=["cpu", "wall"], default="cpu")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quick", action="store_true", help="LM only, 64 frames")
    args = ap.parse_args(argv)
    if args.quick:
        args.optimizers, args.frames, args.frames_single = ["lm"], 64, 4
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    body = BodyModel.open().to(device)
    n = max(args.frames, args.frames_single)
    poses = sample_poses(n, args.seed + 1000).float()
    betas = sample_betas(n, torch.Generator().manual_seed(args.seed + 1001)).float()
    transl = torch.randn(n, 3, generator=torch.Generator().manual_seed(args.seed + 1002)) * 0.5
    with torch.no_grad():
        out = BodyModel.open().from_poses(poses, betas, transl)
    data = {"poses": poses, "vertices": out.vertices, "vertices108": out.vertices108.to(device)}
    clock = "wall" if device.type == "cuda" else args.clock
    print(f"device {device}, threads {torch.get_num_threads()}, clock {clock}, "
          f"torch {torch.__version__}")
    print(f"{'optimizer':>9} {'batch':>5} {'frames':>6} {'frames/s':>9} {'MPVE mm':>8} "
          f"{'(max)':>7} {'angle deg':>9} {'(max)':>7}")
    for opt in args.optimizers:
        for batch in args.batches:
            frames = args.frames_single if batch == 1 else args.frames
            r = run(opt, batch, frames, body, data, clock, device, args.threads)
            print(f"{r['optimizer']:>9} {r['batch']:>5} {r['frames']:>6} {r['fps']:>9.1f} "
                  f"{r['mpve_mm']:>8.2f} {r['mpve_max_mm']:>7.1f} {r['angle_deg']:>9.2f} "
                  f"{r['angle_max_deg']:>7.1f}", flush=True)


if __name__ == "__main__":
    main()
