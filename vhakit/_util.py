"""Private helpers shared by every layer (this module imports no other vhakit module).

* :func:`atomic_write_bytes`, :func:`write_json_atomic`: a reader sees the old file or the whole
  new one, never a torn one: a temporary file in the same folder, fsync, ``os.replace``, then an
  fsync of the folder so that the rename itself survives a crash.
* :func:`check_shape`, :func:`check_tensor` (and :func:`check_points`, :func:`check_pair` for
  ``(B, N, 3)`` point sets): shape checks whose errors name the argument, show its shape and
  suggest the fix.
* :func:`to_numpy`: a tensor (any device, requiring grad or not) or array-like as a numpy array.
* :func:`markdown_table`: the kit's reports' tables.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import numpy as np
import torch

__all__ = ["atomic_write_bytes", "write_json_atomic", "check_shape", "check_tensor", "check_points",
           "check_pair", "to_numpy", "markdown_table"]


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one.

    The file gets the usual permissions (``0o666`` less the umask; ``tempfile.mkstemp`` would
    make it owner-only). A crash leaves at most a hidden ``.NAME.*.tmp`` file beside ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp"
    try:  # os.open applies the umask
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # persist the rename itself
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:  # some file systems cannot fsync a directory
        pass


def write_json_atomic(path: str | os.PathLike, payload, *, sort_keys: bool = True) -> None:
    """``payload`` as JSON (indent 1, sorted keys, a final newline: identical content gives an
    identical file) written with :func:`atomic_write_bytes`."""
    text = json.dumps(payload, indent=1, sort_keys=sort_keys) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))


def check_shape(x, name: str, shape: tuple, hint: str = "") -> None:
    """ValueError unless ``x.shape`` (a tensor's or an array's) matches ``shape``, e.g.
    ``("B", "N", 3)`` or ``(..., 3, 3)``: an int is an exact size, a name any size, a leading
    ``...`` any number of dimensions. The message names the argument, shows its shape and ends
    with ``hint`` (the fix, e.g. ``"; add a batch dimension with x[None]"``)."""
    dots = shape[:1] == (...,)
    tail = shape[1:] if dots else shape
    lead = x.ndim - len(tail)  # leading dimensions: any number after "...", else none
    if lead < 0 or (lead > 0 and not dots) or any(
            isinstance(d, int) and s != d for s, d in zip(x.shape[lead:], tail, strict=True)):
        raise ValueError(f"{name} must have shape {_shape_text(shape)}, got {tuple(x.shape)}{hint}")


def check_tensor(x, name: str, shape: tuple, *, floating: bool = False, hint: str = "") -> None:
    """:func:`check_shape` for a torch tensor: TypeError for anything else (or, with
    ``floating``, for a tensor that is not floating point)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {_shape_text(shape)}, got "
                        f"{type(x).__name__}; convert numpy arrays with torch.as_tensor(...)")
    check_shape(x, name, shape, hint)
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor {_shape_text(shape)}, "
                        f"got {x.dtype}")


def _shape_text(shape: tuple) -> str:
    return "(" + ", ".join("..." if d is ... else str(d) for d in shape) + ")"


def check_points(x: torch.Tensor, name: str) -> None:
    """``x`` must be a ``(B, N, 3)`` tensor (points in metres, batched over frames)."""
    check_tensor(x, name, ("B", "N", 3),
                 hint="; points in metres: add a batch dimension with x[None] for a single frame")


def check_pair(pred: torch.Tensor, target: torch.Tensor, names: tuple[str, str]) -> None:
    """Both ``(B, N, 3)`` (see :func:`check_points`) and of the same shape."""
    check_points(pred, names[0])
    check_points(target, names[1])
    if pred.shape != target.shape:
        raise ValueError(f"{names[0]} {tuple(pred.shape)} and {names[1]} {tuple(target.shape)} "
                         "must have the same shape (B, N, 3)")


def to_numpy(x, dtype=None) -> np.ndarray:
    """``x`` (a tensor on any device, or anything ``np.asarray`` takes) as a numpy array, cast to
    ``dtype`` when given (``np.float64`` for drawing, ``np.float32``, ...)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        x = (x.float() if x.dtype == torch.bfloat16 else x).numpy()  # numpy has no bfloat16
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table (no final newline) of already formatted cells."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])
