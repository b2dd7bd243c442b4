"""Optional compiled CPU kernels, built once per machine on first use.

The pure-torch soft-argmax (``vhakit.heatmaps``) is bounded by torch's softmax, which writes one
probability per voxel that the marginal sums then read back. ``csrc/soft_argmax_cpu.cpp`` fuses
max, exponential and marginals, so each voxel is exponentiated once and nothing per voxel is
written in the forward pass (benchmarks/bench_heatmaps.py measures both).

It is compiled with ``torch.utils.cpp_extension`` (a C++ compiler and ``ninja``), ~40 s on two
cores, under ``TORCH_EXTENSIONS_DIR`` (default ``~/.cache/torch_extensions``). ``make setup``
builds it (``vhakit build-kernels``). How a build is shared between processes:

* The build is named by a hash of the source's *content*, the compiler flags and the torch and
  Python versions (:func:`build_key`): every checkout of the same source shares one build, and
  file times play no part. A finished build is one library file, moved into place atomically and
  then loaded directly (~0.15 s; no compiler, no lock).
* The compiler runs in a detached builder process (``python -m vhakit.heatmaps.kernels``) that holds
  ``build.lock`` (its PID inside) and compiles in a private folder: stopping the process that
  asked for it (Ctrl-C, a restarted notebook kernel, ``kill -9``) does not stop the build.
* No process waits more than ``VHAKIT_KERNEL_WAIT_S`` (default 45 s; ``vhakit build-kernels``:
  10 min) for a build, and it says once what it waits for. A lock whose process is gone (or
  older than 10 min) is removed at once with a warning. A process that gets no kernel in time,
  or where it cannot be built (no compiler), warns once and uses the pure-torch path, which gives
  the same numbers to float32 rounding.

``VHAKIT_CPU_KERNELS``: ``auto`` (default: build when first needed) or ``off`` (never build or
use it; pure torch everywhere).
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import platform
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import torch

__all__ = ["soft_argmax_cpu", "build_kernels", "kernels_enabled", "kernel_state",
           "kernel_status", "clear_stale_lock", "build_key", "wait_seconds"]

_SOURCE = Path(__file__).with_name("csrc") / "soft_argmax_cpu.cpp"
_OFF = {"0", "off", "false", "no", "never"}
# at::vec picks its SIMD width from CPU_CAPABILITY; build for the level torch itself dispatches to.
_CAPABILITY_FLAGS = {
    "AVX512": ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mfma",
               "-DCPU_CAPABILITY_AVX512", "-DCPU_CAPABILITY=AVX512"],
    "AVX2": ["-mavx2", "-mfma", "-mf16c", "-DCPU_CAPABILITY_AVX2", "-DCPU_CAPABILITY=AVX2"],
}
_LIB_EXT = ".pyd" if sys.platform == "win32" else ".so"
LOCK_NAME = "build.lock"
WAIT_S = 45.0  # default of VHAKIT_KERNEL_WAIT_S: a build takes 25-45 s on two cores
BUILD_WAIT_S = 600.0  # `vhakit build-kernels` waits this long
STALE_LOCK_S = 600.0  # a lock older than this is stale whatever its PID (a reused PID)
_BUSY = 3  # the builder's exit status when another builder holds the lock
_lock = threading.Lock()
_state: dict = {"module": None, "tried": False, "error": None}


def kernels_enabled() -> bool:
    """False when ``VHAKIT_CPU_KERNELS`` is ``off`` (or 0/false/no)."""
    return os.environ.get("VHAKIT_CPU_KERNELS", "auto").strip().lower() not in _OFF


def wait_seconds() -> float:
    """How long a process waits for a build (``VHAKIT_KERNEL_WAIT_S``, default 45 s)."""
    raw = os.environ.get("VHAKIT_KERNEL_WAIT_S", "")
    try:
        value = float(raw) if raw.strip() else WAIT_S
    except ValueError:
        raise ValueError(f"VHAKIT_KERNEL_WAIT_S must be a number of seconds, got {raw!r}; unset "
                         f"it for the default {WAIT_S:.0f} s") from None
    return max(value, 0.0)


def _capability() -> str:
    try:
        cap = torch.backends.cpu.get_cpu_capability()
    except (AttributeError, RuntimeError):
        return "DEFAULT"
    return cap if cap in _CAPABILITY_FLAGS else "DEFAULT"


def _flags(cap: str) -> tuple[list[str], list[str]]:
    """``(cflags, ldflags)`` for a CPU capability level."""
    flags, ld = ["-O3", *_CAPABILITY_FLAGS.get(cap, [])], []
    if platform.system() == "Linux":  # torch's own OpenMP runtime (libgomp.so.1) serves the kernel
        flags.append("-fopenmp")
        ld.append("-fopenmp")
    return flags, ld


def build_key(source: Path | str, cap: str) -> str:
    """12 hex digits of sha256 over the source's bytes, the flags, torch, Python and the platform.

    Identical sources give one key wherever they lie and whatever their file times."""
    cflags, ld = _flags(cap)
    digest = hashlib.sha256(Path(source).read_bytes())
    for part in (cap, *cflags, "|", *ld, torch.__version__, sys.implementation.cache_tag,
                 platform.system(), platform.machine()):
        digest.update(b"\0" + str(part).encode())
    return digest.hexdigest()[:12]


def _name(cap: str) -> str:
    """The extension's name (module, library and build folder) for a CPU capability level."""
    return f"vhakit_soft_argmax_{cap.lower()}_{build_key(_SOURCE, cap)}"


