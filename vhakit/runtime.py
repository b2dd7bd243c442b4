"""Run-time facts in one place: the device to use, the fast (CI) switch, package versions."""
from __future__ import annotations

import importlib
import os
import platform

import torch

__all__ = ["default_device", "fast_mode", "versions"]


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
