# Two commands from a fresh clone: `make demo` and `make test`. Both create .venv first.
PYTHON ?= $(shell command -v python3.11 2>/dev/null || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
# `make demo` needs the daemon alone (its own, lighter stamp); the dev extras (linters,
# test servers, matplotlib) are for `make test`, and a dev install serves the demo too.
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.demo-installed
# the example outside plugin: installed with pip like any third-party plugin, tested via its entry point
NTFY := plugins/videosdk-watchdog-ntfy
NTFY_STAMP := $(VENV)/.ntfy-installed

.PHONY: demo test lint typecheck docs pytest bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "videosdk-watchdog needs Python 3.11 or newer (found: $(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	@touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(NTFY_STAMP): $(STAMP) $(NTFY)/pyproject.toml $(wildcard $(NTFY)/watchdog_ntfy/*)
	$(BIN)/python -m pip install --quiet ./$(NTFY)
	@touch $(NTFY_STAMP)

demo: $(if $(wildcard $(STAMP)),$(STAMP),$(DEMO_STAMP))
	$(BIN)/videosdk-watchdog demo

test: lint typecheck docs pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports  # the architecture contracts in pyproject.toml

typecheck: $(STAMP) $(NTFY_STAMP)
	$(BIN)/mypy
	cd $(NTFY) && MYPYPATH=../.. ../../$(BIN)/mypy  # editable installs hide the core from mypy

# the docs site: warnings are errors, references inside the project must resolve; the
# configuration reference documents every installed notifier type, the ntfy plugin included;
# -E: always read afresh, since the generated tables follow the code, not the pages
docs: $(STAMP) $(NTFY_STAMP)
	$(BIN)/sphinx-build -E -W --keep-going -q -b html docs docs/_build/html

pytest: $(STAMP) $(NTFY_STAMP)
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python -m benchmarks.poll_throughput
	$(BIN)/python -m benchmarks.time_to_alert
	$(BIN)/python -m benchmarks.rule_engine
	$(BIN)/python -m benchmarks.notifier_send
	$(BIN)/python -m benchmarks.service_overhead
	$(BIN)/python -m benchmarks.alert_delivery
	$(BIN)/python -m benchmarks.alert_path --participants 2000 --steps 2
	$(BIN)/python -m benchmarks.slack_actions
	$(BIN)/python -m benchmarks.meeting_message
	$(BIN)/python -m benchmarks.inhibition
	$(BIN)/python -m benchmarks.redaction
	$(BIN)/python -m benchmarks.inbound_attacks

clean:
	rm -rf $(VENV) build *.egg-info .mypy_cache .ruff_cache .pytest_cache docs/_build
