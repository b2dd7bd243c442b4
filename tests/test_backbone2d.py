"""The pose-pretrained 2D backbone: the 2D soft-argmax against closed forms, the projection
targets against OpenCV, pretraining learns, weights reach BCP / the baseline (frozen or not),
clear errors, and every shipped backbone reproduces its card's 2D accuracy."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from vhakit.config import MultiViewConfig, bcp_configs
from vhakit.training.backbone2d import (
    POSE2D_DIR,
    Pose2DNet,
    Pose2DTask,
    _views_and_targets,
    evaluate_backbone,
    export_backbone,
    load_backbone_weights,
    pretrain_backbone,
    read_backbone_file,
    soft_argmax_2d,
)


@pytest.fixture(scope="module")
def tiny_views(tmp_path_factory):
    from vhakit.data.build import build_dataset

    root = tmp_path_factory.mktemp("bb2d")
    return build_dataset("tiny", "h36m_like", "train", root / "data", max_frames=6, progress=False)


@pytest.fixture(scope="module")
def pretrained(tiny_views, tmp_path_factory):
    """A tiny backbone pretrained 80 steps on 6 frames (24 views), evaluated on the same."""
    out = tmp_path_factory.mktemp("bb2d-run") / "run"
    torch.manual_seed(0)
    result = pretrain_backbone("tiny", tiny_views, out, eval_data=tiny_views, progress=False,
                               max_steps=80, epochs=1000, eval_every=40, log_every=40)
    return out, result


def test_soft_argmax_2d_closed_forms():
    logits = torch.full((1, 2, 5, 7), -1e4)
    logits[0, 0, 3, 2] = 0.0  # a single peak at row 3, column 2
    logits[0, 1] = 0.0  # uniform
    uv = soft_argmax_2d(logits, (4, 0.0))
    assert torch.allclose(uv[0, 0], torch.tensor([8.0, 12.0]))  # (4 * 2, 4 * 3)
    assert torch.allclose(uv[0, 1], torch.tensor([12.0, 8.0]))  # mean of 0, 4, ..., 24 and of 0..16
    # two equal peaks: their midpoint, with the offset of the pixel-centre convention
    logits = torch.full((1, 1, 4, 4), -1e4)
    logits[0, 0, 1, 0] = logits[0, 0, 1, 2] = 0.0
    assert torch.allclose(soft_argmax_2d(logits, (4, 1.5))[0, 0], torch.tensor([5.5, 5.5]))


def test_targets_are_the_opencv_projections(tiny_views):
    from vhakit.data.datasets import MultiViewDataset

    s = MultiViewDataset(tiny_views)[0]
    batch = {k: v[None] for k, v in s.items() if torch.is_tensor(v)}
    images, uv, side = _views_and_targets(batch)
    V = s["K"].shape[0]
    assert images.shape == (V, 3, side, side) and uv.shape == (V, 108, 2)
    for v in range(V):
        rvec, _ = cv2.Rodrigues(s["R"][v].double().numpy())
        ref, _ = cv2.projectPoints(s["vertices108"].double().numpy(), rvec,
                                   s["t"][v].double().numpy(), s["K"][v].double().numpy(),
                                   s["dist"][v].double().numpy())
        np.testing.assert_allclose(uv[v].numpy(), ref[:, 0], atol=1e-3)


def test_pretraining_learns_2d_positions(pretrained, tiny_views):
    from torch.utils.data import DataLoader

    from vhakit.data.datasets import MultiViewDataset

    _, result = pretrained
    evals = [r["err2d_px"] for r in result.history if r["split"] == "eval"]
    assert len(evals) == 2
    torch.manual_seed(0)
    fresh = Pose2DNet(bcp_configs("tiny").model).eval()
    loader = DataLoader(MultiViewDataset(tiny_views), batch_size=4)
    untrained = Pose2DTask().evaluate(fresh, loader, torch.device("cpu"))["err2d_px"]
    assert evals[-1] < 0.6 * untrained, (evals, untrained)  # 80 steps: well under half-way


def test_weights_reach_bcp_and_baseline_and_freeze(pretrained, tiny_views, tmp_path):
    from vhakit.training.bcp import train_baseline, train_bcp
    from vhakit.training.vha import train_vha

    run, result = pretrained
    payload = read_backbone_file(run)
    assert payload["steps"] == 80
    ref = {k: v.clone() for k, v in result.model.backbone.state_dict().items()}
    for k, v in payload["backbone"].items():
        assert torch.equal(v, ref[k])
    exported = export_backbone(run, tmp_path / "bb.pt", {"data": "test"})
    assert read_backbone_file(exported)["card"] == {"data": "test"}

    vha = train_vha("tiny", str(tiny_views), tmp_path / "vha", progress=False, max_steps=1)
    bcp = train_bcp("tiny", tiny_views, vha.model, tmp_path / "bcp", progress=False, max_steps=3,
                    backbone_init=str(exported), freeze_backbone=True).model
    base = train_baseline("tiny", tiny_views, tmp_path / "base", progress=False, max_steps=3,
                          backbone_init=str(run)).model
    frozen = bcp.front.backbone.state_dict()
    assert all(torch.equal(frozen[k], ref[k]) for k in ref)  # loaded and never updated
    moved = base.front.backbone.state_dict()
    assert any(not torch.equal(moved[k], ref[k]) for k in ref if ref[k].is_floating_point())
    # the run config records the initialisation; a run without it keeps the old config form
    from vhakit.training.trainer import read_run

    rc = read_run(tmp_path / "bcp", "bcp")[1]["run_config"]["model"]
    assert rc["backbone_init"] == str(exported) and rc["freeze_backbone"] is True
    plain = train_baseline("tiny", tiny_views, tmp_path / "plain", progress=False, max_steps=1)
    rc = read_run(plain.out_dir, "baseline")[1]["run_config"]["model"]
    assert "backbone_init" not in rc and "freeze_backbone" not in rc


def test_clear_errors(pretrained, tmp_path):
    run, _ = pretrained
    with pytest.raises(ValueError, match="freeze_backbone=True needs backbone_init"):
        MultiViewConfig(freeze_backbone=True)
    teaching = bcp_configs("teaching").model
    net = Pose2DNet(teaching)
    with pytest.raises(ValueError, match="other widths.*backbone_channels"):
        load_backbone_weights(net.backbone, teaching, run)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_backbone_weights(net.backbone, teaching, tmp_path / "missing")
    odd = bcp_configs("tiny", backbone_channels=(8, 8, 8)).model
    with pytest.raises(FileNotFoundError, match="pose-pretrained backbones for the"):
        load_backbone_weights(Pose2DNet(odd).backbone, odd, "pose2d")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be read as a torch file"):
        read_backbone_file(tmp_path / "junk.pt")


@pytest.mark.parametrize("path", sorted(POSE2D_DIR.glob("backbone2d-*.pt")), ids=lambda p: p.stem)
def test_shipped_backbone_reproduces_its_card(path, tmp_path):
    """The card's check: the 2D accuracy on the first frames of a data set the test rebuilds."""
    from vhakit.data.build import build_dataset

    payload = read_backbone_file(path)
    check = payload["card"]["check"]
    data = build_dataset(check["data_preset"], check["split"], check["part"], tmp_path / "d",
                         seed=check["seed"], max_frames=check["frames"], progress=False)
    got = evaluate_backbone(path, data)
    assert got["err2d_px"] == pytest.approx(check["err2d_px"], abs=1e-3)
    assert got["pck"] == pytest.approx(check["pck"], abs=1e-4)
    # the shipped file is what backbone_init="pose2d" picks for its widths
    cfg = MultiViewConfig(**payload["config"])
    assert read_backbone_file("pose2d", cfg)["config"] == payload["config"]


