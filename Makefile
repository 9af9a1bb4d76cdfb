# The two front-door commands: `make lab` brings up the default lab, `make test` runs every test.
# Both install what they need first (idempotent; fast when already done; `make test` also Chromium
# and Firefox ESR, headless, for the web page's tests). Run as root.
# `make test` then runs the suite under the machine's other CPythons 3.10-3.13 (scripts/pythons.sh).
LAB ?= topologies/xp_mode.yaml
PYTEST_ARGS ?=

.PHONY: install install-test lab test check clean

install:
	@bash scripts/install.sh

install-test:
	@bash scripts/install.sh --test

lab: install
	.venv/bin/wvpclab run $(LAB) --web

check: install
	.venv/bin/wvpclab check $(LAB)

test: install-test
	.venv/bin/ruff check .
	.venv/bin/python -m pytest $(PYTEST_ARGS)
	@bash scripts/pythons.sh

clean: install
	.venv/bin/wvpclab clean