def _build_folder(cap: str) -> Path | None:
    from torch.utils.cpp_extension import _get_build_directory  # imported here: pulls setuptools

    try:
        return Path(_get_build_directory(_name(cap), verbose=False))
    except Exception:  # noqa: BLE001 - a private torch helper: its absence only costs a notice
        return None


def _pid_alive(pid: int) -> bool | None:
    """Whether ``pid`` runs on this machine (a zombie counts as gone); None where unknown."""
    if sys.platform == "win32":
        return None  # os.kill(pid, 0) would terminate it there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return None
    try:  # Linux: a killed builder whose parent has not reaped it yet is a zombie ("Z")
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rindex(")") + 2] not in "ZX"
    except (OSError, ValueError, IndexError):
        return True


def _lock_owner(lock: Path) -> tuple[int | None, str, float] | None:
    """``(pid, host, age_s)`` from a lock file, or None when there is none."""
    try:
        text = lock.read_text()
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return None
    parts = text.split()
    pid = int(parts[0]) if parts and parts[0].isdigit() else None
    return pid, (parts[1] if len(parts) > 1 else ""), age


def _stale_reason(owner: tuple[int | None, str, float], max_age_s: float) -> str | None:
    pid, host, age = owner
    if age > max_age_s:
        return f"{age / 60:.0f} min old"
    if pid is None:  # written in the same call that created it: empty only if that process died
        return "empty" if age > 10.0 else None
    if host == socket.gethostname() and _pid_alive(pid) is False:
        return f"its process {pid} is no longer running"
    return None


def clear_stale_lock(folder: Path, max_age_s: float = STALE_LOCK_S) -> bool:
    """Remove ``folder/build.lock`` when its builder is gone (a killed build): its PID no longer
    runs on this machine, or the lock is older than ``max_age_s``.

    Returns:
        True when a stale lock was removed (with a warning).
    """
    lock = Path(folder) / LOCK_NAME
    owner = _lock_owner(lock)
    reason = None if owner is None else _stale_reason(owner, max_age_s)
    if reason is None:
        return False  # no lock, or a builder is compiling right now
    try:
        lock.unlink()
    except OSError:
        return False
    warnings.warn(f"vhakit: removed the CPU-kernel build lock {lock} ({reason}: a build was "
                  f"interrupted); compiling the kernel again", stacklevel=3)
    return True


def _import(library: Path):
    name = library.stem
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, library)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ImportError as err:
        raise RuntimeError(f"cannot load the built kernel {library} ({err}); delete that file and "
                           f"run `vhakit build-kernels`") from err
    sys.modules[name] = module
    return module


