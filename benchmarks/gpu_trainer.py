"""The real trainer at the paper preset on one CUDA GPU: ``train_vha`` / ``train_bcp`` /
``train_baseline`` end to end.

``gpu_paper_scale.py`` times the bare step on a synthetic batch already on the GPU. This script
runs what a user runs, ``vhakit.training.trainer.fit`` through :func:`vhakit.training.vha.train_vha`,
:func:`vhakit.training.bcp.train_bcp` or :func:`vhakit.training.bcp.train_baseline`: the dataset read
from its folder (BCP, baseline: 4 PNG views per sample), the DataLoader, the host-to-device copies, the loss under bf16 autocast, Adam, logging
and checkpoints, for each case ``COMPILE:WORKERS`` (``TrainConfig.compile`` and
``num_workers``; default VHA ``off:0 auto:0``, BCP and baseline ``off:0 off:4 auto:4``). Side by side in one
process:

  samples/s   the median of the trainer's own log rows (``samples_per_s``, every ``--log-every``
              steps) after the first row (which holds the compile), and the whole call's wall time
  projected   55 VHA epochs of 1.66 M samples (20 BCP / baseline epochs of 159 k) at that rate,
              against the paper's 16 days (BCP: 4.5 days; the paper gives no baseline time)

BCP trains on an untrained paper VHA (the speed does not depend on its weights); a small
dataset folder is repeated to ``--samples`` samples per epoch.

  python benchmarks/gpu_trainer.py --data data/teaching/prior_pool-train-s0     # CUDA, ~3 min
  python benchmarks/gpu_trainer.py --model bcp --data DIR    # a paper-preset (384 px) folder
  python benchmarks/gpu_trainer.py --smoke [--model bcp] --data DIR    # CPU, tiny preset
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

from vhakit.training.vha import train_vha  # noqa: E402


def run(model: str, preset: str, data, mode: str, workers: int, steps: int, log_every: int,
        device: str) -> dict:
    """One training call in a fresh folder; the trainer's log rows summarised."""
    torch._dynamo.reset()
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    kw = dict(data=data, progress=False, max_steps=steps, compile=mode, log_every=log_every,
              device=device, num_workers=workers)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if model == "vha":
            res = train_vha(preset, out_dir=tmp, **kw)
        elif model == "baseline":
            from vhakit.training.bcp import train_baseline

            res = train_baseline(preset, out_dir=tmp, **kw)
        else:
            from vhakit.config import vha_configs
            from vhakit.models.vha import VHA
            from vhakit.training.bcp import train_bcp

            torch.manual_seed(0)
            res = train_bcp(preset, vha=VHA(vha_configs(preset).model), out_dir=tmp, **kw)
        wall = time.perf_counter() - t0
    rows = [r for r in res.history if r["split"] == "train"]
    rates = [r["samples_per_s"] for r in rows]
    out = {"model": model, "compile": mode, "num_workers": workers, "steps": steps,
           "wall_s": wall, "first_window_samples_per_s": rates[0],
           "samples_per_s": statistics.median(rates[1:] or rates), "windows": rates,
           "final_loss": rows[-1]["loss"], "final_mpve_mm": rows[-1].get("mpve_mm")}
    if device == "cuda":
        out["peak_gb"] = torch.cuda.max_memory_allocated() / 2 ** 30
    return out


def _dataset(model: str, folder: str, samples: int):
    """The folder's dataset, its indices repeated up to ``samples`` (at least one pass)."""
    from torch.utils.data import Subset

    from vhakit.data.datasets import MeshDataset, MultiViewDataset

    ds = MeshDataset.from_dir(folder) if model == "vha" else MultiViewDataset(folder)
    n = max(samples, len(ds))
    return Subset(ds, [i % len(ds) for i in range(n)])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", choices=["vha", "bcp", "baseline"], default="vha")
    p.add_argument("--data", default=str(ROOT / "data/teaching/prior_pool-train-s0"),
                   help="a dataset folder (VHA: meshes, e.g. vhakit make-data --split prior_pool; "
                        "BCP, baseline: multi-view, of the preset's image size)")
    p.add_argument("--samples", type=int, default=20_000, help="samples per epoch (repeats)")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--log-every", type=int, default=50)
    p.add_argument("--cases", nargs="+", default=None, metavar="COMPILE:WORKERS",
                   help="e.g. off:0 auto:4 (default: VHA off:0 auto:0, else off:0 off:4 auto:4)")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny preset, a few steps")
    args = p.parse_args(argv)
    preset, device = ("tiny", "cpu") if args.smoke else ("paper", "cuda")
    steps, log_every = (6, 2) if args.smoke else (args.steps, args.log_every)
    cases = args.cases or (["off:0", "auto:0"] if args.model == "vha" else
                           ["off:0", "off:4", "auto:4"])
    try:
        cases = [(c.split(":")[0], int(c.split(":")[1])) for c in cases]
    except (IndexError, ValueError):
        p.error(f"--cases: COMPILE:WORKERS, e.g. off:0 auto:4; got {cases}")
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: run on a GPU machine, or --smoke on the CPU", file=sys.stderr)
        return 2
    if not Path(args.data).is_dir():
        print(f"no dataset folder {args.data}: build one with `vhakit make-data`, or pass --data",
              file=sys.stderr)
        return 2
    data = _dataset(args.model, args.data, args.samples)
    info = {"torch": torch.__version__, "model": args.model, "preset": preset, "data": args.data,
            "samples_per_epoch": len(data), "steps": steps}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    print(json.dumps(info), flush=True)
    rows = []
    for mode, workers in cases:
        r = run(args.model, preset, data, mode, workers, steps, log_every, device)
        m = "bcp" if args.model == "baseline" else args.model  # the baseline: BCP's epochs
        days = PAPER_EPOCHS[m] * EPOCH_SAMPLES[m] / r["samples_per_s"] / 86400
        paper = PAPER_DAYS[m] if args.model != "baseline" else None
        r.update(projected_days=days, paper_days=paper,
                 speedup_vs_paper=None if paper is None else paper / days)
        rows.append(r)
        vs = "" if paper is None else f" ({r['speedup_vs_paper']:.1f}x the paper)"
        print(f"{args.model} compile={mode:<4} workers={workers} {r['samples_per_s']:7.1f} "
              f"samples/s (first window {r['first_window_samples_per_s']:.1f}), {steps} steps "
              f"in {r['wall_s']:.0f} s, {PAPER_EPOCHS[m]} epochs: {days:.2f} days{vs}, final "
              f"loss {r['final_loss']:.4f}", flush=True)
    if len(rows) > 1:
        print(f"ratio last / first case: {rows[-1]['samples_per_s'] / rows[0]['samples_per_s']:.2f}x")
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "gpu_trainer.json").write_text(
            json.dumps({"info": info, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
