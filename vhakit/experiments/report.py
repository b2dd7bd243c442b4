"""The paper's Tables 1 and 2 as numbers, and the sweep's result files (md, csv, json, png).

Markdown tables show the kit's mean ± sample std over seeds beside the paper's numbers. The
paper's numbers compare models on real data (Human3.6M, LightStage) at 384² inputs on a GPU; the
kit's come from its synthetic analogues at a small preset, so compare orderings and gaps, not
values.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from pathlib import Path

from vhakit._util import markdown_table
from vhakit.experiments.paper import (
    EFFICIENCY_NOTE,
    HEADERS,
    PAPER_METRICS,
    PAPER_SOURCE,
    PAPER_SOURCES,
    PAPER_TABLE1,
    PAPER_TABLE2,
    paper_numbers,
)

__all__ = ["PAPER_SOURCE", "PAPER_TABLE1", "PAPER_TABLE2", "PAPER_METRICS", "paper_numbers",
           "result_stem", "render_markdown", "write_results", "fmt_mean_std", "HEADERS",
           "cell_details", "prior_text", "steps_text", "budget_text"]

KIT_METRICS = ("mpjpe_mm", "mpve_mm", "angle_deg", "mpve108_mm")


def result_stem(table: str) -> str:
    """File stem of ``table``'s results: ``table1``, ``table2`` or ``data_efficiency``."""
    return {"1": "table1", "2": "table2", "efficiency": "data_efficiency"}[str(table)]


def fmt_mean_std(mean: float, std: float, digits: int = 1) -> str:
    """``"12.3 ± 0.4"``; ``"12.3"`` for one seed; ``"n/a"`` for NaN (no runs)."""
    if mean is None or math.isnan(mean):
        return "n/a"
    if std is None or math.isnan(std):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def cell_details(result) -> list[dict]:
    """Per cell of ``result``, in order, what each of its runs trained: ``{"row", "column",
    "runs": [{"seed", "key", "vha_key", "steps", "epochs", "samples"}]}`` (``vha_key`` None
    for the baseline; absent, like the training fields, where a record does not have it)."""
    from vhakit.experiments.results import cell_runs

    out = []
    for cell, runs in zip(result.cells, cell_runs(result.cells, result.runs), strict=True):
        rows = []
        for r in runs:
            plan = ((r.get("training") or {}).get("predictor") or {}).get("plan") or {}
            row = {"seed": r["seed"], "key": r.get("key")}
            if "vha_key" in r:
                row["vha_key"] = r["vha_key"]
            row.update({k: plan[k] for k in ("steps", "epochs", "samples") if k in plan})
            rows.append(row)
        out.append({"row": cell.row, "column": cell.column, "runs": rows})
    return out


def prior_text(runs: list[dict], preset: str = "") -> str:
    """The priors of a cell's runs (``cell_details`` rows): ``"pool-h36m_like-s0/1/2"`` for one
    prior per seed, ``"pool-h36m_like-s0 (shared by 3 runs)"`` for one prior, ``"—"`` for the
    baseline, ``"not recorded"`` for records without ``vha_key``."""
    if not runs:
        return "—"
    if any("vha_key" not in r for r in runs):
        return "not recorded"
    keys = [r["vha_key"] for r in runs]
    if all(k is None for k in keys):
        return "—"
    groups: dict[str, list[str]] = {}
    for key in dict.fromkeys(k for k in keys if k is not None):
        stem, _, seed = key.rpartition("-s")
        if preset and stem.startswith(f"{preset}-"):
            stem = stem[len(preset) + 1:]
        groups.setdefault(stem, []).append(seed)
    text = ", ".join(f"{stem}-s{'/'.join(seeds)}" for stem, seeds in groups.items())
    distinct = len(set(keys))
    return text if distinct == len(keys) else f"{text} (shared by {len(keys)} runs)"


def steps_text(runs: list[dict]) -> str:
    """BCP / baseline optimiser steps and epochs of a cell's runs: ``"630 (6.0 ep)"``, a range
    when they differ, ``"—"`` when not recorded."""
    plans = [(r["steps"], r["epochs"]) for r in runs if "steps" in r and "epochs" in r]
    if not plans or len(plans) < len(runs):
        return "—"
    steps, epochs = sorted({p[0] for p in plans}), sorted({round(p[1], 1) for p in plans})
    s = str(steps[0]) if len(steps) == 1 else f"{steps[0]}–{steps[-1]}"
    e = f"{epochs[0]:g}" if len(epochs) == 1 else f"{epochs[0]:g}–{epochs[-1]:g}"
    return f"{s} ({e} ep)"


def budget_text(budget: dict | None) -> str:
    """The training-length rule of a :class:`~vhakit.experiments.pipeline.Budget` (as a dict), in words."""
    if not budget:
        return "Budget: not recorded in this file."
    epochs = budget.get("epochs") or "the preset's"
    vha = (f"{budget['vha_steps']} steps" if budget.get("vha_steps")
           else "the preset's max_steps / epochs")
    return (f"Budget: BCP and baseline train max({epochs} epochs, {budget.get('min_steps', 0)} "
            f"steps) over their own training frames (steps per epoch = frames // batch, "
            f"recorded per run); the VHA {vha}.")


