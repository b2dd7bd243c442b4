"""Private helpers shared by every layer (this module imports no other vhakit module).

* :func:`atomic_write_bytes`, :func:`write_json_atomic`: a reader sees the old file or the whole
  new one, never a torn one: a temporary file in the same folder, fsync, ``os.replace``, then an
  fsync of the folder so that the rename itself survives a crash.
* :func:`check_points`, :func:`check_pair`: ``(B, N, 3)`` point-set checks whose errors name the
  argument, show its shape and suggest the fix.
"""
from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import torch

__all__ = ["atomic_write_bytes", "write_json_atomic", "check_points", "check_pair"]


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


def check_points(x: torch.Tensor, name: str) -> None:
    """``x`` must be a ``(B, N, 3)`` tensor (points in metres, batched over frames)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}; "
                        "convert numpy arrays with torch.as_tensor(...)")
    if x.dim() != 3 or x.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (B, N, 3) in metres, got {tuple(x.shape)}; "
                         "add a batch dimension with x[None] for a single frame")


def check_pair(pred: torch.Tensor, target: torch.Tensor, names: tuple[str, str]) -> None:
    """Both ``(B, N, 3)`` (see :func:`check_points`) and of the same shape."""
    check_points(pred, names[0])
    check_points(target, names[1])
    if pred.shape != target.shape:
        raise ValueError(f"{names[0]} {tuple(pred.shape)} and {names[1]} {tuple(target.shape)} "
                         "must have the same shape (B, N, 3)")
