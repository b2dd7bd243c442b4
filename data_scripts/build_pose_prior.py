"""Build the kit's default body-pose prior: a Gaussian mixture fitted by EM to the kit's poses.

Training poses: the ``prior_pool`` training split (:func:`vhakit.data.splits.split_frames`; the
kit's stand-in for AMASS: pose sampler + procedural actions). The ``real_mocap`` clips stay out:
they are kept for cross-dataset evaluation. Only the 69 body-pose values enter (the global
orientation is not a pose).

Output: ``vhakit/assets/pose_gmm.npz`` (``means (K, 69)``, ``precision_chol (K, 69, 69)``,
``weights (K,)``; read with :func:`vhakit.pose_prior.default_pose_gmm`). Deterministic from the
seeds. Takes ~2 min on 2 CPU cores. Usage::

    python data_scripts/build_pose_prior.py [--size teaching] [--components 8] [--out PATH]
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from vhakit.data.splits import split_frames
from vhakit.pose_prior import DEFAULT_GMM_PATH, fit_gmm


def training_body_poses(size: str = "teaching", seed: int = 0) -> torch.Tensor:
    """``(N, 69)`` float64 body poses of the ``prior_pool`` training split."""
    poses = np.asarray(split_frames("prior_pool", "train", size, seed)["poses"], np.float64)
    return torch.from_numpy(poses[:, 3:].copy())


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", default="teaching", help="prior_pool size (tiny/teaching/full)")
    ap.add_argument("--components", type=int, default=8, help="mixture components K")
    ap.add_argument("--covariance", choices=["full", "diag"], default="full")
    ap.add_argument("--seed", type=int, default=0, help="split seed and EM initialisation seed")
    ap.add_argument("--out", type=Path, default=DEFAULT_GMM_PATH)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    x = training_body_poses(args.size, args.seed)
    gmm = fit_gmm(x, args.components, args.covariance, iters=100, tol=1e-4,
                  generator=torch.Generator().manual_seed(args.seed))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.npz")
    gmm.save(tmp)
    tmp.replace(args.out)  # never leave a half-written asset
    nll = gmm.nll(x, mode="logsumexp").mean().item()
    print(f"{args.out}: K={gmm.num_components}, {x.shape[0]} poses, mean NLL {nll:.2f} nats, "
          f"weights {[round(w, 3) for w in gmm.weights.tolist()]}, "
          f"{args.out.stat().st_size / 1024:.0f} KB, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
