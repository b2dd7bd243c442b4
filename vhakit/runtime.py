"""Run-time facts in one place: the device to use, the fast (CI) switch, package versions."""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform

import torch

__all__ = ["default_device", "fast_mode", "versions", "compiling", "compile_status"]


def default_device(prefer: str | None = None) -> torch.device:
    """The device to compute on: ``prefer`` if given, else CUDA, then Apple MPS, then the CPU.

    ``VHAKIT_DEVICE`` (e.g. ``cpu``) overrides the automatic choice.
    """
    choice = prefer or os.environ.get("VHAKIT_DEVICE")
    if choice:
        return torch.device(choice)
    if torch.cuda.is_available():
        return torch.device("cuda")
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def compiling() -> bool:
    """True while ``torch.compile`` traces the calling code: data-dependent input checks (a
    ``bool(tensor)`` that would break the graph and sync the GPU) are skipped then."""
    is_compiling = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(is_compiling and is_compiling())


def compile_status(device: torch.device) -> str:
    """One line for ``vhakit info``: will ``TrainConfig.compile`` ("auto" in the paper presets)
    compile the training step on ``device``?"""
    if device.type != "cuda":
        return (f"not used on {device.type} by default (compile='auto' compiles on CUDA only; "
                "on 2 CPU cores compiling costs minutes for ~1.1x)")
    spec = importlib.util.find_spec("triton")
    if spec is None:
        return ("no triton: the paper presets' compile='auto' will warn and train eagerly "
                "(~1.7x slower for the VHA); pip install triton, or pass --compile off")
    try:
        version = importlib.import_module("triton").__version__
    except Exception:  # noqa: BLE001 - a broken install is reported, not raised
        version = "unknown version"
    return f"ready on CUDA (triton {version}): the paper presets compile their training step"


def fast_mode() -> bool:
    """True when ``VHAKIT_FAST`` is set to a true value: notebooks and demos shrink data and
    epochs so that CI executes every code path in minutes."""
    return os.environ.get("VHAKIT_FAST", "").strip().lower() in {"1", "true", "yes", "on"}


def versions() -> dict[str, str]:
    """Versions of Python and of the packages the kit uses (``"not installed"`` when absent)."""
    out = {"python": platform.python_version()}
    for name in ["vhakit", "torch", "numpy", "smplx", "cv2", "matplotlib", "ipywidgets",
                 "pyvista", "tqdm", "jupyterlab"]:
        try:
            mod = importlib.import_module(name)
            out[name] = str(getattr(mod, "__version__", "unknown"))
        except Exception:  # an optional package may be missing or broken
            out[name] = "not installed"
    return out
