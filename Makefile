# finfeast: two commands on a fresh machine.
#   make run    create .venv, install, run the whole main job on the local profile
#   make test   install, start what the tests need, run the whole suite
SHELL := /bin/bash
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# Debian packages some tests drive for real: a browser for `feast ui`, Prometheus for the scrape
# test, docker-compose to validate the stack file.
SYSTEM_PACKAGES := chromium prometheus docker-compose

.PHONY: install run test test-fast lint format services system-deps bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(PY)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(STAMP)

run: install
	$(VENV)/bin/finfeast run

services:
	@bash .ci/services.sh

system-deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run as root or install them)"; fi; \
	fi

test: install system-deps services
	$(VENV)/bin/pytest

test-fast: install
	$(VENV)/bin/pytest -m "not slow"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: install
	for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf var .pytest_cache
	mkdir -p var/local && touch var/local/.gitkeep
