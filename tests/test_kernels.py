"""The fused CPU soft-argmax kernel (vhakit/heatmaps/kernels.py, vhakit/heatmaps/csrc/soft_argmax_cpu.cpp) against
the float64 loop reference and the gradchecked pure-torch path; its fallback when it cannot be
built. Grids with an odd last axis exercise the kernel's scalar tail after its SIMD lanes."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest
import torch
from test_heatmaps import _ref_soft_argmax

from vhakit.cli import main as cli_main
from vhakit.heatmaps import kernels
from vhakit.heatmaps.core import Cuboid, soft_argmax

F64 = torch.float64
PACKAGE = Path(kernels.__file__).parent
# Gz = 32 and 64: whole SIMD vectors (the kernel's register path, AVX2 and AVX-512); 5, 17 and
# 40 (= 32 + 8): vectors plus a scalar tail (its general path).
GRIDS = [(3, 4, 5), (5, 6, 17), (4, 3, 40), (3, 5, 32), (2, 3, 64)]


@pytest.fixture(scope="module")
def kernel():
    """The built kernel. Skips where the machine cannot build extensions (no compiler, no Python
    headers: the kit then runs pure torch); fails when the compiler rejects the kernel's source."""
    if shutil.which("c++") is None and shutil.which("g++") is None:
        pytest.skip("no C++ compiler: the kit uses the pure-torch soft-argmax")
    report = kernels.build_kernels()  # waits for the build (a busy machine may need > 45 s)
    if not report["ok"]:
        error = report["error"] or ""
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
    def broken(verbose=False, wait_s=None):
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
    assert "unavailable" in kernels.kernel_status() and "boom" in kernels.kernel_status()
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
    from vhakit.teaching.setup_check import check_kernels

    monkeypatch.setenv("VHAKIT_CPU_KERNELS", "off")
    (check,) = check_kernels()
    assert check.status == "info" and "off" in check.detail
    monkeypatch.delenv("VHAKIT_CPU_KERNELS")
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": True, "error": "no g++"})
    (check,) = check_kernels()
    assert check.status == "warn" and "no g++" in check.detail and "build-kernels" in check.fix
    monkeypatch.setattr(kernels, "_state", {"module": object(), "tried": True, "error": None})
    assert check_kernels()[0].status == "ok"


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _write_lock(folder, text, age_s=0.0):
    lock = folder / kernels.LOCK_NAME
    lock.write_text(text)
    if age_s:
        then = time.time() - age_s
        os.utime(lock, (then, then))
    return lock


@pytest.fixture
def live_pid():
    """The PID of a running process (standing in for a builder that is compiling)."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc.pid
    proc.kill()
    proc.wait()


@pytest.fixture
def ext_folder(tmp_path, monkeypatch):
    """The kernel's build folder under a private TORCH_EXTENSIONS_DIR, nothing loaded yet."""
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "ext"))
    monkeypatch.delenv("VHAKIT_CPU_KERNELS", raising=False)
    monkeypatch.setattr(kernels, "_state", {"module": None, "tried": False, "error": None})
    return kernels._build_folder(kernels._capability())


