#!/usr/bin/env bash
# Real services on 127.0.0.1 for the mlops_assets checks (see README.md next to this file).
#
#   sandbox.sh up     [SERVICE...]   install (apt, only what is missing), start and wait, in order
#   sandbox.sh status [SERVICE...]   one line per service; exit 1 if any is down
#   sandbox.sh down   [SERVICE...]   stop in reverse order: svc_stop, then the recorded PIDs only
#   sandbox.sh rss    [SERVICE...]   resident memory (KiB) of each service's process group
#
# SERVICE is a file name under services/ (with or without .sh), its NN prefix or its name part
# (e.g. 41-mlflow, 41 or mlflow). State lives in ${MLOPS_SANDBOX_HOME:-/var/lib/mlops-assets/sandbox}.
set -euo pipefail

SB_SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$SB_SELF_DIR/lib.sh"

usage() {
  sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
CMD="$1"
shift
SELECTION=("$@")

[[ "$(id -u)" == 0 ]] || sb_die "run as root (the sandbox installs packages, mounts and starts daemons)"

# up/down run one at a time: two concurrent `up`s would both start a daemon, and the loser's
# PID would overwrite the winner's in pids/. flock -o holds the lock in the flock process and
# closes it for this script, so no daemon started below inherits the lock.
if [[ "$CMD" == up || "$CMD" == down ]]; then
  if [[ "${SB_SANDBOX_LOCKED:-}" != "$STATE" ]]; then
    install -d -m 0755 "$STATE"
    SB_LOCK="$STATE/.sandbox.lock"
    if ! flock -n "$SB_LOCK" true; then
      sb_log "another 'sandbox.sh up/down' is running; waiting for it (up to 15 min)"
    fi
    export SB_SANDBOX_LOCKED="$STATE"
    exec flock -o -w 900 "$SB_LOCK" "$BASH" "$SB_SELF_DIR/sandbox.sh" "$CMD" "$@"
  fi
  unset SB_SANDBOX_LOCKED
fi

# All service files, in start order.
sb_service_files() {
  local f
  for f in "$SB_SELF_DIR"/services/[0-9][0-9]-*.sh; do
    [[ -f "$f" ]] && printf '%s\n' "$f"
  done | LC_ALL=C sort
}

sb_selected() {
  local f="$1" base sel
  ((${#SELECTION[@]})) || return 0
  base="$(basename "$f" .sh)"
  for sel in "${SELECTION[@]}"; do
    sel="${sel%.sh}"
    if [[ "$sel" == "$base" || "$sel" == "${base%%-*}" || "$sel" == "${base#*-}" ]]; then
      return 0
    fi
  done
  return 1
}

mapfile -t ALL_FILES < <(sb_service_files)
FILES=()
for f in "${ALL_FILES[@]}"; do
  sb_selected "$f" && FILES+=("$f")
done
((${#FILES[@]})) || sb_die "no service matches: ${SELECTION[*]:-}"

# Runs "$2..." (function names) after sourcing lib.sh and service file $1, in a subshell.
sb_in_service() {
  local file="$1"
  shift
  (
    set -euo pipefail
    # shellcheck source=lib.sh
    source "$SB_SELF_DIR/lib.sh"
    # shellcheck disable=SC1090
    source "$file"
    local fn
    for fn in "$@"; do
      "$fn"
    done
  )
}

status_one() {
  local f="$1" out rc
  set +e
  out="$(sb_in_service "$f" svc_status 2>/dev/null)"
  rc=$?
  set -e
  if [[ -z "$out" ]]; then
    out="$(basename "$f" .sh) down - -"
    ((rc != 0)) || rc=1
  fi
  printf '%s\n' "$out"
  return "$rc"
}

cmd_status() {
  local f any_down=0
  for f in "${FILES[@]}"; do
    status_one "$f" || any_down=1
  done
  return "$any_down"
}

cmd_up() {
  local f rc t0=$SECONDS t line lines=() any_down=0
  sb_init_state
  sb_base_tools
  for f in "${FILES[@]}"; do
    t=$SECONDS
    sb_log "=== $(basename "$f")"
    set +e
    sb_in_service "$f" svc_install svc_start svc_wait
    rc=$?
    set -e
    if ((rc != 0)); then
      sb_log "FAILED: $(basename "$f") (exit $rc); later services were not started"
      cmd_status || true
      return 1
    fi
    # the answer svc_wait saw must come from the process this sandbox recorded
    set +e
    line="$(status_one "$f")"
    rc=$?
    set -e
    if ((rc != 0)); then
      sb_log "FAILED: $(basename "$f") answered but its status is: $line"
      return 1
    fi
    lines+=("$line")
    sb_log "--- $(basename "$f") ready in $((SECONDS - t))s"
  done
  sb_log "sandbox up in $((SECONDS - t0))s; endpoints:"
  printf '%s\n' "${lines[@]}"
  sb_log "variables: $SB_ENV_FILE (source it; it holds secrets, mode 600)"
  return "$any_down"
}

# Stops one service: svc_stop (if defined), then the PIDs it recorded. Pid-file names are
# ${SVC_PIDS[@]} if the file sets it, else SVC_NAME, plus SVC_NAME-* for helpers.
stop_one() {
  local f="$1"
  (
    set -euo pipefail
    source "$SB_SELF_DIR/lib.sh"
    # shellcheck disable=SC1090
    source "$f"
    if declare -F svc_stop >/dev/null; then
      svc_stop || sb_log "WARNING: svc_stop of $(basename "$f") failed"
    fi
    local names=() n p
    if declare -p SVC_PIDS >/dev/null 2>&1; then
      names+=("${SVC_PIDS[@]}")
    else
      names+=("$SVC_NAME")
    fi
    for p in "$STATE/pids/$SVC_NAME"-*.pid; do
      [[ -f "$p" ]] && names+=("$(basename "$p" .pid)")
    done
    for n in "${names[@]}"; do
      sb_stop "$n" "${SVC_STOP_TIMEOUT:-20}"
    done
  )
}

cmd_down() {
  local i rc=0
  for ((i = ${#FILES[@]} - 1; i >= 0; i--)); do
    stop_one "${FILES[$i]}" || rc=1
  done
  # PIDs recorded by services whose files are gone (only when stopping everything)
  if ((${#SELECTION[@]} == 0)); then
    local p
    for p in "$STATE"/pids/*.pid; do
      [[ -f "$p" ]] || continue
      sb_log "stopping leftover $(basename "$p" .pid)"
      sb_stop "$(basename "$p" .pid)" 20 || rc=1
    done
  fi
  sb_log "sandbox down"
  return "$rc"
}

cmd_rss() {
  local f
  for f in "${FILES[@]}"; do
    (
      source "$SB_SELF_DIR/lib.sh"
      # shellcheck disable=SC1090
      source "$f"
      local names=() n p total=0 r
      if declare -p SVC_PIDS >/dev/null 2>&1; then names+=("${SVC_PIDS[@]}"); else names+=("$SVC_NAME"); fi
      for p in "$STATE/pids/$SVC_NAME"-*.pid; do
        [[ -f "$p" ]] && names+=("$(basename "$p" .pid)")
      done
      for n in "${names[@]}"; do
        r="$(sb_rss "$n")"
        total=$((total + r))
      done
      printf '%-16s %8d KiB\n' "$SVC_NAME" "$total"
    )
  done
}

case "$CMD" in
  up) cmd_up ;;
  status) cmd_status ;;
  down) cmd_down ;;
  rss) cmd_rss ;;
  *) usage ;;
esac
