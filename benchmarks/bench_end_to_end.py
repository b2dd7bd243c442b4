"""End-to-end inference: 4 calibrated views -> BCP -> VHA decoder + soft-argmax -> fitted SMPL.

Times the two stages per frame on the committed classroom checkpoints (their card's preset and
test frames: the teaching preset, 4 views of 128 px) at batch 1 (a live frame) and batched, with
the SMPL fit the evaluation uses (`vhakit.experiments.pipeline.prediction_fit_config`: data scale matched
to a prediction's error) and, for comparison, `FitConfig()`'s defaults for clean vertices.
Prints seconds per frame and the MPVE after fitting. Not a timed test: run it on a quiet machine.

    python benchmarks/bench_end_to_end.py [--frames 24] [--threads 2]
"""
from __future__ import annotations

import argparse
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from vhakit.body.model import BodyModel
    from vhakit.evaluation.metrics import mpve
    from vhakit.experiments.pipeline import prediction_fit_config
    from vhakit.fitting.fit import FitConfig, fit_smpl
    from vhakit.teaching.classroom_models import card_frames, load_pretrained, read_card
    from vhakit.training.bcp import predict_vertices

    body = BodyModel.open()
    card = read_card()
    data = card_frames(card, n_frames=args.frames)
    n = len(data)
    gt = data.arrays
    true = body.from_poses(gt["poses"], gt["betas"], gt["transl"])
    print(f"torch {torch.__version__}, {args.threads} thread(s); classroom checkpoints "
          f"({card['preset']} preset); {n} {card['data']['test_split']} test frames x "
          f"{data.num_views} views of {tuple(data[0]['images'].shape[-2:])} px")
    print(f"{'model':10s} {'batch':>5s} {'fit settings':>14s} {'network s/frame':>16s} "
          f"{'fit s/frame':>12s} {'total s/frame':>14s} {'MPVE mm':>8s}")
    fits = {"evaluation": prediction_fit_config(), "clean-vertex": FitConfig()}
    for name in ("bcp", "baseline"):
        model = load_pretrained(name)
        for batch in (1, 8):
            for label, cfg in fits.items():
                if batch == 1 and label != "evaluation":
                    continue
                t0 = time.perf_counter()
                pred = predict_vertices(model, data, batch_size=batch)
                t1 = time.perf_counter()
                fit = fit_smpl(pred, body, cfg)
                t_net, t_fit = t1 - t0, time.perf_counter() - t1
                err = mpve(fit.vertices, true.vertices, pred_root=fit.joints[:, 0],
                           target_root=true.joints[:, 0]).mean() * 1000
                print(f"{name:10s} {batch:5d} {label:>14s} {t_net / n:16.3f} {t_fit / n:12.3f} "
                      f"{(t_net + t_fit) / n:14.3f} {err:8.1f}")


if __name__ == "__main__":
    main()
