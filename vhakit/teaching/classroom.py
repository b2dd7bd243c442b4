"""Classroom dashboards: the viewer and ablation notebooks served by Voila, widgets only.

``make classroom`` runs ``python -m vhakit.teaching.classroom``: Voila serves ``notebooks/`` on
127.0.0.1 with the code cells stripped (students see markdown, outputs and widgets), token
authentication on, and only the dashboard notebooks listed. Each page load executes its notebook
in a fresh kernel, so the dashboards show whatever the notebooks load: the demo's
reconstructions (``runs/demo/``) and the classroom checkpoints when they exist, a labelled
stand-in otherwise, and the committed ablation results (``results/``).

Nothing is trained when a page loads. Cells tagged with one of :data:`DASHBOARD_SKIP_TAGS` are
removed before Voila runs the notebook (nbconvert's ``TagRemovePreprocessor``, configured on
Voila's command line): exercise solutions (``solution``, also removed from student copies) and
``notebook-only`` cells -- prose about the code, switches, exercises, anything that writes files
or trains. :func:`dashboard_notebook` applies the same removal, so tests run exactly the cells a
dashboard runs. Before serving, :func:`prepare` builds the data the dashboards read (the
viewer's test frames and their reconstructions, ~2 min once), so that each page load only
loads and draws.

The dashboards that do not exist yet are skipped, so the command works with either of them.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DASHBOARDS", "DASHBOARD_SKIP_TAGS", "ClassroomServer", "dashboard_notebooks",
           "dashboard_notebook", "voila_command", "prepare", "main"]

#: The notebooks served as dashboards, in the order they are listed.
DASHBOARDS = ("07_interactive_3d.ipynb", "05_ablations.ipynb")
#: Voila's default port (8866), so ``make lab`` (8888) can run beside it.
DEFAULT_PORT = 8866
HOST = "127.0.0.1"
#: Cells with one of these tags never run (and are not shown) on a dashboard.
DASHBOARD_SKIP_TAGS = ("solution", "notebook-only")
#: Voila's listing hides these as well as the notebooks that are not dashboards.
ALWAYS_HIDDEN = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*~")


def dashboard_notebooks(notebooks_dir: str | Path) -> list[Path]:
    """The :data:`DASHBOARDS` present in ``notebooks_dir`` (possibly none)."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"notebooks_dir {str(notebooks_dir)!r} is not a directory; pass "
                                "the kit's notebooks/ folder")
    return [notebooks_dir / name for name in DASHBOARDS if (notebooks_dir / name).is_file()]


def dashboard_notebook(path: str | Path):
    """The notebook at ``path`` as a dashboard runs it: an ``nbformat.NotebookNode`` without
    the cells tagged with one of :data:`DASHBOARD_SKIP_TAGS` (what Voila's
    ``TagRemovePreprocessor`` removes with :func:`voila_command`'s options)."""
    import nbformat

    nb = nbformat.read(Path(path), as_version=4)
    nb.cells = [c for c in nb.cells
                if not set(DASHBOARD_SKIP_TAGS) & set(c.get("metadata", {}).get("tags", []))]
    return nb


@dataclass(frozen=True)
class ClassroomServer:
    """Where the dashboards are served: the Voila command line and the pages' addresses."""

    command: list[str]
    url: str  # http://127.0.0.1:PORT
    token: str
    dashboards: list[str]  # notebook file names, as served

    def dashboard_url(self, name: str) -> str:
        """The page of one dashboard, with the token (open it in a browser)."""
        return f"{self.url}/voila/render/{name}?token={self.token}"


