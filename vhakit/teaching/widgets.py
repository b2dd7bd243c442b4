"""A notebook viewer of reconstructions (core ipywidgets only).

::

    from vhakit.teaching.widgets import ReconstructionViewer, load_reconstructions
    recons, source = load_reconstructions()    # the demo's output, or a labelled stand-in
    ReconstructionViewer(recons)               # frame slider, method, layers, MPVE read-out

The viewer opens on a representative frame (:func:`vhakit.evaluation.recon.representative_frame`: the
median error among the frames every camera sees) and colours errors on one robust scale shared
by all methods (:func:`vhakit.evaluation.recon.error_scale`: the 90th percentile of all vertex errors),
with a caption that names the frames whose errors run off that scale.

Every control calls a plain method (:meth:`ReconstructionViewer.update`), so tests and scripts
drive the viewer kernel-side by setting widget values. The 3D view is a PNG rendered off-screen
(pyvista, or matplotlib when pyvista cannot render) in an ``ipywidgets.Image``. Displayed in a
notebook, the viewer's output also carries that PNG, so executed or exported notebooks show the
picture where no widget front-end is alive.

For the browser test and for screen readers, the read-out element carries the numbers as
attributes (``data-frame``, ``data-method``, ``data-mpve-mm``, ``data-clim-high-mm``) and the
view image carries the CSS class ``vhakit-frame-<i>`` of the frame it shows.
"""
from __future__ import annotations

import html
import io

import numpy as np

from vhakit.evaluation.recon import ErrorScale, error_scale, representative_frame
from vhakit.teaching.standin import demo_reconstructions, load_reconstructions
from vhakit.viz.backend import widget_bundle

__all__ = ["ReconstructionViewer", "LAYERS", "demo_reconstructions", "load_reconstructions",
           "png_of_images"]

#: Layer toggles of the viewer, with their default state.
LAYERS = {"mesh": True, "108 points": False, "error colours": True, "ground truth ghost": False,
          "cameras": False}


def png_of_images(images: np.ndarray, gap_px: int = 4) -> bytes:
    """The views ``(V, H, W, 3)`` uint8 side by side as one PNG."""
    from PIL import Image

    v, h, w, _ = images.shape
    strip = np.full((h, v * w + (v - 1) * gap_px, 3), 255, np.uint8)
    for i in range(v):
        strip[:, i * (w + gap_px): i * (w + gap_px) + w] = images[i]
    buf = io.BytesIO()
    Image.fromarray(strip).save(buf, format="PNG")
    return buf.getvalue()


class ReconstructionViewer:
    """Frame slider, method selector, layer toggles, MPVE read-out and a 3D view.

    Args:
        recons: a :class:`vhakit.evaluation.recon.Reconstructions`.
        methods: methods offered (default all, ground truth first).
        renderer: ``"pyvista"``, ``"matplotlib"`` or None (pyvista when it renders here).
        size: ``(W, H)`` of the 3D view in pixels.
        frame: the frame shown first; default :func:`vhakit.evaluation.recon.representative_frame`.
        scale: the error colour scale, an :class:`vhakit.evaluation.recon.ErrorScale` or ``(0, high)`` mm;
            default :func:`vhakit.evaluation.recon.error_scale` of the offered methods, one scale for all
            of them and all frames, so colours compare across frames and methods.
    Attributes:
        widget: the ``ipywidgets.VBox`` to display; ``frame_slider``, ``method_select``,
            ``layer_boxes`` (name -> Checkbox), ``readout`` (HTML), ``caption`` (HTML: the
            scale and the frames off it), ``view`` (Image).
        clim_mm: ``(0, high)`` mm, the error colour scale in use.
        shown_frame, shown_method: what the view shows now; ``render_count``: renders so far.
    """

    def __init__(self, recons, *, methods=None, renderer: str | None = None,
                 size: tuple[int, int] = (520, 480), frame: int | None = None, scale=None):
        import ipywidgets as w

        self.recons = recons
        self.size = tuple(size)
        methods = list(methods or recons.methods)
        methods = [recons.GT] + [m for m in methods if m != recons.GT]
        unknown = [m for m in methods if m not in recons.meshes]
        if unknown:
            raise ValueError(f"methods {unknown} are not in the reconstructions {recons.methods}")
        if frame is None:
            frame = representative_frame(recons, methods)
        if not 0 <= int(frame) < recons.num_frames:
            raise ValueError(f"frame must be in 0..{recons.num_frames - 1}, got {frame}")
        if scale is None:
            scale = error_scale(recons, methods)
        self.scale = scale if isinstance(scale, ErrorScale) else None
        self.clim_mm = scale.clim_mm if isinstance(scale, ErrorScale) else tuple(
            float(x) for x in scale)
        if len(self.clim_mm) != 2 or not self.clim_mm[1] > self.clim_mm[0]:
            raise ValueError(f"scale must be an ErrorScale or (low, high) mm, got {scale}")
        self.renderer = _make_renderer(renderer, recons, self.size)
        self.shown_frame: int | None = None
        self.shown_method: str | None = None
        self.render_count = 0

        self.frame_slider = w.IntSlider(value=int(frame), min=0, max=recons.num_frames - 1,
                                        description="frame", continuous_update=False)
        default = next((m for m in methods if m != recons.GT), recons.GT)
        self.method_select = w.Dropdown(options=methods, value=default, description="method")
        self.layer_boxes = {name: w.Checkbox(value=on, description=name, indent=False,
                                             layout=w.Layout(width="auto"))
                            for name, on in LAYERS.items()}
        if recons.K is None:
            self.layer_boxes["cameras"].disabled = True
        self.readout = w.HTML()
        self.readout.add_class("vhakit-readout")
        caption = (self.scale.caption() if self.scale is not None else
                   f"Error colours: {self.clim_mm[0]:.0f}-{self.clim_mm[1]:.0f} mm, the same "
                   "for every method.")
        self.caption = w.HTML(f'<div class="vhakit-scale-caption" style="font-size:90%">'
                              f"{html.escape(caption)}</div>")
        self.view = w.Image(format="png", layout=w.Layout(width=f"{self.size[0]}px"))
        self.view.add_class("vhakit-view")
        self.inputs = w.Image(format="png", layout=w.Layout(width=f"{self.size[0]}px"))
        self.inputs.add_class("vhakit-inputs")
        self.frame_slider.observe(self._on_change, names="value")
        self.method_select.observe(self._on_change, names="value")
        for box in self.layer_boxes.values():
            box.observe(self._on_change, names="value")
        self.widget = w.VBox([
            w.HBox([self.frame_slider, self.method_select]),
            w.HBox(list(self.layer_boxes.values())),
            self.readout, self.view, self.caption, self.inputs,
        ])
        self.widget.add_class("vhakit-viewer")
        self.update()

    # --- state ------------------------------------------------------------------------------
    @property
    def frame(self) -> int:
        return int(self.frame_slider.value)

    @property
    def method(self) -> str:
        return str(self.method_select.value)

    @property
    def layers(self) -> dict[str, bool]:
        return {name: bool(box.value) for name, box in self.layer_boxes.items()}

    def mpve_mm(self, method: str | None = None, frame: int | None = None) -> float:
        """Mean per-vertex error (mm, no alignment) of ``method`` on ``frame`` (default: shown)."""
        method = self.method if method is None else method
        frame = self.frame if frame is None else frame
        return float(self.recons.mpve_mm(method)[frame])

    # --- callbacks ----------------------------------------------------------------------------
    def _on_change(self, change=None) -> None:
        self.update()

    def update(self) -> None:
        """Re-render the view and the read-out for the current controls (all callbacks end here)."""
        frame, method = self.frame, self.method
        r = self.recons
        mpve = self.mpve_mm(method, frame)
        label = html.escape(r.frame_names[frame])
        self.readout.value = (
            f'<div class="vhakit-readout-text" data-frame="{frame}" '
            f'data-method="{html.escape(method)}" data-mpve-mm="{mpve:.3f}" '
            f'data-clim-high-mm="{self.clim_mm[1]:g}">'
            f"<b>frame {frame}</b> / {r.num_frames - 1} ({label}) &middot; "
            f"<b>{html.escape(method)}</b> &middot; MPVE <b>{mpve:.1f} mm</b></div>")
        png = self.renderer.render(frame, method, self.layers, self.clim_mm)
        self.view.value = png
        for cls in [c for c in self.view._dom_classes if c.startswith("vhakit-frame-")]:
            self.view.remove_class(cls)
        self.view.add_class(f"vhakit-frame-{frame}")
        if r.images is not None:
            self.inputs.value = png_of_images(r.images[frame])
        self.inputs.layout.display = None if r.images is not None else "none"
        self.shown_frame, self.shown_method = frame, method
        self.render_count += 1

    # --- display ------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        text = (f"ReconstructionViewer: frame {self.frame}, {self.method}, "
                f"MPVE {self.mpve_mm():.1f} mm")
        return widget_bundle(self.widget, {"image/png": self.view.value, "text/plain": text},
                             include, exclude)

    def close(self) -> None:
        """Release the widgets and the off-screen renderer."""
        self.renderer.close()
        for child in [self.frame_slider, self.method_select, *self.layer_boxes.values(),
                      self.readout, self.caption, self.view, self.inputs, *self.widget.children,
                      self.widget]:
            child.close()


class _PyVistaRenderer:
    """Off-screen pyvista rendering of viewer frames on one reused plotter."""

    def __init__(self, recons, size):
        from vhakit.viz.scenes import new_plotter

        self.recons = recons
        self.plotter = new_plotter(size)

    def render(self, frame, method, layers, clim_mm) -> bytes:
        from vhakit.viz.backend import screenshot_png
        from vhakit.viz.scenes import frame_scene

        self.plotter.clear()
        frame_scene(self.plotter, self.recons, frame, method, layers, clim_mm)
        return screenshot_png(self.plotter)

    def close(self) -> None:
        self.plotter.close()


class _MatplotlibRenderer:
    """Matplotlib rendering of viewer frames (no OpenGL needed; cameras are not drawn)."""

    def __init__(self, recons, size):
        self.recons, self.size = recons, size

    def render(self, frame, method, layers, clim_mm) -> bytes:
        import matplotlib.pyplot as plt

        from vhakit.viz.figures import draw_frame

        fig = plt.figure(figsize=(self.size[0] / 100, self.size[1] / 100), dpi=100)
        try:
            draw_frame(fig, self.recons, frame, method, layers, clim_mm)
            buf = io.BytesIO()
            fig.savefig(buf, format="png", dpi=100)
        finally:
            plt.close(fig)
        return buf.getvalue()

    def close(self) -> None:
        pass


def _make_renderer(kind: str | None, recons, size):
    from vhakit.viz.backend import offscreen_render_works

    if kind is None:
        kind = "pyvista" if offscreen_render_works() else "matplotlib"
    if kind == "pyvista":
        return _PyVistaRenderer(recons, size)
    if kind == "matplotlib":
        return _MatplotlibRenderer(recons, size)
    raise ValueError(f"renderer must be 'pyvista', 'matplotlib' or None, got {kind!r}")
