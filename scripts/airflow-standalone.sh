#!/usr/bin/env bash
# Run Airflow standalone (api-server, scheduler, dag-processor, triggerer) on this checkout.
#   scripts/airflow-standalone.sh          UI on http://localhost:8080
#   AIRFLOW_PORT=8081 scripts/airflow-standalone.sh   (or AIRFLOW__API__PORT; `make run AIRFLOW_PORT=8081`)
# The UI port and the log-server ports (AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT, 8793;
# AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT, 8794) must be free: if one is taken, the script says
# which process holds it and exits 1 before starting anything (a half-started Airflow would print
# the UI address and serve nothing there).
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
# AIRFLOW_PORT: the short name for the UI/API port (airflow-env.sh derives the execution API URL from it).
if [ -n "${AIRFLOW_PORT:-}" ]; then
  export AIRFLOW__API__PORT="$AIRFLOW_PORT"
fi
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

# --- ports: refuse to start on a taken port ------------------------------------------------------
# Listening TCP sockets come from /proc/net/tcp{,6} (always there on Linux); the holder from ss
# (iproute2), lsof, or the /proc/*/fd links, whichever works; else only the port is named.
port_listening() {  # $1: port -> 0 when something listens on it (any address)
  local hex
  hex="$(printf '%04X' "$1")"
  if [ -r /proc/net/tcp ]; then
    cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }'
    return
  fi
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

describe_pid() {  # $1: pid -> "pid N (command line)"
  local cmd=""
  [ -r "/proc/$1/cmdline" ] && cmd="$(tr '\0\n' '  ' <"/proc/$1/cmdline" 2>/dev/null | cut -c1-120)"
  cmd="${cmd% }"
  echo "pid $1${cmd:+ ($cmd)}"
}

port_holder() {  # $1: port -> the holding process(es), or nothing when no tool can tell
  local port="$1" hex inodes pids="" fd link inode
  if command -v ss >/dev/null 2>&1; then
    pids="$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | cut -d= -f2 | sort -u || true)"
  fi
  if [ -z "$pids" ] && command -v lsof >/dev/null 2>&1; then
    pids="$(lsof -nP -t -iTCP:"$port" -sTCP:LISTEN 2>/dev/null | sort -u || true)"
  fi
  if [ -z "$pids" ] && [ -r /proc/net/tcp ]; then
    hex="$(printf '%04X' "$port")"
    inodes="$(cat /proc/net/tcp /proc/net/tcp6 2>/dev/null |
      awk -v p=":$hex" '$4 == "0A" && substr($2, length($2) - 4) == p { print $10 }' || true)"
    if [ -n "$inodes" ]; then
      for fd in /proc/[0-9]*/fd/*; do
        link="$(readlink "$fd" 2>/dev/null)" || continue
        case "$link" in
          socket:\[*\])
            inode="${link#socket:[}"; inode="${inode%]}"
            if printf '%s\n' $inodes | grep -qx "$inode"; then
              fd="${fd#/proc/}"; pids="$pids ${fd%%/*}"
            fi ;;
        esac
      done
      pids="$(printf '%s\n' $pids | sort -u | grep . || true)"
    fi
  fi
  for pid in $pids; do describe_pid "$pid"; done
}

busy=0
for spec in "UI/API:${AIRFLOW__API__PORT}:AIRFLOW_PORT" \
            "worker log server:${AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT:-8793}:AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT" \
            "triggerer log server:${AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT:-8794}:AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"; do
  what="${spec%%:*}"; rest="${spec#*:}"; port="${rest%%:*}"; var="${rest#*:}"
  if port_listening "$port"; then
    busy=1
    holders="$(port_holder "$port" | paste -sd ';' - | sed 's/;/; /g' || true)"
    echo "airflow-standalone: port $port ($what) is already in use${holders:+ by $holders}" >&2
    echo "airflow-standalone:   stop it, or pick another port: $var=<port>" >&2
  fi
done
if [ "$busy" = 1 ]; then
  echo "airflow-standalone: not starting Airflow" >&2
  exit 1
fi

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
