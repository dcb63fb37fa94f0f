# The two commands a newcomer needs: `make run` and `make test`. Both build what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SYSTEM_TOOLS := curl iperf3 socat

.PHONY: run test bench system-deps clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the end-to-end tests and benchmarks drive (installed only when missing).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do command -v $$t >/dev/null || missing="$$missing $$t"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing tools:$$missing (tests that need them will be skipped)"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/ockam node run config/default.toml

test: $(STAMP) system-deps
	$(PY) -m pytest -q

bench: $(STAMP) system-deps
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist .pytest_cache
