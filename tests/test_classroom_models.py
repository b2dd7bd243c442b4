"""Pretrained classroom checkpoints: the committed files reproduce their model card, a fast
round trip through ``pretrain_classroom``, and clear errors when files are missing."""
from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from vhakit.teaching.classroom_models import (
    MAX_TOTAL_BYTES,
    PRETRAINED_DIR,
    PRETRAINED_NAMES,
    card_frames,
    evaluate_pretrained,
    load_pretrained,
    pretrain_classroom,
    pretrained_available,
    read_card,
)

committed = pytest.mark.skipif(not pretrained_available(),
                               reason="no committed checkpoints in vhakit/assets/pretrained")


def _mpve108_mm_loop(pred: torch.Tensor, true: torch.Tensor) -> float:
    """Reference: mean over frames and vertices of the Euclidean error, one frame at a time."""
    if pred.shape != true.shape:
        raise ValueError(f"shapes differ: {tuple(pred.shape)} vs {tuple(true.shape)}")
    per_frame = [np.linalg.norm(pred[i].numpy() - true[i].numpy(), axis=-1).mean()
                 for i in range(len(pred))]
    return float(np.mean(per_frame) * 1000)


@committed
def test_committed_checkpoints_are_small_and_load_fast():
    sizes = {n: (PRETRAINED_DIR / f"{n}.pt").stat().st_size for n in PRETRAINED_NAMES}
    assert sum(sizes.values()) <= MAX_TOTAL_BYTES, sizes
    card = read_card()
    for name in PRETRAINED_NAMES:
        t0 = time.perf_counter()
        model = load_pretrained(name)
        assert time.perf_counter() - t0 < 2.0, f"{name} took {time.perf_counter() - t0:.2f} s"
        assert not model.training
        assert all(p.dtype == torch.float32 for p in model.parameters())
        assert sum(p.numel() for p in model.parameters()) == card["files"][f"{name}.pt"]["parameters"]


@committed
def test_committed_checkpoints_reproduce_the_card():
    """Re-evaluate on the card's test frames: every metric within 1 % of the card's."""
    from vhakit.training.bcp import predict_vertices

    card = read_card()
    ds = card_frames(card)
    assert ds.names == card["data"]["eval_frame_names"]
    # the 108-vertex MPVE of BCP, computed here independently of the library's metrics
    pred = predict_vertices(load_pretrained("bcp"), ds)
    assert _mpve108_mm_loop(pred, ds.arrays["vertices108"]) == pytest.approx(
        card["metrics"]["bcp"]["mpve108_mm"], rel=0.01)
    got = evaluate_pretrained()
    for name, metrics in card["metrics"].items():
        for key, value in metrics.items():
            assert got[name][key] == pytest.approx(value, rel=0.01), (name, key)


@committed
def test_model_card_markdown_shows_the_card_numbers():
    card, text = read_card(), (PRETRAINED_DIR / "MODEL_CARD.md").read_text()
    assert card["command"] in text
    assert f"{card['metrics']['bcp']['mpve108_mm']:.1f}" in text
    assert f"{card['metrics']['baseline']['mpve_mm']:.1f}" in text
    for r in card.get("reevaluations", []):  # a re-measured card says so, with its reason
        assert r["utc"] in text and r["note"] in text


@pytest.mark.slow  # ~25 s on 2 idle cores (training a few steps), ~60 s on loaded ones
def test_fast_round_trip(tmp_path, monkeypatch):
    """pretrain_classroom end to end (VHAKIT_FAST=1: a few steps), then load and re-evaluate."""
    from vhakit.training.bcp import load_bcp

    monkeypatch.setenv("VHAKIT_FAST", "1")
    out = tmp_path / "pretrained"
    card = pretrain_classroom(out, preset="tiny", seed=0, cache_dir=tmp_path / "cache",
                              eval_frames=3, progress=False)
    assert pretrained_available(out)
    assert json.loads((out / "card.json").read_text()) == card
    assert card["fast_mode"] and card["command"].startswith("VHAKIT_FAST=1 vhakit pretrain")
    assert card["data"]["eval_frames"] == 3 == len(card["data"]["eval_frame_names"])
    assert card["total_bytes"] == sum((out / f"{n}.pt").stat().st_size for n in PRETRAINED_NAMES)
    assert "Note." in (out / "MODEL_CARD.md").read_text()  # not the teaching preset: says so
    # the stored weights are the trained ones rounded to float16 (buffers exact)
    trained = load_bcp(next((tmp_path / "cache").glob("vha_bcp-*")), device="cpu").state_dict()
    model = load_pretrained("bcp", out)
    loaded, params = model.state_dict(), dict(model.named_parameters())
    assert trained.keys() == loaded.keys()
    for key, value in trained.items():
        ref = value.half().float() if key in params and value.is_floating_point() else value
        torch.testing.assert_close(loaded[key], ref.to(loaded[key].dtype), rtol=0, atol=0)
    # the card's 108-vertex metrics come back exactly on the same machine (the fitted ones are
    # checked on the committed checkpoints)
    got = evaluate_pretrained(out, fit=False)
    for name in PRETRAINED_NAMES:
        assert got[name]["mpve108_mm"] == pytest.approx(card["metrics"][name]["mpve108_mm"],
                                                        rel=1e-5), name
    assert set(card["metrics"]["bcp"]) >= {"mpjpe_mm", "mpve_mm", "angle_deg"}
    # another budget trains new predictors in their own folder on the same, cached VHA
    again = pretrain_classroom(tmp_path / "again", preset="tiny", seed=0,
                               cache_dir=tmp_path / "cache", eval_frames=3, progress=False,
                               epochs=0.5)
    assert again["files"]["vha.pt"]["sha256"] == card["files"]["vha.pt"]["sha256"]
    assert len(list((tmp_path / "cache").rglob("vha-*"))) == 1  # the VHA trained once
    assert list((tmp_path / "cache" / "epochs0.5").glob("vha_bcp-*"))


