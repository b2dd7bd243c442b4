"""The CUDA path against the CPU one (skipped without a GPU; run on a GPU machine with
``python -m pytest tests/test_cuda.py``): the sparse stem in both forms, the soft-argmax and a
VHA training step give the CPU's numbers."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from test_blocks import dense_volume

from vhakit.heatmaps.core import Cuboid, soft_argmax
from vhakit.models.blocks import sparse_conv3d

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
CUDA = torch.device("cuda")


@pytest.mark.parametrize("method,side", [("entries", 1), ("window", 3), ("auto", 3)])
def test_sparse_conv3d_on_cuda_matches_conv3d(method, side):
    """float64: the sparse convolution of splats on the GPU against F.conv3d of the loop-built
    dense volume on the CPU (test_blocks.dense_volume), values and gradients."""
    g = torch.Generator().manual_seed(side)
    B, N, C, grid, k = 2, 7, 5, (12, 10, 9), 7
    lo = torch.stack([torch.randint(0, n - side + 1, (B, N), generator=g) for n in grid], -1)
    lo[0, 0] = 0
    lo[1, 1] = torch.tensor(grid) - side
    idx = lo[:, :, None] + torch.randint(0, side, (B, N, side ** 3, 3), generator=g)
    vals = torch.rand(B, N, side ** 3, generator=g, dtype=torch.float64).requires_grad_()
    W = torch.randn(C, N, k, k, k, generator=g, dtype=torch.float64).requires_grad_()
    ref = F.conv3d(dense_volume(idx, vals, grid), W, stride=2, padding=3)
    go = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    g_ref = torch.autograd.grad(ref, (W, vals), go)
    W_gpu, vals_gpu = (t.detach().to(CUDA).requires_grad_() for t in (W, vals))
    out = sparse_conv3d(idx.to(CUDA), W_gpu, grid, vals_gpu, stride=2, padding=3, method=method)
    assert out.is_cuda
    torch.testing.assert_close(out.cpu(), ref, rtol=0, atol=1e-10)
    for a, b in zip(torch.autograd.grad(out, (W_gpu, vals_gpu), go.to(CUDA)), g_ref, strict=True):
        torch.testing.assert_close(a.cpu(), b, rtol=0, atol=1e-9)


def test_soft_argmax_on_cuda_matches_cpu_and_autocast_gives_float32():
    g = torch.Generator().manual_seed(0)
    cub = Cuboid((torch.rand(3, 3, generator=g) - 0.5), 2.0, 24)
    logits = 3 * torch.randn(3, 108, 24, 24, 24, generator=g)
    cpu = soft_argmax(logits, cub, beta=2.0)
    gpu = soft_argmax(logits.to(CUDA), cub.to(CUDA), beta=2.0)
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=0, atol=1e-6)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        amp = soft_argmax(logits.to(CUDA).bfloat16(), cub.to(CUDA), beta=2.0)
    assert amp.dtype == torch.float32  # accumulated in float32: exact for the rounded logits
    rounded = soft_argmax(logits.bfloat16().float(), cub, beta=2.0)
    torch.testing.assert_close(amp.cpu(), rounded, rtol=0, atol=1e-6)


def test_vha_training_step_on_cuda_matches_cpu():
    """The tiny VHA (Gaussian input: the window form of the stem) and the paper-style
    one-hot stem at stride 1: loss and gradients of the float64 model on CUDA equal the CPU's;
    a float32 step under bf16 autocast runs and its loss is close."""
    from vhakit.config import vha_configs
    from vhakit.models.vha import VHA
    from vhakit.training.trainer import StepContext
    from vhakit.training.vha import VHATask

    for overrides in ({}, {"input_encoding": "onehot", "stem_stride": 1, "norm": "batch"}):
        cfg = vha_configs("tiny", **overrides)
        torch.manual_seed(0)
        model = VHA(cfg.model).double()
        g = torch.Generator().manual_seed(1)
        pelvis = (torch.rand(4, 3, generator=g) - 0.5) * 0.2
        data = {"vertices108": pelvis[:, None] + (torch.rand(4, 108, 3, generator=g) - 0.5) * 1.4,
                "pelvis": pelvis, "sample_index": torch.arange(4)}
        task = VHATask(cfg.task)
        losses, grads = [], []
        for dev in ("cpu", "cuda"):
            model.to(dev).zero_grad()
            batch = {k: (v.double() if v.is_floating_point() else v).to(dev) for k, v in data.items()}
            loss, _ = task.compute_loss(model, batch, StepContext(epoch=0, step=0,
                                                                  device=torch.device(dev), seed=0))
            loss.backward()
            losses.append(loss.item())
            grads.append(torch.cat([p.grad.flatten().cpu() for p in model.parameters()]))
        # float64 model; the augmentation and the cuboid's voxel indices are float32 on both
        # devices (measured on an H200: 1.7e-8 relative), a wrong kernel would be >> 1e-3
        assert losses[1] == pytest.approx(losses[0], rel=1e-6), overrides
        assert (grads[1] - grads[0]).norm() <= 1e-5 * grads[0].norm(), overrides
        model.float().to(CUDA)
        batch = {k: v.to(CUDA) for k, v in data.items()}
        with torch.autocast("cuda", dtype=torch.bfloat16):
            amp_loss, _ = task.compute_loss(model, batch, StepContext(epoch=0, step=0,
                                                                      device=CUDA, seed=0))
        amp_loss.backward()
        assert amp_loss.item() == pytest.approx(losses[0], rel=0.05), overrides
        assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_compiled_training_on_cuda_matches_eager(tmp_path, monkeypatch):
    """``TrainConfig.compile="on"`` with inductor on the GPU: 3 steps of the tiny VHA with the
    paper-style stem follow the eager run (TF32 off: float32 on both), without falling back (no
    warning); the tiny BCP's compiled loss equals its eager loss."""
    import json
    import warnings

    from train_worker import StickFigureDataset

    from vhakit.config import vha_configs
    from vhakit.models.vha import VHA
    from vhakit.training.trainer import load_checkpoint
    from vhakit.training.vha import train_vha

    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    arch = dict(input_encoding="onehot", stem_stride=1, norm="batch")
    kw = dict(data=StickFigureDataset(12), progress=False, max_steps=3, save_every=0, lr=1e-4,
              device="cuda", log_every=1, **arch)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train_vha("tiny", out_dir=tmp_path / "compiled", compile="on", **kw)
    assert not [w for w in caught if "torch.compile failed" in str(w.message)]  # no fallback
    train_vha("tiny", out_dir=tmp_path / "eager", compile="off", **kw)
    losses = [[r["loss"] for r in json.loads((tmp_path / run / "metrics.json").read_text())[
        "history"]] for run in ("compiled", "eager")]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-4), losses
    a = load_checkpoint(tmp_path / "compiled" / "last.pt")["model"]
    b = load_checkpoint(tmp_path / "eager" / "last.pt")["model"]
    assert not any("_orig_mod" in k for k in a)
    torch.manual_seed(vha_configs("tiny").train.seed)
    init = VHA(vha_configs("tiny", **arch).model).state_dict()
    keys = [k for k in a if a[k].is_floating_point()]
    diff = torch.cat([(a[k] - b[k]).flatten() for k in keys]).norm()
    update = torch.cat([(b[k] - init[k]).flatten() for k in keys]).norm()
    print(f"compiled vs eager: losses {losses}, |w_c - w_e| / |w_e - w_0| = {diff / update:.2e}")
    assert update > 1e-3 and diff <= 0.02 * update  # the 3 updates agree to 2%

    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from gpu_paper_scale import bcp_case

    from vhakit.training.trainer import StepContext

    model, task, data = bcp_case("tiny", 2, CUDA)
    ctx = StepContext(epoch=0, step=0, device=CUDA, seed=0)
    eager, _ = task.compute_loss(model, data, ctx)
    compiled, _ = task.compute_loss(torch.compile(model), data, ctx)
    compiled.backward()
    assert compiled.item() == pytest.approx(eager.item(), rel=1e-4)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
