"""Classroom dashboards: the viewer and ablation notebooks served by Voila, widgets only.

``make classroom`` runs ``python -m vhakit.classroom``: Voila serves ``notebooks/`` on
127.0.0.1 with the code cells stripped (students see markdown, outputs and widgets), token
authentication on, and only the dashboard notebooks listed. Each page load executes its notebook
in a fresh kernel, so the dashboards show whatever the notebooks load: the demo's
reconstructions (``runs/demo/``) and the classroom checkpoints when they exist, a labelled
stand-in otherwise. Nothing is trained here.

The dashboards that do not exist yet are skipped, so the command works with either of them.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DASHBOARDS", "ClassroomServer", "dashboard_notebooks", "voila_command", "main"]

#: The notebooks served as dashboards, in the order they are listed.
DASHBOARDS = ("07_interactive_3d.ipynb", "05_ablations.ipynb")
#: Voila's default port (8866), so ``make lab`` (8888) can run beside it.
DEFAULT_PORT = 8866
HOST = "127.0.0.1"
#: Voila's listing hides these as well as the notebooks that are not dashboards.
ALWAYS_HIDDEN = ("__pycache__", "*.pyc", ".ipynb_checkpoints", "*~")


def dashboard_notebooks(notebooks_dir: str | Path) -> list[Path]:
    """The :data:`DASHBOARDS` present in ``notebooks_dir`` (possibly none)."""
    notebooks_dir = Path(notebooks_dir)
    if not notebooks_dir.is_dir():
        raise FileNotFoundError(f"notebooks_dir {str(notebooks_dir)!r} is not a directory; pass "
                                "the kit's notebooks/ folder")
    return [notebooks_dir / name for name in DASHBOARDS if (notebooks_dir / name).is_file()]


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
    command = [python, "-m", "voila", str(notebooks_dir), "--no-browser", f"--port={port}",
               f"--Voila.ip={HOST}", "--Voila.port_retries=0", f"--Voila.token={token}",
               "--strip_sources=True", "--show_tracebacks=False", *hidden]
    return ClassroomServer(command, f"http://{HOST}:{port}", token, names)


def main(argv: list[str] | None = None) -> int:
    """``python -m vhakit.classroom [--port P] [--notebooks DIR]``: print the addresses, then run
    Voila in this process (Ctrl-C stops it)."""
    parser = argparse.ArgumentParser(prog="python -m vhakit.classroom", description=__doc__,
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
