"""End-to-end inference: 4 calibrated views -> BCP -> VHA decoder + soft-argmax -> fitted SMPL.

Times the two stages per frame on the committed classroom checkpoints (tiny preset) and the
teaching-preset BCP architecture (random weights: the cost does not depend on the values), at
batch 1 (a live frame) and batched, on the tiny test set. Prints seconds per frame and the
share of each stage. Not a timed test: run it by hand on a quiet machine.

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

    from vhakit.body import BodyModel
    from vhakit.classroom_models import load_pretrained
    from vhakit.config import bcp_configs, vha_configs
    from vhakit.data.build import ensure_dataset
    from vhakit.data.datasets import MultiViewDataset
    from vhakit.fitting import fit_smpl
    from vhakit.models.bcp import BodyCodePredictor
    from vhakit.pipeline import prediction_fit_config
    from vhakit.train_bcp import predict_vertices

    body = BodyModel.open()
    data = MultiViewDataset(ensure_dataset("tiny", "h36m_like", "test", progress=False))
    data = data.subset(list(range(min(args.frames, len(data)))))
    n = len(data)
    teaching = bcp_configs("teaching")
    models = {"classroom BCP (tiny)": load_pretrained("bcp"),
              "teaching BCP (random weights)": BodyCodePredictor(teaching.model,
                                                                      vha_configs("teaching").model).eval()}
    print(f"torch {torch.__version__}, {args.threads} thread(s), {n} frames x {data.num_views} "
          f"views of {tuple(data[0]['images'].shape[-2:])} px")
    print(f"{'model':32s} {'batch':>5s} {'network s/frame':>16s} {'fit s/frame':>12s} "
          f"{'total s/frame':>14s}")
    for name, model in models.items():
        for batch in (1, 8):
            t0 = time.perf_counter()
            pred = predict_vertices(model, data, batch_size=batch)
            t1 = time.perf_counter()
            fit_smpl(pred, body, prediction_fit_config())  # as the evaluation fits
            t_net, t_fit = t1 - t0, time.perf_counter() - t1
            print(f"{name:32s} {batch:5d} {t_net / n:16.3f} {t_fit / n:12.3f} "
                  f"{(t_net + t_fit) / n:14.3f}")


if __name__ == "__main__":
    main()
