"""README, environment.yml, pyproject.toml, Makefile and .ci/run tell the same story."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

ROOT = Path(__file__).resolve().parents[1]


def _name(req: str) -> str:
    return re.split(r"[<>=!~\[ ;]", req.strip(), maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_matches_pyproject():
    project = _pyproject()["project"]
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_block = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    editable = [p for p in pip_block if p.startswith("-e")]
    assert editable == ["-e .[notebooks,viz,dev]"]
    env_reqs = {_name(p): p for p in pip_block if not p.startswith("-e")}
    py_reqs = {_name(r): r for r in project["dependencies"]}
    assert set(env_reqs) == set(py_reqs), "environment.yml and pyproject list different packages"
    for name, req in py_reqs.items():
        assert env_reqs[name].replace(" ", "") == req.replace(" ", ""), name
    for extra in ["notebooks", "viz", "dev"]:
        assert extra in project["optional-dependencies"]
    py = next(d for d in env["dependencies"] if isinstance(d, str) and d.startswith("python"))
    assert py.replace("python", "") == project["requires-python"]


def test_torch_range_admits_the_pinned_cpu_wheel():
    torch_req = next(r for r in _pyproject()["project"]["dependencies"] if _name(r) == "torch")
    lower = re.search(r">=\s*([\d.]+)", torch_req).group(1)
    assert tuple(map(int, lower.split("."))) <= (2, 13, 0)
    assert "<" not in torch_req or "2.13" in torch_req
    makefile = (ROOT / "Makefile").read_text()
    assert "TORCH  ?= torch==2.13.0" in makefile


def test_readme_gives_the_commands_and_the_exact_test_command():
    readme = (ROOT / "README.md").read_text()
    for cmd in ["make demo", "make test", "make lab"]:
        assert cmd in readme
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^test: setup\n\t(.+)$", makefile, re.M).group(1)
    readme_cmd = recipe.replace("$(BIN)", ".venv/bin").replace(" $(PYTEST_ARGS)", "")
    assert readme_cmd in readme, f"README must show the test command: {readme_cmd}"
    ci = (ROOT / ".ci" / "run").read_text().strip().splitlines()
    assert ci[-1] == "make test"


def test_cli_help_runs():
    out = subprocess.run([sys.executable, "-m", "vhakit", "--help"], capture_output=True,
                         text=True, check=True)
    assert "demo" in out.stdout and "info" in out.stdout