def voila_command(notebooks_dir: str | Path, *, port: int = DEFAULT_PORT, token: str | None = None,
                  python: str = sys.executable) -> ClassroomServer:
    """The Voila command that serves the dashboards of ``notebooks_dir`` on 127.0.0.1.

    Args:
        notebooks_dir: the kit's ``notebooks/`` folder (the kernels run in it, as in JupyterLab,
            so the notebooks find ``runs/`` the same way).
        port: TCP port; Voila fails instead of picking another one when it is taken.
        token: the access token (default: a random one, printed with the addresses).
        python: the interpreter whose Voila runs (default: this one).
    Raises:
        FileNotFoundError: ``notebooks_dir`` holds none of :data:`DASHBOARDS`.
        ValueError: ``port`` is outside 1..65535.
    """
    notebooks_dir = Path(notebooks_dir).resolve()
    found = dashboard_notebooks(notebooks_dir)
    if not found:
        raise FileNotFoundError(f"notebooks_dir {str(notebooks_dir)!r} holds none of the "
                                f"dashboards {DASHBOARDS}; pass the kit's notebooks/ folder")
    if not 0 < int(port) < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    token = token or secrets.token_hex(16)
    names = [p.name for p in found]
    others = sorted(p.name for p in notebooks_dir.glob("*.ipynb") if p.name not in names)
    hidden = [f"--LargeFileManager.hide_globs={g}" for g in (*ALWAYS_HIDDEN, *others)]
    # One flag per tag: traitlets reads repeated flags of a set option as its items.
    skipped = [f"--TagRemovePreprocessor.remove_cell_tags={t}" for t in DASHBOARD_SKIP_TAGS]
    command = [python, "-m", "voila", str(notebooks_dir), "--no-browser", f"--port={port}",
               f"--Voila.ip={HOST}", "--Voila.port_retries=0", f"--Voila.token={token}",
               "--strip_sources=True", "--show_tracebacks=False", *skipped, *hidden]
    return ClassroomServer(command, f"http://{HOST}:{port}", token, names)


def prepare(data_dir: str | Path | None = None, progress: bool = True) -> str:
    """Build what the dashboards read and a page load should not wait for: the test frames of
    the pretrained classroom models (the card's data recipe) and the viewer's (notebook 07)
    reconstructions of them (:func:`vhakit.teaching.classroom_models.cached_pretrained_reconstructions`,
    as many frames as a page load in this mode shows). About 2 min on 2 cores the first time,
    a second afterwards. Returns a line that says what was done.

    Args:
        data_dir: the data sets' folder (default ``$VHAKIT_DATA_DIR``, else the kit's default;
            the notebooks use the repository's ``data/``).
    """
    from vhakit.teaching.classroom_models import (
        cached_pretrained_reconstructions,
        card_frames,
        pretrained_available,
        read_card,
        viewer_frames,
    )

    if not pretrained_available():
        return "no classroom checkpoints: the viewer shows the demo output or the stand-in"
    old = os.environ.get("VHAKIT_DATA_DIR")
    if data_dir is not None:
        os.environ["VHAKIT_DATA_DIR"] = str(data_dir)
    try:
        ds = card_frames(read_card(), progress=progress)
        recons = cached_pretrained_reconstructions(viewer_frames())
    finally:
        if data_dir is not None:
            if old is None:
                os.environ.pop("VHAKIT_DATA_DIR", None)
            else:
                os.environ["VHAKIT_DATA_DIR"] = old
    return (f"the classroom models' {len(ds)} test frames are built and the viewer's "
            f"reconstructions of {recons.num_frames} of them are cached")


def main(argv: list[str] | None = None) -> int:
    """``python -m vhakit.teaching.classroom [--port P] [--notebooks DIR]``: print the addresses, then run
    Voila in this process (Ctrl-C stops it)."""
    parser = argparse.ArgumentParser(prog="python -m vhakit.teaching.classroom", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--notebooks", default="notebooks", help="the kit's notebooks/ folder")
    args = parser.parse_args(argv)
    try:
        import voila  # noqa: F401
    except ImportError:
        print("Voila is not installed: pip install -e '.[notebooks]' (make classroom does it)",
              file=sys.stderr)
        return 1
    server = voila_command(args.notebooks, port=args.port)
    # The notebooks read the data sets from the repository's data/ (next to notebooks/).
    data_dir = os.environ.get("VHAKIT_DATA_DIR") or Path(args.notebooks).resolve().parent / "data"
    print("Preparing the dashboards' data (about 2 min the first time) ...", flush=True)
    print(prepare(data_dir, progress=False), flush=True)
    missing = [n for n in DASHBOARDS if n not in server.dashboards]
    print("Classroom dashboards (code hidden; each page runs its notebook, ~10-30 s on 2 cores):")
    for name in server.dashboards:
        print(f"  {server.dashboard_url(name)}")
    if missing:
        print(f"  (not there yet, skipped: {', '.join(missing)})")
    print(f"  all of them: {server.url}/?token={server.token}\n", flush=True)
    os.execv(server.command[0], server.command)
    return 0  # not reached: execv replaces this process


if __name__ == "__main__":
    sys.exit(main())
