"""Compare trained BCP / baseline runs over seeds on the same test frames, with Welch's t-test.

Each ``LABEL=RUN[,RUN...]`` names one method and its runs (one per seed; BCP or baseline run
folders, e.g. the classroom runs under ``runs/classroom``). Every run predicts the same
``--frames`` frames evenly spread over the ``h36m_like`` test set of ``--preset`` (the classroom
card's frame choice), SMPL is fitted
(:func:`vhakit.experiments.pipeline.evaluate_vertices`), and per metric the table gives mean ±
std over runs and Welch's t-test (two-sided, p < 0.05) of the first label minus the second.

  python benchmarks/compare_runs.py --preset teaching --frames 96 --out results/classroom_seeds \\
      VHA+BCP=runs/.../vha_bcp-A,runs/.../vha_bcp-B baseline=runs/.../baseline-A,runs/.../baseline-B
"""
from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from vhakit._util import markdown_table, write_json_atomic
from vhakit.experiments.claims import fmt_p, welch_contrast

METRICS = (("mpve_mm", "MPVE after fitting (mm)"), ("pa_mpjpe_mm", "PA-MPJPE (mm)"),
           ("mpjpe_mm", "MPJPE (mm)"), ("pa_mpjpe17_mm", "PA-MPJPE, 17 joints (mm)"),
           ("mpve108_mm", "108-vertex error (mm)"))


def evaluate_run(run: Path, ds, body) -> dict[str, float]:
    from vhakit.experiments.pipeline import evaluate_vertices
    from vhakit.training.bcp import load_baseline, load_bcp, predict_vertices

    loader = load_bcp if run.name.startswith("vha_bcp") else load_baseline
    model = loader(run, device="cpu")
    return evaluate_vertices(predict_vertices(model, ds), ds, body)[0]


def main(argv: list[str] | None = None) -> int:
    from vhakit.body.model import BodyModel
    from vhakit.teaching.classroom_models import EVAL_SPLIT, card_frames

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("methods", nargs=2, metavar="LABEL=RUN[,RUN...]")
    ap.add_argument("--preset", default="teaching")
    ap.add_argument("--frames", type=int, default=96)
    ap.add_argument("--out", default=None, help="write OUT.md and OUT.json")
    args = ap.parse_args(argv)
    methods = {}
    for item in args.methods:
        label, _, runs = item.partition("=")
        methods[label] = [Path(r) for r in runs.split(",") if r]
    ds = card_frames({"data": {"test_split": EVAL_SPLIT, "data_preset": args.preset,
                               "eval_frames": args.frames}}, progress=False)
    body = BodyModel.open()
    per_run = {label: [evaluate_run(r, ds, body) for r in runs] for label, runs in methods.items()}
    labels = list(methods)
    rows, summary = [], {}
    for key, name in METRICS:
        vals = {m: [r[key] for r in per_run[m]] for m in labels}
        stats = {m: (statistics.fmean(v), statistics.stdev(v) if len(v) > 1 else float("nan"),
                     len(v)) for m, v in vals.items()}
        test = welch_contrast((1, -1), *zip(*(stats[m] for m in labels), strict=True))
        summary[key] = {"values": vals, "difference": test["estimate"], "p": test["p"]}
        verdict = ("not shown" if not test["p"] < 0.05
                   else f"{labels[0]} better" if test["estimate"] < 0 else f"{labels[1]} better")
        rows.append([name, *(f"{stats[m][0]:.1f} ± {stats[m][1]:.1f}" for m in labels),
                     f"{test['estimate']:+.1f}", fmt_p(test["p"]), verdict])
    text = (f"{len(ds)} `h36m_like` test frames (preset `{args.preset}`), SMPL fitted; runs per "
            "method: " + ", ".join(f"{m} {len(r)}" for m, r in methods.items()) + ". Welch's "
            "t-test, two-sided.\n\n" + markdown_table(
                ["metric", *labels, f"{labels[0]} − {labels[1]}", "p", "verdict (p < 0.05)"],
                rows) + "\n")
    print(text)
    if args.out:
        out = Path(args.out)
        out.with_suffix(".md").write_text(text)
        write_json_atomic(out.with_suffix(".json"), {
            "runs": {m: [str(r) for r in rs] for m, rs in methods.items()},
            "frames": list(ds.names), "per_run": per_run, "summary": summary})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