def _lookup(result) -> dict:
    return {(e["row"], e["column"], e["metric"]): e for e in result.summary}


def render_markdown(result) -> str:
    """The sweep's markdown: a title, the kit's numbers beside the paper's, and notes."""
    look = _lookup(result)
    digits = {"angle_deg": 2}
    seeds = f"{len(result.seeds)} seed{'s' if len(result.seeds) > 1 else ''}"
    title = {"1": "Table 1: body prior ablation (BCP trained and tested on h36m_like)",
             "2": "Table 2: baseline vs VHA+BCP, in-domain, small data and cross-dataset",
             "efficiency": "Data efficiency: MPVE vs training-set fraction (h36m_like)"}[
        result.table]
    from vhakit.experiments.results import PROTOCOL

    out = [f"# {title}", "",
           f"Kit: preset `{result.preset}`, {seeds} ({', '.join(map(str, result.seeds))}), "
           f"mean ± sample std; paper: {PAPER_SOURCES[result.table]}. Units: mm and degrees.",
           "", f"Protocol: {result.protocol}."]
    if result.protocol != PROTOCOL:
        out += ["", "**Made under an older protocol than the current one "
                f"({PROTOCOL.split(':')[0]}); the claims below are re-tested with Welch's t-test "
                "from its runs.**"]
    prior = {True: "one VHA per seed", False: "one VHA shared by all seeds",
             None: "not recorded"}[result.vha_per_seed]
    share = ("" if result.vha_per_seed is None else
             " (column \"prior\": rows with the same id share one trained VHA)")
    out += ["", f"{budget_text(result.budget)} Priors: {prior}{share}."]
    if result.fast:
        out += ["", "**VHAKIT_FAST=1: seconds-long training budgets; the numbers only show that "
                "the code runs.**"]
    if result.table == "efficiency":
        out += ["", _efficiency_pivot(result, look), "", EFFICIENCY_NOTE, _claims(result)]
        return "\n".join(out) + "\n"
    header, rows = [], []
    details = cell_details(result)
    for cell, detail in zip(result.cells, details, strict=True):
        kit = [fmt_mean_std(look[(cell.row, cell.column, m)]["mean"],
                            look[(cell.row, cell.column, m)]["std"], digits.get(m, 1))
               for m in KIT_METRICS]
        paper = paper_numbers(result.table, cell.row, cell.column)
        paper_cols = ([f"{paper[m]:.{digits.get(m, 1)}f}" for m in PAPER_METRICS] if paper
                      else ["—"] * len(PAPER_METRICS))
        if result.table == "1":
            s = cell.spec
            lead = ["✓" if on else "✗" for on in (s.use_vertex_loss, s.use_code_loss,
                                                  s.init_from_vha)]
            header = ["vertex loss", "code loss", "pretrain"]
        else:
            lead = [cell.row, cell.column, f"{cell.spec.train_split} → {cell.test_split}"]
            header = ["method", "setting", "train → test"]
        n = look[(cell.row, cell.column, "mpve_mm")]["n"]
        rows.append(lead + kit + [str(n), prior_text(detail["runs"], result.preset),
                                  steps_text(detail["runs"])] + paper_cols)
    header += [f"{HEADERS[m]} (kit)" for m in KIT_METRICS] + ["runs", "prior",
                                                               "steps (epochs)"]
    header += [f"{HEADERS[m]} (paper)" for m in PAPER_METRICS]
    out += ["", markdown_table(header, rows), ""]
    out.append("MPVE108: the 108 predicted vertices before SMPL fitting. Metrics follow "
               "`vhakit.evaluation.metrics` (after SMPL fitting; MPJPE and MPVE pelvis-aligned, as "
               "`vhakit.experiments.pipeline.evaluate_vertices` computes them; MPVE108 absolute).")
    if result.table == "2":
        out.append("The paper's cross-dataset numbers test on all of LightStage (train and test "
                   "frames); the kit tests on the test part of lightstage_like. real_mocap has "
                   "no counterpart in the paper (—).")
    out.append(_claims(result))
    return "\n".join(out) + "\n"


def _claims(result) -> str:
    from vhakit.experiments.claims import claims_markdown

    return "\n## Did the paper's orderings reproduce?\n\n" + claims_markdown(result).rstrip()


