"""Fixtures for browser tests: a JupyterLab server on a free localhost port (token on) and
Debian's Chromium driven headless by Playwright (no browser download).

Skips, with the reason, when Playwright or Chromium is missing. Install them with::

    apt-get install -y chromium          # as root; or set VHAKIT_CHROMIUM=/path/to/chrome
    .venv/bin/pip install playwright     # the Python package only: no `playwright install`
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from serving import free_port, prepare_classroom_data, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update",
                  "--disable-sync"]
CI_VARIABLES = ("CI", "GITHUB_ACTIONS", "GITLAB_CI", "BUILDKITE", "JENKINS_URL", "TF_BUILD",
                "CIRCLECI", "TRAVIS")


def pytest_configure(config):
    config.addinivalue_line("markers", "browser: drives a real browser (JupyterLab + Chromium, "
                            "~1-2 min)")


def chromium_path() -> str | None:
    for candidate in [os.environ.get("VHAKIT_CHROMIUM"), "/usr/bin/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser")]:
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@dataclass(frozen=True)
class Lab:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path  # the server's root directory (a temporary copy of the notebooks)
    log: Path

    def notebook_url(self, path: str) -> str:
        return f"{self.url}/lab/tree/{path}?token={self.token}"


def _quiet_settings(settings_dir: Path) -> None:
    """No news pop-up, no update check (nothing reaches for the network or covers the page), and
    no 'Select Kernel' dialog: notebooks start their own Python 3 kernel."""
    for plugin, values in {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"autoStartDefaultKernel": True},
    }.items():
        path = settings_dir / "@jupyterlab" / f"{plugin}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


def _stop(proc: subprocess.Popen) -> None:
    """Stop the server and its kernels (its own process group) without hanging."""
    if proc.poll() is not None:
        return
    for sig, wait_s in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a temporary copy of ``notebooks/`` (the committed notebooks are never
    saved with outputs). The kernel runs in fast mode and reads the data sets from the
    repository's ``data/`` (prepared as for the classroom). CI variables are removed from its
    environment so the 3D backend policy is the one a student's local JupyterLab gets, unless
    ``VHAKIT_PYVISTA_BACKEND`` is set."""
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the notebooks extra)")
    tmp = tmp_path_factory.mktemp("lab")
    root = tmp / "root"
    shutil.copytree(REPO / "notebooks", root / "notebooks",
                    ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings"
    _quiet_settings(settings)
    port, token = free_port(), secrets.token_hex(16)
    env = {k: v for k, v in os.environ.items() if k not in CI_VARIABLES}
    env.update(VHAKIT_FAST="1", OMP_NUM_THREADS="1", JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
               PYTHONUNBUFFERED="1", VHAKIT_DATA_DIR=str(REPO / "data"))
    prepare_classroom_data()
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1",
           f"--port={port}", "--port-retries=0", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={root}", "--allow-root",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={tmp / 'ws'}",
           "--LabApp.extension_manager=readonly", "--LabApp.news_url=",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    log = tmp / "jupyterlab.log"
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(proc, f"{url}/api/status?token={token}", log, "JupyterLab")
        yield Lab(url, token, root, log)
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def browser_page(tmp_path_factory):
    """A Playwright page in headless system Chromium with a new empty profile."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed: pip install playwright "
        "(the Python package; the browser comes from apt-get install chromium)")
    exe = chromium_path()
    if exe is None:
        pytest.skip("Chromium not found: apt-get install -y chromium (or set VHAKIT_CHROMIUM)")
    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(profile), executable_path=exe, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1280, "height": 1000})
        context.set_default_timeout(60_000)
        try:
            page = context.pages[0] if context.pages else context.new_page()
            yield page
        finally:
            context.close()

