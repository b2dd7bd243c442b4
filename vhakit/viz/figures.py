"""Figures: matplotlib drawings of meshes and points that work everywhere (headless, CI, exported
notebooks). Interactive pyvista scenes build on the same inputs.

World frame (the body model's): x = the body's left, y up, z = the direction the body faces.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch
from matplotlib.collections import PolyCollection

from vhakit._util import check_shape, to_numpy
from vhakit.body.parts import PART_COLORS as _PART_COLORS_255

__all__ = ["draw_mesh", "PART_COLORS", "part_colors", "view_rotation", "ERROR_CMAP", "error_colors",
           "METHOD_COLORS", "method_color", "draw_frame", "plot_history", "eval_curve",
           "plot_learning_curves"]

#: :data:`vhakit.body.parts.PART_COLORS` (the renderer's palette) as RGB in [0, 1], ``(24, 3)``.
PART_COLORS = np.asarray(_PART_COLORS_255, dtype=np.float64) / 255


def part_colors(part_labels: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per-vertex RGB in [0, 1] from SMPL part labels ``(V,)`` (values 0..23) -> ``(V, 3)``: the
    renderer's base colours (:func:`vhakit.body.parts.part_colors` without its rest-pose shading)."""
    return PART_COLORS[to_numpy(part_labels).astype(np.int64)]


ERROR_CMAP = "viridis"  # perceptually uniform, readable in grey print and by colour-blind readers

#: Display colour of each method (RGB in [0, 1]); other names get a colour from their hash.
METHOD_COLORS = {
    "ground truth": (0.80, 0.80, 0.80),
    "baseline": (0.93, 0.55, 0.20),
    "VHA+BCP": (0.25, 0.50, 0.90),
    "fitted": (0.30, 0.70, 0.40),
}


def method_color(method: str) -> tuple[float, float, float]:
    """Display colour of a method: exact names from :data:`METHOD_COLORS`; any name containing
    "fitted" is green; ``"baseline (stand-in)"`` takes ``"baseline"``'s; others a hashed hue."""
    import colorsys

    if method in METHOD_COLORS:
        return METHOD_COLORS[method]
    if "fitted" in method:
        return METHOD_COLORS["fitted"]
    for key, rgb in METHOD_COLORS.items():
        if method.startswith(key):
            return rgb
    hue = sum(ord(c) * 31 ** i for i, c in enumerate(method)) % 360 / 360.0
    return colorsys.hsv_to_rgb(hue, 0.6, 0.85)


