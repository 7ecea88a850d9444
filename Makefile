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

# The Spark engine (load --engine spark, its tests) needs Java 17: installed from Debian when it
# is missing and make runs as root; otherwise make says what to install.
.PHONY: java load-spark
java:
	@command -v java >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openjdk-17-jre-headless >/dev/null; \
	  else echo "note: the Spark engine needs Java 17 (Debian: apt-get install openjdk-17-jre-headless)"; fi; }

# The demo city loaded on Spark (local[*], or the master SPARK_MASTER names) into a store folder.
STORE ?= data/store
load-spark: $(VENV)/.runtime data/demo/planted.json java
	$(PY) -m app load --engine spark --catalog $(CATALOG) --db $(STORE)

# Loads are idempotent: unchanged files are skipped, so this is quick when nothing changed.
load: $(VENV)/.runtime data/demo/planted.json
	$(PY) -m app load --catalog $(CATALOG) --db $(DB)

run: load
	COMMON_GROUND_DB=$(DB) COMMON_GROUND_CATALOG=$(CATALOG) $(PY) -m streamlit run app/dashboard/streamlit_app.py \
		--server.port $(PORT) --server.headless true --browser.gatherUsageStats false

# The lint runs first: among its rules, one fails the build when the engine imports streamlit.
test: $(VENV)/.dev data/demo/planted.json java
	$(VENV)/bin/ruff check .
	$(PY) -m pytest

lint: $(VENV)/.dev
	$(VENV)/bin/ruff check .

bench: $(VENV)/.dev load
	$(PY) bench/ingest.py
	$(PY) bench/query.py
	$(PY) bench/hotspots.py
	$(PY) bench/dashboard.py
	$(PY) bench/ward_profile.py
	$(PY) bench/forecast.py --db $(DB) --dataset police_crime --res 9 --months 24

clean:
	rm -rf data/demo $(DB) $(DB).lock $(STORE) test-artifacts
