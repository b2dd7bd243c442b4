"""The fused CPU soft-argmax kernel (vhakit/kernels.py, vhakit/csrc/soft_argmax_cpu.cpp) against
the float64 loop reference and the gradchecked pure-torch path; its fallback when it cannot be
built. Grids with an odd last axis exercise the kernel's scalar tail after its SIMD lanes."""
from __future__ import annotations

import os
import shutil
import warnings

import pytest
import torch
from test_heatmaps import _ref_soft_argmax

from vhakit import kernels
from vhakit.cli import main as cli_main
from vhakit.heatmaps import Cuboid, soft_argmax

F64 = torch.float64
# Gz = 32 and 64: whole SIMD vectors (the kernel's register path, AVX2 and AVX-512); 5, 17 and
# 40 (= 32 + 8): vectors plus a scalar tail (its general path).
GRIDS = [(3, 4, 5), (5, 6, 17), (4, 3, 40), (3, 5, 32), (2, 3, 64)]


@pytest.fixture(scope="module")
def kernel():
    """The built kernel. Skips where the machine cannot build extensions (no compiler, no Python
    headers: the kit then runs pure torch); fails when the compiler rejects the kernel's source."""
    if kernels.soft_argmax_cpu() is None:
        if shutil.which("c++") is None and shutil.which("g++") is None:
            pytest.skip("no C++ compiler: the kit uses the pure-torch soft-argmax")
        error = kernels.build_kernels()["error"] or ""
        if "soft_argmax_cpu.cpp" in error:
            pytest.fail(f"the kernel's source does not compile: {error}")
        pytest.skip(f"this machine cannot build torch extensions: {error}")
    return kernels.soft_argmax_cpu()


def _case(res, B=2, N=3, scale=2.0, seed=0):
    gen = torch.Generator().manual_seed(seed)
    cub = Cuboid((torch.rand(B, 3, generator=gen, dtype=F64) - 0.5), 1.8, res)
    x = (scale * torch.randn(B, N, *res, generator=gen, dtype=F64)).float()
    return x, cub


@pytest.mark.parametrize("res", GRIDS)
@pytest.mark.parametrize("beta", [1.0, 2.5])
def test_fused_matches_loop_reference(kernel, res, beta):
    x, cub = _case(res)
    ref = _ref_soft_argmax(x, cub, beta)  # float64 loop over every voxel
    got = soft_argmax(x, cub.to(dtype=torch.float32), beta, fused=True)
    assert got.dtype == torch.float32
    assert (got.double() - ref).abs().max() <= 1e-6


@pytest.mark.parametrize("res", GRIDS)
def test_fused_gradient_matches_float64_autograd(kernel, res):
    x, cub = _case(res, scale=3.0, seed=1)
    weights = torch.randn(2, 3, 3, dtype=F64)
    leaf = x.clone().requires_grad_()
    (soft_argmax(leaf, cub.to(dtype=torch.float32), 1.7, fused=True) * weights.float()).sum().backward()
    ref = x.double().requires_grad_()  # the pure-torch path, gradchecked in test_heatmaps
    (soft_argmax(ref, cub, 1.7, fused=False) * weights).sum().backward()
    scale = ref.grad.abs().max()
    assert scale > 1e-3  # a gradient worth comparing
    assert (leaf.grad.double() - ref.grad).abs().max() <= 1e-5 * scale


def test_fused_gradient_matches_finite_differences(kernel):
    x, cub = _case((4, 5, 19), B=1, N=1, seed=2)
    cub32 = cub.to(dtype=torch.float32)
    leaf = x.clone().requires_grad_()
    soft_argmax(leaf, cub32, 1.3, fused=True)[0, 0, 2].backward()
    idx = [(0, 0, 1, 2, 3), (0, 0, 3, 4, 18), (0, 0, 0, 0, 16)]
    for i in idx:
        def f(delta, i=i):
            y = x.double().clone()
            y[i] += delta
            return soft_argmax(y, cub, 1.3, fused=False)[0, 0, 2].item()
        fd = (f(1e-4) - f(-1e-4)) / 2e-4
        assert abs(leaf.grad[i].item() - fd) <= 1e-5 + 1e-4 * abs(fd)


def test_fused_is_stable_for_peaked_and_masked_logits(kernel):
    x, cub = _case((6, 5, 21), scale=40.0, seed=3)  # beta*x spans ~+-150: float32 exp overflows
    ref = _ref_soft_argmax(x, cub, 1.0)  # without the max subtraction
    assert (soft_argmax(x, cub.to(dtype=torch.float32), fused=True).double() - ref).abs().max() <= 1e-6
    masked = x.clone()
    masked[:, :, :3] = float("-inf")  # voxels with zero probability
    ref = _ref_soft_argmax(masked.clamp_min(-1e30), cub, 1.0)
    got = soft_argmax(masked, cub.to(dtype=torch.float32), fused=True)
    assert torch.isfinite(got).all() and (got.double() - ref).abs().max() <= 1e-6


def test_fused_propagates_nan_per_heatmap(kernel):
    x, cub = _case((4, 4, 18), N=2, seed=4)
    x[1, 0, 2, 3, 17] = float("nan")  # in the scalar tail
    x[0, 1, 1, 1, 1] = float("nan")  # in the SIMD lanes
    got = soft_argmax(x, cub.to(dtype=torch.float32), fused=True)
    torch_path = soft_argmax(x, cub.to(dtype=torch.float32), fused=False)
    assert torch.equal(got.isnan(), torch_path.isnan())
    assert got[1, 0].isnan().all() and got[0, 1].isnan().all() and got[0, 0].isfinite().all()