def test_missing_files_raise_a_clear_error(tmp_path):
    assert not pretrained_available(tmp_path)
    with pytest.raises(FileNotFoundError, match="vhakit pretrain-classroom"):
        load_pretrained("bcp", tmp_path)
    with pytest.raises(FileNotFoundError, match="vhakit pretrain-classroom"):
        read_card(tmp_path)
    with pytest.raises(ValueError, match="one of"):
        load_pretrained("vhb", tmp_path)


def test_foreign_file_is_rejected(tmp_path):
    torch.save({"model": {}}, tmp_path / "vha.pt")
    with pytest.raises(ValueError, match="not a 'vha' classroom checkpoint"):
        load_pretrained("vha", tmp_path)


def test_cli_passes_its_arguments(tmp_path, monkeypatch, capsys):
    import vhakit.teaching.classroom_models as cm
    from vhakit.cli import main

    calls = []

    def fake(out_dir, preset, seed, progress, cache_dir=None, reuse_vha=None, epochs=None,
             backbone_init="", vha_steps=None, curve_frames=0):
        calls.append((out_dir, preset, seed, progress, cache_dir, reuse_vha, epochs,
                      backbone_init, vha_steps, curve_frames))
        return {"metrics": {"bcp": {"mpve108_mm": 12.34, "num_frames": 3.0}},
                "files": {"bcp.pt": {}}, "total_bytes": 2_000_000}

    monkeypatch.setattr(cm, "pretrain_classroom", fake)
    assert main(["pretrain-classroom", "--preset", "tiny", "--seed", "3", "--out",
                 str(tmp_path), "--quiet"]) == 0
    assert calls == [(tmp_path, "tiny", 3, False, None, None, None, "", None, 0)]
    assert "mpve108_mm 12.3" in capsys.readouterr().out
    assert main(["pretrain-classroom", "--quiet", "--cache", "runs/cache/models",
                 "--reuse-vha", "v/vha.pt", "--epochs", "0.5", "--backbone-init", "pose2d"]) == 0
    assert calls[-1] == (PRETRAINED_DIR, "teaching", 0, False, "runs/cache/models", "v/vha.pt",
                         0.5, "pose2d", None, 0)
    assert main(["pretrain-classroom", "--quiet", "--vha-steps", "4000",
                 "--curve-frames", "96"]) == 0
    assert calls[-1][-2:] == (4000, 96)