def _spawn_builder(cap: str, verbose: bool) -> subprocess.Popen:
    """Start ``python -m vhakit.heatmaps.kernels`` in its own session, so that it outlives its parent."""
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])  # this checkout's vhakit, not another one
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    quiet = None if verbose else subprocess.DEVNULL
    return subprocess.Popen([sys.executable, "-m", "vhakit.heatmaps.kernels", cap, *(["-v"] * verbose)],
                            env=env, stdin=subprocess.DEVNULL, stdout=quiet, stderr=quiet,
                            start_new_session=True)


def _load(verbose: bool = False, wait_s: float | None = None):
    """The built module: loaded when built, else built by a builder process waited on for at
    most ``wait_s`` (default :func:`wait_seconds`). Raises TimeoutError when it is not there
    in time, RuntimeError when the build failed."""
    wait_s = wait_seconds() if wait_s is None else wait_s
    cap = _capability()
    folder = _build_folder(cap)
    if folder is None:
        raise RuntimeError("torch.utils.cpp_extension cannot make its build folder")
    library, lock = folder / f"{_name(cap)}{_LIB_EXT}", folder / LOCK_NAME
    deadline, builder, spawns, said = time.monotonic() + wait_s, None, 0, set()
    while True:
        if library.exists():
            return _import(library)
        if builder is not None and builder.poll() is not None:
            status, builder = builder.returncode, None
            if status not in (0, _BUSY):
                log = folder / "build.log"
                text = log.read_text(errors="replace") if log.exists() else ""
                raise RuntimeError(text or f"the kernel builder exited with status {status}")
            continue
        owner = _lock_owner(lock)
        if owner is not None and clear_stale_lock(folder):
            continue
        if owner is None and builder is None:
            if spawns == 2:
                raise RuntimeError(f"the build finished without {library.name} in {folder}")
            builder, spawns = _spawn_builder(cap, verbose), spawns + 1
            if "spawn" not in said:
                said.add("spawn")
                print(f"vhakit: compiling the fused CPU soft-argmax kernel (once per machine, ~40 s "
                      f"on 2 cores; waiting up to {wait_s:.0f} s)...", file=sys.stderr, flush=True)
        elif owner is not None and (builder is None or owner[0] != builder.pid) and "wait" not in said:
            said.add("wait")
            print(f"vhakit: process {owner[0]} is compiling the fused CPU soft-argmax kernel "
                  f"({lock}); waiting up to {wait_s:.0f} s for it (VHAKIT_KERNEL_WAIT_S), then "
                  f"this process uses the pure-torch path", file=sys.stderr, flush=True)
        if time.monotonic() >= deadline:
            who = owner[0] if owner is not None else builder.pid if builder is not None else "?"
            raise TimeoutError(f"not built within {wait_s:.0f} s: process {who} is still "
                               f"compiling it into {folder}, for the processes started after it")
        time.sleep(0.2)


def _build(cap: str, verbose: bool) -> int:
    """The builder process: take the lock, compile in a private folder, move the library into
    place. Exit status 0 (built), ``_BUSY`` (another builder holds the lock) or 1 (failed)."""
    from torch.utils.cpp_extension import load

    folder = _build_folder(cap)
    name = _name(cap)
    library, lock = folder / f"{name}{_LIB_EXT}", folder / LOCK_NAME
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return _BUSY
    os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    os.close(fd)
    work = folder / f"build-{os.getpid()}"  # torch's own lock (work/lock) is this process's only
    try:
        for old in folder.glob("build-*"):  # left by killed builders (only the lock holder builds)
            if old.is_dir() and old != work:
                shutil.rmtree(old, ignore_errors=True)
        if library.exists():
            return 0
        work.mkdir()
        cflags, ld = _flags(cap)
        load(name=name, sources=[str(_SOURCE)], extra_cflags=cflags, extra_ldflags=ld,
             build_directory=str(work), verbose=verbose)  # compiles and test-imports it
        os.replace(work / library.name, library)
        (folder / "build.log").unlink(missing_ok=True)
        return 0
    except Exception as err:  # noqa: BLE001 - reported to the waiting process through the log
        (folder / "build.log").write_text(f"{type(err).__name__}: {err}")
        return 1
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if (_lock_owner(lock) or (None,))[0] == os.getpid():
            lock.unlink(missing_ok=True)


