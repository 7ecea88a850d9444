# Common Ground: `make run` serves the dashboard on the demo city; `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8501
CATALOG ?= data/catalog.toml
DB     ?= data/warehouse.duckdb

.PHONY: run test lint bench demo load clean

$(VENV)/.runtime: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

data/demo/planted.json: app/demo_city.py | $(VENV)/.runtime
	$(PY) -m app demo --out data/demo

demo: data/demo/planted.json

# Loads are idempotent: unchanged files are skipped, so this is quick when nothing changed.
load: $(VENV)/.runtime data/demo/planted.json
	$(PY) -m app load --catalog $(CATALOG) --db $(DB)

run: load
	COMMON_GROUND_DB=$(DB) COMMON_GROUND_CATALOG=$(CATALOG) $(PY) -m streamlit run app/dashboard/streamlit_app.py \
		--server.port $(PORT) --server.headless true --browser.gatherUsageStats false

test: $(VENV)/.dev data/demo/planted.json
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

bench: $(VENV)/.dev
	$(PY) bench/ingest.py
	$(PY) bench/query.py
	$(PY) bench/hotspots.py
	$(PY) bench/dashboard.py
	$(PY) bench/forecast.py

clean:
	rm -rf data/demo $(DB) $(DB).lock test-artifacts
