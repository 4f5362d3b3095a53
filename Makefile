# The two commands of the README. Each prepares the machine itself (Debian packages, .venv, pip).
VENV ?= .venv
PY = $(VENV)/bin/python
# Most tests wait on subprocesses and I/O (servers, lvm2, qemu-img), so more workers than cores pays off.
TEST_WORKERS ?= 4

.PHONY: demo test lint bench bootstrap docs man min-deps

bootstrap:
	bash scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m smapi.demo

test: bootstrap
	$(VENV)/bin/ruff check smapi xapi tests bench examples
	$(VENV)/bin/mypy
	PY=$(PY) TEST_WORKERS=$(TEST_WORKERS) bash scripts/run-tests.sh $(PYTEST_ARGS)
	bash scripts/min-deps.sh

# the lowest dependency versions setup.cfg allows, in .venv-mindeps, on a fast subset (part of `make test`)
min-deps:
	bash scripts/min-deps.sh

lint: bootstrap
	$(VENV)/bin/ruff check smapi xapi tests bench examples
	$(VENV)/bin/mypy

docs: bootstrap
	$(PY) -m smapi.interface.docgen docs/interface.md

bench: bootstrap
	$(PY) bench/run_all.py

man: bootstrap
	$(VENV)/bin/smapi man-pages man