def soft_argmax_cpu():
    """The compiled soft-argmax module (``forward``/``backward``), or ``None``.

    ``None`` when disabled (``VHAKIT_CPU_KERNELS=off``), when the build failed, or when it was not
    built within ``VHAKIT_KERNEL_WAIT_S`` (warned once, with the reason). The first call in a
    process may compile it (~40 s, once per machine).
    """
    if not kernels_enabled():
        return None
    if _state["tried"]:
        return _state["module"]
    with _lock:
        if not _state["tried"]:
            _state["module"], _state["error"] = _try_build()
            _state["tried"] = True
            if _state["error"]:
                warnings.warn(f"vhakit: the fused CPU soft-argmax kernel is unavailable "
                              f"({_state['error']}); this process uses the pure-torch path (same "
                              f"results, slower). `vhakit build-kernels --verbose` builds it and "
                              f"shows the compiler's output; VHAKIT_CPU_KERNELS=off silences "
                              f"this.", stacklevel=3)
    return _state["module"]


def _try_build(verbose: bool = False, wait_s: float | None = None):
    wait_s = wait_seconds() if wait_s is None else wait_s  # a mistyped value is an error
    try:
        return _load(verbose=verbose, wait_s=wait_s), None
    except Exception as err:  # noqa: BLE001 - any build failure falls back to pure torch
        lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
        # A compiler failure's message is the whole build log: show its first error line.
        detail = next((ln for ln in lines if "error:" in ln), lines[0] if lines else "")
        return None, f"{type(err).__name__}: {detail}"[:400]


def build_kernels(verbose: bool = False, wait_s: float = BUILD_WAIT_S) -> dict:
    """Build (or load) the kernels now, waiting up to ``wait_s`` seconds, and report.

    Returns:
        ``{"ok": bool, "capability": str, "seconds": float, "error": str | None}``.
    """
    t0 = time.perf_counter()
    if _state["module"] is not None:
        module, error = _state["module"], None
    else:
        module, error = _try_build(verbose=verbose, wait_s=wait_s)
    with _lock:
        _state.update(module=module, error=error, tried=True)
    return {"ok": module is not None, "capability": _capability(),
            "seconds": time.perf_counter() - t0, "error": error}


def kernel_state() -> tuple[str, str]:
    """``(state, line)``: state is ``off``, ``loaded``, ``failed`` (or not built in time),
    ``built`` (cached, not loaded in this process), ``building`` (a builder holds the lock) or
    ``absent``; line is what ``vhakit info`` prints. Never compiles."""
    if not kernels_enabled():
        return "off", "fused soft-argmax off (VHAKIT_CPU_KERNELS=off): pure torch"
    if _state["tried"]:
        if _state["module"] is not None:
            return "loaded", "fused soft-argmax loaded"
        return "failed", f"fused soft-argmax unavailable ({_state['error']}): pure torch"
    cap = _capability()
    folder = _build_folder(cap)
    key = build_key(_SOURCE, cap)
    if folder is not None and (folder / f"{_name(cap)}{_LIB_EXT}").exists():
        return "built", f"fused soft-argmax built ({cap}, build {key}, cached)"
    owner = None if folder is None else _lock_owner(folder / LOCK_NAME)
    if owner is not None and _stale_reason(owner, STALE_LOCK_S) is None:
        return "building", f"fused soft-argmax being compiled by process {owner[0]} ({folder})"
    return "absent", "fused soft-argmax not built yet (built on first use, or `vhakit build-kernels`)"


def kernel_status() -> str:
    """One line for ``vhakit info``: off, loaded, built (cached), failed, or not built yet."""
    return kernel_state()[1]


if __name__ == "__main__":  # the builder process started by _spawn_builder
    sys.exit(_build(sys.argv[1], verbose="-v" in sys.argv[2:]))
