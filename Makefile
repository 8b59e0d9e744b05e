# The two commands in the README: `make demo` and `make test`. Everything runs from .venv/,
# which scripts/bootstrap.sh builds from uv.lock on first use (needs only python3 >= 3.11).
#
#   make test ARGS="-k replay -x"   extra arguments go to pytest
#   make bench                      benchmarks (installs the bench extra: dbos, pyinstrument)
#   make load ARGS="--time 60"      the shop under locust on PostgreSQL (bench/results/load*)
#   make chaos ARGS="--seed 7"      the long chaos run: 1,000 sagas, 200 SIGKILLs and more faults
#   make fuzz                       the HTTP API under schemathesis, 2,000 cases per operation
#   make fmt                        ruff format + ruff check --fix
#   make lock                       re-resolve uv.lock after editing pyproject.toml

SHELL := /bin/bash
VENV  := .venv
PY    := $(VENV)/bin/python
UV    := .tools/bin/uv
ARGS  ?=

export UV_PYTHON_DOWNLOADS := never

.PHONY: demo test bench load chaos fuzz fmt lint bootstrap lock clean

# The sample shop: orchestrator + inventory, payments, shipping; serves until Ctrl-C. Needs
# the demo extra only (no test toolchain); a .venv built for `make test` already has it.
demo:
	scripts/bootstrap.sh demo
	$(VENV)/bin/saga up $(ARGS)

test:
	scripts/test.sh $(ARGS)

bench:
	scripts/bootstrap.sh dev bench
	$(PY) -m bench $(ARGS)

load: bootstrap
	$(PY) -m bench.load $(ARGS)

# Workers under SIGKILL, SIGSTOP, SIGTERM, pg_terminate_backend and PostgreSQL restarts (a
# private cluster: needs Debian's initdb); prints its seed (see tests/chaos/).
chaos: bootstrap
	$(PY) -m tests.chaos $(ARGS)

# The HTTP API fuzzed deeper than make test does (250 cases per operation there, no coverage
# phase); zero 5xx.
fuzz: bootstrap
	SCHEMATHESIS_MAX_EXAMPLES=$${SCHEMATHESIS_MAX_EXAMPLES:-2000} SCHEMATHESIS_COVERAGE=$${SCHEMATHESIS_COVERAGE:-1} $(PY) -m pytest -p no:cacheprovider -q tests/http/test_schemathesis.py $(ARGS)

fmt: bootstrap
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

bootstrap:
	scripts/bootstrap.sh

lock:
	@test -x $(UV) || scripts/bootstrap.sh || test -x $(UV)
	$(UV) lock --python python3

clean:
	rm -rf $(VENV) .tools .pytest_cache .mypy_cache .ruff_cache .import_linter_cache
