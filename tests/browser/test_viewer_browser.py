"""Notebook 07 in a real browser: JupyterLab + headless Chromium (Playwright).

Runs every cell, then checks what a student must see: the viewer widget renders and its first
frame shows a body (non-background pixels in the picture), its error colour scale ends below
300 mm with the classroom checkpoints, moving the frame slider changes the displayed frame and
the MPVE read-out, the 3D views appear (a canvas in a trame iframe, or an image), and no cell
shows an error. Screenshots go to ``test-artifacts/``. About 1-2 minutes.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from serving import png_body_share

from vhakit.teaching.classroom_models import pretrained_available

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(300)]

NOTEBOOK = "notebooks/07_interactive_3d.ipynb"
RUN_ALL_TIMEOUT_S = 180


def _readout(page) -> dict:
    el = page.locator(".vhakit-viewer .vhakit-readout-text")
    return {"frame": el.get_attribute("data-frame"), "mpve": el.get_attribute("data-mpve-mm"),
            "method": el.get_attribute("data-method"),
            "clim_high": el.get_attribute("data-clim-high-mm")}


def _accept_kernel_dialog(page) -> None:
    """Accept a 'Select Kernel' dialog if one is open (it proposes the notebook's Python 3)."""
    button = page.locator(".jp-Dialog .jp-Dialog-button.jp-mod-accept")
    if button.count():
        button.first.click()


def _run_all(page, path: str, lab) -> None:
    """Open a notebook, wait for its kernel, and run all cells from the Run menu."""
    page.goto(lab.notebook_url(path))
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=90_000)
    idle = page.locator(".jp-StatusBar-Widget").filter(has_text="| Idle")
    deadline = time.monotonic() + 90
    while not idle.count():
        _accept_kernel_dialog(page)
        if time.monotonic() > deadline:
            raise AssertionError(f"the kernel of {path} did not become idle")
        time.sleep(0.5)
    time.sleep(1.0)
    _accept_kernel_dialog(page)
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_text("Run All Cells", exact=True).click()
    for _ in range(6):  # a late dialog would hold the queued cells
        time.sleep(0.5)
        _accept_kernel_dialog(page)


def _wait_all_cells_ran(page, timeout_s: float) -> None:
    """Wait until no cell is queued or running (no '[*]' prompt)."""
    deadline = time.monotonic() + timeout_s
    while True:
        prompts = page.locator(".jp-Notebook .jp-InputPrompt").all_inner_texts()
        if prompts and not any("*" in p for p in prompts):
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"cells still running after {timeout_s} s: {prompts}")
        time.sleep(1.0)


def test_viewer_in_jupyterlab(lab, browser_page):
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        _check_viewer(lab, browser_page)
    except Exception:
        browser_page.screenshot(path=str(ARTIFACTS / "browser-failure.png"))
        print(f"JupyterLab log ({lab.log}):\n{lab.log.read_text()[-4000:]}")
        raise


