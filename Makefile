# The two front-door commands: `make lab` brings up the default lab, `make test` runs every test.
# Both install what they need first (idempotent; fast when already done). Run as root.
LAB ?= topologies/xp_mode.yaml
PYTEST_ARGS ?=

.PHONY: install lab test check clean

install:
	@bash scripts/install.sh

lab: install
	.venv/bin/wvpclab run $(LAB)

check: install
	.venv/bin/wvpclab check $(LAB)

test: install
	.venv/bin/ruff check .
	.venv/bin/python -m pytest $(PYTEST_ARGS)

clean: install
	.venv/bin/wvpclab clean
