# newsmon developer tasks (GNU make). `make help` lists them.
# The venv is (re)synced whenever pyproject.toml or constraints.txt is newer than
# the stamp $(VENV)/.installed, or when the stamp is missing (a venv made by hand).

PYTHON ?= python3
VENV ?= .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Never prompt (CI has no stdin) and keep pip's output to what matters.
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 $(VPY) -m pip

.DEFAULT_GOAL := help
.PHONY: help venv test lint run watch demo bench eval model clean distclean

help:
	@echo "make venv       create/sync $(VENV) (pip install -c constraints.txt -e '.[airflow,test]')"
	@echo "make test       ruff + pytest, the Elasticsearch side on a real OpenSearch node (java+mvn; else the stand-in)"
	@echo "make lint       ruff only"
	@echo "make run        Airflow standalone with newsmon's DAGs (UI on :8080; Ctrl-C stops all)"
	@echo "make watch      the light runner: newsmon watch over config/feeds.yaml, no Airflow"
	@echo "make demo       the sample coverage through the real news_monitor DAG (dag.test(), no network)"
	@echo "make bench      benchmarks vs targets, one table (BENCH=tagger,polling for a subset; ~35 min for all)"
	@echo "make eval       accuracy figures of docs/accuracy.md (extraction, tagging, stories); fails on a missed target"
	@echo "make model      train the development classifier on our labelled sentences -> pipelines/data/devmodel.json"
	@echo "make clean      remove caches and build files (keeps $(VENV) and var/)"
	@echo "make distclean  clean + remove $(VENV)"

# A venv whose python is gone or broken loses its stamp, so the sub-make reinstalls.
venv:
	@$(VPY) -c '' >/dev/null 2>&1 || rm -f $(STAMP)
	@$(MAKE) --no-print-directory $(STAMP)

$(STAMP): pyproject.toml constraints.txt scripts/ensure-venv.sh
	scripts/ensure-venv.sh '$(VENV)' '$(PYTHON)'
	$(PIP) install --upgrade pip
	$(PIP) install -c constraints.txt -e '.[airflow,test]'
	@touch $@

test: venv
	$(VENV)/bin/ruff check .
	scripts/ensure-chromium.sh
	PY=$(VPY) scripts/run-tests.sh

lint: venv
	$(VENV)/bin/ruff check .

run: venv
	PATH="$(abspath $(VENV))/bin:$$PATH" AIRFLOW_BIN=$(abspath $(VENV))/bin/airflow scripts/airflow-standalone.sh

watch: venv
	$(VENV)/bin/newsmon watch

demo: venv
	$(VPY) scripts/airflow-demo.py

# Benchmarks, not tests (docs/performance.md): missed targets are reported, never a failure.
# BENCH=throughput,profile,tagger,peer,polling,memory,watch,airflow,engine (or latency, quick) picks a subset;
# BENCH_ARGS passes options (e.g. BENCH_ARGS="--memory-pages 2000"). The news-please peer gets its
# own venv, var/bench-venv (created on first use from bench/constraints-newsplease.txt).
bench: venv
	$(VPY) -m bench $(if $(BENCH),--only '$(BENCH)') $(BENCH_ARGS)

# Accuracy (docs/accuracy.md): every figure in one run; exit 1 names each missed target.
eval: venv
	$(VENV)/bin/newsmon eval all

# The learned development reader (pipelines/devmodel.py): deterministic, so the committed file is what this builds.
model: venv
	$(VPY) -m pipelines.devmodel train

# Stored data (var/) is never removed by a make target.
clean:
	rm -rf .pytest_cache .ruff_cache build dist tests/artifacts *.egg-info
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)

# Only the Elasticsearch-facing tests (store suite, Elasticsearch-specific, reindex, outage, end to end)
# against a fresh real OpenSearch node on 127.0.0.1 (tests/engine/; needs java and mvn; Maven's cache is
# .cache/maven). `make test` runs the whole suite against such a node.
.PHONY: test-engine
test-engine: venv
	scripts/test-engine.sh