def _efficiency_pivot(result, look) -> str:
    """Fraction | each method's MPVE and MPJPE | MPVE gap (VHA+BCP minus baseline)."""
    methods = list(dict.fromkeys(c.row for c in result.cells))
    fractions = list(dict.fromkeys(c.column for c in result.cells))
    header = ["train fraction"] + [f"{m}: {HEADERS[k]}" for m in methods
                                   for k in ("mpve_mm", "mpjpe_mm")] + ["runs"]
    header += [f"{m}: steps (epochs)" for m in methods] + ["prior"]
    details = {(d["row"], d["column"]): d["runs"] for d in cell_details(result)}
    if len(methods) == 2:
        header.append(f"MPVE gap mm ({methods[1]} − {methods[0]})")
    rows = []
    for frac in fractions:
        row = [f"{float(frac) * 100:g} %"]
        row += [fmt_mean_std(look[(m, frac, k)]["mean"], look[(m, frac, k)]["std"])
                for m in methods for k in ("mpve_mm", "mpjpe_mm")]
        row.append("/".join(str(look[(m, frac, "mpve_mm")]["n"]) for m in methods))
        row += [steps_text(details[(m, frac)]) for m in methods]
        priors = dict.fromkeys(prior_text(details[(m, frac)], result.preset) for m in methods)
        row.append(", ".join(p for p in priors if p != "—") or "—")
        if len(methods) == 2:
            gap = look[(methods[1], frac, "mpve_mm")]["mean"] - look[(methods[0], frac,
                                                                      "mpve_mm")]["mean"]
            row.append("n/a" if math.isnan(gap) else f"{gap:+.1f}")
        rows.append(row)
    return markdown_table(header, rows)


def _clean(value):
    """JSON-safe: NaN -> None, tuples -> lists, recursively."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _csv_text(result) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["table", "preset", "row", "column", "test_split", "metric", "mean", "std",
                     "n", "paper", "prior", "steps", "epochs", "samples"])
    details = {(d["row"], d["column"]): d["runs"] for d in cell_details(result)}

    def per_seed(runs, key):  # "630/630/630"; empty where a run did not record it
        return "/".join(f"{r[key]:g}" for r in runs) if all(key in r for r in runs) else ""

    for e in result.summary:
        paper = paper_numbers(result.table, e["row"], e["column"]) or {}
        runs = details[(e["row"], e["column"])]
        writer.writerow([result.table, result.preset, e["row"], e["column"], e["test_split"],
                         e["metric"], "" if math.isnan(e["mean"]) else repr(e["mean"]),
                         "" if math.isnan(e["std"]) else repr(e["std"]), e["n"],
                         paper.get(e["metric"], ""), prior_text(runs, result.preset),
                         *(per_seed(runs, k) for k in ("steps", "epochs", "samples"))])
    return buf.getvalue()


def _json_payload(result) -> dict:
    from dataclasses import asdict

    from vhakit.experiments.claims import check_claims

    return _clean({
        "table": result.table, "preset": result.preset, "seeds": list(result.seeds),
        "protocol": result.protocol, "budget": result.budget,
        "vha_per_seed": result.vha_per_seed,
        "fast": result.fast, "paper_source": PAPER_SOURCE,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "cells": [{"row": c.row, "column": c.column, "test_split": c.test_split,
                   "spec": asdict(c.spec), "runs": d["runs"]}
                  for c, d in zip(result.cells, cell_details(result), strict=True)],
        "claims": check_claims(result),
        "summary": result.summary,
        "paper": {f"{c.row} | {c.column}": paper_numbers(result.table, c.row, c.column)
                  for c in result.cells},
        "runs": [{k: v for k, v in r.items() if k != "cached"} for r in result.runs],
    })


def _same_results(path: Path, payload: dict) -> bool:
    """True when the JSON at ``path`` holds ``payload`` up to its ``created_utc`` stamp."""
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    new = json.loads(json.dumps(payload))  # the types the file would hold (tuples -> lists)
    for d in (old, new):
        if isinstance(d, dict):
            d.pop("created_utc", None)
    return old == new


def write_results(result, results_dir: Path) -> dict[str, Path]:
    """Write ``<stem>.md``, ``.csv``, ``.json`` (and ``.png`` for the efficiency curve) into
    ``results_dir``, each atomically; returns ``{suffix: path}``.

    Files whose JSON already holds the same results (everything but ``created_utc``) are left
    untouched, so reloading a committed sweep (notebook 08, ``load_or_run``) changes no file.
    """
    from vhakit._util import atomic_write_bytes, write_json_atomic
    from vhakit.experiments.plots import efficiency_figure

    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    stem = result_stem(result.table)
    suffixes = ["md", "csv", "json"] + (["png"] if result.table == "efficiency" else [])
    paths = {suffix: results_dir / f"{stem}.{suffix}" for suffix in suffixes}
    payload = _json_payload(result)
    if all(p.exists() for p in paths.values()) and _same_results(paths["json"], payload):
        return paths
    for suffix, text in (("md", result.markdown), ("csv", _csv_text(result))):
        atomic_write_bytes(paths[suffix], text.encode("utf-8"))
    write_json_atomic(paths["json"], payload)
    if result.table == "efficiency":
        png = io.BytesIO()
        efficiency_figure(result).savefig(png, format="png")
        atomic_write_bytes(paths["png"], png.getvalue())
    return paths
