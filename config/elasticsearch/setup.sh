#!/usr/bin/env bash
# One-shot setup of a newsmon Elasticsearch + Kibana deployment (the compose `newsmon-setup`
# service runs it; it is safe to run again). Applies, from the JSON files next to this script:
#   1. the ILM policy (ilm-policy.json)          -> _ilm/policy/<prefix>-articles
#   2. the articles index template               -> _index_template/<prefix>-articles
#   3. the first backing index + write alias     -> <prefix>-articles-000001, alias <prefix>-articles
#   4. the state indices (indices/*.json)        -> <prefix>-feeds, -seen, -inbox, ...
#   5. a role and user for the pipeline (only if NEWSMON_ES_USERNAME/PASSWORD are set)
#   6. the Kibana saved objects (../kibana/*.ndjson) through the Saved Objects import API
# The store (pipelines/store/elasticsearch.py) applies 1-4 from the same files when it finds them
# missing, so either can go first.
#
# Env: ES_URL (http://elasticsearch:9200), ELASTIC_PASSWORD (required), KIBANA_URL
# (http://kibana:5601; empty skips step 6), NEWSMON_ES_PREFIX (newsmon), NEWSMON_ES_ILM (true),
# NEWSMON_ES_USERNAME / NEWSMON_ES_PASSWORD, CONFIG_DIR (the directory holding elasticsearch/ and kibana/).
set -euo pipefail

ES_URL="${ES_URL:-http://elasticsearch:9200}"
KIBANA_URL="${KIBANA_URL-http://kibana:5601}"
PREFIX="${NEWSMON_ES_PREFIX:-newsmon}"
ILM="${NEWSMON_ES_ILM:-true}"
CONFIG_DIR="${CONFIG_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
ES_DIR="$CONFIG_DIR/elasticsearch"
AUTH="elastic:${ELASTIC_PASSWORD:?set ELASTIC_PASSWORD}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { printf 'newsmon-setup: %s\n' "$*" >&2; }

# The files name everything "newsmon-..."; another prefix renames the quoted names.
renamed() { sed "s/\"newsmon-/\"${PREFIX}-/g" "$1"; }

es() {  # es METHOD PATH [BODY-FILE] -> prints the response, fails on HTTP errors
  local method="$1" path="$2" body="${3:-}"
  if [ -n "$body" ]; then
    curl -fsS -u "$AUTH" -X "$method" -H 'Content-Type: application/json' --data-binary "@$body" "$ES_URL$path"
  else
    curl -fsS -u "$AUTH" -X "$method" "$ES_URL$path"
  fi
}

exists() {  # exists PATH -> 0 when HEAD answers 200
  [ "$(curl -sS -o /dev/null -w '%{http_code}' -u "$AUTH" -I "$ES_URL$1")" = "200" ]
}

log "waiting for Elasticsearch at $ES_URL"
until curl -fsS -u "$AUTH" "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; do
  sleep 3
done

if [ "$ILM" = "true" ]; then
  log "ILM policy $PREFIX-articles"
  { printf '{"policy":'; renamed "$ES_DIR/ilm-policy.json"; printf '}'; } > "$WORK/policy.json"
  es PUT "/_ilm/policy/$PREFIX-articles" "$WORK/policy.json" >/dev/null
  renamed "$ES_DIR/articles-template.json" > "$WORK/template.json"
else
  renamed "$ES_DIR/articles-template.json" | grep -v '"index.lifecycle.' > "$WORK/template.json"
fi

log "index template $PREFIX-articles"
es PUT "/_index_template/$PREFIX-articles" "$WORK/template.json" >/dev/null

if ! exists "/_alias/$PREFIX-articles"; then
  log "first backing index $PREFIX-articles-000001"
  printf '{"aliases":{"%s":{"is_write_index":true}}}' "$PREFIX-articles" > "$WORK/bootstrap.json"
  es PUT "/$PREFIX-articles-000001" "$WORK/bootstrap.json" >/dev/null
fi

for file in "$ES_DIR"/indices/*.json; do
  index="$PREFIX-$(basename "$file" .json)"
  if ! exists "/$index"; then
    log "index $index"
    renamed "$file" > "$WORK/index.json"
    es PUT "/$index" "$WORK/index.json" >/dev/null
  fi
done

if [ -n "${NEWSMON_ES_USERNAME:-}" ] && [ -n "${NEWSMON_ES_PASSWORD:-}" ] && [ "$NEWSMON_ES_USERNAME" != "elastic" ]; then
  log "role ${PREFIX}_writer and user $NEWSMON_ES_USERNAME"
  cat > "$WORK/role.json" <<EOF
{"cluster": ["monitor"],
 "indices": [{"names": ["$PREFIX-*"],
              "privileges": ["read", "write", "view_index_metadata", "create_index"]}]}
EOF
  es PUT "/_security/role/${PREFIX}_writer" "$WORK/role.json" >/dev/null
  # the password goes through a file, never the command line; JSON-escape \ and "
  escaped="$(printf '%s' "$NEWSMON_ES_PASSWORD" | sed 's/\\/\\\\/g; s/"/\\"/g')"
  printf '{"password":"%s","roles":["%s_writer"]}' "$escaped" "$PREFIX" > "$WORK/user.json"
  es PUT "/_security/user/$NEWSMON_ES_USERNAME" "$WORK/user.json" >/dev/null
fi

if [ -n "$KIBANA_URL" ]; then
  log "waiting for Kibana at $KIBANA_URL"
  until curl -fsS -u "$AUTH" "$KIBANA_URL/api/status" 2>/dev/null | grep -q '"level":"available"'; do
    sleep 5
  done
  for file in "$CONFIG_DIR"/kibana/*.ndjson; do
    log "Kibana saved objects $(basename "$file")"
    renamed "$file" > "$WORK/$(basename "$file")"
    curl -fsS -u "$AUTH" -X POST -H 'kbn-xsrf: newsmon-setup' \
      -F "file=@$WORK/$(basename "$file")" "$KIBANA_URL/api/saved_objects/_import?overwrite=true" \
      | grep -q '"success":true' || { log "Kibana refused $(basename "$file")"; exit 1; }
  done
fi
log "done"
