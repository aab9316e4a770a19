# The two commands a fresh machine needs: `make demo` and `make test`. Both install what they need.
VENV ?= $(CURDIR)/.venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test unit proto clean

setup:
	@bash deploy/local/setup.sh

demo: setup
	$(PY) -m flowscope lab up -f deploy/lab/demo.yaml
	$(PY) -m flowscope up

test: setup
	bash tests/run.sh $(PYTEST_ARGS)

# The unit part: no root, no kernel, no ClickHouse, Prometheus or Chromium (tests/conftest.py marks the rest).
# Most of its time is waiting (servers and CLI processes starting, streams ending), so it runs on twice as
# many workers as cores.
UNIT_WORKERS ?= $(shell echo $$(( $$(nproc) * 2 )))
unit:
	bash tests/run.sh -m "not integration" -n $(UNIT_WORKERS) $(PYTEST_ARGS)

proto:
	$(PY) -m proto.generate

clean:
	-$(PY) -m flowscope lab down --all
	rm -rf var/ .pytest_cache