@pytest.mark.skipif(sys.platform == "win32", reason="PIDs are not checked on Windows (age only)")
def test_a_killed_builds_lock_is_cleared_at_once_and_a_live_ones_kept(tmp_path, live_pid):
    host = socket.gethostname()
    assert not kernels.clear_stale_lock(tmp_path)  # no lock: nothing to do
    lock = _write_lock(tmp_path, f"{live_pid} {host}\n")
    assert not kernels.clear_stale_lock(tmp_path) and lock.exists()  # its builder is compiling
    dead = _dead_pid()
    _write_lock(tmp_path, f"{dead} {host}\n")  # seconds old: its age does not matter
    with pytest.warns(UserWarning, match=f"its process {dead} is no longer running"):
        assert kernels.clear_stale_lock(tmp_path)
    assert not lock.exists()
    _write_lock(tmp_path, f"{dead} another-host\n")  # a PID of another machine: only age tells
    assert not kernels.clear_stale_lock(tmp_path)
    _write_lock(tmp_path, f"{live_pid} {host}\n", age_s=kernels.STALE_LOCK_S + 60)  # a reused PID
    with pytest.warns(UserWarning, match="11 min old"):
        assert kernels.clear_stale_lock(tmp_path)
    _write_lock(tmp_path, "")  # created, its PID not written yet
    assert not kernels.clear_stale_lock(tmp_path)
    _write_lock(tmp_path, "", age_s=30)  # its writer died between the two
    with pytest.warns(UserWarning, match="empty"):
        assert kernels.clear_stale_lock(tmp_path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_killed_but_unreaped_builder_counts_as_gone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    assert kernels._pid_alive(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while kernels._pid_alive(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        os.kill(proc.pid, 0)  # still there as a zombie: os.kill alone would call it alive
        assert kernels._pid_alive(proc.pid) is False
    finally:
        proc.wait()


def test_a_live_builder_is_waited_for_a_bounded_time_then_pure_torch(ext_folder, live_pid,
                                                                       monkeypatch, capsys):
    _write_lock(ext_folder, f"{live_pid} {socket.gethostname()}\n")
    monkeypatch.setattr(kernels, "_spawn_builder", lambda *a: pytest.fail("a second builder"))
    state, line = kernels.kernel_state()
    assert state == "building" and f"process {live_pid}" in line
    monkeypatch.setenv("VHAKIT_KERNEL_WAIT_S", "1")
    x, cub = _case((4, 5, 6))
    cub32 = cub.to(dtype=torch.float32)
    t0 = time.monotonic()
    with pytest.warns(UserWarning, match=f"not built within 1 s: process {live_pid} is still"):
        got = soft_argmax(x, cub32)
    assert 1.0 <= time.monotonic() - t0 < 5.0
    err = capsys.readouterr().err
    assert err.count(f"process {live_pid} is compiling") == 1 and "waiting up to 1 s" in err
    assert torch.equal(got, soft_argmax(x, cub32, fused=False))  # the pure-torch path
    with pytest.raises(RuntimeError, match="not built within 1 s"):
        soft_argmax(x, cub32, fused=True)
    monkeypatch.setenv("VHAKIT_KERNEL_WAIT_S", "soon")
    with pytest.raises(ValueError, match="VHAKIT_KERNEL_WAIT_S.*'soon'"):
        kernels.wait_seconds()


def test_a_dead_builders_lock_is_removed_and_the_build_started_again(ext_folder, monkeypatch,
                                                                      capsys):
    dead = _dead_pid()
    lock = _write_lock(ext_folder, f"{dead} {socket.gethostname()}\n")
    started = []

    def builder(cap, verbose):  # stands in for a builder that needs longer than the wait
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"]))
        return started[-1]

    monkeypatch.setattr(kernels, "_spawn_builder", builder)
    try:
        with pytest.warns(UserWarning, match=f"its process {dead} is no longer running"):
            module, error = kernels._try_build(wait_s=1.0)
    finally:
        for proc in started:
            proc.kill()
            proc.wait()
    assert module is None and len(started) == 1 and not lock.exists()
    assert f"not built within 1 s: process {started[0].pid} is still compiling" in error
    assert "compiling the fused CPU soft-argmax kernel" in capsys.readouterr().err


def test_build_key_is_the_sources_content_not_its_path_or_time(tmp_path):
    cap = kernels._capability()
    a, b = tmp_path / "one" / "k.cpp", tmp_path / "two" / "k.cpp"
    for path in (a, b):
        path.parent.mkdir()
        shutil.copyfile(kernels._SOURCE, path)
    later = time.time() + 3600
    os.utime(b, (later, later))
    key = kernels.build_key(kernels._SOURCE, cap)
    assert kernels.build_key(a, cap) == kernels.build_key(b, cap) == key
    assert len(key) == 12 and kernels._name(cap).endswith(f"_{key}")
    b.write_bytes(a.read_bytes() + b"\n")
    assert kernels.build_key(b, cap) != key
    assert kernels.build_key(a, "AVX2") != kernels.build_key(a, "DEFAULT")  # other flags


def test_a_second_checkout_loads_the_same_build_without_compiling(kernel, tmp_path):
    clone = tmp_path / "checkout" / "vhakit"
    (clone / "heatmaps" / "csrc").mkdir(parents=True)
    shutil.copyfile(PACKAGE.parent / "__init__.py", clone / "__init__.py")
    (clone / "heatmaps" / "__init__.py").write_text("")  # the kernel alone, without core
    for rel in ("kernels.py", "csrc/soft_argmax_cpu.cpp"):  # fresh file times
        shutil.copyfile(PACKAGE / rel, clone / "heatmaps" / rel)
    code = ("import vhakit.heatmaps.kernels as k; m = k.soft_argmax_cpu(); "
            "print(k.__file__, m is not None, k.kernel_status())")
    env = {**os.environ, "PYTHONPATH": str(clone.parent), "VHAKIT_KERNEL_WAIT_S": "0"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    path, loaded, status = res.stdout.split(" ", 2)
    assert Path(path) == clone / "heatmaps" / "kernels.py" and loaded == "True", res.stderr
    assert "loaded" in status and "compiling" not in res.stderr and not res.stderr.strip()


@pytest.mark.slow
def test_a_build_killed_midway_never_blocks_the_next_run(kernel, tmp_path):
    """``kill -9`` of ``vhakit build-kernels`` and of its builder while they compile: the next
    process says so, trains on the pure-torch path within 60 s, and the build it starts again
    serves the process after it (which waits for it, bounded)."""
    ext = tmp_path / "ext"
    env = {**os.environ, "TORCH_EXTENSIONS_DIR": str(ext), "VHAKIT_KERNEL_WAIT_S": "5"}
    env.pop("VHAKIT_CPU_KERNELS", None)
    cli = subprocess.Popen([sys.executable, "-m", "vhakit", "build-kernels"], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline, pids = time.monotonic() + 60, []
    try:
        while not pids:  # vhakit's build.lock (its builder's PID inside), or torch's own lock
            assert time.monotonic() < deadline and cli.poll() is None, "no build lock appeared"
            for lock in ext.glob("*/*lock"):
                with contextlib.suppress(OSError):
                    text = lock.read_text().split()
                    if lock.name == "lock":
                        pids = [cli.pid]  # torch builds in the process that asked for it
                    elif text:
                        pids = [cli.pid, int(text[0])]
            time.sleep(0.1)
        time.sleep(2.0)  # into the compile
        for pid in pids:  # a restarted notebook kernel, and then the build dies too
            os.kill(pid, signal.SIGKILL)
        cli.wait()

        t0, seconds, out, err = time.monotonic(), None, tmp_path / "out.txt", tmp_path / "err.txt"
        with out.open("w") as stdout, err.open("w") as stderr:
            run = subprocess.Popen([sys.executable, "-m", "vhakit", "train-vha", "--preset",
                                    "tiny", "--out", str(tmp_path / "run"), "--max-steps", "1"],
                                   env={**env, "PYTHONUNBUFFERED": "1"}, stdout=stdout,
                                   stderr=stderr, cwd=tmp_path)
            try:  # the time to the trained step (the evaluation after it is not timed)
                while run.poll() is None and time.monotonic() < t0 + 300:
                    if seconds is None and "trained to step 1" in out.read_text():
                        seconds = time.monotonic() - t0
                    time.sleep(0.1)
            finally:
                run.kill()
                run.wait()
        assert run.returncode == 0, err.read_text()[-3000:]
        seconds = seconds or time.monotonic() - t0  # it ended between two looks
        text = err.read_text()
        assert seconds < 60, (seconds, text[-3000:])
        assert f"its process {pids[-1]} is no longer running" in text
        assert "not built within 5 s" in text and "this process uses the pure-torch path" in text

        code = ("import torch; from vhakit.heatmaps import Cuboid, soft_argmax; "
                "x = torch.randn(2, 3, 4, 5, 18); c = Cuboid(torch.zeros(2, 3), 1.0, (4, 5, 18)); "
                "print(float((soft_argmax(x, c, fused=True) - soft_argmax(x, c, fused=False))"
                ".abs().max()))")
        res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env={**env, "VHAKIT_KERNEL_WAIT_S": "300"}, timeout=400, cwd=tmp_path)
        assert res.returncode == 0, res.stderr[-3000:]
        assert float(res.stdout) <= 1e-6 and "unavailable" not in res.stderr
        assert len(list(ext.glob("*/vhakit_soft_argmax_*" + kernels._LIB_EXT))) == 1
    finally:
        cli.kill()
        cli.wait()
        for lock in ext.glob(f"*/{kernels.LOCK_NAME}"):  # a builder the test left running
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(lock.read_text().split()[0]), signal.SIGKILL)


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