def test_cli_pretrain_backbone(tiny_views, tmp_path, capsys):
    from vhakit.cli import main
    from vhakit.training.trainer import read_run

    out = tmp_path / "bb"
    args = ["pretrain-backbone", "--preset", "tiny", "--data", str(tiny_views), "--eval-data",
            str(tiny_views), "--out", str(out), "--max-steps", "2"]
    assert main([*args, "--set", "lr=5e-4"]) == 0
    assert f"--set backbone_init={out}" in capsys.readouterr().out
    ckpt = read_run(out, "pose2d")[1]
    assert ckpt["position"]["step"] == 2 and ckpt["run_config"]["train"]["lr"] == 5e-4
    assert main(args) == 1  # a used folder: a message naming the flags
    assert "--resume" in capsys.readouterr().err


@pytest.mark.parametrize("preset, px", [("tiny", 64), ("teaching", 128)])
def test_pretraining_data_is_held_out_prior_pool_at_the_presets_cameras(preset, px, tmp_path,
                                                                         monkeypatch):
    """The default data: prior_pool's test part (never trained on by the VHA, no h36m_like or
    lightstage_like frame) at the teaching size, rendered at the preset's image size."""
    import vhakit.data.build as build
    from vhakit.training.backbone2d import pretraining_data

    calls = []
    monkeypatch.setattr(build, "build_dataset",
                        lambda cfg, split, part, out, **kw: calls.append((cfg, split, part, out, kw))
                        or out)
    out = pretraining_data(preset, tmp_path, progress=False)
    (cfg, split, part, folder, kw), = calls
    assert (split, part, cfg.size, cfg.image_px) == ("prior_pool", "test", "teaching", px)
    assert kw["images"] is True and kw["seed"] == 0
    assert out == folder == tmp_path / preset / "pose2d-prior_pool-test-s0"


