"""Does the pose-pretrained 2D backbone help, and what does freezing it buy? (issue 22)

For BCP and the LMT-style baseline, three starts of the 2D backbone, the same budget, data and
seeds as Table 1 of the preset (``vhakit.experiments.pipeline``'s budget; BCP decodes through the
per-seed VHA prior of the sweep cache, trained if missing):

  random    the kit's default (``backbone_init=""``)
  pose2d    the shipped pose-pretrained backbone, fine-tuned (``backbone_init="pose2d"``)
  frozen    the same, kept fixed (``freeze_backbone=True``)

Reported per condition: the test MPVE of the 108 predicted vertices (mm, before SMPL fitting),
training samples/s, and Welch's t-test (two-sided, p < 0.05) of pose2d and frozen against
random, per method. Runs are cached in ``--cache`` (resumable); the table goes to stdout and,
with ``--out``, to ``OUT.md`` / ``OUT.json``.

  python benchmarks/pose2d_backbone.py --preset tiny --seeds 3 --out results/tiny/backbone_init
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from vhakit._util import write_json_atomic
from vhakit.data.build import ensure_dataset
from vhakit.data.datasets import MultiViewDataset
from vhakit.experiments.claims import fmt_p, welch_contrast
from vhakit.experiments.pipeline import (
    ExperimentSpec,
    data_root,
    get_budget,
    predictor_plan,
    train_or_load_vha,
)
from vhakit.training.bcp import predict_vertices, train_baseline, train_bcp

STARTS = {"random": {}, "pose2d": {"backbone_init": "pose2d"},
          "frozen": {"backbone_init": "pose2d", "freeze_backbone": True}}


def run_one(method, start, seed, preset, cache, train, test, budget):
    out = cache / f"{method}-{start}-s{seed}"
    spec = ExperimentSpec(method="vha_bcp" if method == "bcp" else "baseline", preset=preset,
                          seed=seed)
    plan = predictor_plan(spec, budget, len(train))
    stage = "bcp" if method == "bcp" else "baseline"
    kwargs = {**budget.overrides.get(stage, {}), **STARTS[start], "seed": seed,
              "max_steps": plan["steps"], "epochs": 10_000}
    done = out / "result.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    if method == "bcp":
        vha = train_or_load_vha(spec, cache.parent / "models", budget, progress=False)[0]
        res = train_bcp(preset, train, vha, out, resume=True, progress=False, **kwargs)
    else:
        res = train_baseline(preset, train, out, resume=True, progress=False, **kwargs)
    seconds = time.perf_counter() - t0
    pred = predict_vertices(res.model.cpu(), test)
    truth = torch.stack([test[i]["vertices108"] for i in range(len(test))]).float()
    mpve = float((pred - truth).norm(dim=-1).mean() * 1000)
    rates = [r["samples_per_s"] for r in res.history if r["split"] == "train"]
    row = {"method": method, "start": start, "seed": seed, "mpve108_mm": mpve,
           "samples_per_s": statistics.median(rates) if rates else float("nan"),
           "seconds": seconds, "steps": plan["steps"]}
    write_json_atomic(done, row)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="tiny")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--cache", default="runs/cache/pose2d")
    p.add_argument("--methods", default="bcp,baseline")
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    budget = get_budget(args.preset)
    train, test = (MultiViewDataset(ensure_dataset(budget.data_preset, "h36m_like", part,
                                                   root=data_root(), progress=False))
                   for part in ("train", "test"))
    cache = Path(args.cache)
    rows = []
    for seed in range(args.seeds):
        for method in args.methods.split(","):
            for start in STARTS:
                rows.append(run_one(method, start, seed, args.preset, cache, train, test, budget))
                r = rows[-1]
                print(f"{method:8s} {start:7s} seed {seed}: MPVE108 {r['mpve108_mm']:.1f} mm, "
                      f"{r['samples_per_s']:.1f} samples/s", file=sys.stderr, flush=True)
    lines = [f"# Pose-pretrained 2D backbone: preset `{args.preset}`, {args.seeds} seeds, "
             f"h36m_like ({len(train)} train / {len(test)} test frames)", "",
             "| method | backbone | MPVE108 mm (mean ± std) | n | samples/s (wall, shared) | "
             "vs random: difference, p (Welch) |", "|---|---|---|---|---|---|"]
    summary = {}
    for method in args.methods.split(","):
        for start in STARTS:
            vals = [r["mpve108_mm"] for r in rows if r["method"] == method and r["start"] == start]
            rate = statistics.median(r["samples_per_s"] for r in rows
                                     if r["method"] == method and r["start"] == start)
            sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
            summary[(method, start)] = (statistics.mean(vals), sd, len(vals))
            cmp = ""
            if start != "random":
                a, b = summary[(method, start)], summary[(method, "random")]
                w = welch_contrast((1, -1), (a[0], b[0]), (a[1], b[1]), (a[2], b[2]))
                cmp = f"{w['estimate']:+.1f} mm, p = {fmt_p(w['p'])}"
            lines.append(f"| {method} | {start} | {statistics.mean(vals):.1f} ± {sd:.1f} | "
                         f"{len(vals)} | {rate:.1f} | {cmp} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".md").write_text(text)
        write_json_atomic(args.out + ".json", {"preset": args.preset, "runs": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
