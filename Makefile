# robo_q: `make run` sets up and runs the main job; `make test` sets up and runs the tests.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
BIN := $(VENV)/bin
export MUJOCO_GL ?= egl
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run test lint test-all bench bench-learning clean

setup: $(VENV)/.installed

# Headless rendering needs EGL + Mesa; install them where missing (Debian/Ubuntu, as root).
$(VENV)/.installed: pyproject.toml
	@ldconfig -p | grep -q 'libEGL.so.1' && ldconfig -p | grep -q 'libEGL_mesa' || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 >/dev/null; \
	  else echo "warning: EGL/Mesa libraries missing: install libegl1 libegl-mesa0 libgl1-mesa-dri for rendering" >&2; fi; }
	@command -v g++ >/dev/null || { \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && apt-get install -y -qq g++ >/dev/null; \
	  else echo "warning: no C++ compiler: agent.compile=true (torch.compile on the CPU) needs g++" >&2; fi; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

run: setup
	$(BIN)/roboq pipeline

test: setup lint
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test-all: setup
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/sim_speed.py
	$(BIN)/python bench/train_speed.py
	$(BIN)/python bench/policy_latency.py
	$(BIN)/python bench/ros_loop.py
	$(BIN)/python bench/train_loop.py
	$(BIN)/python bench/recorder_speed.py
	$(BIN)/python bench/log_convert_speed.py

bench-learning: setup
	$(BIN)/python bench/learning.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
