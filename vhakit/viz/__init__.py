"""Figures and viewers: matplotlib figures (``figures``, re-exported here), the pyvista
backend policy (``backend``) and scenes, and one module per topic (``heatmaps``,
``views``, ``bcp``, ``fitting``, ``latent``).
"""
from __future__ import annotations

from vhakit.viz.figures import (
    ERROR_CMAP,
    METHOD_COLORS,
    PART_COLORS,
    draw_frame,
    draw_mesh,
    error_colors,
    method_color,
    part_colors,
    plot_history,
    view_rotation,
)

__all__ = ["draw_mesh", "PART_COLORS", "part_colors", "view_rotation", "ERROR_CMAP", "error_colors",
           "METHOD_COLORS", "method_color", "draw_frame", "plot_history"]
