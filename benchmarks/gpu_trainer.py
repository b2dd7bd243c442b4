"""The real trainer at the paper preset on one CUDA GPU: ``train_vha("paper", ...)`` end to end.

``gpu_paper_scale.py`` times the bare step on a synthetic batch already on the GPU. This script
runs what a user runs, ``vhakit.train.fit`` through :func:`vhakit.train.train_vha`: the dataset
read from its folder, the DataLoader, the host-to-device copies, the loss under bf16 autocast,
Adam, logging and the checkpoint, for each ``TrainConfig.compile`` setting asked for (default:
``off`` then ``auto``, the paper preset's). Side by side in one process:

  samples/s   the median of the trainer's own log rows (``samples_per_s``, every ``--log-every``
              steps) after the first row (which holds the compile), and the whole call's wall time
  projected   55 VHA epochs of 1.66 M samples at that rate, against the paper's 16 days

  python benchmarks/gpu_trainer.py --data data/teaching/prior_pool-train-s0     # CUDA, ~3 min
  python benchmarks/gpu_trainer.py --smoke                   # CPU, tiny preset: does it run?
  OUT=/some/dir python benchmarks/gpu_trainer.py ...         # also writes $OUT/gpu_trainer.json
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
from gpu_paper_scale import EPOCH_SAMPLES, PAPER_DAYS, PAPER_EPOCHS  # noqa: E402

from vhakit.train import train_vha  # noqa: E402


def run(preset: str, data, mode: str, steps: int, log_every: int, device: str) -> dict:
    """One ``train_vha`` call in a fresh folder; the trainer's log rows summarised."""
    torch._dynamo.reset()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        res = train_vha(preset, data=data, out_dir=tmp, progress=False, max_steps=steps,
                        compile=mode, log_every=log_every, device=device)
        wall = time.perf_counter() - t0
    rows = [r for r in res.history if r["split"] == "train"]
    rates = [r["samples_per_s"] for r in rows]
    out = {"compile": mode, "steps": steps, "wall_s": wall, "first_window_samples_per_s": rates[0],
           "samples_per_s": statistics.median(rates[1:] or rates), "windows": rates,
           "final_loss": rows[-1]["loss"], "final_mpve_mm": rows[-1].get("mpve_mm")}
    if device == "cuda":
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT / "data/teaching/prior_pool-train-s0"),
                   help="a mesh dataset folder (vhakit make-data --split prior_pool)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--modes", nargs="+", default=["off", "auto"], choices=["off", "on", "auto"])
    p.add_argument("--smoke", action="store_true", help="CPU, tiny preset, a few steps")
    args = p.parse_args(argv)
    preset, device = ("tiny", "cpu") if args.smoke else ("paper", "cuda")
    steps, log_every = (6, 2) if args.smoke else (args.steps, args.log_every)
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or --smoke on the CPU", file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(f"no dataset folder {args.data}: build one with `vhakit make-data --split "
              "prior_pool --part train`, or pass --data", file=sys.stderr)
        return 2
    info = {"torch": torch.__version__, "preset": preset, "data": args.data, "steps": steps}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(info), flush=True)
    rows = []
    for mode in args.modes:
        r = run(preset, args.data, mode, steps, log_every, device)
        days = PAPER_EPOCHS["vha"] * EPOCH_SAMPLES["vha"] / r["samples_per_s"] / 86400
        r.update(projected_days_55_epochs=days, speedup_vs_paper=PAPER_DAYS["vha"] / days)
        rows.append(r)
        print(f"compile={mode:<5} {r['samples_per_s']:8.1f} samples/s (first window "
              f"{r['first_window_samples_per_s']:.1f}), {steps} steps in {r['wall_s']:.0f} s, "
              f"55 epochs: {days:.1f} days ({r['speedup_vs_paper']:.1f}x the paper), final "
              f"loss {r['final_loss']:.4f}", flush=True)
    if len(rows) > 1:
        print(f"ratio {rows[-1]['compile']} / {rows[0]['compile']}: "
              f"{rows[-1]['samples_per_s'] / rows[0]['samples_per_s']:.2f}x")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_trainer.json").write_text(
            json.dumps({"info": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
