# replenish-agent developer entry points. `make demo` and `make test` work on a fresh
# Debian / Raspberry Pi OS machine with only Python 3.11+ (see .ci/ensure-packages.sh).
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: all venv system-packages test test-fast lint typecheck schema demo demo-foreign sim-year \
        bench-deps bench-forecast bench-decisions bench-ingest bench-footprint bench-fold-hour bench-commit-schedule bench-broker-persistence \
        bench-alerts bench-fleet bench-web bench install uninstall clean

all: test

system-packages:
	@bash .ci/ensure-packages.sh

$(STAMP): pyproject.toml
	@bash .ci/ensure-packages.sh
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

typecheck: venv
	$(VENV)/bin/mypy

# The unit + integration suite with lint and types: what CI runs.
test: venv system-packages lint typecheck
	$(PY) -m pytest -q

# Unit tests only (no broker, printer or subprocess).
test-fast: venv
	$(PY) -m pytest -q -m "not integration"

schema: venv
	$(PY) -m agent.wire.device > docs/protocol.schema.json
	$(PY) -m agent.wire.household_schema > docs/household.schema.json

# A simulated household ordering from the sandbox vendor, on a private broker.
demo: venv system-packages
	$(PY) -m firmware_sim.demo

# The same closed loop with devices a household can buy (Zigbee2MQTT batteries, a
# Valetudo robot, a Nightscout wearer), a simulated year (docs/sources.md).
demo-foreign: venv system-packages
	$(PY) -m firmware_sim.demo_foreign

# The demo world for a simulated year, agent in-process vs the real `replenish run
# --clock` process: orders and stockout days side by side (docs/vendor-testing.md).
sim-year: venv system-packages
	$(PY) -m firmware_sim.closed_loop --days 365 --seconds-per-day 0 --out bench/results

# Benchmark references (matplotlib for the plot, statsforecast's AutoETS) are never
# runtime dependencies of the agent.
bench-deps: venv
	$(PY) -m pip install --quiet -e ".[dev,bench]"

bench-forecast: bench-deps
	$(PY) -m bench.forecast

# Reorder timing on a second, independently written household family (issue 18).
bench-decisions: venv
	$(PY) -m bench.decisions

bench-ingest: venv system-packages
	$(PY) -m bench.ingest

bench-footprint: venv system-packages
	$(PY) -m bench.footprint

bench-fold-hour: venv
	$(PY) -m bench.fold_hour

bench-commit-schedule: venv
	$(PY) -m bench.commit_schedule

bench-broker-persistence: venv system-packages
	$(PY) -m bench.broker_persistence

bench-alerts: venv system-packages
	$(PY) -m bench.alerts

bench-fleet: venv system-packages
	$(PY) -m bench.fleet

# The household web app: RSS, start time and page latency on a year of 50 devices.
bench-web: venv
	$(PY) -m bench.web

bench: bench-forecast bench-decisions bench-ingest bench-footprint bench-fold-hour bench-commit-schedule bench-broker-persistence bench-alerts bench-fleet bench-web

install:
	PYTHON=$(PYTHON) bash systemd/install.sh

uninstall:
	bash systemd/uninstall.sh

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache demo-state