def _check_viewer(lab, page) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _run_all(page, NOTEBOOK, lab)

    # 1. the viewer widget renders (not "Error displaying widget")
    page.wait_for_selector(".vhakit-viewer .vhakit-readout-text", timeout=RUN_ALL_TIMEOUT_S * 1000)
    viewer = page.locator(".vhakit-viewer")
    assert page.get_by_text("Error displaying widget").count() == 0
    view = viewer.locator("img.vhakit-view")
    view.scroll_into_view_if_needed()
    page.wait_for_function(
        "() => { const i = document.querySelector('.vhakit-viewer img.vhakit-view');"
        " return i && i.complete && i.naturalWidth > 100; }")
    first = _readout(page)
    assert float(first["mpve"]) > 0, first
    start = int(first["frame"])
    assert f"vhakit-frame-{start}" in view.get_attribute("class")
    share = png_body_share(view.screenshot())
    assert share > 0.05, f"the viewer opens on frame {start} but shows almost no body ({share:.1%})"
    if pretrained_available():  # the classroom checkpoints: a robust scale, not the worst frame's
        assert float(first["clim_high"]) < 300, first
    assert viewer.locator(".vhakit-scale-caption").count() == 1
    first_src = view.get_attribute("src")
    viewer.screenshot(path=str(ARTIFACTS / "viewer_first_frame.png"))

    # 2. move the frame slider with the keyboard, as a student could
    handle = viewer.locator(".widget-slider .noUi-handle").first
    handle.focus()
    last = handle.get_attribute("aria-valuemax")
    key, target = (("ArrowLeft", start - 1) if last is not None and start == int(float(last))
                   else ("ArrowRight", start + 1))
    page.keyboard.press(key)
    page.wait_for_function(
        "t => document.querySelector('.vhakit-viewer .vhakit-readout-text')"
        ".getAttribute('data-frame') === t", arg=str(target), timeout=30_000)
    page.wait_for_function(
        "t => document.querySelector('.vhakit-viewer img.vhakit-view')"
        ".classList.contains('vhakit-frame-' + t)", arg=str(target), timeout=30_000)
    second = _readout(page)
    assert second["method"] == first["method"]
    assert second["mpve"] != first["mpve"], (first, second)
    assert view.get_attribute("src") != first_src  # a new picture
    viewer.screenshot(path=str(ARTIFACTS / "viewer.png"))

    # 3. the 3D views of the later cells appear: VTK.js canvases (trame) or PNG images
    _wait_all_cells_ran(page, RUN_ALL_TIMEOUT_S)
    iframes = page.locator(".jp-OutputArea-output iframe")
    images = page.locator(".jp-OutputArea-output img:not(.vhakit-view):not(.vhakit-inputs)")
    assert iframes.count() + images.count() >= 3, (iframes.count(), images.count())
    if iframes.count():
        iframes.first.scroll_into_view_if_needed()
        canvas = page.frame_locator(".jp-OutputArea-output iframe").first.locator("canvas")
        canvas.first.wait_for(state="visible", timeout=60_000)
        box = canvas.first.bounding_box()
        assert box and box["width"] > 100 and box["height"] > 100, box
        time.sleep(5.0)  # let VTK.js finish drawing before the picture is taken
        iframes.first.screenshot(path=str(ARTIFACTS / "view3d_interactive.png"))
    else:
        images.first.scroll_into_view_if_needed()
        images.first.screenshot(path=str(ARTIFACTS / "view3d_static.png"))
    stderr = page.locator(".jp-OutputArea-output[data-mime-type="
                          "'application/vnd.jupyter.stderr']").all_inner_texts()
    assert not [t for t in stderr if "Traceback" in t or "Error" in t], stderr
    assert page.get_by_text("Traceback (most recent call last)").count() == 0
    page.locator(".jp-OutputArea-output").last.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "notebook07_end.png"))
    assert not [e for e in errors if "widget" in e.lower()], errors


def test_setup_check_widgets_round_trip(lab, browser_page):
    """Notebook 00 in the browser: the widget probe renders and the browser answers the kernel."""
    page = browser_page
    try:
        _run_all(page, "notebooks/00_setup_check.ipynb", lab)
        probe = page.locator(".vhakit-widget-probe")
        probe.wait_for(timeout=RUN_ALL_TIMEOUT_S * 1000)
        page.wait_for_function(
            "() => document.querySelector('.vhakit-widget-probe').textContent"
            ".includes('round trip works')", timeout=30_000)
        _wait_all_cells_ran(page, RUN_ALL_TIMEOUT_S)
        outputs = page.locator(".jp-OutputArea-output").filter(has_text="WIDGETS DO NOT RENDER")
        assert outputs.count() == 0  # the probe's text fallback is not shown
        table = page.locator("table.vhakit-setup")
        assert table.count() == 1 and "licensed SMPL" in table.inner_text()
        probe.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "setup_check.png"))
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "browser-failure-00.png"))
        raise
