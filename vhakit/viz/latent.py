"""Figures of a VHA's latent space: a row of decoded bodies (an interpolation, perturbed
codes) and decoded vertices against the truth in 3D. The codes come from
:mod:`vhakit.models.latent`.
"""
from __future__ import annotations

import numpy as np
import torch

from vhakit._util import check_shape, to_numpy

__all__ = ["plot_bodies", "plot_reconstruction_3d"]


# --------------------------------------------------------------------------------- figures
def plot_bodies(vertices: torch.Tensor, titles: list[str] | None = None, colors=None,
                size: float = 2.2):
    """A row of bodies ``vertices (K, N, 3)`` metres seen from the front (x right, y up; each
    body centred on its own mean), e.g. an interpolation or perturbed decodings. ``colors``:
    ``(N,)`` values for a colormap (e.g. body-part labels) or a matplotlib colour. Returns a
    matplotlib ``Figure`` (no pyplot state)."""
    from matplotlib.figure import Figure

    check_shape(vertices, "vertices", ("K", "N", 3))
    K = vertices.shape[0]
    if titles is not None and len(titles) != K:
        raise ValueError(f"titles must have {K} entries (one per body), got {len(titles)}")
    v = to_numpy(vertices - vertices.mean(1, keepdim=True), np.float32)
    half = max(float(abs(v[..., :2]).max()) * 1.05, 1e-3)
    fig = Figure(figsize=(size * K * 0.7, size * 1.1), layout="constrained")
    axes = fig.subplots(1, K, squeeze=False)[0]
    c = colors if colors is None or isinstance(colors, str) else to_numpy(colors, np.float32)
    for k, ax in enumerate(axes):
        ax.scatter(v[k, :, 0], v[k, :, 1], s=6, c=c if c is not None else "C0", cmap="tab20")
        ax.set(xlim=(-half, half), ylim=(-half, half), aspect="equal", xticks=[], yticks=[])
        if titles is not None:
            ax.set_title(titles[k], fontsize=9)
    return fig


def plot_reconstruction_3d(truth: torch.Tensor, decoded: torch.Tensor, title: str | None = None):
    """Decoded vertices vs the ground truth in 3D (``(N, 3)`` metres each): truth in grey,
    decoded in colour by error (mm), a segment joining each pair. Returns a ``Figure``."""
    from matplotlib.figure import Figure

    if truth.shape != decoded.shape or truth.dim() != 2 or truth.shape[-1] != 3:
        raise ValueError(f"truth and decoded must both have shape (N, 3), got "
                         f"{tuple(truth.shape)} and {tuple(decoded.shape)}")
    t, d = to_numpy(truth, np.float32), to_numpy(decoded, np.float32)
    err_mm = ((d - t) ** 2).sum(-1) ** 0.5 * 1000
    fig = Figure(figsize=(5.5, 5), layout="constrained")
    ax = fig.add_subplot(projection="3d")  # drawn as (x, z, y): y up
    ax.scatter(t[:, 0], t[:, 2], t[:, 1], s=10, c="0.6", label="ground truth")
    sc = ax.scatter(d[:, 0], d[:, 2], d[:, 1], s=12, c=err_mm, cmap="viridis", label="decoded")
    for a, b in zip(t, d, strict=True):
        ax.plot([a[0], b[0]], [a[2], b[2]], [a[1], b[1]], color="r", lw=0.5)
    mid, half = t.mean(0), float(abs(t - t.mean(0)).max()) * 1.1
    ax.set(xlim=(mid[0] - half, mid[0] + half), ylim=(mid[2] - half, mid[2] + half),
           zlim=(mid[1] - half, mid[1] + half), xlabel="x (m)", ylabel="z (m)", zlabel="y (m)")
    ax.set_box_aspect((1, 1, 1))
    fig.colorbar(sc, ax=ax, shrink=0.6, label="error (mm)")
    ax.legend(loc="upper left", fontsize=8)
    ax.set_title(title or f"mean error {err_mm.mean():.1f} mm", fontsize=10)
    return fig
