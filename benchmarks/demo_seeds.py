"""Is the demo's result beyond the seed noise? ``vhakit demo`` with several seeds, side by side.

Each seed runs the whole demo (:func:`vhakit.experiments.demo.run_demo`: its own VHA, BCP and
baseline under :func:`~vhakit.experiments.demo.demo_budget`, all 84 ``h36m_like`` test frames of
the tiny data, SMPL fitted) in ``--runs/s<seed>`` (resumable: a finished seed is reused). Per
metric, mean ± std over seeds per method and Welch's t-test (two-sided, p < 0.05) of VHA+BCP
minus the baseline. The table goes to stdout and, with ``--out``, to ``OUT.md`` / ``OUT.json``.

  python benchmarks/demo_seeds.py --seeds 0 1 2 3 4 --out results/tiny/demo_seeds
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import statistics
import time
from pathlib import Path

import torch

from vhakit._util import markdown_table, write_json_atomic
from vhakit.experiments.claims import fmt_p, welch_contrast

METRICS = (("mpve_mm", "MPVE after fitting (mm)"), ("pa_mpjpe_mm", "PA-MPJPE (mm)"),
           ("mpjpe_mm", "MPJPE (mm)"), ("mpve108_mm", "108-vertex error (mm)"),
           ("bent_tilt_err_deg", "trunk tilt error, bent frames (deg)"))
METHODS = ("VHA+BCP", "baseline (LMT-style)")


def run_seed(seed: int, runs: Path) -> dict:
    """One seed's demo metrics ``{method: {metric: value}}`` and its wall time, cached."""
    from vhakit.experiments.demo import run_demo

    done = runs / f"s{seed}" / "seed_result.json"
    if done.exists():
        return json.loads(done.read_text())
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        rows = run_demo(out_dir=runs / f"s{seed}", seed=seed, progress=False)
    result = {"seed": seed, "seconds": time.perf_counter() - t0, "rows": rows}
    write_json_atomic(done, result)
    return result


def summarize(results: list[dict]) -> dict:
    out = {}
    for key, _ in METRICS:
        per = {m: [r["rows"][m][key] for r in results] for m in METHODS}
        stats = {m: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else float("nan"),
                     len(v)) for m, v in per.items()}
        test = welch_contrast((1, -1), *zip(*(stats[m] for m in METHODS), strict=True))
        out[key] = {"per_seed": per, "stats": stats, "difference": test["estimate"],
                    "p": test["p"]}
    return out


def markdown(summary: dict, results: list[dict]) -> str:
    rows = []
    for key, label in METRICS:
        s = summary[key]
        cells = [f"{s['stats'][m][0]:.1f} ± {s['stats'][m][1]:.1f}" for m in METHODS]
        verdict = ("not shown" if not s["p"] < 0.05
                   else "VHA+BCP better" if s["difference"] < 0 else "baseline better")
        rows.append([label, *cells, f"{s['difference']:+.1f}", fmt_p(s["p"]), verdict])
    seconds = [r["seconds"] for r in results]
    head = (f"`vhakit demo`, {len(results)} seeds ({', '.join(str(r['seed']) for r in results)}), "
            f"{statistics.fmean(seconds):.0f} s per seed on average (min {min(seconds):.0f}, max "
            f"{max(seconds):.0f}; torch threads {torch.get_num_threads()}). Welch's t-test, "
            "two-sided, n = seeds per method.\n\n")
    return head + markdown_table(["metric", *METHODS, "VHA+BCP − baseline", "p", "verdict (p < 0.05)"],
                                 rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/demo-seeds", help="one demo folder per seed")
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    args = ap.parse_args(argv)
    results = []
    for seed in args.seeds:
        results.append(run_seed(seed, Path(args.runs)))
        print(f"seed {seed}: {results[-1]['seconds']:.0f} s, MPVE after fitting " + ", ".join(
            f"{m} {results[-1]['rows'][m]['mpve_mm']:.1f}" for m in METHODS), flush=True)
    summary = summarize(results)
    text = markdown(summary, results)
    print(text)
    if args.out:
        out = Path(args.out)
        out.with_suffix(".md").write_text(text)
        write_json_atomic(out.with_suffix(".json"), {"seeds": results, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
