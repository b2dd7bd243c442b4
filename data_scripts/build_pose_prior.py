"""Build the fitter's body-pose prior: a Gaussian mixture fitted by EM to real motion capture.

Poses: the 20 real DeepMimic clips the kit ships (:func:`vhakit.data.motion.load_deepmimic`,
1,810 frames) and their left-right mirror images. Nothing from the kit's synthetic generator
(pose sampler, procedural actions, ``prior_pool``) enters, so the prior knows neither the test
poses' distribution nor their joint-limit box. Only the 69 body-pose values enter (the global
orientation is not a pose).

DeepMimic's skeleton has no wrists, hands, toes or clavicles, hinge knees and elbows, and one
chest and one neck rotation spread evenly over SMPL's spine and neck/head joints. The components
that never move in the clips (standard deviation below ``UNOBSERVED_STD_DEG``) get a broad
variance floor, ``(range / 4)^2`` of the fitter's anatomical box
(:data:`vhakit.fitting.pose_prior.FIT_LIMITS_DEG`), instead of being pinned to zero; the others get
``FLOOR_DEG^2``, so the retargeting's exact couplings (spine1 = spine2 = spine3) stay soft.

Output: ``vhakit/assets/pose_gmm.npz`` (``means (K, 69)``, ``precision_chol (K, 69, 69)``,
``weights (K,)``, ``metadata`` JSON: source, clips, settings; read with
:func:`vhakit.fitting.pose_prior.default_pose_gmm` and :func:`vhakit.fitting.pose_prior.pose_prior_metadata`).
Deterministic from the seed; ~1-2 min on 2 CPU cores. Usage::

    python data_scripts/build_pose_prior.py [--components 8] [--out PATH]
"""
from __future__ import annotations

import argparse
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from vhakit.data.joint_limits import MIRROR_JOINT
from vhakit.data.motion import load_deepmimic
from vhakit.fitting.pose_prior import DEFAULT_GMM_PATH, FIT_LIMITS_DEG, fit_gmm

FLOOR_DEG = 5.0  # variance floor of the observed components: retargeting noise, degrees
UNOBSERVED_STD_DEG = 0.5  # components that move less than this in the clips count as unobserved


def mirror_poses(poses: np.ndarray) -> np.ndarray:
    """Left-right mirror images of SMPL poses ``(N, 72)`` (reflection x -> -x): joint ``j``'s
    ``(x, y, z)`` becomes joint ``MIRROR_JOINT[j]``'s ``(x, -y, -z)``."""
    p = np.asarray(poses).reshape(len(poses), 24, 3)[:, list(MIRROR_JOINT)].copy()
    p[..., 1:] *= -1.0
    return p.reshape(len(poses), 72)


def real_body_poses() -> tuple[torch.Tensor, list[str]]:
    """``(N, 69)`` float64 body poses of the DeepMimic clips and their mirror images, and the
    clip names."""
    clips = load_deepmimic()
    poses = np.concatenate([c.poses for c in clips]).astype(np.float64)
    poses = np.concatenate([poses, mirror_poses(poses)])
    return torch.from_numpy(poses[:, 3:].copy()), [c.name for c in clips]


def variance_floor(body_poses: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    """Per-component variance floor ``(69,)`` radians^2 (module docstring) and the indices of
    the unobserved components."""
    lo, hi = np.deg2rad(FIT_LIMITS_DEG[1:, :, 0].reshape(-1)), np.deg2rad(
        FIT_LIMITS_DEG[1:, :, 1].reshape(-1))
    still = body_poses.std(0) < np.deg2rad(UNOBSERVED_STD_DEG)
    floor = torch.full((body_poses.shape[1],), np.deg2rad(FLOOR_DEG) ** 2, dtype=torch.float64)
    broad = torch.from_numpy(((hi - lo) / 4.0) ** 2)
    floor[still] = broad[still]
    return floor, still.nonzero().flatten().tolist()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--components", type=int, default=8, help="mixture components K")
    ap.add_argument("--covariance", choices=["full", "diag"], default="full")
    ap.add_argument("--seed", type=int, default=0, help="EM initialisation seed")
    ap.add_argument("--out", type=Path, default=DEFAULT_GMM_PATH)
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    x, clips = real_body_poses()
    floor, still = variance_floor(x)
    gmm = fit_gmm(x, args.components, args.covariance, iters=200, reg=floor, tol=1e-5,
                  generator=torch.Generator().manual_seed(args.seed))
    nll = gmm.nll(x, mode="logsumexp").mean().item()
    metadata = {
        "source": "deepmimic",
        "description": "real motion capture: the DeepMimic clips shipped in "
                       "vhakit/assets/deepmimic_smpl.npz, plus their left-right mirror images; "
                       "no synthetic (generator) poses",
        "clips": clips, "num_poses": int(x.shape[0]), "mirrored": True,
        "components": args.components, "covariance": args.covariance, "seed": args.seed,
        "floor_deg": FLOOR_DEG, "unobserved_std_deg": UNOBSERVED_STD_DEG,
        "unobserved_components": still, "mean_nll_nats": round(nll, 3),
        "command": "python data_scripts/build_pose_prior.py"
                   + (f" --components {args.components}" if args.components != 8 else ""),
        "built_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.stem + ".tmp.npz")
    gmm.save(tmp, metadata)
    tmp.replace(args.out)  # never leave a half-written asset
    print(f"{args.out}: K={gmm.num_components}, {x.shape[0]} poses from {len(clips)} clips "
          f"(mirrored), {len(still)} unobserved components, mean NLL {nll:.2f} nats, weights "
          f"{[round(w, 3) for w in gmm.weights.tolist()]}, "
          f"{args.out.stat().st_size / 1024:.0f} KB, {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
