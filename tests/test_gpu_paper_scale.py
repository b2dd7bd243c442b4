"""The GPU paper-scale script runs end to end (``--smoke``: CPU, tiny shapes, one step per case),
so that the one device run it is written for does not fail on an API drift."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_paper_scale.py"


def _load(name: str = "gpu_paper_scale"):
    spec = importlib.util.spec_from_file_location(name, SCRIPT.with_name(f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _main_on_one_thread(mod, args: list[str], out: Path, monkeypatch) -> int:
    """``mod.main(args)`` with one torch thread and ``OUT=out`` (where the JSON goes)."""
    torch = pytest.importorskip("torch")
    monkeypatch.setenv("OUT", str(out))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        return mod.main(args)
    finally:
        torch.set_num_threads(threads)


def test_smoke_run_writes_every_case_and_the_projection(tmp_path, monkeypatch):
    mod = _load()
    assert _main_on_one_thread(mod, ["--smoke", "--no-compile"], tmp_path, monkeypatch) == 0
    result = json.loads((tmp_path / "gpu_paper_scale.json").read_text())
    rows = result["rows"]
    assert [r["model"] for r in rows] == ["vha", "vha", "bcp", "bcp"]
    for r in rows:
        assert "error" not in r, r
        assert r["samples_per_s"] > 0 and r["tflop_per_step"] > 0
    for name, days, epochs in (("vha", 16.0, 55), ("bcp", 4.5, 20)):
        pr = result["projection"][name]
        best = max(r["samples_per_s"] for r in rows if r["model"] == name)
        # projected days = epochs x samples per epoch / best rate, independently recomputed
        assert pr["projected_days"] == pytest.approx(epochs * pr["epoch_samples"] / best / 86400)
        assert pr["speedup_vs_paper"] == pytest.approx(days / pr["projected_days"])


def test_projection_against_hand_computed_numbers():
    mod = _load()
    rows = [{"model": "vha", "samples_per_s": 132.0, "bf16": True},
            {"model": "vha", "samples_per_s": 66.0},
            {"model": "bcp", "error": "OutOfMemoryError"}]
    proj = mod.summarise(rows, {"epoch_samples": {"vha": 1_659_000, "bcp": 159_000}})
    assert set(proj) == {"vha"}  # a failed case is left out, not a crash
    # 55 x 1.659 M / 132 per s = 691,250 s = 8.0006 days; the paper's rate 55 x 1.659 M / 16 days
    assert proj["vha"]["projected_days"] == pytest.approx(691_250 / 86400)
    assert proj["vha"]["paper_samples_per_s"] == pytest.approx(55 * 1_659_000 / (16 * 86400))
    assert proj["vha"]["speedup_vs_paper"] == pytest.approx(16 / (691_250 / 86400))
    assert proj["vha"]["best_case"] == "vha bf16"


def test_a_variant_is_projected_apart_from_the_preset():
    """--variant stem_stride=2: its rows carry the overrides and get their own projection."""
    mod = _load()
    assert mod.parse_sets(["stem_stride=2", "norm=group"]) == {"stem_stride": 2, "norm": "group"}
    rows = [{"model": "vha", "samples_per_s": 66.0},
            {"model": "vha", "samples_per_s": 264.0, "vha_set": {"stem_stride": 2}}]
    proj = mod.summarise(rows, {"epoch_samples": {"vha": 1_659_000, "bcp": 159_000}})
    assert set(proj) == {"vha", "vha stem_stride=2"}
    assert proj["vha"]["speedup_vs_paper"] == pytest.approx(66.0 / (55 * 1_659_000 / (16 * 86400)))
    assert proj["vha stem_stride=2"]["speedup_vs_paper"] == pytest.approx(
        4 * proj["vha"]["speedup_vs_paper"])
    assert proj["vha stem_stride=2"]["best_case"] == "vha fp32 + stem_stride=2"


def test_trainer_script_smoke_runs_the_real_trainer(tmp_path, monkeypatch, open_body):
    """``benchmarks/gpu_trainer.py --smoke``: the tiny preset through ``train_vha`` on a mesh
    folder, both compile settings (``auto`` is eager on the CPU), one JSON row each."""
    from vhakit.data.build import build_dataset

    data = build_dataset("tiny", "prior_pool", "train", tmp_path / "pool", max_frames=24,
                         body=open_body, progress=False)
    mod = _load("gpu_trainer")
    assert _main_on_one_thread(mod, ["--smoke", "--data", str(data), "--samples", "24"],
                               tmp_path, monkeypatch) == 0
    rows = json.loads((tmp_path / "gpu_trainer.json").read_text())["rows"]
    assert [r["compile"] for r in rows] == ["off", "auto"]
    for r in rows:
        assert r["steps"] == 6 and len(r["windows"]) == 3 and r["samples_per_s"] > 0
        assert r["projected_days"] == pytest.approx(55 * 1_659_000 / r["samples_per_s"] / 86400)
    assert rows[0]["final_loss"] == pytest.approx(rows[1]["final_loss"], rel=1e-6)  # both eager
    assert mod.main(["--smoke", "--data", str(tmp_path / "missing")]) == 2


def test_trainer_script_smoke_bcp_with_loader_workers(tmp_path, monkeypatch, open_body):
    """The BCP side on a rendered tiny folder: 2 DataLoader worker processes give the run of
    loading in the main process (the sampler and augmentation live in the main process)."""
    from vhakit.data.build import build_dataset

    data = build_dataset("tiny", "h36m_like", "train", tmp_path / "mv", max_frames=12,
                         body=open_body, progress=False)
    mod = _load("gpu_trainer")
    assert _main_on_one_thread(mod, ["--smoke", "--model", "bcp", "--data", str(data), "--samples",
                                     "24", "--cases", "off:0", "off:2"], tmp_path, monkeypatch) == 0
    rows = json.loads((tmp_path / "gpu_trainer.json").read_text())["rows"]
    assert [(r["model"], r["num_workers"]) for r in rows] == [("bcp", 0), ("bcp", 2)]
    # the same samples in the same order; only rounding differs (the batches arrive through
    # shared memory, which can change oneDNN's kernel choice). Two in-process runs are equal
    # bit for bit; with workers the final loss differed by 1.4e-7 relative with the metre
    # vertex loss and by 4.2e-4 with the millimetre one, whose 1000x larger vertex gradients
    # turn Adam's steps on near-zero gradients into +-lr moves that rounding can flip.
    assert rows[0]["final_loss"] == pytest.approx(rows[1]["final_loss"], rel=2e-3)
    assert rows[0]["projected_days"] == pytest.approx(20 * 159_000 / rows[0]["samples_per_s"]
                                                      / 86400)
    assert mod.main(["--smoke", "--model", "baseline", "--data", str(data), "--samples", "12",
                     "--cases", "off:0"]) == 0
    row = json.loads((tmp_path / "gpu_trainer.json").read_text())["rows"][0]
    assert row["model"] == "baseline" and row["speedup_vs_paper"] is None  # no paper time
