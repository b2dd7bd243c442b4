"""BCP and the LMT-style baseline: structure, init from the VHA, gradients, view permutation,
the loss (Eqs. 5-7), a few training steps and the checkpoint round trip."""
from __future__ import annotations

import pytest
import torch
from torch.utils.data import Dataset

from vhakit.config import (
    BaselineTaskConfig,
    BCPTaskConfig,
    baseline_configs,
    bcp_configs,
    vha_configs,
)
from vhakit.geometry.camera import RigJitter, make_rig
from vhakit.models.baseline import LMTBaseline
from vhakit.models.bcp import BodyCodePredictor
from vhakit.models.vha import VHA
from vhakit.training.bcp import (
    BaselineTask,
    BCPTask,
    load_baseline,
    load_bcp,
    predict_vertices,
    train_baseline,
    train_bcp,
)
from vhakit.training.trainer import StepContext

PX, V = 64, 4


class SyntheticViews(Dataset):
    """Random images seen by jittered 4-camera rings around random point clouds (a stand-in for
    a rendered dataset; the models only need the shapes and the geometry to be consistent)."""

    def __init__(self, n: int = 4, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.samples = []
        for _ in range(n):
            pelvis = torch.rand(3, generator=g) - 0.5
            rig = make_rig(V, distance_m=3.5, image_size=(PX, PX), target_m=pelvis,
                           jitter=RigJitter(), generator=g)
            verts = pelvis + 0.3 * torch.randn(108, 3, generator=g)
            self.samples.append({
                "images": torch.rand(V, 3, PX, PX, generator=g), "K": rig.K, "R": rig.R,
                "t": rig.t, "dist": rig.dist.clone(), "vertices108": verts, "pelvis": pelvis,
                "visibility": (torch.rand(V, 108, generator=g) > 0.4).float()})

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict:
        return self.samples[i]


def as_batch(data: Dataset, idx=(0, 1)) -> dict:
    return {k: torch.stack([data[i][k] for i in idx]) for k in data[0]}


def run(model, batch, **kw):
    return model(batch["images"], batch["K"], batch["R"], batch["t"], batch["pelvis"],
                 batch["dist"], **kw)


@pytest.fixture(scope="module")
def data():
    return SyntheticViews(4)


@pytest.fixture(scope="module")
def vha():
    torch.manual_seed(0)
    return VHA(vha_configs("tiny").model)


def make_bcp(vha, encoder=True, **overrides):
    torch.manual_seed(1)
    return BodyCodePredictor(bcp_configs("tiny", **overrides).model, vha.config).init_from_vha(
        vha, encoder=encoder)


def test_init_from_vha_copies_the_encoder(vha):
    fresh = make_bcp(vha, encoder=False)
    bcp = make_bcp(vha)
    for name, ref in vha.encoder.state_dict().items():
        assert torch.equal(bcp.encoder.state_dict()[name], ref), name
        assert torch.equal(bcp.target_encoder.state_dict()[name], ref), name
        assert torch.equal(fresh.target_encoder.state_dict()[name], ref), name
    assert not torch.equal(fresh.encoder.stem.weight, vha.encoder.stem.weight)
    for name, ref in vha.decoder.state_dict().items():
        assert torch.equal(bcp.decoder.state_dict()[name], ref), name
    # copies, not shared storage
    assert bcp.encoder.stem.weight.data_ptr() != vha.encoder.stem.weight.data_ptr()
    with pytest.raises(ValueError, match="differs from this BCP's vha_config"):
        BodyCodePredictor(bcp_configs("tiny").model, vha.config).init_from_vha(
            VHA(vha_configs("tiny", latent_channels=4).model))


def test_folded_lift_equals_lift_then_vha_encoder(vha):
    bcp = make_bcp(vha).double()
    vol = torch.randn(2, bcp.config.feature_channels, 16, 16, 16, dtype=torch.float64)
    ref = bcp.encoder(bcp.lift(vol))  # the 108-channel volume through the exact VHA encoder
    torch.testing.assert_close(bcp.encode_volume(vol), ref, rtol=1e-10, atol=1e-10)


def test_every_trainable_parameter_gets_a_gradient(vha, data):
    batch = as_batch(data)
    for model in (make_bcp(vha), LMTBaseline(baseline_configs("tiny").model)):
        out = run(model, batch)
        loss = out.vertices.sum() + out.visibility_logits.sum()
        if out.latent is not None:
            loss = loss + out.latent.sum()
        loss.backward()
        for name, p in model.named_parameters():
            if p.requires_grad:
                assert p.grad is not None and bool(p.grad.abs().sum() > 0), name
            else:  # only the frozen VHA parts
                assert name.startswith(("decoder.", "target_encoder.")) and p.grad is None, name
    counts = make_bcp(vha).parameter_counts()
    assert counts["frozen"] == sum(p.numel() for p in vha.parameters())


@pytest.mark.parametrize("aggregation", ["softmax", "sum", "mean"])
def test_view_permutation_leaves_the_output_unchanged(vha, data, aggregation):
    batch = as_batch(data)
    perm = torch.tensor([2, 0, 3, 1])
    permuted = {k: v[:, perm] if k in ("images", "K", "R", "t", "dist", "visibility") else v
                for k, v in batch.items()}
    for model in (make_bcp(vha, aggregation=aggregation).eval(),
                  LMTBaseline(baseline_configs("tiny", aggregation=aggregation).model).eval()):
        with torch.no_grad():
            a, b = run(model, batch), run(model, permuted)
        torch.testing.assert_close(a.vertices, b.vertices, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(a.visibility_logits[:, perm], b.visibility_logits)
        if a.latent is not None:
            torch.testing.assert_close(a.latent, b.latent, atol=1e-5, rtol=1e-5)


def _reference_terms(model, batch):
    """Eqs. 5-7's terms by loops: vertex L1 (metres), code L1 and the visibility BCE."""
    with torch.no_grad():
        out = run(model, batch)
        verts, center = batch["vertices108"], batch["pelvis"]
        l_vert_m = sum((out.vertices[b, i] - verts[b, i]).abs().sum() for b in range(2)
                       for i in range(108)) / (2 * 108)
        l_code = None
        if out.latent is not None:
            z = model.target_code(verts, center)
            l_code = (out.latent - z).abs().sum() / z.numel()
        l_vis = torch.nn.functional.binary_cross_entropy(torch.sigmoid(out.visibility_logits),
                                                         batch["visibility"])
    return l_vert_m, l_code, l_vis


@pytest.mark.parametrize("unit", ["mm", "m"])
def test_bcp_loss_is_eqs_5_to_7(vha, data, unit):
    """The vertex L1 in the configured unit (mm: 1000 x metres, the paper's data), lambda = 100
    on the code L1, + the visibility BCE weighed against the vertex L1 in metres; each weighted
    term's share of the loss is reported."""
    model = make_bcp(vha).eval()
    batch = {**as_batch(data), "sample_index": torch.tensor([0, 1])}
    ctx = StepContext(epoch=0, step=0, device=torch.device("cpu"), seed=0)
    task = BCPTask(BCPTaskConfig(jitter_m=0.0, visibility_weight=0.5, vertex_loss_unit=unit))
    loss, metrics = task.compute_loss(model, batch, ctx)
    l_vert_m, l_code, l_vis = _reference_terms(model, batch)
    scale = {"mm": 1000.0, "m": 1.0}[unit]
    terms = {"vertex": scale * l_vert_m, "code": 100 * l_code, "visibility": 0.5 * scale * l_vis}
    total = sum(terms.values())
    torch.testing.assert_close(loss, total, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["loss_vertex"], scale * l_vert_m, rtol=1e-5, atol=1e-6)
    assert set(metrics) == {"loss_visibility", "loss_vertex", "loss_code", "mpve_mm",
                            "share_vertex", "share_code", "share_visibility"}
    for name, term in terms.items():
        torch.testing.assert_close(metrics[f"share_{name}"], term / total, rtol=1e-5, atol=1e-7)
    assert float(sum(metrics[f"share_{n}"] for n in terms)) == pytest.approx(1.0, abs=1e-6)
    if unit == "m":  # lambda = 100 against a vertex L1 in metres: the code term dominates
        assert float(metrics["share_code"]) > 0.9
    _, m2 = BCPTask(BCPTaskConfig(use_code_loss=False)).compute_loss(model, batch, ctx)
    assert "loss_code" not in m2 and "share_code" not in m2
    assert float(m2["share_vertex"] + m2["share_visibility"]) == pytest.approx(1.0, abs=1e-6)


def test_baseline_loss_is_1000_x_the_metre_loss_in_mm(data):
    torch.manual_seed(2)
    model = LMTBaseline(baseline_configs("tiny").model).eval()
    batch = {**as_batch(data), "sample_index": torch.tensor([0, 1])}
    ctx = StepContext(epoch=0, step=0, device=torch.device("cpu"), seed=0)
    loss, metrics = BaselineTask(BaselineTaskConfig(jitter_m=0.0)).compute_loss(model, batch, ctx)
    l_vert_m, _, l_vis = _reference_terms(model, batch)
    torch.testing.assert_close(loss, 1000 * (l_vert_m + l_vis), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(metrics["share_vertex"], l_vert_m / (l_vert_m + l_vis),
                               rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(metrics["share_visibility"], l_vis / (l_vert_m + l_vis),
                               rtol=1e-5, atol=1e-7)


def test_task_configs_check_the_vertex_loss_unit():
    assert BCPTaskConfig().vertex_loss_unit == BaselineTaskConfig().vertex_loss_unit == "mm"
    assert BCPTaskConfig().vertex_loss_scale == 1000.0
    assert BaselineTaskConfig(vertex_loss_unit="m").vertex_loss_scale == 1.0
    for cls in (BCPTaskConfig, BaselineTaskConfig):
        for bad in ("cm", "MM", 1000, None):
            with pytest.raises(ValueError, match=r"vertex_loss_unit must be one of \('mm', 'm'\)"):
                cls(vertex_loss_unit=bad)
    with pytest.raises(ValueError, match="nothing to train"):
        BCPTaskConfig(use_vertex_loss=False, use_code_loss=False)


def test_training_reduces_the_loss_and_checkpoints_round_trip(vha, data, tmp_path):
    res = train_bcp("tiny", data, vha, tmp_path / "bcp", eval_data=data, progress=False,
                    lr=1e-3, batch_size=4, epochs=12, log_every=1, save_every=0)
    rows = [r for r in res.history if r["split"] == "train"]
    # The code L1 falls fast; the vertex L1 (mm, ~90 % of the loss) of random point clouds
    # through an untrained VHA decoder barely moves.
    assert rows[-1]["loss"] < rows[0]["loss"], (rows[0], rows[-1])
    assert rows[-1]["loss_code"] < 0.7 * rows[0]["loss_code"], (rows[0], rows[-1])
    for row in rows:  # every log row has the terms' shares, summing to 1
        shares = [row[f"share_{n}"] for n in ("vertex", "code", "visibility")]
        assert min(shares) > 0 and sum(shares) == pytest.approx(1.0, abs=1e-5), row
    assert "code_l1" in [r for r in res.history if r["split"] == "eval"][-1]
    model = load_bcp(tmp_path / "bcp" / "last.pt", device="cpu")
    pred = predict_vertices(model, data, batch_size=3)
    assert pred.shape == (4, 108, 3)
    with torch.no_grad():
        ref = run(res.model.eval(), as_batch(data, range(4))).vertices
    torch.testing.assert_close(pred, ref, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="not a 'baseline' run"):
        load_baseline(tmp_path / "bcp")


def test_baseline_trains_and_round_trips(data, tmp_path):
    res = train_baseline("tiny", data, tmp_path / "base", progress=False, lr=1e-3, batch_size=4,
                         epochs=6, log_every=1, save_every=0)
    rows = [r for r in res.history if r["split"] == "train"]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert all(r["share_vertex"] + r["share_visibility"] == pytest.approx(1.0, abs=1e-5)
               for r in rows)
    model = load_baseline(tmp_path / "base", device="cpu")
    torch.testing.assert_close(predict_vertices(model, data), predict_vertices(res.model, data))


def test_bad_inputs(vha, data):
    bcp = make_bcp(vha)
    batch = as_batch(data)
    with pytest.raises(ValueError, match=r"K must have shape \(2, 4, 3, 3\)"):
        bcp(batch["images"], batch["K"][:, :3], batch["R"], batch["t"], batch["pelvis"])
    with pytest.raises(ValueError, match="center must have shape"):
        bcp(batch["images"], batch["K"], batch["R"], batch["t"], batch["pelvis"][0])
    with pytest.raises(TypeError, match="vha is required"):
        train_bcp("tiny", data, None, "unused")


def test_cli_train_bcp_and_baseline(tmp_path, capsys):
    from vhakit.cli import main
    from vhakit.data.build import build_dataset
    from vhakit.training.trainer import read_run
    from vhakit.training.vha import train_vha

    data_dir = build_dataset("tiny", "h36m_like", "train", tmp_path / "data", max_frames=4,
                             progress=False)
    train_vha("tiny", str(data_dir), tmp_path / "vha", progress=False, max_steps=1)
    assert main(["train-bcp", "--preset", "tiny", "--data", str(data_dir), "--vha",
                 str(tmp_path / "vha"), "--out", str(tmp_path / "bcp"), "--no-code-loss",
                 "--no-init"]) == 0
    task = read_run(tmp_path / "bcp", "bcp")[1]["run_config"]["task_config"]
    assert (task["use_code_loss"], task["init_from_vha"], task["use_vertex_loss"]) == (False, False, True)
    assert main(["train-baseline", "--preset", "tiny", "--data", str(data_dir), "--eval-data",
                 str(data_dir), "--out", str(tmp_path / "base")]) == 0
    assert "best eval MPVE" in capsys.readouterr().out
    again = ["train-baseline", "--preset", "tiny", "--data", str(data_dir), "--out", str(tmp_path / "base")]
    assert main(again) == 1  # the folder holds a run: a message, not a traceback
    assert "--resume" in capsys.readouterr().err
    assert main([*again, "--overwrite"]) == 0
    assert main(["train-bcp", "--preset", "tiny", "--data", str(tmp_path / "missing"), "--vha",
                 str(tmp_path / "vha")]) == 1


def test_resume_continues_the_run(vha, data, tmp_path):
    first = train_bcp("tiny", data, vha, tmp_path / "r", progress=False, max_steps=2, save_every=1,
                      log_every=1)
    again = train_bcp("tiny", data, vha, tmp_path / "r", resume=True, progress=False, max_steps=3,
                      save_every=1, log_every=1)
    assert max(r["step"] for r in first.history) == 2
    assert max(r["step"] for r in again.history) == 3
    with pytest.raises(ValueError, match="different configuration"):
        train_bcp("tiny", data, vha, tmp_path / "r", resume=True, progress=False, max_steps=4,
                  log_every=1, aggregation="sum")


def test_resuming_a_run_from_before_the_unit_field_keeps_metres(data, tmp_path):
    """A run config without ``vertex_loss_unit`` (written before it existed) trained its vertex
    L1 in metres: resuming it continues in metres and keeps the config's old form."""
    from vhakit.training.trainer import load_checkpoint, save_checkpoint

    train_baseline("tiny", data, tmp_path / "old", progress=False, max_steps=1, save_every=1,
                   log_every=1, vertex_loss_unit="m")
    ckpt_path = tmp_path / "old" / "last.pt"
    ckpt = load_checkpoint(ckpt_path)
    del ckpt["run_config"]["task_config"]["vertex_loss_unit"]
    save_checkpoint(ckpt_path, {k: v for k, v in ckpt.items() if k != "format"})
    again = train_baseline("tiny", data, tmp_path / "old", resume=True, progress=False,
                           max_steps=2, save_every=1, log_every=1)
    rows = [r for r in again.history if r["split"] == "train"]
    assert [r["step"] for r in rows] == [1, 2]
    # metres: the vertex L1 of a 0.3 m point cloud is below 3 (it would be ~1000x that in mm)
    assert rows[1]["loss_vertex"] < 3, rows
    assert "vertex_loss_unit" not in load_checkpoint(ckpt_path)["run_config"]["task_config"]
    with pytest.raises(ValueError, match="vertex_loss_unit: checkpoint '<absent>', this run 'mm'"):
        train_baseline("tiny", data, tmp_path / "old", resume=True, progress=False, max_steps=3,
                       log_every=1, vertex_loss_unit="mm")
    # a new run in the same folder layout stores the unit
    train_baseline("tiny", data, tmp_path / "new", progress=False, max_steps=1, log_every=1)
    task = load_checkpoint(tmp_path / "new" / "last.pt")["run_config"]["task_config"]
    assert task["vertex_loss_unit"] == "mm"
