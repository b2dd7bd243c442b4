"""The model card of the pretrained classroom checkpoints (``MODEL_CARD.md``), written from the
machine-readable ``card.json`` that :func:`vhakit.teaching.classroom_models.pretrain_classroom` makes."""
from __future__ import annotations

from pathlib import Path

from vhakit._util import atomic_write_bytes, markdown_table

__all__ = ["model_card_markdown", "write_model_card"]

_METRICS = (("mpve108_mm", "MPVE, 108 vertices (mm)"), ("mpve_mm", "MPVE after fitting (mm)"),
            ("mpjpe_mm", "MPJPE after fitting, 24 SMPL joints (mm)"),
            ("pa_mpjpe_mm", "PA-MPJPE, 24 joints (mm)"),
            ("mpjpe17_mm", "MPJPE, Human3.6M 17-joint set (mm)"),
            ("pa_mpjpe17_mm", "PA-MPJPE, 17 joints (mm)"),
            ("angle_deg", "joint angle error (deg)"))


def _fmt(value) -> str:
    return "–" if value is None else f"{value:.1f}"


def _budget_words(b: dict) -> str:
    """The card's training budget in words (``vhakit.experiments.pipeline.Budget`` as a dict; cards made
    before budgets were in epochs hold fixed BCP / baseline step counts)."""
    vha = b["vha_steps"] or "preset epochs"
    if "bcp_steps" in b:
        return (f"steps: VHA {vha}, BCP {b['bcp_steps'] or 'preset epochs'}, baseline "
                f"{b['baseline_steps'] or 'preset epochs'}")
    return (f"steps: VHA {vha}; BCP and baseline max({b['epochs'] or 'preset'} epochs, "
            f"{b['min_steps']} steps)")


