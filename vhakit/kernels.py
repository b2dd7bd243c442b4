"""Optional compiled CPU kernels, built once per machine on first use.

The pure-torch soft-argmax (``vhakit.heatmaps``) is bounded by torch's softmax, which writes one
probability per voxel that the marginal sums then read back. ``csrc/soft_argmax_cpu.cpp`` fuses
max, exponential and marginals, so each voxel is exponentiated once and nothing per voxel is
written in the forward pass (benchmarks/bench_heatmaps.py measures both).

It is compiled with ``torch.utils.cpp_extension`` (a C++ compiler and ``ninja``), ~40 s on two
cores, and cached under ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``); later
processes load it in well under a second. ``make setup`` builds it (``vhakit build-kernels``).
Where it cannot be built (no compiler, an unusual CPU) the kit warns once and uses the pure-torch
path, which gives the same numbers to float32 rounding.

``VHAKIT_CPU_KERNELS``: ``auto`` (default: build when first needed) or ``off`` (never build or
use it; pure torch everywhere).
"""
from __future__ import annotations

import os
import platform
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

__all__ = ["soft_argmax_cpu", "build_kernels", "kernels_enabled", "kernel_state",
           "kernel_status", "clear_stale_lock"]

_SOURCE = Path(__file__).with_name("csrc") / "soft_argmax_cpu.cpp"
_OFF = {"0", "off", "false", "no", "never"}
# at::vec picks its SIMD width from CPU_CAPABILITY; build for the level torch itself dispatches to.
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"],
}
_lock = threading.Lock()
_state: dict = {"module": None, "tried": False, "error": None}
# torch's build lock (a file) outlives a build whose process was killed (a restarted notebook
# kernel), and every later load would wait on it forever. A build here takes < 1 min.
STALE_LOCK_S = 600.0


def kernels_enabled() -> bool:
    """False when ``VHAKIT_CPU_KERNELS`` is ``off`` (or 0/false/no)."""
    return os.environ.get("VHAKIT_CPU_KERNELS", "auto").strip().lower() not in _OFF


def _capability() -> str:
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "DEFAULT"
    return cap if cap in _CAPABILITY_FLAGS else "DEFAULT"


def _load(verbose: bool = False):
    from torch.utils.cpp_extension import load  # imported here: it pulls in setuptools

    cap = _capability()
    folder = _build_folder(cap)
    if folder is not None:
        clear_stale_lock(folder)
    flags = ["-O3", *_CAPABILITY_FLAGS.get(cap, [])]
    ld = []
    if platform.system() == "Linux":  # torch's own OpenMP runtime (libgomp.so.1) serves the kernel
        flags.append("-fopenmp")
        ld.append("-fopenmp")
    return load(name=_name(cap), sources=[str(_SOURCE)], extra_cflags=flags, extra_ldflags=ld,
                verbose=verbose)


def _name(cap: str) -> str:
    """The extension's name (and build folder) for a CPU capability level."""
    return f"vhakit_soft_argmax_{cap.lower()}"


def _build_folder(cap: str) -> Path | None:
    from torch.utils.cpp_extension import _get_build_directory

    try:
        return Path(_get_build_directory(_name(cap), verbose=False))
    except Exception:  # noqa: BLE001 - a private torch helper: its absence only costs a notice
        return None


def clear_stale_lock(folder: Path, max_age_s: float = STALE_LOCK_S) -> bool:
    """Remove ``folder/lock`` when it is older than ``max_age_s`` (left by a killed build).

    Returns:
        True when a stale lock was removed (with a warning).
    """
    lock = Path(folder) / "lock"
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    if age <= max_age_s:
        return False  # another process may be building right now: torch waits for it
    try:
        lock.unlink()
    except OSError:
        return False
    warnings.warn(f"vhakit: removed a stale build lock {lock} ({age / 60:.0f} min old; a build "
                  f"was interrupted) and rebuilding the CPU kernel", stacklevel=3)
    return True


def _built_before(cap: str) -> bool:
    """True when a build of the current source is cached (a library newer than the source)."""
    folder = _build_folder(cap)
    if folder is None:
        return False
    libs = [*folder.glob("*.so"), *folder.glob("*.pyd")]
    return bool(libs) and max(f.stat().st_mtime for f in libs) >= _SOURCE.stat().st_mtime


def soft_argmax_cpu():
    """The compiled soft-argmax module (``forward``/``backward``), or ``None``.

    ``None`` when disabled (``VHAKIT_CPU_KERNELS=off``) or when the build failed (warned once, with
    the reason). The first call in a process may compile it (~40 s, once per machine).
    """
    if not kernels_enabled():
        return None
    if _state["tried"]:
        return _state["module"]
    with _lock:
        if not _state["tried"]:
            _state["module"], _state["error"] = _try_build(quiet=False)
            _state["tried"] = True
            if _state["error"]:
                warnings.warn(f"vhakit: the fused CPU soft-argmax kernel is unavailable "
                              f"({_state['error']}); using the pure-torch path (same results, "
                              f"slower). `vhakit build-kernels --verbose` shows the compiler's "
                              f"output; VHAKIT_CPU_KERNELS=off silences this.", stacklevel=3)
    return _state["module"]


def _try_build(quiet: bool, verbose: bool = False):
    fresh = not _built_before(_capability())
    if fresh and not quiet:
        print("vhakit: compiling the fused CPU soft-argmax kernel (once per machine, ~40 s on 2 "
              "cores)...", file=sys.stderr, flush=True)
    try:
        return _load(verbose=verbose), None
    except Exception as err:  # noqa: BLE001 - any build failure falls back to pure torch
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        # A compiler failure's message is the whole build log: show its first error line.
        detail = next((ln for ln in lines if "error:" in ln), lines[0] if lines else "")
        return None, f"{type(err).__name__}: {detail}"[:400]


def build_kernels(verbose: bool = False) -> dict:
    """Build (or load) the kernels now and report what happened.

    Returns:
        ``{"ok": bool, "capability": str, "seconds": float, "error": str | None}``.
    """
    t0 = time.perf_counter()
    module, error = _try_build(quiet=True, verbose=verbose)
    with _lock:
        _state.update(module=module, error=error, tried=True)
    return {"ok": module is not None, "capability": _capability(),
            "seconds": time.perf_counter() - t0, "error": error}


def kernel_state() -> tuple[str, str]:
    """``(state, line)``: state is ``off``, ``loaded``, ``failed``, ``built`` (cached, not loaded
    in this process) or ``absent``; line is what ``vhakit info`` prints. Never compiles."""
    if not kernels_enabled():
        return "off", "fused soft-argmax off (VHAKIT_CPU_KERNELS=off): pure torch"
    if _state["tried"]:
        if _state["module"] is not None:
            return "loaded", "fused soft-argmax loaded"
        return "failed", f"fused soft-argmax failed to build ({_state['error']}): pure torch"
    cap = _capability()
    if _built_before(cap):
        return "built", f"fused soft-argmax built ({cap}, cached)"
    return "absent", "fused soft-argmax not built yet (built on first use, or `vhakit build-kernels`)"


def kernel_status() -> str:
    """One line for ``vhakit info``: off, loaded, built (cached), failed, or not built yet."""
    return kernel_state()[1]
