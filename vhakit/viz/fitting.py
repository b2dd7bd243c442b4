"""Matplotlib figures for SMPL fitting (notebook 06): the mesh after each stage, the convergence
curve, the per-vertex error of the final mesh, and the noise sweep."""
from __future__ import annotations

import numpy as np

from vhakit._util import check_shape, to_numpy
from vhakit.viz.figures import ERROR_CMAP, draw_mesh, error_colors, view_rotation

__all__ = ["draw_targets", "draw_stages", "plot_convergence", "draw_error_mesh",
           "plot_noise_sweep"]


def draw_targets(ax, points_m, azimuth_deg: float = 0.0, color=(0.85, 0.1, 0.1),
                 size: float = 6.0):
    """Scatter ``points_m (N, 3)`` in the orthographic view of :func:`vhakit.viz.draw_mesh`."""
    p = to_numpy(points_m, np.float64)
    check_shape(p, "points_m", ("N", 3))
    q = p @ view_rotation(azimuth_deg).T
    return ax.scatter(q[:, 0], q[:, 1], s=size, c=[color], zorder=3, linewidths=0)


def draw_stages(axes, stages: dict, faces, targets108, frame: int = 0,
                azimuth_deg: float = 20.0) -> None:
    """One panel per stage of :func:`vhakit.fitting.analysis.fit_stages`: the mesh of ``frame`` with
    the target vertices ``targets108 (B, 108, 3)`` (red) and the mean target distance."""
    if len(axes) != len(stages):
        raise ValueError(f"need one axes per stage ({len(stages)}), got {len(axes)}")
    for ax, (name, st) in zip(axes, stages.items(), strict=True):
        draw_mesh(ax, st.vertices[frame], faces, azimuth_deg=azimuth_deg)
        draw_targets(ax, targets108[frame], azimuth_deg=azimuth_deg)
        ax.set_title(f"{name}: {float(st.data_error_m[frame]) * 1000:.1f} mm to targets",
                     fontsize=9)


def plot_convergence(ax, fit, label: str | None = None, color=None) -> None:
    """The mean energy over frames per iteration (``fit.loss_history``), with the end of the
    global stage marked. The global stage's energy is the data term only. The y axis is
    logarithmic above 1 and linear below (``symlog``): the GMM's negative log-likelihood can make
    the final energy negative, and an energy of 1 is a 1-sigma RMS residual."""
    h = to_numpy(fit.loss_history, np.float64)
    if h.size == 0:
        raise ValueError("fit.loss_history is empty: the fit ran no iterations")
    it = np.arange(1, h.size + 1)
    line, = ax.plot(it, h, marker=".", label=label, color=color)
    ax.set_yscale("symlog", linthresh=1.0)
    if 0 < fit.global_iters < h.size:
        ax.axvline(fit.global_iters + 0.5, color=line.get_color(), ls=":", lw=1)
    ax.set_xlabel("iteration (global stage, then full stage)")
    ax.set_ylabel("mean energy over frames")
    ax.grid(True, which="both", alpha=0.3)


def draw_error_mesh(ax, fitted_vertices_m, true_vertices_m, faces, clim_mm=None,
                    azimuth_deg: float = 20.0, colorbar: bool = True):
    """The fitted mesh ``(V, 3)`` coloured by each vertex's distance to the true mesh ``(V, 3)``
    (:func:`vhakit.viz.error_colors`), with a scale bar in millimetres. Returns the errors in mm
    ``(V,)``."""
    import matplotlib as mpl

    fv, tv = to_numpy(fitted_vertices_m, np.float64), to_numpy(true_vertices_m, np.float64)
    if fv.shape != tv.shape or fv.ndim != 2:
        raise ValueError(f"fitted and true vertices must both be (V, 3), got {fv.shape}, "
                         f"{tv.shape}")
    err_m = np.linalg.norm(fv - tv, axis=1)
    colors, (lo, hi) = error_colors(err_m, clim_mm)
    draw_mesh(ax, fv, faces, vertex_colors=colors, azimuth_deg=azimuth_deg)
    if colorbar:
        sm = mpl.cm.ScalarMappable(norm=mpl.colors.Normalize(lo, hi), cmap=ERROR_CMAP)
        ax.figure.colorbar(sm, ax=ax, fraction=0.05, label="vertex error (mm)")
    return err_m * 1000.0


def plot_noise_sweep(axes, rows) -> None:
    """MPVE (``axes[0]``) and angular distance (``axes[1]``) against the noise level, one line per
    setting of :func:`vhakit.fitting.analysis.noise_sweep`."""
    settings = list(dict.fromkeys(r.setting for r in rows))
    for s in settings:
        sel = [r for r in rows if r.setting == s]
        x = [r.noise_mm for r in sel]
        axes[0].plot(x, [r.mpve_mm for r in sel], marker="o", label=s)
        axes[1].plot(x, [r.angle_deg for r in sel], marker="o", label=s)
    for ax, ylab in zip(axes, ["MPVE (mm, full mesh)", "angular distance (deg)"], strict=True):
        ax.set_xlabel("noise std per coordinate (mm)")
        ax.set_ylabel(ylab)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