def model_card_markdown(card: dict) -> str:
    """``card`` (the dict of ``card.json``) as a one-page Markdown model card."""
    d, m, secs = card["data"], card["metrics"], card["training_seconds"]
    caveat = ""
    if card["preset"] != "teaching" or card.get("fast_mode"):
        caveat = (f"\n> **Note.** These checkpoints use the `{card['preset']}` preset"
                  + (" in fast mode (a few optimiser steps)" if card.get("fast_mode") else "")
                  + ", not the teaching preset classrooms use: they show the pipeline "
                  "working, with errors far above the paper's. Regenerate them with "
                  "`vhakit pretrain-classroom --preset teaching` when there is time to train.\n")
    reading = ""
    if m["bcp"]["mpve108_mm"] > m["baseline"]["mpve108_mm"]:
        reading = (f"\nHere VHA+BCP is *worse* than the baseline, the opposite of the paper: BCP "
                   f"decodes through the VHA, and this VHA reconstructs even the true vertices "
                   f"only to {m['vha']['mpve108_mm']:.0f} mm, so it bounds BCP. A longer-trained "
                   "VHA (the teaching preset) is what the method needs; this is worth showing "
                   "in class.\n")
    for r in card.get("reevaluations", []):
        caveat += (f"\n> **Re-evaluated {r['utc']}** without retraining: {r['note']} The "
                   "metrics below are this re-evaluation's; the earlier ones are in "
                   "`card.json` (`reevaluations`).\n")
    rows = [[label, *(_fmt(m[k].get(key)) for k in ("vha", "bcp", "baseline"))]
            for key, label in _METRICS]
    files = [[f"`{name}`", f"{f['bytes'] / 1e6:.2f} MB", f"{f['parameters']:,}",
              f"`{f['sha256'][:12]}`"] for name, f in card["files"].items()]
    b = card["budget"]
    return "\n".join([
        "# Pretrained classroom models (VHA, VHA+BCP, LMT-style baseline)",
        "",
        "Small inference-only checkpoints so that notebooks and dashboards show real "
        "reconstructions in seconds. Load them with "
        "`vhakit.teaching.classroom_models.load_pretrained(\"vha\" | \"bcp\" | \"baseline\")`. "
        "`tests/test_classroom_models.py` re-evaluates them and checks the numbers below "
        "(within 1 %).",
        caveat,
        "## How they were made",
        "",
        f"- Command: `{card['command']}` (created {card['created_utc']}).",
        f"- Preset `{card['preset']}`, seed {card['seed']}; {_budget_words(b)}.",
        f"- Data (synthetic, rendered by `vhakit make-data`, preset `{d['data_preset']}`, "
        f"body model `{d['body_model']}`): the VHA on `prior_pool` train plus "
        f"`{d['train_split']}` train (prior `{d['vha_prior']}`); BCP and the baseline on "
        f"`{d['train_split']}` train (subjects S1, S5, S6, S7, S8).",
        "- Training time: VHA "
        + (f"reused (the `vha.pt` of an earlier run, sha256 `{card['vha_reused_sha256'][:12]}`)"
           if card.get("vha_reused_sha256") else f"{secs['vha']:.0f} s")
        + f", BCP {secs['bcp']:.0f} s, baseline "
        f"{secs['baseline']:.0f} s, on a {card['machine']['cpu_count']}-core CPU "
        f"(torch {card['machine']['torch']}, {card['machine']['torch_threads']} threads; "
        "wall clock, so other jobs on the machine slow it).",
        "- Storage: weights only, parameters as float16 (loaded back as float32); the metrics "
        "are measured on these stored weights.",
        "",
        "## Metrics",
        "",
        f"On {d['eval_frames']} frames evenly spread over the `{d['test_split']}` test set "
        "(subjects S9, S11; names in `card.json`), cuboid at the true pelvis, 4 views. The VHA "
        "column is its autoencoding error on the true vertices; after fitting: SMPL fitted to "
        "the 108 predicted vertices, pelvis-aligned; joints: SMPL's 24 and the Human3.6M 17-joint "
        "set (docs/conventions.md, \"Joint sets\").",
        "",
        markdown_table(["metric", "VHA (autoencoder)", "VHA+BCP", "baseline"], rows),
        reading,
        _curves_section(card.get("curves")),
        "## Files",
        "",
        markdown_table(["file", "size", "parameters", "sha256"], files),
        "",
        "Intended use: teaching and demos on the kit's synthetic data. Not for measuring people.",
        "",
    ])


def _curves_section(curves: dict | None, points: int = 8) -> str:
    """The card's learning curves (``card["curves"]``: ``frames`` and per model the
    :func:`~vhakit.viz.figures.eval_curve` rows) as a short table: up to ``points`` evaluations
    per model, evenly spread, the last one included. Empty without curves."""
    if not curves or not any(curves.get(k) for k in ("vha", "bcp", "baseline")):
        return ""
    names = {"vha": "VHA (autoencoding)", "bcp": "VHA+BCP", "baseline": "baseline"}
    rows = []
    for key, label in names.items():
        curve = curves.get(key) or []
        if not curve:
            continue
        n = min(points, len(curve))
        pick = sorted({round(i * (len(curve) - 1) / max(1, n - 1)) for i in range(n)})
        rows.append([label, ", ".join(f"{curve[i]['step']}: {curve[i]['mpve_mm']:.1f}"
                                      for i in pick)])
    return "\n".join([
        "## Learning curves",
        "",
        f"Test MPVE of the 108 vertices (mm) on {curves.get('frames', '?')} `h36m_like` test "
        "frames, recorded while training (`--curve-frames`), as `step: mm`; every evaluation "
        "is in `card.json` (`curves`).",
        "",
        markdown_table(["model", "training step: test MPVE108 (mm)"], rows),
        "",
    ])


def write_model_card(card: dict, path: str | Path) -> None:
    """Write :func:`model_card_markdown` to ``path`` atomically."""
    atomic_write_bytes(Path(path), model_card_markdown(card).encode())
