# shellcheck shell=bash
# Grafana STAND-IN (deploy/sandbox/standins/grafana.py): NOT Grafana, which cannot be had on
# these machines. Answers /api/health exactly as Grafana 11 does, and /api/search,
# /api/dashboards, /api/datasources behind a service-account token (MLOPS_GRAFANA_TOKEN) or
# basic auth admin:$MLOPS_GRAFANA_PASSWORD, on http://127.0.0.1:3001.
SVC_NAME=grafana-standin
GRAFANA_STANDIN_PORT="${MLOPS_GRAFANA_STANDIN_PORT:-3001}"
GRAFANA_STANDIN_URL="http://127.0.0.1:$GRAFANA_STANDIN_PORT"

svc_install() {
  :  # stdlib only
}

svc_start() {
  local tf="$STATE/keys/grafana-token" pf="$STATE/keys/grafana-admin-password"
  if [[ ! -s "$tf" ]]; then
    # the shape of a Grafana service-account token: glsa_<32 chars>_<8 hex>
    (umask 077 && printf 'glsa_%s_%s' "$(sb_rand 32)" "$(head -c 4 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$tf")
  fi
  if [[ ! -s "$pf" ]]; then
    (umask 077 && sb_rand 24 >"$pf")
  fi
  sb_env_set MLOPS_GRAFANA_URL "$GRAFANA_STANDIN_URL"
  sb_env_set MLOPS_GRAFANA_TOKEN "$(cat "$tf")"
  sb_env_set MLOPS_GRAFANA_USER admin
  sb_env_set MLOPS_GRAFANA_PASSWORD "$(cat "$pf")"
  sb_start "$SVC_NAME" "$(sb_python)" -u "$SB_DIR/standins/grafana.py" \
    --host 127.0.0.1 --port "$GRAFANA_STANDIN_PORT" --token-file "$tf" --password-file "$pf"
}

_grafana_is_standin() {
  # ours (the PID we started), not another instance that holds the port
  local pid
  pid="$(sb_pid "$SVC_NAME")"
  [[ -n "$pid" ]] || return 1
  curl -fsS --max-time 3 "$GRAFANA_STANDIN_URL/_standin/" 2>/dev/null |
    grep '"standin": "grafana"' | grep -q "\"pid\": $pid[,}]"
}

svc_wait() {
  local end=$((SECONDS + 20))
  until _grafana_is_standin; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "grafana.py exited (port $GRAFANA_STANDIN_PORT taken?)"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "the Grafana stand-in did not answer on $GRAFANA_STANDIN_URL within 20s"; return 1; }
    sleep 0.2
  done
}

svc_status() {
  local v
  v="$(curl -sS --max-time 3 "$GRAFANA_STANDIN_URL/api/health" 2>/dev/null |
    sed -n 's/.*"version": *"\([^"]*\)".*/\1/p')"
  if sb_pid_alive "$SVC_NAME" && _grafana_is_standin; then
    echo "$SVC_NAME up $GRAFANA_STANDIN_URL ${v:-unknown}+standin"
  else
    echo "$SVC_NAME down $GRAFANA_STANDIN_URL ${v:-unknown}"
    return 1
  fi
}
