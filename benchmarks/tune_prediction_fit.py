"""Tune the evaluation's fitting setting on validation frames, and compare the fitter's priors.

The evaluation fits SMPL to predicted vertices with ``noise_matched_config(s)``
(:func:`vhakit.experiments.pipeline.prediction_fit_config`); ``s`` is tuned here, never on test frames:

1. the train part of ``--split`` is divided into the validation subjects
   (:data:`vhakit.experiments.pipeline.VALIDATION_SUBJECTS`, e.g. h36m_like's S8) and the rest;
2. a VHA (``prior_pool`` + the rest's meshes) and a BCP (the rest's images) are trained with the
   preset's settings, so the predictor never sees a validation frame;
3. its predictions on the validation frames are fitted with every candidate ``s``
   (:func:`vhakit.experiments.pipeline.tune_prediction_noise`); the lowest MPJPE (17 joints) wins.

``--compare-prior OLD.npz`` also fits the same predictions (validation frames, and the test
part for reference) with the old prior: that GMM and the data generator's joint-limit box
(:data:`vhakit.data.joint_limits.JOINT_LIMITS_DEG`), against the shipped prior (real-mocap GMM,
anatomical limits). Everything is written to ``--out`` (JSON). About 10 min on 2 CPU cores with
the tiny preset::

    python benchmarks/tune_prediction_fit.py --preset tiny --out runs/tune_fit.json
    python benchmarks/tune_prediction_fit.py --compare-prior /tmp/old_pose_gmm.npz
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from vhakit.body.model import BodyModel  # noqa: E402
from vhakit.data.build import ensure_dataset  # noqa: E402
from vhakit.data.datasets import MeshDataset, MultiViewDataset  # noqa: E402
from vhakit.data.joint_limits import JOINT_LIMITS_DEG  # noqa: E402
from vhakit.evaluation.metrics import angular_distance, mpjpe, regress_joints  # noqa: E402
from vhakit.experiments.pipeline import (  # noqa: E402
    prediction_fit_config,
    tune_prediction_noise,
    validation_indices,
)
from vhakit.fitting.fit import fit_smpl  # noqa: E402
from vhakit.fitting.pose_prior import PoseGMM  # noqa: E402

TINY_VHA_RECIPE = {"input_encoding": "gaussian", "beta": 20.0, "lr": 4e-3,
                   "lr_schedule": "cosine", "warmup_steps": 30}  # the tiny budget's VHA recipe


def train_without_validation(preset: str, split: str, root: Path, out: Path, vha_steps: int,
                             bcp_steps: int, seed: int):
    """A BCP (and its VHA) trained on ``split``'s train part minus the validation subjects;
    returns ``(bcp, validation MultiViewDataset)``."""
    from torch.utils.data import ConcatDataset

    from vhakit.training.bcp import train_bcp
    from vhakit.training.vha import train_vha

    train = MultiViewDataset(ensure_dataset(preset, split, "train", root=root))
    val_idx, rest_idx = validation_indices(train.names, split)
    pool = MeshDataset.from_dir(ensure_dataset(preset, "prior_pool", "train", root=root))
    meshes = ConcatDataset([pool, MeshDataset.from_dir(train.root).subset(rest_idx)])
    recipe = TINY_VHA_RECIPE if preset == "tiny" else {}
    steps = (lambda n: {"max_steps": n, "epochs": 10_000} if n else {})  # noqa: E731
    vha = train_vha(preset, meshes, out / "vha", resume=True, seed=seed, progress=False,
                    **steps(vha_steps), **recipe).model.cpu().eval()
    bcp = train_bcp(preset, train.subset(rest_idx), vha, out / "bcp", resume=True, seed=seed,
                    progress=False, **steps(bcp_steps)).model.cpu().eval()
    return bcp, train.subset(val_idx)


def prior_comparison(pred108: torch.Tensor, ds, body, old_gmm: Path) -> dict:
    """MPJPE (24 / 17 joints, mm) and angle error (deg) of the same predictions fitted with the
    shipped prior and with the old one (GMM file + the generator's joint-limit box)."""
    from vhakit.body.model import h36m_regressor

    reg17, _ = h36m_regressor(body)
    gt = ds.arrays
    with torch.no_grad():
        true = body.from_poses(gt["poses"], gt["betas"], gt["transl"])
    cfg = prediction_fit_config()
    out = {}
    for name, kwargs in (("new", {}), ("old", {"pose_prior": PoseGMM.load(old_gmm),
                                               "joint_limits_deg": JOINT_LIMITS_DEG})):
        res = fit_smpl(pred108, body, cfg, **kwargs)
        out[name] = {
            "mpjpe_mm": float(mpjpe(res.joints, true.joints).mean() * 1000),
            "mpjpe17_mm": float(mpjpe(regress_joints(res.vertices, reg17),
                                      regress_joints(true.vertices, reg17)).mean() * 1000),
            "angle_deg": float(angular_distance(res.poses, gt["poses"]).mean()),
        }
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--split", default="h36m_like")
    ap.add_argument("--data", type=Path, default=Path("data"), help="dataset cache root")
    ap.add_argument("--work", type=Path, default=Path("runs/tune_fit"), help="checkpoints")
    ap.add_argument("--vha-steps", type=int, default=600)
    ap.add_argument("--bcp-steps", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--compare-prior", type=Path, default=None, metavar="OLD_GMM.npz")
    ap.add_argument("--out", type=Path, default=Path("runs/tune_fit.json"))
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    from vhakit.training.bcp import predict_vertices

    bcp, val = train_without_validation(args.preset, args.split, args.data, args.work,
                                        args.vha_steps, args.bcp_steps, args.seed)
    body = BodyModel.open()
    pred = predict_vertices(bcp, val)
    tuned = tune_prediction_noise(pred, val, body)
    report = {"preset": args.preset, "split": args.split, "validation_frames": len(val),
              "tuned": {k: v for k, v in tuned.items() if k != "frames"},
              "fit_config": asdict(prediction_fit_config())}
    for s, row in tuned["table"].items():
        print(f"s = {1000 * s:4.0f} mm: " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))
    print(f"best on {len(val)} validation frames: s = {tuned['noise_std_m']} m")
    if args.compare_prior is not None:
        test = MultiViewDataset(ensure_dataset(args.preset, args.split, "test", root=args.data))
        report["prior_comparison"] = {
            "validation": prior_comparison(pred, val, body, args.compare_prior),
            "test": prior_comparison(predict_vertices(bcp, test), test, body,
                                     args.compare_prior)}
        print(json.dumps(report["prior_comparison"], indent=1))
    report["seconds"] = time.perf_counter() - t0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=str) + "\n")
    print(f"{args.out} ({report['seconds']:.0f} s)")


if __name__ == "__main__":
    main()
