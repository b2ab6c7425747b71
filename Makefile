# kiosk — developer entry points.
#   make demo    install into .venv, start kiosk on http://127.0.0.1:8000 (SQLite, demo catalog)
#                and the Azure DevOps emulator on http://127.0.0.1:8001 (a webhook-triggered pipeline)
#   make test    install (incl. a PostgreSQL server and chromium for the tests), ruff, mypy, every test
#   make lint    ruff check, ruff format --check, mypy
#   make bench   the benchmarks in bench/ (BENCH_ARGS=--quick for a smoke run)
#   make clean   caches, build output and the demo's .kiosk; `make distclean` also drops .venv

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
BENCH_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8000
EMULATOR_PORT ?= 8001

# Root installs packages directly; anyone else through sudo.
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)

.PHONY: help install pg-server browser demo test lint bench clean distclean

help:
	@sed -n 's/^#   //p' $(MAKEFILE_LIST)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the project's requirements changed since the last install.
$(STAMP): pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# The tests start their own throwaway PostgreSQL server (tests/pg.py) from Debian's binaries.
pg-server:
	@if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then \
		echo "PostgreSQL server binaries: $$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)"; \
	else \
		echo "Installing Debian's PostgreSQL server for the tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql; \
	fi

# The browser tests (tests/ui/test_browser.py) drive Debian's chromium through Playwright: no
# browser download, which these machines and many corporate networks cannot do.
browser:
	@if [ -x /usr/bin/chromium ]; then \
		echo "Chromium: /usr/bin/chromium"; \
	else \
		echo "Installing Debian's chromium for the browser tests"; \
		$(SUDO) apt-get update -q && \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	fi

demo: install
	KIOSK_HOME=./.kiosk $(BIN)/kiosk demo --host $(HOST) --port $(PORT) --emulator-port $(EMULATOR_PORT)

lint: install
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

test: install pg-server browser lint
	$(BIN)/pytest

bench: install pg-server
	$(BIN)/python -m bench.bulk_upsert $(BENCH_ARGS)
	$(BIN)/python -m bench.search $(BENCH_ARGS)
	$(BIN)/python -m bench.trigger $(BENCH_ARGS)
	$(BIN)/python -m bench.expansion $(BENCH_ARGS)
	$(BIN)/python -m bench.delivery $(BENCH_ARGS)
	$(BIN)/python -m bench.action_latency $(BENCH_ARGS)
	$(BIN)/python -m bench.receivers $(BENCH_ARGS)
	$(BIN)/python -m bench.emulator_generate $(BENCH_ARGS)
	$(BIN)/python -m bench.emulator_lists $(BENCH_ARGS)
	$(BIN)/python -m bench.jq_compile $(BENCH_ARGS)
	$(BIN)/python -m bench.mapping $(BENCH_ARGS)
	$(BIN)/python -m bench.resync $(BENCH_ARGS)
	$(BIN)/python -m bench.incremental $(BENCH_ARGS)
	$(BIN)/python -m bench.azure_throttled $(BENCH_ARGS)
	$(BIN)/python -m bench.resync_throttled $(BENCH_ARGS)
	$(BIN)/python -m bench.live_events $(BENCH_ARGS)

clean:
	rm -rf .kiosk .mypy_cache .pytest_cache .ruff_cache .hypothesis build dist src/*.egg-info
	find src tests bench -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