def test_vha_steps_and_learning_curves(tmp_path, monkeypatch):
    """--vha-steps trains the VHA for that many steps in its own cache folder; --curve-frames
    makes every run evaluate that many test frames as it trains (VHA every 250 steps, the
    predictors twice per epoch), rows ``split == "eval"`` of its metrics.csv."""
    import csv

    monkeypatch.setenv("VHAKIT_FAST", "1")
    with pytest.raises(ValueError, match="give one of them"):
        pretrain_classroom(tmp_path / "x", preset="tiny", reuse_vha=tmp_path / "vha.pt",
                           vha_steps=10, progress=False)
    with pytest.raises(ValueError, match="vha_steps must be >= 1"):
        pretrain_classroom(tmp_path / "x", preset="tiny", vha_steps=0, progress=False)
    card = pretrain_classroom(tmp_path / "out", preset="tiny", seed=0, cache_dir=tmp_path / "c",
                              eval_frames=3, progress=False, vha_steps=251, curve_frames=4,
                              epochs=1)
    assert card["budget"]["vha_steps"] == 251
    assert card["command"].endswith("--epochs 1 --vha-steps 251 --curve-frames 4")
    assert card["curves"]["frames"] == 4 and [r["step"] for r in card["curves"]["vha"]] == [250]
    md = (tmp_path / "out" / "MODEL_CARD.md").read_text()
    assert "## Learning curves" in md
    assert f"250: {card['curves']['vha'][0]['mpve_mm']:.1f}" in md

    def rows(pattern):
        (run,) = (tmp_path / "c" / "vha-steps251").rglob(pattern)
        with open(run / "metrics.csv") as f:
            rs = list(csv.DictReader(f))
        return rs, json.loads((run / "done.json").read_text())["plan"]["steps"]

    vha, steps = rows("vha-tiny-*")
    assert steps == 251
    assert [int(r["step"]) for r in vha if r["split"] == "eval"] == [250]
    for pattern in ("vha_bcp-*", "baseline-*"):
        rs, steps = rows(pattern)
        evals = [(int(r["step"]), float(r["mpve_mm"])) for r in rs if r["split"] == "eval"]
        assert [s for s, _ in evals] == [steps // 2, steps], (pattern, evals, steps)
        assert all(0 < m < 2000 for _, m in evals)
    # the curve as the docs draw it: the eval rows of metrics.json, in step order
    from vhakit.viz.figures import eval_curve, plot_learning_curves

    (bcp_run,) = (tmp_path / "c" / "vha-steps251").rglob("vha_bcp-*")
    curve = eval_curve(bcp_run)
    assert [(r["step"], round(r["mpve_mm"], 3)) for r in curve] == [
        (s, round(m, 3)) for s, m in evals_of(bcp_run)]
    fig = plot_learning_curves({"VHA+BCP": bcp_run}, tmp_path / "curve.png")
    assert len(fig.axes[0].lines) == 1 and (tmp_path / "curve.png").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="no metrics.json"):
        eval_curve(tmp_path)
    # data_scripts/learning_curves.py writes the same rows to CSV, with the figure
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "data_scripts" / "learning_curves.py"
    spec = importlib.util.spec_from_file_location("learning_curves", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path / "lc" / "t"), f"VHA+BCP={bcp_run}"]) == 0
    with open(tmp_path / "lc" / "t.csv") as f:
        written = [(int(r["step"]), float(r["mpve_mm"])) for r in csv.DictReader(f)]
    assert written == [(s, pytest.approx(m, abs=0.006)) for s, m in evals_of(bcp_run)]
    assert (tmp_path / "lc" / "t.png").stat().st_size > 0


def evals_of(run) -> list[tuple[int, float]]:
    """Eval rows of a run's metrics.csv (the CSV twin of metrics.json), read independently."""
    import csv

    with open(run / "metrics.csv") as f:
        return [(int(r["step"]), float(r["mpve_mm"])) for r in csv.DictReader(f)
                if r["split"] == "eval"]


def test_notebook_04_trains_when_asked(monkeypatch):
    """Notebook 04's training path (``USE_PRETRAINED = False``; the default loads the committed
    checkpoints, the path nbmake runs), executed like nbmake does (fast mode, the repository's
    data/), so CI still trains BCP and the baseline through the notebook."""
    from pathlib import Path

    import nbformat
    from nbclient import NotebookClient

    notebooks = Path(__file__).resolve().parents[1] / "notebooks"
    nb = nbformat.read(notebooks / "04_body_code_predictor.ipynb", as_version=4)
    switch = "USE_PRETRAINED = True"
    setup = [c for c in nb.cells if c.cell_type == "code" and switch in c.source]
    assert len(setup) == 1, "notebook 04 lost its USE_PRETRAINED switch"
    setup[0].source = setup[0].source.replace(switch, "USE_PRETRAINED = False", 1)
    monkeypatch.setenv("VHAKIT_FAST", "1")
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(notebooks)}}).execute()
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code"
                      for o in c.get("outputs", []))
    assert "pretrained: False" in printed and "ready in" in printed
    assert "without the code loss" in printed  # exercise 2's solution trained its second BCP


def test_card_curve_table_keeps_first_and_last_evaluation():
    """Up to 8 evaluations per model, evenly spread, the first and the last always shown (also
    for curves shorter than 8)."""
    from vhakit.teaching.classroom_card import _curves_section

    def curve(steps):
        return [{"step": s, "epoch": 0, "mpve_mm": s / 10} for s in steps]

    text = _curves_section({"frames": 4, "vha": curve([10, 20, 30]),
                            "bcp": curve(range(1, 17)), "baseline": []})
    rows = {line.split("|")[1].strip(): line.split("|")[2].strip()
            for line in text.splitlines() if line.startswith("| V")}
    assert rows["VHA (autoencoding)"] == "10: 1.0, 20: 2.0, 30: 3.0"
    bcp = rows["VHA+BCP"].split(", ")
    assert len(bcp) == 8 and bcp[0] == "1: 0.1" and bcp[-1] == "16: 1.6"
    assert "baseline |" not in text
    assert _curves_section(None) == "" and _curves_section({"frames": 4, "vha": []}) == ""