class _FakeTorchvisionBlock(torch.nn.Module):
    """torchvision's BasicBlock layout (conv1/bn1/conv2/bn2, optional downsample)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        nn = torch.nn
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                         nn.BatchNorm2d(cout)) if stride != 1 else None)

    def forward(self, x):
        y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(y + (x if self.downsample is None else self.downsample(x)))


def _fake_resnet18(weights=None):
    """A stand-in for ``torchvision.models.resnet18`` with its module names and shapes (this
    machine has no torchvision build for its torch): conv1 7x7/2, bn1, relu, maxpool, layer1-4, fc."""
    nn = torch.nn
    m = nn.Module()
    m.conv1, m.bn1, m.relu = nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU()
    m.maxpool = nn.MaxPool2d(3, 2, 1)
    widths = [(64, 64, 1), (64, 128, 2), (128, 256, 2), (256, 512, 2)]
    for i, (cin, cout, stride) in enumerate(widths, 1):
        setattr(m, f"layer{i}", nn.Sequential(_FakeTorchvisionBlock(cin, cout, stride),
                                              _FakeTorchvisionBlock(cout, cout, 1)))
    m.fc = nn.Linear(512, 1000)
    for p in m.parameters():  # not the init of the kit's copy: loading must change the weights
        torch.nn.init.normal_(p, std=0.05)
    for mod in m.modules():
        if isinstance(mod, nn.BatchNorm2d):
            mod.running_mean.normal_(0, 0.1)
            mod.running_var.uniform_(0.5, 1.5)
    return m


def test_torchvision_resnet18_state_dict_file_loads_into_the_backbone(tmp_path, monkeypatch):
    """backbone_init = a torchvision ResNet-18 state_dict file, for backbone="torchvision-
    resnet18": the stem and first two stages get its weights, so the kit's H/8 features equal
    torchvision's layer2 output on the same image; layer3/4 and fc are ignored."""
    import sys
    import types

    from vhakit.models.backbone import ResNetBackbone, normalize_images
    from vhakit.training.backbone2d import load_backbone_weights, torchvision_resnet18_weights

    fake = types.ModuleType("torchvision.models")
    fake.resnet18 = _fake_resnet18
    monkeypatch.setitem(sys.modules, "torchvision", types.ModuleType("torchvision"))
    monkeypatch.setitem(sys.modules, "torchvision.models", fake)
    torch.manual_seed(0)
    tv = _fake_resnet18().eval()
    torch.save(tv.state_dict(), tmp_path / "resnet18.pt")
    cfg = MultiViewConfig(backbone="torchvision-resnet18", backbone_init=str(tmp_path / "resnet18.pt"))
    backbone = ResNetBackbone(cfg.feature_channels, kind="torchvision-resnet18", norm="batch").eval()
    head_before = {k: v.clone() for k, v in backbone.state_dict().items()
                   if k.startswith(("head.", "lateral."))}
    card = load_backbone_weights(backbone, cfg, cfg.backbone_init)
    assert card["loaded"] == len(torchvision_resnet18_weights(tv.state_dict()))
    x = normalize_images(torch.rand(2, 3, 64, 64))
    with torch.no_grad():
        want = tv.layer2(tv.layer1(tv.maxpool(tv.relu(tv.bn1(tv.conv1(x))))))
        got = backbone.stage8(backbone.stage4(backbone.stem(x)))
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    for k, v in backbone.state_dict().items():  # the kit's own layers stay as they were
        if k in head_before:
            torch.testing.assert_close(v, head_before[k], rtol=0, atol=0)
    # the renaming by itself, and the errors
    names = torchvision_resnet18_weights(tv.state_dict())
    assert "stem.0.weight" in names and "stage4.1.0.conv1.weight" in names
    assert "stage8.0.downsample.0.weight" in names and not any("fc" in k for k in names)
    with pytest.raises(ValueError, match="not a torchvision ResNet-18"):
        torchvision_resnet18_weights({"fc.weight": torch.zeros(1)})
    bad = {k: v for k, v in tv.state_dict().items() if not k.startswith("layer2.1.")}
    torch.save(bad, tmp_path / "cut.pt")
    with pytest.raises(ValueError, match="lacks"):
        load_backbone_weights(backbone, cfg, tmp_path / "cut.pt")
