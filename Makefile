# rlcourse: `make lab` to learn, `make test` to check everything (what CI runs).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_WORKERS ?= 2

.PHONY: install lab test lint unit notebooks browser-deps student data bench reseed site clean help

help:
	@echo "make lab      - install (first time) and open the course in JupyterLab"
	@echo "make test     - ruff, unit tests, every notebook (nbmake) and the browser test"
	@echo "make site     - build the website of the executed course in build/site/ (open build/site/index.html)"
	@echo "make student  - write student copies (solutions removed) to student/"
	@echo "make data     - rebuild the shipped tiny models and reward model in data/ (~5 min)"
	@echo "make bench    - run the benchmarks in benchmarks/"
	@echo "make reseed   - run chapters with other seeds: make reseed CHAPTERS='01 04' SEEDS='1 2 3'"

$(STAMP): pyproject.toml constraints.txt jupyter/lab-settings/overrides.json
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "rlcourse needs Python >= 3.10, found " + sys.version.split()[0])'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip -c constraints.txt -q
	$(BIN)/python -m pip install -c constraints.txt -e ".[dev]"
	mkdir -p $(VENV)/share/jupyter/lab/settings/overrides.d
	cp jupyter/lab-settings/overrides.json $(VENV)/share/jupyter/lab/settings/overrides.d/rlcourse.json
	touch $(STAMP)

install: $(STAMP)

lab: install
	$(BIN)/jupyter lab notebooks/00_start_here.ipynb $(ROOT_FLAG)

browser-deps:
	@bash .ci/ensure_browser.sh

lint: install
	$(BIN)/ruff check .

# The notebooks are copied to build/notebooks/ and executed there by nbmake (--overwrite keeps the outputs),
# two at a time (one CPU thread each), in the same pytest run as the unit tests and the JupyterLab browser
# test; the website is then built from those executed copies and checked in a real browser.
EXECUTED := build/notebooks
test: install browser-deps lint
	$(BIN)/python tools/site/build.py stage
	RLCOURSE_STRICT_CHECKS=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadgroup \
		--nbmake --nbmake-timeout=900 --overwrite --durations=15 --ignore=tests/test_site.py tests $(EXECUTED)
	$(BIN)/python tools/site/build.py build
	$(BIN)/python -m pytest tests/test_site.py

unit: install
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) tests

notebooks: install
	RLCOURSE_STRICT_CHECKS=1 $(BIN)/python -m pytest -n $(PYTEST_WORKERS) --nbmake --nbmake-timeout=900 notebooks

student: install
	$(BIN)/python -m rlcourse.student notebooks student

data: install
	$(BIN)/python -m rlcourse.lm.sft --all
	$(BIN)/python -m rlcourse.reward_model

bench: install
	$(BIN)/python -m pip install -c constraints.txt -e ".[bench]"
	for f in benchmarks/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

# The website: executes the notebooks not already executed from this source (by make test or an earlier
# make site) into build/notebooks/, then builds static HTML into build/site/.
site: install
	$(BIN)/python tools/site/build.py all

# Every claim holds for any seed: run chapters with other SEEDs and report which assertions failed.
CHAPTERS ?= all
SEEDS ?= 1 2 3 4 5
reseed: install
	$(BIN)/python tools/reseed.py $(CHAPTERS) --seeds $(SEEDS)

clean:
	rm -rf $(VENV) student build .pytest_cache .ruff_cache
