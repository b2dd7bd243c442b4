"""Write the test-set learning curves of finished training runs to ``docs/learning_curves/``.

Each run must have been trained with an evaluation set (``vhakit pretrain-classroom
--curve-frames N``, or ``eval_data=`` of the ``train_*`` functions): its ``split == "eval"`` rows
(:func:`vhakit.viz.figures.eval_curve`) become one CSV (``label,step,epoch,mpve_mm``) and one
figure (:func:`vhakit.viz.figures.plot_learning_curves`). Usage::

    python data_scripts/learning_curves.py --out docs/learning_curves/tiny \\
        --title "tiny preset, 84 h36m_like test frames" \\
        VHA=runs/curves/vha-... VHA+BCP=runs/curves/.../vha_bcp-... baseline=runs/curves/.../baseline-...
"""
from __future__ import annotations

import argparse
import csv
from pathlib import Path

from vhakit.viz.figures import eval_curve, plot_learning_curves


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", metavar="LABEL=RUN_DIR")
    ap.add_argument("--out", required=True, help="output prefix: writes <out>.csv and <out>.png")
    ap.add_argument("--title", default="")
    args = ap.parse_args(argv)
    runs = {}
    for item in args.runs:
        label, sep, folder = item.partition("=")
        if not sep or not label:
            ap.error(f"expected LABEL=RUN_DIR, got {item!r}")
        runs[label] = Path(folder)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["label", "step", "epoch", "mpve_mm"])
        for label, run in runs.items():
            for r in eval_curve(run):
                w.writerow([label, r["step"], r["epoch"], f"{r['mpve_mm']:.2f}"])
    plot_learning_curves(runs, out.with_suffix(".png"), title=args.title)
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
