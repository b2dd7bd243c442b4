# vhakit: one command to set up and run the demo, one to set up and run the tests.
#   make demo   - create .venv, install torch (CPU) + vhakit with extras, run `vhakit demo`
#   make test   - same set-up, then the whole test suite (unit tests + notebooks in fast mode)
#   make lab    - same set-up, then JupyterLab on localhost (token authentication on)
#   make classroom - same set-up, then the viewer/ablation notebooks as Voila dashboards
#   make student - same set-up, then student copies of the notebooks (no solutions) in student/
#                    (widgets only, no code) on 127.0.0.1:8866 (CLASSROOM_PORT=...), token on
PYTHON ?= python3
VENV   ?= .venv
TORCH  ?= torch==2.13.0
EXTRAS ?= notebooks,viz,dev
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.vhakit-installed
PYTEST_ARGS ?=
CLASSROOM_PORT ?= 8866
export VTK_DEFAULT_OPENGL_WINDOW ?= vtkEGLRenderWindow

.PHONY: setup demo test lab classroom lint clean student

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Re-install only when the package metadata changed (or TORCH/EXTRAS were overridden).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[$(EXTRAS)]"
	$(BIN)/vhakit build-kernels --allow-failure
	@echo "$(TORCH) [$(EXTRAS)]" > $(STAMP)

setup: $(STAMP)

demo: setup
	$(BIN)/vhakit demo

test: setup
	VHAKIT_FAST=1 $(BIN)/python -m pytest -q --nbmake --nbmake-timeout=600 tests notebooks $(PYTEST_ARGS)

# Jupyter refuses to run as root without --allow-root; Docker classrooms often run as root.
lab: setup
	$(BIN)/jupyter lab notebooks/ --ip=127.0.0.1 --no-browser $(if $(filter 0,$(shell id -u)),--allow-root)

# Voila comes with the notebooks extra; installed here too when EXTRAS was overridden without it.
classroom: setup
	@$(BIN)/python -c "import voila" 2>/dev/null || $(BIN)/python -m pip install -q -e ".[notebooks]"
	$(BIN)/python -m vhakit.teaching.classroom --port $(CLASSROOM_PORT)

# Student copies of the notebooks (cells tagged `solution` removed, outputs cleared) -> student/
student: setup
	$(BIN)/python -m vhakit.teaching.student --src notebooks --dst student

lint: setup
	$(BIN)/ruff check vhakit tests data_scripts benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache
