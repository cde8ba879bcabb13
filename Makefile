# Two commands do everything on a fresh machine with Python 3.11: `make demo` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.8
MANIFEST := dbt_project/target/manifest.json
DBT_SOURCES := $(shell find dbt_project/models dbt_project/macros dbt_project/tests -type f 2>/dev/null) dbt_project/dbt_project.yml
DAGSTER_HOME := $(CURDIR)/data/dagster_home

.PHONY: install manifest chromium demo test ui clean

install: $(VENV)/.installed

# The lock pins every package with hashes; uv installs it in seconds and compiles bytecode
# (this machine sets PYTHONDONTWRITEBYTECODE, so imports would otherwise stay slow).
$(VENV)/.installed: requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "make: $(PYTHON) not found; run 'make PYTHON=/path/to/python3.11 ...'"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --require-hashes -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode --no-deps -e .
	touch $@

# dagster-dbt needs dbt's manifest when the definitions load.
manifest: $(MANIFEST)
$(MANIFEST): $(VENV)/.installed $(DBT_SOURCES)
	cd dbt_project && ../$(BIN)/dbt parse --quiet
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

# Runs from the demo and the UI share one instance, so the UI shows the demo's history.
demo ui: export DAGSTER_HOME := $(DAGSTER_HOME)
demo: $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dmp demo

# The browser tests open the report and the Dagster UI in headless Chromium: Debian's
# package, installed once (as root on CI, else through sudo); a no-op when it is there.
chromium:
	@command -v chromium >/dev/null || { \
	  command -v apt-get >/dev/null || { echo "make: the tests need Chromium (Debian's chromium package)"; exit 1; }; \
	  sudo=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  echo "Installing Chromium (apt-get install chromium) for the browser tests"; \
	  $$sudo apt-get update -qq && \
	  $$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

test: $(MANIFEST) chromium
	$(BIN)/python -m pytest

ui: $(MANIFEST) $(DAGSTER_HOME)/dagster.yaml
	DMP_AUTOMATION=on $(BIN)/dagster dev -m dagster_dmp.definitions -h 127.0.0.1 -p 3000

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: $(VENV)/.installed
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements.lock

clean:
	rm -rf data/dmp.duckdb data/dmp.duckdb.lock data/.dmp_dlt data/logs data/landing data/dagster_home data/spark reports/output dbt_project/target dbt_project/logs
