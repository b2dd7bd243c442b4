"""`vhakit demo` end to end in fast mode: every stage runs and writes what the README promises."""
from __future__ import annotations

import math

import pytest

from vhakit.recon import Reconstructions


@pytest.mark.slow
def test_fast_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    from vhakit.cli import main

    monkeypatch.setenv("VHAKIT_FAST", "1")
    monkeypatch.setenv("VHAKIT_DATA_DIR", str(tmp_path / "data"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| VHA+BCP |" in printed and "| baseline (LMT-style) |" in printed
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
