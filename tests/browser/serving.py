"""Helpers shared by the browser tests: a free localhost port, waiting for a server to answer,
the classroom data the notebooks read, and how much of a rendered view is body."""
from __future__ import annotations

import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

SERVER_START_TIMEOUT_S = 90
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_serving(proc: subprocess.Popen, probe_url: str, log: Path, name: str,
                       timeout_s: float = SERVER_START_TIMEOUT_S) -> None:
    """Poll ``probe_url`` until it answers 200; fail with the server's log if ``proc`` exits or
    ``timeout_s`` passes."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc.poll() is not None:
            pytest.fail(f"{name} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(probe_url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{name} did not answer within {timeout_s} s:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)


def prepare_classroom_data() -> None:
    """Build the classroom checkpoints' test frames and cache the viewer's reconstructions in the
    repository's ``data/`` (what ``make classroom`` does before serving; ~2 min once), in fast
    mode as the servers of these tests run, so that running a notebook only loads them."""
    from vhakit.teaching.classroom import prepare

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VHAKIT_FAST", "1")
        prepare(REPO / "data", progress=False)


def png_body_share(png: bytes) -> float:
    """The share of a rendered view's pixels that are not background (white or near it)."""
    import io

    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(int)
    return float((np.abs(img - 255).sum(-1) > 60).mean())