def error_colors(errors_m, clim_mm: tuple[float, float] | None = None,
                 cmap: str = ERROR_CMAP) -> tuple[np.ndarray, tuple[float, float]]:
    """Per-vertex colours of errors, and the colour scale limits in millimetres.

    Args:
        errors_m: ``(V,)`` per-vertex errors in metres (tensor or array).
        clim_mm: ``(low, high)`` scale limits in mm; default the data's ``(min, max)``.
        cmap: a matplotlib colour map name.
    Returns:
        ``(V, 3)`` RGB in [0, 1] and ``(low, high)`` in mm (what a scale bar must show).
    """
    import matplotlib

    e = to_numpy(errors_m, np.float64)
    check_shape(e, "errors_m", ("V",))
    e_mm = e * 1000.0
    lo, hi = (float(e_mm.min()), float(e_mm.max())) if clim_mm is None else map(float, clim_mm)
    if not hi >= lo:
        raise ValueError(f"clim_mm must be (low, high) with low <= high, got {clim_mm}")
    x = np.clip((e_mm - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return matplotlib.colormaps[cmap](x)[:, :3], (lo, hi)


def view_rotation(azimuth_deg: float, elevation_deg: float = 0.0) -> np.ndarray:
    """Rotation ``(3, 3)`` from world to a viewer frame (x right, y up, z towards the viewer).

    ``azimuth_deg = 0`` looks at the body's front (the viewer stands on +z); 90 looks at the
    body's left side.
    """
    a, e = np.deg2rad(azimuth_deg), np.deg2rad(elevation_deg)
    yaw = np.array([[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]])
    pitch = np.array([[1, 0, 0], [0, np.cos(e), -np.sin(e)], [0, np.sin(e), np.cos(e)]])
    return pitch @ yaw


def draw_mesh(ax, vertices, faces, vertex_colors=None, azimuth_deg: float = 0.0,
              elevation_deg: float = 0.0, light=(0.3, 0.5, 1.0)) -> PolyCollection:
    """Draw a shaded triangle mesh with the painter's algorithm (orthographic view).

    Args:
        ax: a 2-D matplotlib axes.
        vertices: ``(V, 3)`` metres (tensor or array).
        faces: ``(F, 3)`` vertex indices.
        vertex_colors: ``(V, 3)`` RGB in [0, 1]; light grey when None.
        azimuth_deg, elevation_deg: viewing direction, see :func:`view_rotation`.
        light: direction towards the light in the viewer frame.
    Returns:
        the PolyCollection added to ``ax``.
    """
    v, f = to_numpy(vertices, np.float64), to_numpy(faces, np.int64)
    check_shape(v, "vertices", ("V", 3))
    check_shape(f, "faces", ("F", 3))
    p = v @ view_rotation(azimuth_deg, elevation_deg).T  # (V, 3) viewer frame
    tri = p[f]  # (F, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    # Orient every normal towards the viewer: robust to the mesh's winding order. Back faces are
    # drawn first (far to near) and covered by the front ones.
    normal *= np.where(normal[:, 2:3] < 0, -1.0, 1.0)
    light_dir = np.asarray(light, dtype=np.float64)
    light_dir = light_dir / np.linalg.norm(light_dir)
    shade = 0.35 + 0.65 * np.clip(normal @ light_dir, 0.0, 1.0)
    base = (np.full((len(v), 3), 0.8) if vertex_colors is None
            else np.asarray(vertex_colors, dtype=np.float64))
    color = base[f].mean(axis=1) * shade[:, None]
    order = np.argsort(tri[:, :, 2].mean(axis=1))  # far to near
    coll = PolyCollection(tri[order, :, :2], facecolors=np.clip(color[order], 0, 1),
                          edgecolors="none", antialiased=False)
    ax.add_collection(coll)
    ax.set_aspect("equal")
    ax.autoscale_view()
    ax.axis("off")
    return coll


def draw_frame(fig, recons, frame: int, method: str, layers: dict[str, bool],
               clim_mm=None, azimuth_deg: float = 20.0) -> None:
    """Matplotlib version of the viewer's scene (see :func:`vhakit.viz.scenes.frame_scene`): one
    method's mesh on one frame, error colours with a colour bar in mm, the ground truth ghost and
    the 108 points. Cameras are not drawn."""
    import matplotlib
    from matplotlib.cm import ScalarMappable

    ax = fig.add_axes((0.0, 0.0, 0.84, 0.94))
    gt = recons.meshes[recons.GT][frame]
    verts = recons.meshes[method][frame]
    if layers.get("ground truth ghost", False) and method != recons.GT:
        draw_mesh(ax, gt, recons.faces, np.full((len(gt), 3), 0.9), azimuth_deg=azimuth_deg)
    colors, clim = None, None
    if method != recons.GT and layers.get("error colours", False):
        colors, clim = error_colors(recons.vertex_errors_m(method)[frame], clim_mm)
    else:
        colors = np.tile(np.asarray(method_color(method)), (len(verts), 1))
    if layers.get("mesh", True):
        draw_mesh(ax, verts, recons.faces, colors, azimuth_deg=azimuth_deg)
    if layers.get("108 points", False):
        pts = recons.points108.get(method)
        if pts is None and recons.subsample_indices is not None:
            pts = recons.meshes[method][:, np.asarray(recons.subsample_indices)]
        if pts is not None:
            p = np.asarray(pts[frame]) @ view_rotation(azimuth_deg).T
            ax.scatter(p[:, 0], p[:, 1], s=6, c="crimson", zorder=3)
    # frame this frame's body (truth and shown mesh): a motion may wander metres from the origin
    shown = np.vstack([gt, verts]) @ view_rotation(azimuth_deg).T
    lo, hi = shown.min(axis=0), shown.max(axis=0)
    pad = 0.05 * float(np.max(hi - lo))
    ax.set_xlim(lo[0] - pad, hi[0] + pad)
    ax.set_ylim(lo[1] - pad, hi[1] + pad)
    ax.set_aspect("equal")
    ax.axis("off")
    fig.text(0.01, 0.97, f"{method}, frame {frame}", fontsize=9, va="top")
    if clim is not None:
        cax = fig.add_axes((0.87, 0.1, 0.03, 0.8))
        norm = matplotlib.colors.Normalize(*clim)
        fig.colorbar(ScalarMappable(norm=norm, cmap=ERROR_CMAP), cax=cax, label="error (mm)")


def plot_history(history: str | os.PathLike | list[dict], out: str | os.PathLike | None = None):
    """Loss and MPVE curves of a run: ``history`` is a run folder, its ``metrics.json`` or the
    rows themselves. Returns a matplotlib ``Figure`` (no pyplot state), saved to ``out`` if given."""
    from matplotlib.figure import Figure

    if not isinstance(history, list):
        path = Path(history)
        path = path / "metrics.json" if path.is_dir() else path
        history = json.loads(path.read_text())["history"]
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_err = fig.subplots(1, 2)
    for split, style in (("train", "-"), ("eval", "o-")):
        rows = [r for r in history if r.get("split") == split]
        steps = [r["step"] for r in rows]
        if rows and "loss" in rows[0]:
            ax_loss.plot(steps, [r["loss"] for r in rows], style, label=split, ms=3)
        for key in ("mpve_mm", "mpve_mid_mm"):
            if rows and key in rows[0]:
                ax_err.plot(steps, [r[key] for r in rows], style, ms=3, label=f"{split} {key}")
    ax_loss.set(xlabel="step", ylabel="loss (m)", yscale="log", title="loss")
    ax_err.set(xlabel="step", ylabel="mm", title="mean per-vertex error")
    for ax in (ax_loss, ax_err):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend()
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig


def eval_curve(run_dir: str | os.PathLike) -> list[dict]:
    """The test-set learning curve of a run: its ``split == "eval"`` rows (``metrics.json``) as
    ``[{"step", "epoch", "mpve_mm"}]`` in step order (``mpve_mm``: the run's evaluation MPVE in
    mm; for a VHA that of its final decoding V')."""
    path = Path(run_dir) / "metrics.json"
    if not path.exists():
        raise FileNotFoundError(f"no metrics.json in {run_dir}: not a finished or running "
                                "training run")
    history = json.loads(path.read_text())["history"]
    rows = [r for r in history if r.get("split") == "eval" and "mpve_mm" in r]
    return [{"step": int(r["step"]), "epoch": r.get("epoch"), "mpve_mm": float(r["mpve_mm"])}
            for r in sorted(rows, key=lambda r: r["step"])]


def plot_learning_curves(runs: dict[str, str | os.PathLike], out: str | os.PathLike | None = None,
                         title: str = ""):
    """Test MPVE (mm) against training steps, one line per run (``{label: run folder}``, see
    :func:`eval_curve`). Returns a matplotlib ``Figure``, saved to ``out`` if given."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import FormatStrFormatter

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    ax = fig.add_subplot()
    for label, run in runs.items():
        curve = eval_curve(run)
        ax.plot([r["step"] for r in curve], [r["mpve_mm"] for r in curve], "o-", ms=3,
                label=label)
    ax.set(xlabel="training step (of each model)", ylabel="test MPVE, 108 vertices (mm)",
           yscale="log", title=title or "learning curves")
    # plain millimetres on the log axis, not 6x10^1
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.grid(alpha=0.3, which="both")
    if ax.lines:
        ax.legend()
    if out is not None:
        fig.savefig(out, dpi=120)
    return fig
