"""`vhakit demo` end to end in fast mode: every stage runs and writes what the README promises."""
from __future__ import annotations

import math

import pytest

from vhakit.evaluation.recon import Reconstructions


@pytest.mark.slow
def test_fast_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    from vhakit.cli import main

    monkeypatch.setenv("VHAKIT_FAST", "1")
    monkeypatch.setenv("VHAKIT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| VHA+BCP |" in printed and "| baseline (LMT-style) |" in printed
    assert "most bent frame" in printed and "most bent frame" in (out / "results.md").read_text()
    for name in ("bodies.png", "comparison.png", "views.png", "results.md",
                 "reconstructions.npz"):
        assert (out / name).stat().st_size > 1000 or name == "results.md", name
    rec = Reconstructions.load(out / "reconstructions.npz")
    assert set(rec.methods) == {"ground truth", "baseline (LMT-style) fitted", "VHA+BCP fitted"}
    assert rec.images.shape[1] == 4 and rec.K.shape[1:] == (4, 3, 3)
    assert all(math.isfinite(float(rec.mpve_mm(m).mean())) for m in rec.methods)
    assert rec.mpve_mm("ground truth").max() == 0
    # A second run reuses data and checkpoints (no "starting a new run").
    assert main(["demo", "--out", str(out)]) == 0
    again = capsys.readouterr()
    assert "starting a new run" not in again.out + again.err

    # `vhakit evaluate` on the demo's BCP run reproduces the pipeline's 108-vertex error.
    bcp_run = next((out / "models-fast").glob("vha_bcp-*"))
    data = tmp_path / "data" / "first48" / "tiny" / "h36m_like-test-s0"
    assert main(["evaluate", "--model", str(bcp_run), "--data", str(data), "--no-fit",
                 "--out", str(tmp_path / "ev.npz")]) == 0
    printed = capsys.readouterr().out
    assert "mpve108_mm" in printed and "mpjpe_mm" not in printed
    ev = Reconstructions.load(tmp_path / "ev.npz")
    assert ev.points108["prediction"].shape == (48, 108, 3)
    vha_run = next((out / "models-fast").glob("vha-*"))
    assert main(["evaluate", "--model", str(vha_run), "--data", str(data)]) == 1
    assert "BCP or baseline" in capsys.readouterr().err


def test_tilt_table_numbers():
    """The bent frames' mean tilt and mean |error| by hand: true tilts 5, 30, 50 (two bent)."""
    import math

    import numpy as np

    from vhakit.experiments.demo import bent_tilt_errors, format_tilt_table

    tilts = {"ground truth": np.array([5.0, 30.0, 50.0]), "VHA+BCP": np.array([4.0, 20.0, 56.0]),
             "baseline": np.array([1.0, 2.0, 3.0])}
    assert bent_tilt_errors(tilts) == {"VHA+BCP": 8.0, "baseline": 37.5}
    assert math.isnan(bent_tilt_errors(tilts, bent_deg=60.0)["baseline"])
    table = format_tilt_table(tilts)
    lines = table.splitlines()
    assert "2 frames bent > 20 deg" in lines[0]
    assert lines[2].split("|")[1:5] == [" ground truth ", " 40.0 ", " – ", " 50.0 "]
    assert lines[3].split("|")[1:5] == [" VHA+BCP ", " 38.0 ", " 8.0 ", " 56.0 "]  # |-10|, |6|
    assert lines[4].split("|")[1:5] == [" baseline ", " 2.5 ", " 37.5 ", " 3.0 "]
    upright = format_tilt_table({"ground truth": np.array([1.0, 2.0]), "m": np.array([3.0, 4.0])})
    assert "0 frames bent" in upright and "| m | – | – | 4.0 |" in upright


def test_demo_cli_passes_out_and_seed(tmp_path, monkeypatch):
    import vhakit.experiments.demo as demo
    from vhakit.cli import main

    calls = []
    monkeypatch.setattr(demo, "run_demo", lambda **kw: calls.append(kw) or {})
    assert main(["demo", "--out", str(tmp_path), "--seed", "3"]) == 0
    assert main(["demo"]) == 0
    assert [(str(c["out_dir"]), c["seed"]) for c in calls] == [(str(tmp_path), 3), ("runs/demo", 0)]


def test_demo_budget(monkeypatch):
    """The tiny demo trains longer than the tiny sweeps, from the pose-pretrained backbone, for
    both predictors alike; other presets keep their sweep budget; fast mode the seconds one."""
    from vhakit.experiments.demo import demo_budget
    from vhakit.experiments.pipeline import BUDGETS

    monkeypatch.delenv("VHAKIT_FAST", raising=False)
    b = demo_budget("tiny")
    assert (b.data_preset, b.vha_steps, b.epochs, b.min_steps) == ("tiny", 3000, 20.0, 0)
    assert b.overrides["bcp"] == b.overrides["baseline"] == {"backbone_init": "pose2d"}
    assert b.overrides["vha"] == BUDGETS["tiny"].overrides["vha"]
    assert demo_budget("teaching") == BUDGETS["teaching"]
    monkeypatch.setenv("VHAKIT_FAST", "1")
    assert demo_budget("tiny") == BUDGETS["fast"]
