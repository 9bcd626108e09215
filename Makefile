# The README's two commands work on a fresh machine with only Python 3.11+ and make:
#   make demo   - creates .venv, installs, runs the three-region ShopEase demo
#   make test   - creates .venv, installs, runs the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
HASH   := $(shell cksum pyproject.toml | cut -d' ' -f1)

.PHONY: demo test test-slow test-faults lint bench bench-quick clean

# One stamp per extra set, renewed whenever pyproject.toml changes.
$(VENV)/.stamp-%-$(HASH): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PY) -m pip install --quiet --disable-pip-version-check -e '.[$*]'
	@rm -f $(VENV)/.stamp-$*-* && touch $@

demo: $(VENV)/.stamp-demo-$(HASH)
	$(VENV)/bin/regiondb demo

test: $(VENV)/.stamp-test-$(HASH)
	$(PY) -m pytest -q

test-slow: $(VENV)/.stamp-test-$(HASH)
	REGIONDB_SLOW=1 HYPOTHESIS_PROFILE=slow $(PY) -m pytest -q

# Three nodes in three network namespaces over impaired links (root, Linux, iproute2;
# nftables for loss and partitions): partitions, SIGKILL, lag. Skips, saying why, elsewhere.
test-faults: $(VENV)/.stamp-test-$(HASH)
	REGIONDB_FAULTS=1 $(PY) -m pytest -q -s -m faults tests/netns

# Types (mypy --strict, from pyproject) and lint (ruff, rules in pyproject).
lint: $(VENV)/.stamp-dev-$(HASH)
	$(VENV)/bin/mypy engine replication regiondb
	$(VENV)/bin/ruff check engine replication regiondb tests bench

bench: $(VENV)/.stamp-bench-$(HASH)
	$(PY) -m bench

bench-quick: $(VENV)/.stamp-bench-$(HASH)
	$(PY) -m bench --quick

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis
