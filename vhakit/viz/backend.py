"""Interactive 3D views with pyvista: the backend policy, off-screen rendering and display.

Every 3D view in the kit goes through :func:`show`, which asks :func:`choose_backend` (the one
place that decides) how to display it, and always keeps a static PNG of the view:

=========  =============================================================================
backend    when (first match wins)
=========  =============================================================================
override   ``VHAKIT_PYVISTA_BACKEND`` = ``static`` | ``client`` | ``trame`` | ``server`` | ``html``
static     a CI variable is set (``CI``, ``GITHUB_ACTIONS``, ...)
static     no notebook front-end: plain Python, a terminal IPython, or a kernel executed by
           nbclient / nbconvert / nbmake / papermill (no ``JPY_SESSION_NAME`` from a Jupyter
           server), VS Code, Colab, a JupyterHub without ``jupyter-server-proxy``
static     ``trame-pyvista`` is not installed (``pip install vhakit[viz]``)
client     a local JupyterLab / Notebook: the scene is rendered in the browser by VTK.js
           (no OpenGL needed in the kernel, the safest interactive mode)
=========  =============================================================================

``html`` (a self-contained VTK.js page, no server; survives nbconvert) is chosen only on request;
:func:`export_html` writes it to a file for offline sharing.

Off-screen rendering: with no ``DISPLAY`` (Linux servers, CI) the kit selects VTK's EGL window
(``VTK_DEFAULT_OPENGL_WINDOW=vtkEGLRenderWindow``) *before* VTK loads. It never starts a virtual
X server. :func:`offscreen_render_works` probes rendering in a child process once, so a broken
OpenGL stack gives a matplotlib picture instead of a crashed kernel.

pyvista is an optional extra: :func:`import_pyvista` raises an ImportError that says
``pip install vhakit[viz]``.
"""
from __future__ import annotations

import base64
import contextlib
import functools
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["BACKENDS", "BackendChoice", "choose_backend", "detect_frontend", "configure_offscreen",
           "import_pyvista", "pyvista_available", "trame_available", "offscreen_render_works",
           "screenshot_png", "show", "View", "export_html", "widget_bundle"]

BACKENDS = ("static", "client", "trame", "server", "html")
ENV_BACKEND = "VHAKIT_PYVISTA_BACKEND"
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD",
                "CIRCLECI", "TRAVIS")
_FALSE = {"", "0", "false", "no", "off"}


@dataclass(frozen=True)
class BackendChoice:
    """The display mode of 3D views and why it was chosen."""

    name: str  # one of BACKENDS
    reason: str

    @property
    def interactive(self) -> bool:
        return self.name != "static"


def detect_frontend(env: Mapping[str, str] | None = None, ipython=None) -> str:
    """Who will look at the output of this process.

    Returns ``"none"`` (plain Python or a terminal IPython), ``"jupyter"`` (a kernel started by a
    Jupyter server: JupyterLab, Notebook), ``"vscode"``, ``"colab"`` or ``"executed"`` (a kernel
    driven by nbclient, nbconvert, nbmake or papermill: nobody watches, widgets are not rendered).

    Args:
        env: environment variables (default ``os.environ``).
        ipython: the IPython shell (default ``IPython.get_ipython()`` when IPython is loaded).
    """
    env = os.environ if env is None else env
    if ipython is None and "IPython" in sys.modules:
        ipython = sys.modules["IPython"].get_ipython()
    if ipython is None or getattr(ipython, "kernel", None) is None:
        return "none"
    if "google.colab" in sys.modules or "COLAB_RELEASE_TAG" in env:
        return "colab"
    if "VSCODE_PID" in env or "VSCODE_CWD" in env or "VSCODE_IPC_HOOK_CLI" in env:
        return "vscode"
    if "PAPERMILL_INPUT_PATH" in env or "PAPERMILL_OUTPUT_PATH" in env:
        return "executed"
    if env.get("JPY_SESSION_NAME"):  # set by jupyter_server for kernels of its sessions
        return "jupyter"
    return "executed"


def trame_available() -> bool:
    """True if ``trame-pyvista`` (pyvista's Jupyter backends) can be imported."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("pyvista", "trame_pyvista"))


def pyvista_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("pyvista") is not None


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() not in _FALSE


def choose_backend(env: Mapping[str, str] | None = None, *, frontend: str | None = None,
                   trame: bool | None = None, server_proxy: bool | None = None) -> BackendChoice:
    """Decide how 3D views are displayed (the kit's single backend policy; table above).

    Args:
        env: environment variables (default ``os.environ``).
        frontend: result of :func:`detect_frontend` (detected when None).
        trame: whether trame-pyvista is installed (detected when None).
        server_proxy: whether jupyter-server-proxy is installed (detected when None); needed
            for interactive views on a remote JupyterHub.
    Raises:
        ValueError: ``VHAKIT_PYVISTA_BACKEND`` holds an unknown name.
    """
    env = os.environ if env is None else env
    override = env.get(ENV_BACKEND, "").strip().lower()
    if override:
        if override not in BACKENDS:
            raise ValueError(f"{ENV_BACKEND}={override!r} is not a backend; use one of {BACKENDS}")
        return BackendChoice(override, f"set by {ENV_BACKEND}")
    for var in CI_VARIABLES:
        if _truthy(env.get(var)):
            return BackendChoice("static", f"continuous integration ({var} is set)")
    frontend = detect_frontend(env) if frontend is None else frontend
    if frontend != "jupyter":
        why = {"none": "no notebook front-end (plain Python or terminal)",
               "executed": "notebook executed headless (nbclient/nbconvert/nbmake)",
               "vscode": "VS Code: trame iframes often stay blank there",
               "colab": "Colab: the trame server cannot be reached"}.get(frontend, frontend)
        return BackendChoice("static", why)
    if trame is None:
        trame = trame_available()
    if not trame:
        return BackendChoice("static", "trame-pyvista is not installed (pip install vhakit[viz])")
    if env.get("JUPYTERHUB_API_TOKEN") or env.get("JUPYTERHUB_SERVICE_PREFIX"):
        if server_proxy is None:
            import importlib.util
            server_proxy = importlib.util.find_spec("jupyter_server_proxy") is not None
        if not server_proxy:
            return BackendChoice("static", "JupyterHub without jupyter-server-proxy")
    return BackendChoice("client", "local Jupyter front-end with trame-pyvista: VTK.js in the "
                                   "browser")


def configure_offscreen(env: dict | None = None) -> str | None:
    """Select VTK's EGL off-screen window when there is no display; call before VTK loads.

    Returns the value of ``VTK_DEFAULT_OPENGL_WINDOW`` afterwards (None if unset). Never starts
    a virtual X server. A value already set by the user is kept.
    """
    env = os.environ if env is None else env
    if (sys.platform.startswith("linux") and not env.get("DISPLAY")
            and not env.get("WAYLAND_DISPLAY")):
        env.setdefault("VTK_DEFAULT_OPENGL_WINDOW", "vtkEGLRenderWindow")
    return env.get("VTK_DEFAULT_OPENGL_WINDOW")


def import_pyvista():
    """Import pyvista (after :func:`configure_offscreen`) or explain how to install it."""
    configure_offscreen()
    try:
        import pyvista
    except ImportError as err:
        raise ImportError("3D views need pyvista, an optional extra of vhakit: "
                          "pip install 'vhakit[viz]'  (or pip install pyvista)") from err
    return pyvista


_PROBE = """
import vtkmodules.vtkRenderingOpenGL2
from vtkmodules.vtkRenderingCore import vtkRenderWindow, vtkRenderer, vtkWindowToImageFilter
w = vtkRenderWindow(); w.SetOffScreenRendering(1); w.SetSize(8, 8)
r = vtkRenderer(); r.SetBackground(1.0, 0.0, 0.0); w.AddRenderer(r); w.Render()
f = vtkWindowToImageFilter(); f.SetInput(w); f.Update()
print("OK", int(f.GetOutput().GetPointData().GetScalars().GetTuple(0)[0]))
"""


@functools.lru_cache(maxsize=1)
def offscreen_render_works() -> bool:
    """True if VTK renders off-screen here; probed once in a child process (a broken OpenGL
    stack may crash the process that tries, so the kernel never does it first)."""
    if not pyvista_available():
        return False
    env = dict(os.environ)
    configure_offscreen(env)
    try:
        res = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return res.returncode == 0 and "OK 255" in res.stdout


def screenshot_png(plotter) -> bytes:
    """Render ``plotter`` off-screen and return the PNG bytes."""
    import io

    from PIL import Image

    img = plotter.screenshot(return_img=True)  # (H, W, 3) uint8
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def widget_bundle(widget, fallback: Mapping, include=None, exclude=None) -> dict:
    """``widget``'s display data plus ``fallback``: what a front-end without live widgets
    (nbconvert, nbclient, GitHub) shows instead. Values other than ``str`` (PNG bytes, a widget's
    memoryview) are base64-encoded."""
    bundle = widget._repr_mimebundle_(include=include, exclude=exclude)
    return {**(bundle[0] if isinstance(bundle, tuple) else bundle),
            **{k: v if isinstance(v, str) else base64.b64encode(v).decode("ascii")
               for k, v in fallback.items()}}


@dataclass
class View:
    """A displayed 3D view: its PNG (always), the backend used and the interactive widget."""

    png: bytes | None  # None only when off-screen rendering is impossible here
    backend: str
    widget: object = None
    html: str | None = None

    def _repr_mimebundle_(self, include=None, exclude=None):
        png = {} if self.png is None else {"image/png": base64.b64encode(self.png).decode()}
        text = {"text/plain": f"<3D view, {self.backend} backend, PNG of "
                              f"{len(self.png or b'')} bytes>"}
        if self.html is not None:
            return {"text/html": self.html, **png, **text}
        if self.widget is not None:
            # JupyterLab shows the widget; without widget state (nbconvert) the PNG is shown.
            return widget_bundle(self.widget, {**png, **text}, include, exclude)
        return {**png, **text}


def _html_scene(plotter) -> str:
    """The scene as a self-contained VTK.js page (needs trame-pyvista; no server, no network)."""
    return plotter.trame.export_html(filename=None).getvalue()


def export_html(plotter, path: str | os.PathLike) -> Path:
    """Write the scene of ``plotter`` as a standalone interactive HTML page for offline sharing."""
    if not trame_available():
        raise ImportError("HTML export needs trame-pyvista: pip install 'vhakit[viz]'")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(_html_scene(plotter), encoding="utf-8")
    return path


@contextlib.contextmanager
def _without_wasm_download():
    """Hide ``trame.widgets.vtklocal`` while a trame server starts: trame-pyvista initialises it
    when available, and it then downloads VTK's WebAssembly bundle from gitlab.kitware.com. The
    ``client``/``trame``/``server`` views do not use it, and the kit stays offline."""
    key, missing = "trame.widgets.vtklocal", object()
    saved = sys.modules.get(key, missing)
    sys.modules[key] = None  # `from trame.widgets import vtklocal` now raises ImportError
    try:
        yield
    finally:
        if saved is missing:
            sys.modules.pop(key, None)
        else:
            sys.modules[key] = saved


def show(plotter, backend: str | BackendChoice | None = None) -> View:
    """Display a pyvista ``plotter`` with the policy's backend; return the :class:`View`.

    The static PNG is rendered first (in every backend, where off-screen rendering works). The View is the
    cell's output (IPython displays it): the interactive view in JupyterLab, the PNG in executed
    or exported notebooks. Interactive backends that fail fall back to the PNG with a warning.
    """
    import warnings

    choice = backend if isinstance(backend, BackendChoice) else (
        choose_backend() if backend is None else BackendChoice(backend, "requested"))
    if choice.name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {choice.name!r}")
    # A broken OpenGL stack can crash the process that renders: probe it in a child first.
    png = screenshot_png(plotter) if offscreen_render_works() else None
    if choice.name == "static":
        if png is None:
            raise RuntimeError(
                "VTK cannot render off-screen on this machine, so 3D views have no picture. "
                "Linux: apt-get install libegl1 libgl1-mesa-dri (or libosmesa6 and "
                "VTK_DEFAULT_OPENGL_WINDOW=vtkOSOpenGLRenderWindow); the viewer widget falls "
                "back to matplotlib by itself.")
        return View(png, "static")
    try:
        if choice.name == "html":
            import html as html_lib

            page = html_lib.escape(_html_scene(plotter), quote=True)
            w, h = plotter.window_size
            iframe = (f'<iframe srcdoc="{page}" style="width:{w}px;height:{h}px;border:1px solid '
                      f'#ddd"></iframe>')
            return View(png, "html", html=iframe)
        with _without_wasm_download():
            widget = plotter.show(jupyter_backend=choice.name, return_viewer=True)
        return View(png, choice.name, widget=widget)
    except Exception as err:  # a broken trame stack must not cost the student the picture
        warnings.warn(f"interactive 3D backend {choice.name!r} failed ({err}); showing a PNG. "
                      f"Set {ENV_BACKEND}=static to silence this.", stacklevel=2)
        return View(png, "static")
