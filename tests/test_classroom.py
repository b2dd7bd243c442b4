"""The command behind ``make classroom`` (no server started; the browser test serves it)."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from vhakit.classroom import DASHBOARDS, dashboard_notebooks, voila_command

REPO = Path(__file__).resolve().parents[1]


def _notebooks(tmp_path: Path, names: list[str]) -> Path:
    for name in names:
        (tmp_path / name).write_text("{}")
    return tmp_path


@pytest.mark.parametrize("present", [["07_interactive_3d.ipynb"], ["05_ablations.ipynb"],
                                     ["05_ablations.ipynb", "07_interactive_3d.ipynb"]])
def test_serves_whichever_dashboards_exist_and_hides_the_other_notebooks(tmp_path, present):
    others = ["00_setup_check.ipynb", "02_vertex_heatmaps.ipynb"]
    root = _notebooks(tmp_path, present + others)
    server = voila_command(root, port=9999, token="t0k")
    assert server.dashboards == [n for n in DASHBOARDS if n in present]
    cmd = server.command
    assert cmd[:4] == [sys.executable, "-m", "voila", str(root.resolve())]
    for flag in ["--no-browser", "--port=9999", "--Voila.ip=127.0.0.1", "--Voila.port_retries=0",
                 "--Voila.token=t0k", "--strip_sources=True"]:
        assert flag in cmd
    hidden = {a.split("=", 1)[1] for a in cmd if a.startswith("--LargeFileManager.hide_globs=")}
    assert set(others) <= hidden and not set(present) & hidden
    assert server.dashboard_url(present[0]) == (
        f"http://127.0.0.1:9999/voila/render/{present[0]}?token=t0k")


def test_random_token_by_default():
    a, b = (voila_command(REPO / "notebooks") for _ in range(2))
    assert re.fullmatch(r"[0-9a-f]{32}", a.token) and a.token != b.token


def test_errors_name_the_argument(tmp_path):
    with pytest.raises(FileNotFoundError, match="none of the dashboards"):
        voila_command(_notebooks(tmp_path, ["00_setup_check.ipynb"]))
    with pytest.raises(FileNotFoundError, match="notebooks_dir"):
        dashboard_notebooks(tmp_path / "missing")
    with pytest.raises(ValueError, match="port"):
        voila_command(REPO / "notebooks", port=70000)


def test_the_kit_ships_the_viewer_dashboard():
    assert REPO / "notebooks" / "07_interactive_3d.ipynb" in dashboard_notebooks(REPO / "notebooks")
