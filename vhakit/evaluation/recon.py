"""Reconstruction results of several methods on the same test frames, saved as one ``.npz``.

The demo and ``vhakit evaluate`` write them; the viewer (``vhakit.teaching.widgets``), figures and tables
read them. Method names are free text; the kit uses ``"ground truth"``, ``"baseline"`` (LMT-style),
``"VHA+BCP"`` and ``"fitted"`` variants such as ``"VHA+BCP fitted"``.
"""
from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from vhakit._util import atomic_write_bytes, check_shape

__all__ = ["Reconstructions", "ErrorScale", "error_scale", "views_showing_body",
           "representative_frame"]


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
            check_shape(arr, f"meshes[{name!r}]", (n, v, 3))
        for name, arr in self.points108.items():
            check_shape(arr, f"points108[{name!r}]", (n, "N", 3))
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


# --------------------------------------------------------------- what a viewer should open on
def views_showing_body(recons: Reconstructions, min_inside: float = 0.5) -> np.ndarray:
    """Whether each input view sees the body: ``(N, views)`` bool, True where at least
    ``min_inside`` of the ground-truth mesh's vertices lie in front of that camera and project
    inside its image (pinhole model, lens distortion ignored). All True when the
    reconstructions carry no cameras.

    The image size is the images' own, or ``2 x`` the principal point without images.
    """
    n = recons.num_frames
    if recons.K is None or recons.R is None or recons.t is None:
        return np.ones((n, 1), dtype=bool)
    if not 0.0 < min_inside <= 1.0:
        raise ValueError(f"min_inside must be in (0, 1], got {min_inside}")
    K, R, t = (np.asarray(a, dtype=np.float64) for a in (recons.K, recons.R, recons.t))
    if recons.images is not None:
        h, w = recons.images.shape[2:4]
        size = np.broadcast_to(np.array([w, h], dtype=np.float64), K.shape[:2] + (2,))
    else:
        size = 2.0 * K[..., :2, 2]  # (N, views, 2)
    gt = np.asarray(recons.meshes[recons.GT], dtype=np.float64)  # (N, V, 3) m
    x_cam = np.einsum("nkij,nvj->nkvi", R, gt) + t[:, :, None, :]  # (N, views, V, 3)
    z = x_cam[..., 2]
    uvw = np.einsum("nkij,nkvj->nkvi", K, x_cam)  # (N, views, V, 3)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = uvw[..., :2] / uvw[..., 2:3]  # (N, views, V, 2) px
    # pixel centres at integers: the image spans [-0.5, size - 0.5) on each axis
    inside = (z > 0) & np.all((uv >= -0.5) & (uv < size[:, :, None, :] - 0.5), axis=-1)
    return inside.mean(axis=-1) >= min_inside


def representative_frame(recons: Reconstructions, methods=None) -> int:
    """The frame a viewer should open on: among the frames that every input view sees
    (:func:`views_showing_body`; all frames if none qualifies), the one whose error is the
    median -- the error being the MPVE averaged over ``methods`` (default: every method but
    the ground truth; with none, frame 0). An even count takes the lower of the two middle
    frames, ties the lower index."""
    methods = [m for m in (methods or recons.methods) if m != recons.GT]
    if not methods:
        return 0
    seen = np.flatnonzero(views_showing_body(recons).all(axis=1))
    candidates = seen if len(seen) else np.arange(recons.num_frames)
    err = np.mean([recons.mpve_mm(m) for m in methods], axis=0)[candidates]  # (C,) mm
    order = np.argsort(err, kind="stable")
    return int(candidates[order[(len(order) - 1) // 2]])


@dataclass(frozen=True)
class ErrorScale:
    """One error colour scale shared by the methods of a set of reconstructions.

    Attributes:
        high_mm: the scale's upper end (its lower end is 0); larger errors take the top colour.
        percentile: the share of all per-vertex errors (in %) the scale was fitted to.
        saturated: frame -> share of that frame's vertices above ``high_mm`` (the largest over
            the methods), for the frames where it exceeds ``saturated_share``, largest first.
        saturated_share: the share from which a frame counts as saturated.
    """

    high_mm: float
    percentile: float
    saturated: dict[int, float]
    saturated_share: float

    @property
    def clim_mm(self) -> tuple[float, float]:
        return 0.0, self.high_mm

    def caption(self) -> str:
        """Two sentences for a reader: the scale, what it covers, and the saturated frames."""
        text = (f"Error colours: 0-{self.high_mm:.0f} mm, the same for every method "
                f"({self.percentile:g} % of all vertex errors are below {self.high_mm:.0f} mm).")
        share = f"{100 * self.saturated_share:.0f} %"
        if not self.saturated:
            return text + f" No frame has more than {share} of its vertices above the scale."
        items = ", ".join(f"{f} ({100 * s:.0f} %)" for f, s in self.saturated.items())
        return (text + f" Off the scale (more than {share} of the vertices in the top colour): "
                f"frame{'s' if len(self.saturated) > 1 else ''} {items}.")


def error_scale(recons: Reconstructions, methods=None, percentile: float = 90.0,
                step_mm: float = 25.0, saturated_share: float = 0.25) -> ErrorScale:
    """A robust error colour scale shared by ``methods`` (default: all but the ground truth):
    0 to the ``percentile``-th percentile of their per-vertex errors over all frames, rounded
    up to a multiple of ``step_mm``, so that one outlier frame does not darken every body.

    A scale fitted to the maximum lets a single failed frame (a body 1 m off) set the top
    colour for all frames; the percentile keeps the colours informative on typical frames and
    names the frames whose errors run off the scale instead (:attr:`ErrorScale.saturated`).
    """
    if not 0.0 < percentile <= 100.0:
        raise ValueError(f"percentile must be in (0, 100], got {percentile}")
    if step_mm <= 0:
        raise ValueError(f"step_mm must be positive, got {step_mm}")
    methods = [m for m in (methods or recons.methods) if m != recons.GT]
    if not methods:
        return ErrorScale(step_mm, percentile, {}, saturated_share)
    errs_mm = np.stack([recons.vertex_errors_m(m) for m in methods]) * 1000.0  # (M, N, V)
    value = float(np.percentile(errs_mm, percentile))
    high = max(step_mm, step_mm * math.ceil(value / step_mm - 1e-9))
    share = (errs_mm > high).mean(axis=2).max(axis=0)  # (N,) worst method per frame
    frames = [int(f) for f in np.argsort(-share, kind="stable") if share[f] > saturated_share]
    return ErrorScale(float(high), float(percentile), {f: float(share[f]) for f in frames},
                      float(saturated_share))
