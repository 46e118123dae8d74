#!/usr/bin/env bash
# The test suite as `make test` and CI run it. With java and mvn (CI: required), the whole suite runs
# against a real OpenSearch node on 127.0.0.1 (tests/engine/, NEWSMON_ES_URL set for pytest), then
# the stand-in's own pins run on the stand-in. Without them (a developer machine), the Elasticsearch
# side runs on the osmem stand-in and this says so. A NEWSMON_ES_URL already set (your own cluster)
# is used as it is. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
PYTEST=("$PY" -m pytest -q)

if [ -n "${NEWSMON_ES_URL:-}" ]; then
    echo "tests: Elasticsearch side against NEWSMON_ES_URL (your cluster)" >&2
    exec "${PYTEST[@]}" "$@"
fi

missing=
if ! { [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; } && ! command -v java >/dev/null; then
    missing="java"
fi
command -v mvn >/dev/null || missing="${missing:+$missing and }mvn"
if [ -n "$missing" ]; then
    if [ "${CI:-}" = true ]; then
        echo "tests: CI runs the Elasticsearch side on a real node, which needs $missing (not found)" >&2
        exit 1
    fi
    echo "tests: no $missing here, so the Elasticsearch side runs on the osmem stand-in only" \
         "(CI runs it on a real OpenSearch node: make test-engine)" >&2
    exec "${PYTEST[@]}" "$@"
fi

start=$(date +%s)
"$PY" -m tests.engine.node --build-only
echo "tests: search node launcher ready in $(( $(date +%s) - start )) s" >&2
"$PY" -m tests.engine.node --env NEWSMON_ES_URL -- "${PYTEST[@]}" "$@"
echo "tests: the stand-in's documented limits, on the stand-in" >&2
exec "${PYTEST[@]}" tests/store/test_es_standin_limits.py
