#!/usr/bin/env bash
# Run Airflow standalone (api-server, scheduler, dag-processor, triggerer) on this checkout.
#   scripts/airflow-standalone.sh          UI on http://localhost:8080 (AIRFLOW__API__PORT to change)
# Ctrl-C (or SIGTERM/SIGHUP) stops every component, and the script returns once they are all gone.
#
# Why not simply `exec airflow standalone`: Ctrl-C in a terminal signals the whole foreground
# process group, so the scheduler gets SIGINT from the terminal and, a moment later, SIGTERM
# from standalone's own shutdown; with LocalExecutor workers that double signal leaves the
# scheduler waiting for its workers for ever (seen with 3.3.2; cf. apache/airflow#19260).
# So standalone runs in its own session, out of the terminal's reach, and this script turns
# Ctrl-C into exactly one SIGTERM to it; standalone then terminates each component once and
# waits for it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=scripts/airflow-env.sh
. "$here/airflow-env.sh"
# Relative paths in config/ (e.g. the jsonl alert channel, the default store under var/) are
# relative to the working directory; every component inherits this one.
cd "$NEWSMON_REPO"

AIRFLOW_BIN="${AIRFLOW_BIN:-$(command -v airflow || true)}"
if [ -z "$AIRFLOW_BIN" ]; then
  echo "airflow-standalone: 'airflow' not found; install newsmon[airflow] or set AIRFLOW_BIN" >&2
  exit 1
fi
# The interpreter that runs the airflow script (its venv's python).
PYTHON_BIN="${PYTHON_BIN:-$(dirname "$AIRFLOW_BIN")/python}"
[ -x "$PYTHON_BIN" ] || PYTHON_BIN="$(command -v python3)"

echo "airflow-standalone: AIRFLOW_HOME=$AIRFLOW_HOME"
echo "airflow-standalone: migrating the metadata database ($AIRFLOW__DATABASE__SQL_ALCHEMY_CONN)"
"$AIRFLOW_BIN" db migrate >"$AIRFLOW_HOME/db-migrate.log" 2>&1 || {
  echo "airflow-standalone: 'airflow db migrate' failed; see $AIRFLOW_HOME/db-migrate.log" >&2
  tail -n 20 "$AIRFLOW_HOME/db-migrate.log" >&2
  exit 1
}

port="$AIRFLOW__API__PORT"
echo "airflow-standalone: UI at http://localhost:$port  (DAGs: news_monitor, news_digest)"
echo "airflow-standalone: login 'admin'; password in $AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
echo "airflow-standalone: Ctrl-C stops every component"

# In the child: own session (the terminal's Ctrl-C must not reach the components directly), and
# SIGTERM raises KeyboardInterrupt, the one signal on which standalone stops and reaps its children.
"$PYTHON_BIN" -c '
import os, signal, sys
os.setsid()
signal.signal(signal.SIGINT, signal.default_int_handler)
signal.signal(signal.SIGTERM, signal.default_int_handler)
from airflow.__main__ import main
sys.argv = ["airflow", "standalone"]
sys.exit(main())
' &
standalone_pid=$!

stop_requested=0
stop() {
  if [ "$stop_requested" = 0 ]; then
    stop_requested=1
    echo "airflow-standalone: stopping every component (this takes a few seconds)" >&2
    kill -TERM "$standalone_pid" 2>/dev/null || true
  fi
}
trap stop INT TERM HUP

status=0
while kill -0 "$standalone_pid" 2>/dev/null; do
  wait "$standalone_pid" && status=0 || status=$?
done
trap - INT TERM HUP
if [ "$stop_requested" = 1 ]; then
  echo "airflow-standalone: stopped" >&2
  exit 0
fi
exit "$status"
