# shellcheck shell=bash
# Environment for running newsmon's Airflow (3.3) against this checkout. Source it:
#   . scripts/airflow-env.sh && airflow dags list
# Everything Airflow writes lives under var/airflow (metadata DB, logs, generated passwords).
# Values already set in the environment win, except the folders, which must be this repo's.

NEWSMON_REPO="$(cd "$(dirname "${BASH_SOURCE[0]:-$0}")/.." && pwd)"
export NEWSMON_REPO

export AIRFLOW_HOME="${AIRFLOW_HOME:-$NEWSMON_REPO/var/airflow}"
export AIRFLOW__CORE__DAGS_FOLDER="$NEWSMON_REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$NEWSMON_REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES="${AIRFLOW__CORE__LOAD_EXAMPLES:-False}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="${AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION:-False}"
# AIRFLOW_HOME is absolute, so this is sqlite://// + path (an absolute SQLite file).
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="${AIRFLOW__DATABASE__SQL_ALCHEMY_CONN:-sqlite:///$AIRFLOW_HOME/airflow.db}"
# Task processes reach the api-server's execution API; keep it on the same port as the UI.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-127.0.0.1}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="${AIRFLOW__CORE__EXECUTION_API_SERVER_URL:-http://localhost:$AIRFLOW__API__PORT/execution/}"
# pipelines/ must be importable by every component (scheduler, dag-processor, triggerer, workers).
case ":${PYTHONPATH:-}:" in
  *":$NEWSMON_REPO:"*) ;;
  *) export PYTHONPATH="$NEWSMON_REPO${PYTHONPATH:+:$PYTHONPATH}" ;;
esac
# newsmon's own settings; Airflow Variables newsmon_config_dir / newsmon_store_url /
# newsmon_allow_networks / newsmon_digest_dir override these at task run time, and
# newsmon_config_dir / newsmon_allow_networks also each time the DAG file is parsed (watchers).
export NEWSMON_CONFIG="${NEWSMON_CONFIG:-$NEWSMON_REPO/config}"

mkdir -p "$AIRFLOW_HOME"
