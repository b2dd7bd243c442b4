"""Pretrain and ship the kit's pose-pretrained 2D backbones (``backbone_init="pose2d"``).

For each preset: pretrain its BCP / baseline backbone on 2D vertex positions
(:func:`vhakit.training.backbone2d.pretrain_backbone`) on the leak-free pretraining set
(:func:`~vhakit.training.backbone2d.pretraining_data`: held-out ``prior_pool`` poses rendered
with the preset's cameras), then export it with a card to
``vhakit/assets/pretrained/backbone2d-<preset>.pt``. The card records the data, the budget, the
time and machine, the 2D accuracy on the first ``--eval-frames`` ``h36m_like`` test frames, and
a ``check`` (the accuracy on the first 8 of them) that ``tests/test_backbone2d.py`` reproduces.
Resumable: a killed run continues from its last checkpoint. Usage::

    python data_scripts/pretrain_backbones.py --preset tiny --steps 3000
    python data_scripts/pretrain_backbones.py --preset teaching --steps 3000
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

import torch

from vhakit.data.build import build_dataset
from vhakit.training.backbone2d import (
    POSE2D_DIR,
    evaluate_backbone,
    export_backbone,
    pretrain_backbone,
    pretraining_data,
)
from vhakit.training.trainer import read_run

CHECK_FRAMES = 8


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="teaching", choices=["tiny", "teaching", "paper"])
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=4, help="frames per step (x views images)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--eval-frames", type=int, default=96)
    p.add_argument("--runs", default="runs/backbone2d", help="run folders (resumable)")
    p.add_argument("--data-root", default="data")
    p.add_argument("--out", default=None, help="default: the shipped asset path")
    args = p.parse_args(argv)

    train = pretraining_data(args.preset, args.data_root)
    test = build_dataset(args.preset, "h36m_like", "test",
                         Path(args.data_root) / args.preset / f"h36m_like-test-s0-first{args.eval_frames}",
                         max_frames=args.eval_frames)
    check = build_dataset(args.preset, "h36m_like", "test",
                          Path(args.data_root) / args.preset / f"h36m_like-test-s0-first{CHECK_FRAMES}",
                          max_frames=CHECK_FRAMES)
    run = Path(args.runs) / args.preset
    t0 = time.perf_counter()
    result = pretrain_backbone(args.preset, train, run, resume=True, eval_data=test,
                               max_steps=args.steps, epochs=10_000, batch_size=args.batch_size,
                               lr=args.lr, lr_schedule="cosine", warmup_steps=100,
                               eval_every=max(args.steps // 10, 1), save_every=100,
                               log_every=50)
    seconds = time.perf_counter() - t0
    ckpt = read_run(run, "pose2d")[1]
    curve = [{"step": r["step"], "err2d_px": round(r["err2d_px"], 3), "pck": round(r["pck"], 4)}
             for r in result.history if r["split"] == "eval"]
    out = Path(args.out) if args.out else POSE2D_DIR / f"backbone2d-{args.preset}.pt"
    card = {
        "preset": args.preset,
        "data": "prior_pool test part at the teaching size (2,000 frames: 1,000 sampled poses, "
                "1,000 frames of procedural clips of every action; random bodies), rendered "
                f"with the {args.preset} preset's cameras (4 views per frame)",
        "task": "2D soft-argmax positions of the 108 subsampled vertices, L1 in pixels",
        "steps": int(ckpt["position"]["step"]), "batch_frames": args.batch_size,
        "lr": args.lr, "lr_schedule": "cosine, 100 warm-up steps",
        "seconds_this_invocation": round(seconds, 1),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, torch "
                   f"{torch.__version__}, {torch.get_num_threads()} threads",
        "eval": {"data": f"h36m_like test, first {args.eval_frames} frames, seed 0",
                 **evaluate_backbone(run, test)},
        "curve": curve,
    }
    export_backbone(run, out, card)
    check_metrics = evaluate_backbone(out, check)
    card["check"] = {"data_preset": args.preset, "split": "h36m_like", "part": "test", "seed": 0,
                     "frames": CHECK_FRAMES, **check_metrics}
    export_backbone(run, out, card)
    print(f"wrote {out}: {card['eval']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
