"""Reconstruction results of several methods on the same test frames, saved as one ``.npz``.

The demo and ``vhakit evaluate`` write them; the viewer (``vhakit.widgets``), figures and tables
read them. Method names are free text; the kit uses ``"ground truth"``, ``"baseline"`` (LMT-style),
``"VHA+BCP"`` and ``"fitted"`` variants such as ``"VHA+BCP fitted"``.
"""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vhakit.data.store import atomic_write_bytes

__all__ = ["Reconstructions"]


@dataclass
class Reconstructions:
    """Per-method results on N test frames.

    Attributes:
        faces: ``(F, 3)`` int, triangles of the full mesh.
        meshes: method -> full-mesh vertices ``(N, V, 3)`` metres; includes ``"ground truth"``.
        points108: method -> subsampled vertices ``(N, 108, 3)`` metres (network outputs).
        frame_names: N labels (clip/action and frame index).
        images: optional ``(N, views, H, W, 3)`` uint8 RGB input views.
        K, R, t: optional cameras of the images ``(N, views, 3, 3)``, ``(N, views, 3, 3)``,
            ``(N, views, 3)`` (OpenCV convention, world -> camera).
        subsample_indices: ``(108,)`` indices of the 108 vertices in the full mesh.
    """

    faces: np.ndarray
    meshes: dict[str, np.ndarray]
    points108: dict[str, np.ndarray] = field(default_factory=dict)
    frame_names: list[str] = field(default_factory=list)
    images: np.ndarray | None = None
    K: np.ndarray | None = None
    R: np.ndarray | None = None
    t: np.ndarray | None = None
    subsample_indices: np.ndarray | None = None

    GT = "ground truth"

    def __post_init__(self) -> None:
        if self.GT not in self.meshes:
            raise ValueError(f"meshes must include {self.GT!r}; got {sorted(self.meshes)}")
        n, v = self.meshes[self.GT].shape[:2]
        for name, arr in {**self.meshes}.items():
            if arr.shape != (n, v, 3):
                raise ValueError(f"meshes[{name!r}] must have shape ({n}, {v}, 3), got {arr.shape}")
        for name, arr in self.points108.items():
            if arr.ndim != 3 or arr.shape[0] != n or arr.shape[2] != 3:
                raise ValueError(f"points108[{name!r}] must have shape ({n}, N, 3), got {arr.shape}")
        if not self.frame_names:
            self.frame_names = [f"frame {i}" for i in range(n)]
        if len(self.frame_names) != n:
            raise ValueError(f"frame_names has {len(self.frame_names)} entries for {n} frames")

    @property
    def num_frames(self) -> int:
        return int(self.meshes[self.GT].shape[0])

    @property
    def methods(self) -> list[str]:
        return list(self.meshes)

    def vertex_errors_m(self, method: str) -> np.ndarray:
        """Per-vertex Euclidean error of ``method``'s mesh against ground truth ``(N, V)``, m."""
        if method not in self.meshes:
            raise KeyError(f"no method {method!r}; have {self.methods}")
        return np.linalg.norm(self.meshes[method] - self.meshes[self.GT], axis=-1)

    def mpve_mm(self, method: str) -> np.ndarray:
        """Mean per-vertex error per frame ``(N,)`` in millimetres (no alignment)."""
        return self.vertex_errors_m(method).mean(axis=-1) * 1000.0

    def save(self, path: str | Path) -> None:
        """Write one ``.npz`` atomically."""
        arrays: dict[str, np.ndarray] = {"faces": self.faces}
        for i, (_name, arr) in enumerate(self.meshes.items()):
            arrays[f"mesh_{i}"] = arr.astype(np.float32)
        for i, (_name, arr) in enumerate(self.points108.items()):
            arrays[f"points_{i}"] = arr.astype(np.float32)
        for key in ("images", "K", "R", "t", "subsample_indices"):
            if getattr(self, key) is not None:
                arrays[key] = getattr(self, key)
        header = {"meshes": list(self.meshes), "points108": list(self.points108),
                  "frame_names": self.frame_names}
        arrays["header"] = np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        atomic_write_bytes(path, buf.getvalue())

    @classmethod
    def load(cls, path: str | Path) -> "Reconstructions":
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path} does not exist; run `vhakit demo` (or "
                                    "`vhakit evaluate ...`) to create reconstructions")
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(bytes(z["header"]).decode())
            return cls(
                faces=z["faces"],
                meshes={n: z[f"mesh_{i}"] for i, n in enumerate(header["meshes"])},
                points108={n: z[f"points_{i}"] for i, n in enumerate(header["points108"])},
                frame_names=list(header["frame_names"]),
                **{k: (z[k] if k in z.files else None)
                   for k in ("images", "K", "R", "t", "subsample_indices")},
            )
