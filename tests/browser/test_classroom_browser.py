"""The classroom dashboards in a real browser: Voila (as ``make classroom`` starts it) + headless
Debian Chromium through Playwright.

Starts Voila on a free 127.0.0.1 port with the command of :func:`vhakit.teaching.classroom.voila_command`,
opens the dashboard of notebook 07 and checks that the viewer widget renders with a body in its
first frame, that no code and no text about code is shown, that moving the frame slider changes
the error read-out and the picture, and that the later 3D views arrive as pictures; then the
dashboard of notebook 05: the committed Table 1 and the ablation panel, without code. Screenshots
go to ``test-artifacts/classroom_0*.png``. About 30 s per page on 2 cores (Voila runs the
notebook in fast mode before it sends the page). Skips, with the reason, without Voila,
Playwright or Chromium.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from serving import free_port, png_body_share, prepare_classroom_data, wait_until_serving

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
NOTEBOOKS = REPO / "notebooks"
VIEWER = "07_interactive_3d.ipynb"
ABLATIONS = "05_ablations.ipynb"
SERVER_START_TIMEOUT_S = 30
PAGE_TIMEOUT_S = 120  # Voila runs the whole notebook before it answers (~10 s alone)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]


def _stop(proc: subprocess.Popen) -> None:
    """Stop Voila and its kernels (its own process group), SIGKILL if it does not exit."""
    for sig, wait_s in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait_s)
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def classroom(tmp_path_factory):
    """The Voila server of ``make classroom`` on a free port, kernels in fast mode; always
    stopped at the end, also when the start or a test fails."""
    pytest.importorskip("voila", reason="Voila is not installed (the notebooks extra)")
    from vhakit.teaching.classroom import voila_command

    prepare_classroom_data()  # what `make classroom` does before serving
    server = voila_command(NOTEBOOKS, port=free_port())
    tmp = tmp_path_factory.mktemp("voila")
    log = tmp / "voila.log"
    env = dict(os.environ, VHAKIT_FAST="1", OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1",
               JUPYTER_RUNTIME_DIR=str(tmp / "runtime"))
    with open(log, "w") as out:
        proc = subprocess.Popen(server.command, env=env, stdout=out, stderr=subprocess.STDOUT,
                                cwd=REPO, start_new_session=True)
    try:
        wait_until_serving(proc, f"{server.url}/?token={server.token}", log, "Voila",
                           SERVER_START_TIMEOUT_S)
        yield server, log
    finally:
        _stop(proc)


def test_only_the_dashboards_are_listed_and_the_token_is_required(classroom):
    server, _ = classroom
    with urllib.request.urlopen(f"{server.url}/voila/api/contents/?token={server.token}",
                                timeout=10) as r:
        listed = sorted(c["name"] for c in json.load(r)["content"] if c["type"] == "notebook")
    assert VIEWER in listed
    assert listed == sorted(server.dashboards)  # 00, 02, ... are not offered
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{server.url}/voila/api/contents/", timeout=10)
    assert err.value.code in (401, 403)


def _readout(page) -> dict:
    el = page.locator(".vhakit-viewer .vhakit-readout-text")
    return {"frame": el.get_attribute("data-frame"), "mpve": el.get_attribute("data-mpve-mm"),
            "method": el.get_attribute("data-method")}


def test_viewer_dashboard_renders_without_code_and_reacts(classroom, browser_page):
    server, log = classroom
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        page.goto(server.dashboard_url(VIEWER), timeout=PAGE_TIMEOUT_S * 1000)

        # 1. the viewer widget renders, with its picture
        page.wait_for_selector(".vhakit-viewer .vhakit-readout-text",
                               timeout=PAGE_TIMEOUT_S * 1000)
        assert page.get_by_text("Error displaying widget").count() == 0
        page.wait_for_function(
            "() => { const i = document.querySelector('.vhakit-viewer img.vhakit-view');"
            " return i && i.complete && i.naturalWidth > 100; }")
        first = _readout(page)
        assert float(first["mpve"]) > 0, first
        view = page.locator(".vhakit-viewer img.vhakit-view")
        assert png_body_share(view.screenshot()) > 0.05  # a body, not an empty picture
        first_src = view.get_attribute("src")
        start = int(first["frame"])

        # 2. no code: no editor, no input prompt, none of the notebook's source text
        assert page.locator(".jp-InputArea-editor, .jp-InputPrompt, .cm-editor").count() == 0
        assert "ReconstructionViewer(recons)" not in page.content()
        assert page.get_by_text("Looking at reconstructions in 3D").count() >= 1  # markdown stays
        for words in ("USE_PRETRAINED", "VHAKIT_FAST", "Exercises"):  # cells tagged away
            assert words not in page.inner_text("body"), words
        page.screenshot(path=str(ARTIFACTS / "classroom_07_first.png"))

        # 3. move the frame slider with the keyboard, as a student would
        handle = page.locator(".vhakit-viewer .widget-slider .noUi-handle").first
        handle.focus()
        last = handle.get_attribute("aria-valuemax")
        key, target = (("ArrowLeft", start - 1) if last is not None and start == int(float(last))
                       else ("ArrowRight", start + 1))
        page.keyboard.press(key)
        page.wait_for_function(
            "t => document.querySelector('.vhakit-viewer .vhakit-readout-text')"
            ".getAttribute('data-frame') === t", arg=str(target), timeout=30_000)
        page.wait_for_function(  # the picture follows the read-out
            "t => document.querySelector('.vhakit-viewer img.vhakit-view')"
            ".classList.contains('vhakit-frame-' + t)", arg=str(target), timeout=30_000)
        second = _readout(page)
        assert second["method"] == first["method"]
        assert second["mpve"] != first["mpve"], (first, second)
        assert view.get_attribute("src") != first_src
        page.screenshot(path=str(ARTIFACTS / "classroom_07.png"))

        # 4. the later 3D views arrive as pictures (a Voila kernel gets the static backend)
        images = page.locator(".jp-OutputArea-output img:not(.vhakit-view):not(.vhakit-inputs)")
        assert images.count() >= 3, images.count()
        images.last.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "classroom_07_end.png"))
        assert not [e for e in errors if "widget" in e.lower()], errors
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "classroom-failure.png"))
        print(f"Voila log ({log}):\n{log.read_text()[-4000:]}")
        raise


def test_ablation_dashboard_shows_the_committed_table_without_code(classroom, browser_page):
    server, log = classroom
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        page.goto(server.dashboard_url(ABLATIONS), timeout=PAGE_TIMEOUT_S * 1000)
        page.wait_for_selector("table.vhakit-ablation", timeout=PAGE_TIMEOUT_S * 1000)
        text = page.inner_text("body")
        assert "Table 1" in text and "vertex + code + pretrain" in text
        assert page.get_by_text("Error displaying widget").count() == 0
        assert page.locator(".jp-InputArea-editor, .jp-InputPrompt, .cm-editor").count() == 0
        for words in ("TRAIN =", "VHAKIT_FAST", "Exercises", "Traceback"):
            assert words not in text, words
        page.screenshot(path=str(ARTIFACTS / "classroom_05.png"))
        bars = page.locator(".jp-OutputArea-output img").first  # Table 1 as bars
        bars.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "classroom_05_table.png"))
        page.locator("table.vhakit-ablation").scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "classroom_05_panel.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "classroom-failure-05.png"))
        print(f"Voila log ({log}):\n{log.read_text()[-4000:]}")
        raise
