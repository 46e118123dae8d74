#!/usr/bin/env bash
# The store contract suite, the Elasticsearch-specific tests and the pipeline end to end against a
# real search engine node on 127.0.0.1 (OpenSearch 2.19, tests/engine/). Needs java 17+ and mvn; the
# first build downloads about 75 MB into .cache/maven (ignored). Extra arguments go to pytest; set
# TEST_ENGINE_TESTS to run other test paths.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PY:-.venv/bin/python}
for tool in java mvn; do
    if [ "$tool" = java ] && [ -n "${JAVA_HOME:-}" ] && [ -x "$JAVA_HOME/bin/java" ]; then continue; fi
    command -v "$tool" >/dev/null || { echo "test-engine: $tool is not installed (needed for the real node)" >&2; exit 1; }
done
# Node ids or paths; the outage test stops and restarts only its proxy, never the node.
TESTS=${TEST_ENGINE_TESTS:-tests/engine tests/store tests/test_end_to_end.py tests/test_reindex.py tests/reliability/test_elasticsearch_outage.py}
start=$(date +%s)
"$PY" -m tests.engine.node --build-only
echo "test-engine: launcher built in $(( $(date +%s) - start )) s" >&2
# shellcheck disable=SC2086 # TESTS is a list of paths
exec "$PY" -m tests.engine.node --env NEWSMON_ES_URL -- "$PY" -m pytest -q -p no:cacheprovider $TESTS "$@"
