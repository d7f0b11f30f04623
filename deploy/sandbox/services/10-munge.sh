# shellcheck shell=bash
# MUNGE: authentication for SLURM (own key and socket under $STATE, runs as the munge user).
SVC_NAME=munge
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_apt munge
}

svc_start() {
  install -d -m 0700 -o munge -g munge "$STATE/etc/munge" "$SB_MUNGE_DATA"
  install -d -m 0755 -o munge -g munge "$SB_MUNGE_RUN"
  if [[ ! -s "$SB_MUNGE_KEY" ]]; then
    sb_log "generating the munge key"
    (umask 077 && head -c 1024 /dev/urandom >"$SB_MUNGE_KEY")
  fi
  chown munge:munge "$SB_MUNGE_KEY"
  chmod 0400 "$SB_MUNGE_KEY"
  if ! sb_pid_alive "$SVC_NAME"; then
    if [[ -S "$SB_MUNGE_SOCKET" ]] && _munge_ok; then
      sb_log "ERROR: a munged not started by the sandbox answers on $SB_MUNGE_SOCKET; stop it first"
      return 1
    fi
    # a socket or pid file left by a killed munged would make it refuse to start
    rm -f "$SB_MUNGE_SOCKET" "$SB_MUNGE_SOCKET.lock" "$SB_MUNGE_RUN/munged.pid"
  fi
  sb_start "$SVC_NAME" setpriv --reuid=munge --regid=munge --init-groups \
    /usr/sbin/munged --foreground \
    --socket="$SB_MUNGE_SOCKET" --key-file="$SB_MUNGE_KEY" \
    --pid-file="$SB_MUNGE_RUN/munged.pid" --seed-file="$SB_MUNGE_DATA/munged.seed" \
    --log-file="$SB_MUNGE_DATA/munged.log"
}

_munge_ok() {
  munge -n -S "$SB_MUNGE_SOCKET" 2>/dev/null | unmunge -S "$SB_MUNGE_SOCKET" >/dev/null 2>&1
}

svc_wait() {
  local end=$((SECONDS + 20))
  until _munge_ok; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "munged exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "munged did not answer on $SB_MUNGE_SOCKET within 20s"; return 1; }
    sleep 0.2
  done
}

svc_status() {
  local v
  v="$(munged -V 2>/dev/null | awk '{print $1}')"
  if sb_pid_alive "$SVC_NAME" && _munge_ok; then
    echo "$SVC_NAME up unix:$SB_MUNGE_SOCKET ${v:-unknown}"
  else
    echo "$SVC_NAME down unix:$SB_MUNGE_SOCKET ${v:-unknown}"
    return 1
  fi
}
