"""The trainer: configs and presets, augmentation, atomic checkpoints and their errors, exact
resume after SIGKILL, DDP (torchrun, gloo) == one process, logs and plots."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_worker import StickFigureDataset

from vhakit.config import get_preset, vha_configs
from vhakit.training.trainer import (
    augment_params,
    check_compatible,
    load_checkpoint,
    read_run,
    rotate_about_y,
    save_checkpoint,
)
from vhakit.training.vha import load_vha, train_vha
from vhakit.viz.figures import plot_history

ROOT = Path(__file__).resolve().parents[1]
WORKER = str(Path(__file__).with_name("train_worker.py"))


def run_worker(out: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, WORKER, str(out), *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


def model_state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


# ------------------------------------------------------------------------------ configuration
def test_presets_and_overrides():
    with pytest.raises(ValueError, match=r"unknown preset 'huge'.*paper.*teaching.*tiny"):
        get_preset("huge")
    with pytest.raises(ValueError, match=r"unknown override 'batchsize'.*did you mean \['batch_size'"):
        vha_configs("tiny", batchsize=8)
    with pytest.raises(ValueError, match="unknown override 'model.lr'"):
        vha_configs("tiny", **{"model.lr": 1e-4})
    cfg = vha_configs("tiny", lr=5e-4, **{"model.grid": 32}, rotate=False)
    assert (cfg.train.lr, cfg.model.grid, cfg.task.rotate) == (5e-4, 32, False)
    assert vha_configs("tiny").train.lr == 1e-3  # the override did not leak into the preset
    t = vha_configs("teaching")
    assert (t.model.grid, t.train.batch_size, t.train.autocast) == (32, 10, "off")
    assert (vha_configs("tiny").model.grid, vha_configs("tiny").train.batch_size) == (16, 4)
    with pytest.raises(ValueError, match="autocast must be one of"):
        vha_configs("tiny", autocast="fp16")


# ------------------------------------------------------------------------------- augmentation
def test_augmentation_is_a_function_of_seed_epoch_and_index():
    a1, j1 = augment_params(0, 3, torch.tensor([5, 9, 2]), 0.05, True)
    a2, j2 = augment_params(0, 3, torch.tensor([2, 5]), 0.05, True)
    torch.testing.assert_close(a1[[2, 0]], a2)  # same sample -> same draw, whatever the batch
    torch.testing.assert_close(j1[[2, 0]], j2)
    a3, _ = augment_params(0, 4, torch.tensor([5, 9, 2]), 0.05, True)
    assert not torch.equal(a1, a3)  # a new epoch draws anew
    assert ((a1 >= 0) & (a1 < 2 * math.pi)).all() and (j1.abs() <= 0.05).all()
    a0, j0 = augment_params(0, 3, torch.tensor([5]), 0.0, False)
    assert a0.item() == 0 and j0.abs().max().item() == 0


def test_rotation_about_the_vertical_axis():
    origin = torch.tensor([[1.0, 0.9, -2.0]])
    p = origin[:, None] + torch.tensor([[[0.0, 0.3, 1.0], [0.5, -0.2, 0.0]]])
    q = rotate_about_y(p, torch.tensor([math.pi / 2]), origin)
    # +z turns to +x (right-handed about +y); heights and distances to the axis are kept
    torch.testing.assert_close(q[0, 0] - origin[0], torch.tensor([1.0, 0.3, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(q[0, 1] - origin[0], torch.tensor([0.0, -0.2, -0.5]), atol=1e-6, rtol=0)


# -------------------------------------------------------------------------------- checkpoints
def test_atomic_save_never_leaves_a_torn_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(3)}, "optimizer": {}, "run_config": {},
                           "position": {}})

    def crash(*args):  # the process dies between writing the temporary file and the rename
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"model": {"w": torch.zeros(3)}, "optimizer": {}, "run_config": {},
                               "position": {}})
    monkeypatch.undo()
    torch.testing.assert_close(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_corrupt_foreign_and_mismatched_checkpoints_give_clear_errors(tmp_path):
    out = tmp_path / "run"
    train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False, max_steps=2)
    good = (out / "last.pt").read_bytes()
    bad = tmp_path / "truncated.pt"
    bad.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(ValueError, match="not a vhakit checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.pt")
    # resume with another configuration: every difference is named, nothing is loaded
    with pytest.raises(ValueError, match=r"(?s)model\.grid: checkpoint 16, this run 32.*train\.lr"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, resume=True, progress=False,
                  grid=32, lr=1e-4)
    with pytest.raises(FileExistsError, match="resume=True"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False)
    (out / "last.pt").write_bytes(good[:100])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, resume=True, progress=False)
    check_compatible({"train": {"epochs": 2}}, {"train": {"epochs": 5}})  # may change on resume


def test_logs_best_checkpoint_plot_and_reload(tmp_path):
    out = tmp_path / "run"
    res = train_vha("tiny", data=StickFigureDataset(8), eval_data=StickFigureDataset(4, seed=1),
                    out_dir=out, progress=False, epochs=2, log_every=1)
    rows = json.loads((out / "metrics.json").read_text())["history"]
    assert [r["step"] for r in rows if r["split"] == "train"] == [1, 2, 3, 4]
    evals = [r for r in rows if r["split"] == "eval"]
    assert [r["step"] for r in evals] == [2, 4] and all(r["mpve_mm"] > 0 for r in evals)
    header = (out / "metrics.csv").read_text().splitlines()[0].split(",")
    assert {"split", "step", "loss", "mpve_mm", "mpve_mid_mm", "samples_per_s"} <= set(header)
    assert res.best == min(r["mpve_mm"] for r in evals)
    fig = plot_history(out, out=tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000 and len(fig.axes) == 2
    model = load_vha(out / "last.pt", device="cpu")
    for k, v in res.model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[k], v.cpu())


def assert_same_weights(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    got = model.state_dict()
    assert all(torch.equal(got[k].cpu(), v.cpu()) for k, v in state.items())


def test_overwrite_starts_a_clean_run_and_never_reads_an_earlier_best(tmp_path):
    out = tmp_path / "run"
    first = train_vha("tiny", data=StickFigureDataset(8), eval_data=StickFigureDataset(4, seed=1),
                      out_dir=out, progress=False, max_steps=2)
    assert (out / "best.pt").exists()
    # the second run evaluates nothing, so it writes no best.pt: the first run's must be gone
    second = train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False,
                       max_steps=2, overwrite=True, seed=5)
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.csv", "metrics.json"]
    assert [r["step"] for r in json.loads((out / "metrics.json").read_text())["history"]] == [2]
    assert read_run(out, "vha")[0] == out / "last.pt"
    assert_same_weights(load_vha(out, device="cpu"), second.model.state_dict())

    # files the kit did not write: overwrite refuses and deletes nothing
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match=r"notes\.txt.*deletes only last\.pt, best\.pt"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False, max_steps=2,
                  overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.csv", "metrics.json",
                                                     "notes.txt"]
    with pytest.raises(ValueError, match="only one of them"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, resume=True, overwrite=True)

    # a best.pt of another run (here copied in) is skipped; a run's own best.pt is taken
    save_checkpoint(out / "best.pt", {**load_checkpoint(out / "last.pt"), "run_id": "other",
                                      "model": first.model.state_dict()})
    with pytest.warns(UserWarning, match="not from the run that wrote"):
        assert read_run(out)[0] == out / "last.pt"
    third = tmp_path / "third"
    train_vha("tiny", data=StickFigureDataset(8), eval_data=StickFigureDataset(4, seed=1),
              out_dir=third, progress=False, max_steps=2)
    assert read_run(third)[0] == third / "best.pt"
    assert load_checkpoint(third / "best.pt")["run_id"] == load_checkpoint(third / "last.pt")["run_id"]


def test_a_new_run_never_mixes_with_an_earlier_runs_files(tmp_path):
    out = tmp_path / "run"
    train_vha("tiny", data=StickFigureDataset(8), eval_data=StickFigureDataset(4, seed=1),
              out_dir=out, progress=False, max_steps=2)
    (out / "last.pt").unlink()  # as if the run had died before its first checkpoint
    with pytest.raises(FileExistsError, match=r"\(best\.pt, metrics\.csv, metrics\.json\)"):
        train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False, max_steps=1)
    # resume with nothing to resume: a new run, without the files of the one that wrote none
    train_vha("tiny", data=StickFigureDataset(8), out_dir=out, progress=False, max_steps=2,
              resume=True)
    assert sorted(p.name for p in out.iterdir()) == ["last.pt", "metrics.csv", "metrics.json"]
    # resuming keeps the run id, so the run's best.pt stays the one read_run takes
    run_id = load_checkpoint(out / "last.pt")["run_id"]
    train_vha("tiny", data=StickFigureDataset(8), eval_data=StickFigureDataset(4, seed=1),
              out_dir=out, progress=False, max_steps=4, resume=True)
    assert load_checkpoint(out / "last.pt")["run_id"] == run_id
    assert read_run(out)[0] == out / "best.pt"


# ------------------------------------------------------------------------------ crash safety
def test_sigkill_mid_epoch_then_resume_equals_an_uninterrupted_run(tmp_path):
    args = ["--samples", "24", "epochs=2", "save_every=2", "deterministic=True"]  # 6 steps per epoch
    ref = run_worker(tmp_path / "ref", *args)
    assert ref.returncode == 0, ref.stderr
    out = tmp_path / "crash"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, WORKER, str(out), "--sleep", "0.05", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while not (out / "last.pt").exists():  # the first checkpoint: step 2, mid-epoch 0
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    pos = load_checkpoint(out / "last.pt")["position"]
    assert pos["step"] < 12 and pos["batch"] > 0, pos  # killed mid-epoch, with work left
    res = run_worker(out, "--resume", *args)
    assert res.returncode == 0, res.stderr
    a, b = model_state(tmp_path / "ref" / "last.pt"), model_state(out / "last.pt")
    assert a.keys() == b.keys()
    diff = {k: (a[k] - b[k]).abs().max().item() for k in a if not torch.equal(a[k], b[k])}
    assert not diff, f"weights differ after resume: {diff}"
    opt_a = load_checkpoint(tmp_path / "ref" / "last.pt")["optimizer"]["state"]
    opt_b = load_checkpoint(out / "last.pt")["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_a)


# ------------------------------------------------------------------------------------- DDP
def test_torchrun_two_processes_equal_one_process_with_the_same_global_batch(tmp_path):
    """2 ranks x 2 samples (gloo) == 1 process x 4 samples, augmentation on, after 3 Adam steps.

    Float sums run in another order on the two layouts (rounding ~1e-7 relative: checked on the
    Adam moments). Adam divides by sqrt(v), so a weight whose gradient nearly cancels turns that
    rounding into a step-sized difference; lr = 1e-4 keeps such steps below the 1e-5 tolerance,
    while a wrong data split or a missing all-reduce still moves weights by ~lr = 1e-4.
    """
    args = ["--samples", "16", "epochs=1", "max_steps=3", "batch_size=4", "save_every=0", "lr=1e-4"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", WORKER, str(tmp_path / "ddp"), *args],
                         env=env, capture_output=True, text=True, timeout=180)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = run_worker(tmp_path / "single", *args)
    assert single.returncode == 0, single.stderr
    ck_ddp = load_checkpoint(tmp_path / "ddp" / "last.pt")
    ck_one = load_checkpoint(tmp_path / "single" / "last.pt")
    assert ck_ddp["position"]["step"] == ck_one["position"]["step"] == 3
    a, b = ck_ddp["model"], ck_one["model"]
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst <= 1e-5, worst
    m_a, m_b = ck_ddp["optimizer"]["state"], ck_one["optimizer"]["state"]
    rel = max(((m_a[i]["exp_avg"] - m_b[i]["exp_avg"]).abs().max()
               / m_b[i]["exp_avg"].abs().max().clamp(min=1e-30)).item() for i in m_b)
    assert rel <= 1e-4, rel  # the averaged gradients agree
    moved = max((a[k] - v).abs().max().item() for k, v in model_state_at_init().items())
    assert moved > 5e-5  # the comparison is not vacuous: training changed the weights


def model_state_at_init() -> dict[str, torch.Tensor]:
    from vhakit.models.vha import VHA

    torch.manual_seed(vha_configs("tiny").train.seed)
    return VHA(vha_configs("tiny").model).state_dict()


def test_train_vha_rejects_bad_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="no dataset folder"):
        train_vha("tiny", data=tmp_path / "missing", out_dir=tmp_path / "run", progress=False)
    with pytest.raises(TypeError, match="torch Dataset"):
        train_vha("tiny", data=[{"vertices108": torch.zeros(108, 3)}], out_dir=tmp_path / "run")
    with pytest.raises(ValueError, match="fewer than one batch"):
        train_vha("tiny", data=StickFigureDataset(3), out_dir=tmp_path / "run", progress=False)


def test_lr_schedule_is_the_closed_form():
    from vhakit.config import TrainConfig
    from vhakit.training.trainer import lr_at

    cfg = TrainConfig(lr=4e-3, lr_schedule="cosine", warmup_steps=10)
    assert lr_at(cfg, 0, 110) == pytest.approx(4e-4)
    assert lr_at(cfg, 9, 110) == pytest.approx(4e-3)
    for step in (10, 35, 60, 109):
        frac = (step - 10) / 100
        assert lr_at(cfg, step, 110) == pytest.approx(2e-3 * (1 + math.cos(math.pi * frac)))
    assert lr_at(cfg, 110, 110) == pytest.approx(0.0, abs=1e-12)
    assert lr_at(TrainConfig(lr=1e-3), 500, 10) == 1e-3  # constant
    with pytest.raises(ValueError, match="lr_schedule must be one of"):
        TrainConfig(lr_schedule="step")


def test_evaluate_vha_is_the_mean_vertex_error(tmp_path):
    from vhakit.models.vha import VHA
    from vhakit.training.vha import evaluate_vha

    torch.manual_seed(0)
    model = VHA(vha_configs("tiny").model)
    data = StickFigureDataset(6)
    res = evaluate_vha(model, {"a": data}, batch_size=4)
    with torch.no_grad():
        v = torch.stack([data[i]["vertices108"] for i in range(6)])
        c = torch.stack([data[i]["pelvis"] for i in range(6)])
        out = model(v, c, return_logits=False)
    ref = 1000 * (out.vertices - v).norm(dim=-1).mean().item()
    assert res["a"]["mpve_mm"] == pytest.approx(ref, rel=1e-5) and res["a"]["frames"] == 6
    assert model.training  # the mode is restored


# ------------------------------------------------------------------------------ torch.compile
def _compile_spy(monkeypatch, make):
    """Replace torch.compile by ``make(module)``; returns the list of compiled modules."""
    calls = []

    def fake(module, *args, **kwargs):
        calls.append(module)
        return make(module)

    monkeypatch.setattr(torch, "compile", fake)
    return calls


def test_compile_setting_presets_and_auto_on_cpu(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match=r"compile must be one of \('off', 'on', 'auto'\)"):
        vha_configs("tiny", compile="yes")
    from vhakit.config import baseline_configs, bcp_configs

    assert vha_configs("paper").train.compile == "auto"  # measured 1.4-1.5x on H100 / H200
    assert bcp_configs("paper").train.compile == baseline_configs("paper").train.compile == "auto"
    # image decoding keeps up with the GPU only in worker processes (25.5 -> 47.9 samples/s, H200)
    assert bcp_configs("paper").train.num_workers == baseline_configs("paper").train.num_workers == 6
    assert vha_configs("paper").train.num_workers == 0  # meshes: the eager trainer = bare step
    assert vha_configs("teaching").train.compile == "off"
    calls = _compile_spy(monkeypatch, lambda m: m)
    train_vha("tiny", data=StickFigureDataset(8), out_dir=tmp_path / "auto", progress=False,
              max_steps=1, compile="auto")
    assert calls == []  # "auto" compiles on CUDA only
    train_vha("tiny", data=StickFigureDataset(8), out_dir=tmp_path / "on", progress=False,
              max_steps=1, compile="on")
    assert len(calls) == 1


def test_compiled_training_equals_eager_and_saves_plain_weights(tmp_path, monkeypatch):
    """A real dynamo trace (aot_eager backend: the graphs run by torch's eager kernels, so the
    results match to rounding) of the tiny VHA for 3 steps; the checkpoint holds the model's own
    keys (no ``_orig_mod.``) and resumes with compile off."""
    real = torch.compile
    calls = _compile_spy(monkeypatch, lambda m: real(m, backend="aot_eager"))
    torch._dynamo.reset()
    # lr 1e-4: Adam turns rounding differences of a nearly cancelling gradient into a step of
    # ~lr (see the DDP test); a wrong graph moves weights by ~lr as well, caught by the moves check
    kw = dict(data=StickFigureDataset(12), progress=False, max_steps=3, save_every=0, lr=1e-4)
    train_vha("tiny", out_dir=tmp_path / "compiled", compile="on", **kw)
    train_vha("tiny", out_dir=tmp_path / "eager", **kw)
    assert len(calls) == 1
    a, b = model_state(tmp_path / "compiled" / "last.pt"), model_state(tmp_path / "eager" / "last.pt")
    assert a.keys() == b.keys() and not any("_orig_mod" in k for k in a)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5)
    moved = max((a[k] - v).abs().max().item() for k, v in model_state_at_init().items())
    assert moved > 5e-5  # training changed the weights: the comparison is not vacuous
    train_vha("tiny", out_dir=tmp_path / "compiled", resume=True, compile="off", **{**kw,
              "max_steps": 4})  # compile may change on resume
    assert load_checkpoint(tmp_path / "compiled" / "last.pt")["position"]["step"] == 4


def test_a_failing_compile_falls_back_to_eager_with_a_warning(tmp_path, monkeypatch):
    class Broken(torch.nn.Module):
        def forward(self, *args, **kwargs):
            raise RuntimeError("Cannot find a working triton installation\nmore details")

    _compile_spy(monkeypatch, lambda m: Broken())
    kw = dict(data=StickFigureDataset(12), progress=False, max_steps=3, save_every=0)
    with pytest.warns(UserWarning, match=r"torch.compile failed \(RuntimeError: Cannot find a "
                      r"working triton installation\); training without it"):
        train_vha("tiny", out_dir=tmp_path / "fallback", compile="on", **kw)
    train_vha("tiny", out_dir=tmp_path / "eager", **kw)
    a, b = model_state(tmp_path / "fallback" / "last.pt"), model_state(tmp_path / "eager" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a)  # the failed attempt left no trace


def test_errors_that_are_not_compile_errors_still_surface(tmp_path, monkeypatch):
    _compile_spy(monkeypatch, lambda m: m)

    class NoPelvis(torch.utils.data.Dataset):
        def __len__(self):
            return 4

        def __getitem__(self, i):
            return {"vertices108": torch.zeros(108, 3)}

    bad = NoPelvis()
    with pytest.raises(ValueError, match="VHA batches need 'vertices108'"):
        train_vha("tiny", data=bad, out_dir=tmp_path / "run", progress=False, compile="on")


@pytest.mark.parametrize("where", ["loss", "gradient"])
def test_a_diverged_run_stops_before_a_checkpoint_stores_it(tmp_path, where):
    """From the 4th step (index 3) the loss is NaN, or the loss is finite and its gradient NaN
    (seen in the weights only). Either way the run raises at step 4, and last.pt stays step 2."""
    from vhakit.config import TrainConfig
    from vhakit.training.trainer import fit

    class Task:
        name, primary_metric, best = "toy", "loss", None

        def compute_loss(self, model, batch, ctx):
            out = model(batch["x"])
            if ctx.step >= 3 and where == "gradient":
                out.register_hook(lambda g: g * math.nan)
            loss = (out ** 2).mean()
            return (loss * math.nan if ctx.step >= 3 and where == "loss" else loss), {}

        def evaluate(self, model, loader, device):
            return {}

    data = [{"x": torch.ones(2)}] * 8
    torch.manual_seed(0)
    log_every = 2 if where == "loss" else 100  # the gradient case: only the checkpoint can see it
    cfg = TrainConfig(batch_size=2, epochs=5, log_every=log_every, save_every=2, device="cpu")
    what = (r"the training loss became nan \(the mean of the last 2 steps\)" if where == "loss"
            else "the weights became NaN or infinite")
    with pytest.raises(FloatingPointError, match=what + r" by step 4; .*last.pt holds the last "
                       r"good checkpoint"):
        fit(torch.nn.Linear(2, 1), Task(), data, cfg, tmp_path, progress=False)
    ck = load_checkpoint(tmp_path / "last.pt")
    assert ck["position"]["step"] == 2
    assert all(torch.isfinite(v).all() for v in ck["model"].values())


def test_paper_style_vha_bcp_and_baseline_forwards_trace_as_one_graph():
    """No data-dependent check splits the compiled forward (each split costs a GPU sync and
    fusion; the paper VHA went from 145 to 164 samples/s on an H100 without them)."""
    import sys

    from vhakit.models.vha import VHA

    cfg = vha_configs("paper", grid=16, channels=(8, 16, 16), stem_channels=8, latent_channels=8)
    model = VHA(cfg.model).train()
    g = torch.Generator().manual_seed(0)
    verts = (torch.rand(2, 108, 3, generator=g) - 0.5) * 1.6
    torch._dynamo.reset()
    expl = torch._dynamo.explain(model)(verts, torch.zeros(2, 3), return_logits=False)
    assert (expl.graph_count, expl.graph_break_count) == (1, 0), expl.break_reasons
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from gpu_paper_scale import bcp_case

    from vhakit.config import baseline_configs
    from vhakit.models.baseline import LMTBaseline
    from vhakit.training.bcp import _run, batch_center

    bcp, _, data = bcp_case("tiny", 2, torch.device("cpu"))
    center = batch_center(data, None, 0.0)
    for net in (bcp.train(), LMTBaseline(baseline_configs("tiny").model).train()):
        torch._dynamo.reset()
        expl = torch._dynamo.explain(lambda net=net: _run(net, data, center))()
        assert (expl.graph_count, expl.graph_break_count) == (1, 0), expl.break_reasons


def test_compile_status_line_for_info(monkeypatch, capsys):
    import importlib.util
    import types

    from vhakit import runtime
    from vhakit.cli import main

    assert "compiles on CUDA only" in runtime.compile_status(torch.device("cpu"))
    real_find = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "triton" else real_find(name, *a))
    assert runtime.compile_status(torch.device("cuda")).startswith("no triton: the paper presets")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object())
    monkeypatch.setitem(sys.modules, "triton", types.SimpleNamespace(__version__="9.9"))
    assert runtime.compile_status(torch.device("cuda")).startswith("ready on CUDA (triton 9.9)")
    monkeypatch.undo()
    assert main(["info"]) == 0
    line = "  compile      " + runtime.compile_status(runtime.default_device())
    assert line in capsys.readouterr().out.splitlines()
