# Two commands on a fresh machine (Debian, Python 3.11, root or sudo for apt):
#   make run    install everything, then run the pipeline on the shipped feed list (embedded store)
#   make test   install everything (incl. Prometheus + Alertmanager from Debian), then run the whole test suite
PYTHON ?= python3
VENV   := .venv
STAMP  := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)
ARGS   ?=

.PHONY: install run test test-live bench lint

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/newsmon run $(ARGS)

test: $(STAMP)
	bash .ci/install-prometheus.sh
	bash .ci/opensearch.sh
	bash .ci/prism.sh
	$(MAKE) --no-print-directory lint
	NEWSMON_REQUIRE_OPENSEARCH=1 NEWSMON_REQUIRE_PRISM=1 $(VENV)/bin/python -m pytest -ra $(ARGS)

# The same contract tests against a real cluster: NEWSMON_TEST_ES_URL=https://... make test-live
test-live: $(STAMP)
	$(VENV)/bin/python -m pytest -ra -m live $(ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check pipelines connectors transforms tests bench
	$(VENV)/bin/mypy