def test_fused_is_batch_and_thread_consistent(kernel):
    x, cub = _case((8, 8, 24), B=3, N=4, seed=5)
    cub32 = cub.to(dtype=torch.float32)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = soft_argmax(x, cub32, fused=True)
        torch.set_num_threads(2)
        two = soft_argmax(x, cub32, fused=True)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(one, two)  # one heatmap is always summed by one thread, in one order
    item = Cuboid(cub32.center[1:2], cub32.side, cub32.resolution)
    assert torch.equal(soft_argmax(x[1:2], item, fused=True), one[1:2])


def test_default_dispatch_and_errors(kernel, monkeypatch):
    x, cub = _case((4, 4, 4))
    cub32 = cub.to(dtype=torch.float32)
    assert torch.equal(soft_argmax(x, cub32), soft_argmax(x, cub32, fused=True))  # auto = kernel
    with pytest.raises(ValueError, match="float32 CPU"):
        soft_argmax(x.double(), cub, fused=True)
    monkeypatch.setenv("VHAKIT_CPU_KERNELS", "off")
    assert not kernels.kernels_enabled()
    assert torch.equal(soft_argmax(x, cub32), soft_argmax(x, cub32, fused=False))
    with pytest.raises(RuntimeError, match="VHAKIT_CPU_KERNELS=off"):
        soft_argmax(x, cub32, fused=True)


def test_build_failure_warns_once_and_falls_back(monkeypatch):
    def broken(verbose=False):
        raise RuntimeError("Error building extension\n[1/2] c++ ...\nfoo.cpp:1: error: boom")

    monkeypatch.setattr(kernels, "_load", broken)
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": False, "error": None})
    x, cub = _case((4, 5, 6))
    cub32 = cub.to(dtype=torch.float32)
    with pytest.warns(UserWarning, match="error: boom"):
        got = soft_argmax(x, cub32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once per process, not per call
        assert torch.equal(soft_argmax(x, cub32), got)
    assert torch.equal(got, soft_argmax(x, cub32, fused=False))
    assert "failed to build" in kernels.kernel_status()
    assert cli_main(["build-kernels"]) == 1 and cli_main(["build-kernels", "--allow-failure"]) == 0


def test_cli_build_kernels_reports_ready(kernel, capsys):
    assert cli_main(["build-kernels"]) == 0
    assert "kernel ready" in capsys.readouterr().out


def test_torch_compile_traces_the_pure_torch_path(kernel):
    """Under torch.compile the default takes the traceable path (no graph break at the C++ call,
    no warning) and gives the kernel's values and gradients."""
    x, cub = _case((4, 5, 18), seed=6)
    cub32 = cub.to(dtype=torch.float32)
    w = torch.randn(2, 3, 3)

    def loss(logits):
        return (soft_argmax(2.0 * logits, cub32) * w).sum()

    eager = x.clone().requires_grad_()
    loss(eager).backward()
    torch._dynamo.reset()
    compiled = x.clone().requires_grad_()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. dynamo's "graph break" warning
        value = torch.compile(loss, fullgraph=True)(compiled)
    value.backward()
    assert abs(value.item() - loss(x).item()) <= 1e-5
    assert (compiled.grad - eager.grad).abs().max() <= 1e-5 * eager.grad.abs().max()


def test_setup_check_reports_the_kernel(monkeypatch):
    from vhakit.setup_check import check_kernels

    monkeypatch.setenv("VHAKIT_CPU_KERNELS", "off")
    (check,) = check_kernels()
    assert check.status == "info" and "off" in check.detail
    monkeypatch.delenv("VHAKIT_CPU_KERNELS")
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": True, "error": "no g++"})
    (check,) = check_kernels()
    assert check.status == "warn" and "no g++" in check.detail and "build-kernels" in check.fix
    monkeypatch.setattr(kernels, "_state", {"module": object(), "tried": True, "error": None})
    assert check_kernels()[0].status == "ok"


def test_a_killed_builds_lock_is_cleared_only_when_stale(tmp_path):
    lock = tmp_path / "lock"
    assert not kernels.clear_stale_lock(tmp_path)  # no lock: nothing to do
    lock.write_text("")
    assert not kernels.clear_stale_lock(tmp_path) and lock.exists()  # fresh: a build is running
    old = lock.stat().st_mtime - kernels.STALE_LOCK_S - 60
    os.utime(lock, (old, old))
    with pytest.warns(UserWarning, match="stale build lock"):
        assert kernels.clear_stale_lock(tmp_path)
    assert not lock.exists()


def test_kernel_state_names_each_case(kernel, monkeypatch):
    monkeypatch.setenv("VHAKIT_CPU_KERNELS", "off")
    assert kernels.kernel_state()[0] == "off"
    monkeypatch.delenv("VHAKIT_CPU_KERNELS")
    assert kernels.kernel_state() == ("loaded", kernels.kernel_status())  # the fixture loaded it
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": False, "error": None})
    assert kernels.kernel_state()[0] == "built"  # cached by the fixture, not loaded here
    monkeypatch.setattr(kernels, "_build_folder", lambda cap: None)
    assert kernels.kernel_state()[0] == "absent"
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": True, "error": "boom"})
    assert kernels.kernel_state() == ("failed", kernels.kernel_status())
    assert "boom" in kernels.kernel_status()
