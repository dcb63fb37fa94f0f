# The two commands a newcomer needs: `make run` and `make test`. Both build what they need.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# tool:Debian package (the package that brings the tool, when its name differs)
SYSTEM_TOOLS := curl iperf3 socat prometheus nginx dnsmasq:dnsmasq-base dig:dnsutils logger:bsdutils
BENCH_TOOLS  := redis-server redis-benchmark sshd pgbench
# postgresql pulls in postgresql-NN (initdb, postgres and pgbench, under /usr/lib/postgresql/NN/bin)
# and postgresql-client-common (the /usr/bin/pgbench wrapper)
BENCH_PACKAGES := redis-server redis-tools openssh-server openssh-client postgresql

BUILD_STAMP := $(VENV)/.build-installed
COMPILE_STAMP := $(VENV)/.compile-installed
# the compiled build of the hot path (packaging/compiled.py): first on the module path, with
# the working directory kept off it (-P), so that every process imports it
COMPILED := build/compiled
WITH_COMPILED := OCKAM_COMPILED=1 PYTHONPATH=$(CURDIR)/$(COMPILED):$(CURDIR)
# reproducible builds: fixed hash seed, timestamps from the last commit
FREEZE := PYTHONHASHSEED=0 SOURCE_DATE_EPOCH=$$(git log -1 --format=%ct 2>/dev/null || echo 315532800) \
          $(VENV)/bin/pyinstaller --noconfirm --clean --log-level WARN ockam.spec

.PHONY: run test test-fast test-tcp-control test-compiled compiled bench bench-pure bench-floor bench-profile bench-deps \
        system-deps clean binary binary-check smoke binary-windows binary-windows-check test-windows

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Debian packages the end-to-end tests and benchmarks drive (installed only when missing).
system-deps:
	@missing=""; for t in $(SYSTEM_TOOLS); do tool=$${t%%:*}; package=$${t#*:}; \
	  command -v $$tool >/dev/null || [ -x /usr/sbin/$$tool ] || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	  else echo "missing tools:$$missing (tests that need them will be skipped)"; fi; \
	fi

run: $(STAMP)
	$(VENV)/bin/ockam node run config/default.toml

# the suite waits far more than it computes (nodes, timeouts): four workers on two cores
TEST_WORKERS ?= 4

test: $(STAMP) system-deps
	$(PY) -m pytest -q -n $(TEST_WORKERS) --durations=10

# the edit loop: the pure layers, no node and no process (seconds, not minutes)
test-fast: $(STAMP)
	$(PY) -m pytest -q --durations=5 tests/wire tests/secure tests/stream tests/config tests/limits tests/observe \
	    tests/test_layers.py

# the compiled build, checked by the layers the hot path runs in and by real clients through
# portals; tests that patch a function of the hot path are the pure build's (pure_only)
test-compiled: compiled system-deps
	$(WITH_COMPILED) $(PY) -P -m pytest -q -n $(TEST_WORKERS) --import-mode=append --durations=5 \
	    tests/wire tests/stream tests/secure tests/node tests/chaos tests/hostile \
	    tests/e2e/test_secure_portal.py tests/e2e/test_portal_load.py tests/e2e/test_udp_portal.py

$(COMPILE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[compile]'
	touch $(COMPILE_STAMP)

# build/compiled: appliance/ with the hot path compiled by mypyc (the pure modules when there
# is no C compiler)
compiled: $(COMPILE_STAMP)
	$(PY) packaging/compiled.py $(COMPILED)

# the e2e suite again with the nodes' control API on loopback TCP with a token, as on Windows
test-tcp-control: $(STAMP) system-deps
	OCKAM_CONTROL=tcp $(PY) -m pytest -q -n $(TEST_WORKERS) tests/e2e

# baselines (OpenSSH), targets (redis, PostgreSQL) and the chart library, installed only for
# the benchmark; if they cannot be installed, their rows report the error and the rest still runs
bench-deps: system-deps
	@missing=""; for t in $(BENCH_TOOLS); do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || missing=1; done; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing=1; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PACKAGES) >/dev/null; } \
	  || echo "could not install $(BENCH_PACKAGES): the rows that need them will report errors"; fi
	$(PY) -m pip install --quiet -e '.[bench]'

# the build that ships the speed: the compiled hot path (bench-pure: the reference build)
bench: $(STAMP) bench-deps compiled
	$(WITH_COMPILED) $(PY) -P -m bench $(BENCH_ARGS)

bench-pure: $(STAMP) bench-deps
	$(PY) -m bench $(BENCH_ARGS)

# where the nodes' CPU goes, by our compiled functions (perf; BENCH_ARGS="--plain --clients 1");
# perf is installed apart (Debian's linux-perf): where it cannot be, only this target says so
bench-profile: $(STAMP) bench-deps compiled
	@command -v perf >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq linux-perf >/dev/null; } \
	  || echo "could not install linux-perf: bench-profile needs perf"
	$(WITH_COMPILED) $(PY) -P -m bench.profile $(BENCH_ARGS)

# the ceiling of three relaying processes: bare forwarder chains next to OpenSSH and ours
bench-floor: $(STAMP) bench-deps
	$(PY) -m bench.floor

$(BUILD_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[build]'
	touch $(BUILD_STAMP)

# dist/ockam: the whole appliance as one executable, with the compiled hot path when there is
# a C compiler (rebuilt when a source changes)
binary: dist/ockam

FREEZE_FROM = $$(test -d $(COMPILED)/appliance && echo OCKAM_FREEZE_FROM=$(COMPILED))

dist/ockam: $(BUILD_STAMP) $(COMPILE_STAMP) ockam.spec $(wildcard packaging/pyinstaller/*.py) packaging/compiled.py \
            $(shell find appliance -name '*.py')
	$(PY) packaging/compiled.py $(COMPILED)
	env $(FREEZE_FROM) $(FREEZE) --distpath dist --workpath build/pyinstaller
	@ls -l dist/ockam

# two builds of the same commit must be byte-identical
binary-check: dist/ockam
	env $(FREEZE_FROM) $(FREEZE) --distpath build/again --workpath build/pyinstaller-again
	cmp dist/ockam build/again/ockam && echo "reproducible: $$(sha256sum dist/ockam)"

# the seed transcripts (plain and secure) driven through the frozen binary
smoke: dist/ockam system-deps
	OCKAM_BIN=$(CURDIR)/dist/ockam $(PY) -m pytest -q tests/frozen tests/e2e/test_seed_transcript.py \
	    tests/e2e/test_secure_portal.py tests/e2e/test_topology_nodes.py tests/e2e/test_operate.py \
	    tests/e2e/test_systemd.py

# dist/ockam.exe from the same spec, built under Wine by Windows CPython (packaging/windows/build.py
# installs Wine and caches Windows CPython and its wheels under build/windows), then driven
# under Wine by tests/windows, every command through the exe, next to Linux nodes
binary-windows: $(STAMP)
	$(PY) packaging/windows/build.py

# two builds of the same commit must be byte-identical on Windows too
binary-windows-check: binary-windows
	$(PY) packaging/windows/build.py --dist build/windows/again --work build/windows/pyinstaller-again
	cmp dist/ockam.exe build/windows/again/ockam.exe && echo "reproducible: $$(sha256sum dist/ockam.exe)"

test-windows: $(STAMP) system-deps
	@test -f dist/ockam.exe || { echo "no dist/ockam.exe: run make binary-windows first"; exit 2; }
	OCKAM_EXE=$(CURDIR)/dist/ockam.exe $(PY) -m pytest -q --durations=5 tests/windows

clean:
	rm -rf $(VENV) build dist .pytest_cache
