# The two set-up commands of the README: `make run` and `make test`.
# Everything is installed from the lock files into ./.venv; only Python >= 3.11 and make are needed.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= examples/monitor.toml
PYTEST_ARGS ?=
# The sources compiled at install time (listed once, in monitor/build.py: mypyc's modules and the
# C extensions): editing one re-installs the project, so tests never run a stale compiled copy.
COMPILED := $(shell $(PYTHON) -c "import runpy; b = runpy.run_path('monitor/build.py'); print(' '.join(b['SOURCES'] + b['C_SOURCES']))")

.PHONY: run test lint typecheck pytest bench bench-json lock clean demo

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"

$(VENV)/.runtime: requirements.lock requirements-build.lock pyproject.toml setup.py monitor/build.py $(COMPILED) | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements.lock
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-build.lock
	$(BIN)/pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

$(VENV)/.test: requirements-test.lock pyproject.toml $(VENV)/.runtime
	$(BIN)/pip install --quiet --require-hashes --no-deps -r requirements-test.lock
	touch $@

run: $(VENV)/.runtime
	mkdir -p var
	$(BIN)/monitor run --config $(CONFIG)

demo: $(VENV)/.runtime
	$(BIN)/monitor demo

lint: $(VENV)/.test
	$(BIN)/ruff check monitor tests bench
	$(BIN)/ruff format --check monitor

typecheck: $(VENV)/.test
	$(BIN)/mypy

pytest: $(VENV)/.test
	$(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

bench: $(VENV)/.test
	$(BIN)/python -m bench $(if $(ONLY),--only $(ONLY))

bench-json: $(VENV)/.test
	$(BIN)/python -m bench --json $(if $(ONLY),--only $(ONLY))

# Re-resolve the pins (needs the `uv` tool; the result is plain pip requirements with hashes).
lock:
	uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements.lock
	uv pip compile pyproject.toml --extra test --python-version 3.11 --generate-hashes -o requirements-test.lock
	$(PYTHON) -c "import tomllib; print('\\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['build-system']['requires']))" \
	  | uv pip compile - -c requirements-test.lock --python-version 3.11 --generate-hashes -o requirements-build.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache build monitor/*.so news_monitor__mypyc*.so
