"""Is this machine ready for the kit? Checks with what to do when one fails (notebook 00).

::

    from vhakit.teaching.setup_check import setup_report, WidgetProbe
    setup_report()      # a table in a notebook, text in a terminal
    WidgetProbe()       # a green box if widgets render here; instructions if they do not
"""
from __future__ import annotations

import html
import importlib
import importlib.util
import os
from dataclasses import dataclass

__all__ = ["Check", "SetupReport", "setup_report", "check_versions", "check_widgets",
           "check_pyvista", "check_gpu", "check_kernels", "check_body_models", "WidgetProbe"]

INSTALL = "make setup   (or: pip install -e '.[notebooks,viz,dev]')"


@dataclass(frozen=True)
class Check:
    """One line of the report. ``status``: ``ok``, ``info``, ``warn`` (works, degraded) or
    ``fail`` (something the kit needs is missing)."""

    name: str
    status: str
    detail: str
    fix: str = ""


def _version(module: str) -> str | None:
    try:
        mod = importlib.import_module(module)
    except Exception:  # missing or broken optional package
        return None
    return str(getattr(mod, "__version__", "unknown"))


def _major(version: str | None) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def check_versions() -> list[Check]:
    from vhakit.runtime import versions

    v = versions()
    required = ["torch", "numpy", "smplx", "matplotlib", "ipywidgets"]
    missing = [k for k in required if v.get(k) == "not installed"]
    detail = ", ".join(f"{k} {val}" for k, val in v.items())
    if missing:
        return [Check("packages", "fail", f"missing: {', '.join(missing)}; have {detail}", INSTALL)]
    return [Check("packages", "ok", detail)]


def check_widgets() -> list[Check]:
    """ipywidgets (kernel side) and its JupyterLab front-end must be installed and match."""
    kernel, front = _version("ipywidgets"), None
    try:
        from importlib.metadata import version

        front = version("jupyterlab_widgets")
    except Exception:
        pass
    fix = ("pip install 'ipywidgets>=8.1' 'jupyterlab>=4' jupyterlab_widgets in the environment "
           "that runs JupyterLab (usually this one), then restart JupyterLab and reload the page")
    if kernel is None:
        return [Check("widgets", "fail", "ipywidgets is not installed", fix)]
    if front is None:
        return [Check("widgets", "warn", f"ipywidgets {kernel}; jupyterlab_widgets not found "
                      "here (fine if JupyterLab runs from another environment that has it)", fix)]
    # ipywidgets 8 pairs with jupyterlab_widgets 3, ipywidgets 7 with 1.
    if _major(front) != {8: 3, 7: 1}.get(_major(kernel)):
        return [Check("widgets", "fail", f"ipywidgets {kernel} does not match jupyterlab_widgets "
                      f"{front} (\"Error displaying widget: model not found\")", fix)]
    return [Check("widgets", "ok", f"ipywidgets {kernel} with jupyterlab_widgets {front}; "
                  "run the probe cell to see them render")]


def check_pyvista() -> list[Check]:
    from vhakit.viz.backend import (
        choose_backend,
        configure_offscreen,
        detect_frontend,
        offscreen_render_works,
        pyvista_available,
        trame_available,
    )

    front = detect_frontend()
    out = [Check("notebook front-end", "ok" if front == "jupyter" else "info", {
        "jupyter": "a Jupyter server (JupyterLab / Notebook) runs this kernel",
        "executed": "executed headless (nbclient/nbconvert): widgets are not rendered, "
                    "3D views are PNGs",
        "none": "plain Python / terminal: 3D views are PNGs",
    }.get(front, front))]
    if not pyvista_available():
        out.append(Check("pyvista", "warn", "not installed: 3D views fall back to matplotlib "
                         "pictures", "pip install 'vhakit[viz]'"))
    else:
        window = configure_offscreen(dict(os.environ)) or "VTK's default"
        works = offscreen_render_works()
        out.append(Check(
            "3D rendering", "ok" if works else "warn",
            f"pyvista {_version('pyvista')}, VTK window {window}: off-screen rendering "
            + ("works" if works else "FAILED (views use matplotlib instead)"),
            "" if works else "Linux: apt-get install libegl1 libgl1-mesa-dri (EGL), or set "
            "VTK_DEFAULT_OPENGL_WINDOW=vtkOSOpenGLRenderWindow with libosmesa6; never start_xvfb"))
    try:
        choice = choose_backend()
        status, detail = "ok", f"{choice.name}: {choice.reason}"
    except ValueError as err:
        status, detail = "fail", str(err)
    fix = ("interactive view blank or hanging? set VHAKIT_PYVISTA_BACKEND=static (or html) "
           "before starting JupyterLab")
    if not trame_available():
        fix = "pip install 'vhakit[viz]' for interactive views; " + fix
    out.append(Check("3D backend", status, detail, fix))
    return out


def check_gpu() -> list[Check]:
    import torch

    from vhakit.runtime import default_device

    dev = default_device()
    if torch.cuda.is_available():
        detail = f"CUDA: {torch.cuda.get_device_name(0)} (torch {torch.__version__})"
    elif dev.type == "mps":
        detail = "Apple MPS"
    else:
        detail = (f"no GPU (torch {torch.__version__}, CUDA build: {torch.version.cuda}); "
                  "everything runs on the CPU, training is slower")
    return [Check("device", "info", f"computing on {dev}. {detail}",
                  "" if dev.type != "cpu" else "optional: install a CUDA build of torch from "
                  "https://pytorch.org/get-started/locally/ (not needed for the notebooks)")]


def check_kernels() -> list[Check]:
    """The optional fused CPU soft-argmax (never compiles here: reports only)."""
    from vhakit.heatmaps import kernels

    state, detail = kernels.kernel_state()
    if state in ("loaded", "built"):
        return [Check("CPU kernel", "ok", detail)]
    if state == "failed":
        return [Check("CPU kernel", "warn", detail, "install a C++ compiler (Debian: apt install "
                      "g++), then run: vhakit build-kernels --verbose")]
    return [Check("CPU kernel", "info", detail, "optional: vhakit build-kernels (~40 s once)")]


def check_body_models() -> list[Check]:
    out = []
    try:
        from vhakit.body.model import OPEN_MODEL_PATH, smpl_available
    except Exception as err:  # noqa: BLE001 - report any import problem as a failed check
        return [Check("body model", "fail", f"vhakit.body does not import: {err}", INSTALL)]
    if OPEN_MODEL_PATH.is_file():
        out.append(Check("open body model", "ok", f"{OPEN_MODEL_PATH.name} shipped with vhakit"))
    else:
        out.append(Check("open body model", "fail", f"{OPEN_MODEL_PATH} is missing",
                         "reinstall vhakit, or rebuild it: python "
                         "data_scripts/build_open_body_model.py"))
    smpl_dir = os.environ.get("VHAKIT_SMPL_DIR")
    if smpl_available():
        out.append(Check("licensed SMPL", "ok", f"found in {smpl_dir}"))
    else:
        out.append(Check("licensed SMPL", "info",
                         "not found (optional: every notebook runs with the open body)"
                         + (f"; VHAKIT_SMPL_DIR={smpl_dir} has no SMPL_NEUTRAL.pkl/.npz"
                            if smpl_dir else ""),
                         "register at https://smpl.is.tue.mpg.de, download SMPL, then "
                         "export VHAKIT_SMPL_DIR=/folder/with/SMPL_NEUTRAL.pkl and restart "
                         "the kernel"))
    return out


_ICON = {"ok": "\u2714", "info": "\u2139", "warn": "\u26a0", "fail": "\u2718"}
_COLOR = {"ok": "#1a7f37", "info": "#0969da", "warn": "#9a6700", "fail": "#cf222e"}


class SetupReport(list):
    """A list of :class:`Check` that prints as text and displays as an HTML table."""

    @property
    def ok(self) -> bool:
        """True when no check failed (warnings allowed)."""
        return all(c.status != "fail" for c in self)

    def __str__(self) -> str:
        lines = []
        for c in self:
            lines.append(f"{_ICON[c.status]} {c.status.upper():4s} {c.name}: {c.detail}")
            if c.fix:
                lines.append(f"      what to do: {c.fix}")
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        rows = "".join(
            f'<tr><td style="color:{_COLOR[c.status]};font-weight:bold">{_ICON[c.status]} '
            f"{c.status}</td><td>{html.escape(c.name)}</td><td>{html.escape(c.detail)}</td>"
            f"<td>{html.escape(c.fix)}</td></tr>" for c in self)
        return ('<table class="vhakit-setup"><tr><th>status</th><th>check</th><th>found</th>'
                f"<th>what to do if it is not ok</th></tr>{rows}</table>")

    def _repr_pretty_(self, p, cycle) -> None:
        p.text(str(self))


def setup_report() -> SetupReport:
    """Run every check: versions, widgets, pyvista, device, CPU kernel, body models."""
    return SetupReport(check_versions() + check_widgets() + check_pyvista() + check_gpu()
                       + check_kernels() + check_body_models())


class WidgetProbe:
    """Displays a green box when the widget front-end works; otherwise the notebook shows this
    object's text, which says how to fix it. When the browser renders the probe, a link in the
    browser writes back to the kernel and :attr:`round_trip_ok` becomes True (visible in the box).
    """

    FAIL_TEXT = ("WIDGETS DO NOT RENDER HERE (you see this text instead of a green box). Fix: "
                 "pip install 'ipywidgets>=8.1' 'jupyterlab>=4' in the environment that runs "
                 "JupyterLab, restart JupyterLab and reload the browser page. Executed/exported "
                 "notebooks (nbconvert, GitHub) never render widgets: that is expected there.")

    def __init__(self) -> None:
        import ipywidgets as w

        self._sent = w.IntText(value=1, layout=w.Layout(display="none"))
        self._echo = w.IntText(value=0, layout=w.Layout(display="none"))
        self.label = w.HTML(self._label(False))
        self.widget = w.VBox([self.label, self._sent, self._echo])
        self.widget.add_class("vhakit-widget-probe")
        self._link = w.jsdlink((self._sent, "value"), (self._echo, "value"))
        self._echo.observe(lambda change: setattr(self.label, "value", self._label(True)),
                           names="value")

    @property
    def round_trip_ok(self) -> bool:
        return self._echo.value == self._sent.value

    def round_trip_text(self, frontend: str | None = None) -> str:
        """What to print about the round trip, true wherever the notebook runs: ``"works"``
        once the browser answered; otherwise, where no browser can answer (an executed
        notebook, plain Python; ``frontend`` as :func:`vhakit.viz.backend.detect_frontend`, detected
        when None), that it was not tested; else that it is still waiting."""
        if self.round_trip_ok:
            return "works"
        if frontend is None:
            from vhakit.viz.backend import detect_frontend

            frontend = detect_frontend()
        if frontend in ("executed", "none"):
            return "not tested: no browser displays this notebook (executed without one)"
        return "waiting for the browser to render the box above; run this cell again"

    @staticmethod
    def _label(round_trip: bool) -> str:
        extra = ("browser &rarr; kernel round trip works" if round_trip else
                 "waiting for the browser to answer (run the next cell)")
        return ('<div style="background:#dafbe1;border:1px solid #1a7f37;padding:6px">'
                f"\u2714 widgets render in this front-end; {extra}</div>")

    def _repr_mimebundle_(self, include=None, exclude=None):
        from vhakit.viz.backend import widget_bundle

        return widget_bundle(self.widget, {"text/plain": self.FAIL_TEXT}, include, exclude)
