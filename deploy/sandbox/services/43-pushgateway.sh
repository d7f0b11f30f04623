# shellcheck shell=bash
# Prometheus Pushgateway (Debian package) on 127.0.0.1:9091, in memory (no persistence file).
SVC_NAME=pushgateway
SB_PGW_URL="http://127.0.0.1:9091"

_pgw_bin() {
  local b
  for b in /usr/bin/prometheus-pushgateway /usr/bin/pushgateway; do
    [[ -x "$b" ]] && { printf '%s' "$b"; return 0; }
  done
  return 1
}

svc_install() {
  sb_apt prometheus-pushgateway
}

svc_start() {
  local bin
  bin="$(_pgw_bin)" || { sb_log "ERROR: no pushgateway binary"; return 1; }
  # Debian's build defaults --persistence.file to /var/lib/prometheus/pushgateway.data:
  # an empty value keeps the pushed metrics in memory only.
  sb_start "$SVC_NAME" setpriv --reuid=prometheus --regid=prometheus --init-groups \
    "$bin" --web.listen-address=127.0.0.1:9091 --persistence.file=
  sb_env_set MLOPS_PUSHGATEWAY_URL "$SB_PGW_URL"
}

svc_wait() {
  local end=$((SECONDS + 30))
  until curl -fsS --max-time 3 -o /dev/null "$SB_PGW_URL/-/ready" 2>/dev/null; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "pushgateway exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "$SB_PGW_URL/-/ready did not answer within 30s"; return 1; }
    sleep 0.3
  done
}

svc_status() {
  local v bin
  bin="$(_pgw_bin 2>/dev/null || true)"
  v=""
  [[ -z "$bin" ]] || v="$("$bin" --version 2>&1 | awk '/version/ {print $3; exit}')"
  if sb_pid_alive "$SVC_NAME" && curl -fsS --max-time 3 -o /dev/null "$SB_PGW_URL/-/ready" 2>/dev/null; then
    echo "$SVC_NAME up $SB_PGW_URL pushgateway-${v:-unknown}"
  else
    echo "$SVC_NAME down $SB_PGW_URL pushgateway-${v:-unknown}"
    return 1
  fi
}
