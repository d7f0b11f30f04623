#!/usr/bin/env bash
# Fault drills on one node of the multi-node sandbox (used by the tests, runnable by hand):
#
#   node.sh list                      name, address, state, GRES of every node
#   node.sh kill NODE                 SIGKILL the node's slurmd (its running steps die with it)
#   node.sh start NODE                start the node's slurmd again and resume it once it answers
#   node.sh link-down|link-up NODE    take the node's veth (mlv-NODE) down / up
#   node.sh gres NODE COUNT           restart the node's slurmd with only COUNT fake GPUs in its
#                                     gres.conf (a GPU lost: SLURM drains it as a GRES mismatch)
#   node.sh gres-reset NODE           back to the shared gres.conf, node resumed
#   node.sh add NODE                  bring a FUTURE node (gpu-04) into service
#   node.sh remove NODE               put it back to FUTURE (slurmd stopped)
#   node.sh slow NODE [PERCENT]       CPU quota (default 10 % of one CPU) on the node's slurmd and
#                                     everything it forks from then on (cgroup v2 or v1)
#   node.sh unslow NODE               lift the quota
set -euo pipefail
SB_SELF_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=lib.sh
source "$SB_SELF_DIR/lib.sh"
# shellcheck source=slurm.inc.sh
source "$SB_SELF_DIR/slurm.inc.sh"

usage() {
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

[[ $# -ge 1 ]] || usage
CMD="$1"
shift
[[ "$(id -u)" == 0 ]] || sb_die "run as root (namespaces, links and slurmd belong to root)"

need_node() {
  [[ $# -ge 1 && -n "$1" ]] || sb_die "$CMD: name a node (one of: $(sb_node_names | tr '\n' ' '))"
  sb_node_field "$1" 1 >/dev/null || sb_die "$CMD: unknown node '$1' (one of: $(sb_node_names | tr '\n' ' '))"
}

node_state() { sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1; }

# wait_state NODE REGEX TIMEOUT
wait_state() {
  local end=$((SECONDS + $3)) st
  while ((SECONDS < end)); do
    st="$(node_state "$1")"
    [[ "$st" =~ $2 ]] && return 0
    sleep 0.5
  done
  sb_die "node $1 is '$(node_state "$1")' after $3 s, expected /$2/"
}

start_node() {
  local name="$1" conf="${2:-$SB_SLURM_CONF}"
  if [[ "$conf" == "$SB_SLURM_CONF" ]]; then
    sb_slurmd_start "$name"
  else
    local ns
    ns="$(sb_netns_of "$name")"
    sb_start "slurmd-$name" nsenter --net="/run/netns/$ns" unshare --uts \
      sh -c 'hostname "$1" && shift && exec "$@"' sh "$name" \
      env SLURM_CONF="$conf" /usr/sbin/slurmd -D -N "$name" -f "$conf"
  fi
}

# a node's State in slurm.conf is read at slurmctld start, not by reconfigure
restart_ctld() {
  local preload end
  sb_stop slurmctld 20
  preload="$(sb_loopback_preload)"
  sb_start slurmctld env SLURM_CONF="$SB_SLURM_CONF" LD_PRELOAD="$preload" \
    SB_BIND_ADDR="$SB_HPC_BRIDGE_ADDR" /usr/sbin/slurmctld -D -f "$SB_SLURM_CONF"
  end=$((SECONDS + 60))
  until sb_slurm_ctld_up; do ((SECONDS < end)) || sb_die "slurmctld did not come back"; sleep 0.3; done
}

resume_when_up() {
  local name="$1" end=$((SECONDS + 60)) st
  while ((SECONDS < end)); do
    st="$(node_state "$name")"
    case "$st" in
      idle | mixed | allocated | completing) return 0 ;;
      down | down~ | drained | draining | drain*) scontrol update nodename="$name" state=resume 2>/dev/null || true ;;
    esac
    sleep 0.5
  done
  sb_die "node $name is '$(node_state "$name")' 60 s after its slurmd started"
}

case "$CMD" in
  list)
    printf '%-8s %-12s %-12s %-12s %s\n' NODE ADDRESS STATE GRES PARTITION
    while IFS= read -r n; do
      printf '%-8s %-12s %-12s %-12s %s\n' "$n" "$(sb_node_field "$n" 1)" "$(node_state "$n")" \
        "$(sb_node_field "$n" 2)" "$(sb_node_field "$n" 3)"
    done < <(sb_node_names)
    ;;
  kill)
    need_node "$@"
    pid="$(sb_pid "slurmd-$1")"
    [[ -n "$pid" ]] && sb_pid_alive "slurmd-$1" || sb_die "kill: slurmd of $1 is not running"
    kill -KILL "$pid"
    rm -f "$STATE/pids/slurmd-$1.pid" "$STATE/pids/.slurmd-$1.start"
    sb_log "killed slurmd of $1 (pid $pid)"
    ;;
  start)
    need_node "$@"
    start_node "$1"
    resume_when_up "$1"
    sb_log "$1 is $(node_state "$1")"
    ;;
  link-down | link-up)
    need_node "$@"
    ip link set "mlv-$1" "${CMD#link-}"
    sb_log "link mlv-$1 ${CMD#link-}"
    ;;
  gres)
    need_node "$@"
    [[ $# -ge 2 && "$2" =~ ^[0-9]+$ ]] || sb_die "gres: give the count of GPUs the node keeps, e.g. 'node.sh gres gpu-02 1'"
    gres="$(sb_node_field "$1" 2)"
    [[ "$gres" != - ]] || sb_die "gres: $1 has no GPUs"
    type="${gres#gpu:}" type="${type%%:*}"
    dir="$STATE/etc/slurm-$1"
    install -d -m 0755 "$dir"
    cp -f "$SB_SLURM_ETC/slurm.conf" "$SB_SLURM_ETC/cgroup.conf" "$dir/"
    if (($2 > 0)); then
      f="$SB_GPU_DEV_DIR/nvidia0"
      (($2 > 1)) && f="$SB_GPU_DEV_DIR/nvidia[0-$(($2 - 1))]"
      printf 'NodeName=%s Name=gpu Type=%s File=%s\n' "$1" "$type" "$f" >"$dir/gres.conf"
    else
      : >"$dir/gres.conf"
    fi
    sb_stop "slurmd-$1" 20
    start_node "$1" "$dir/slurm.conf"
    sb_log "slurmd of $1 restarted with $2 GPU(s) in its gres.conf ($dir)"
    ;;
  gres-reset)
    need_node "$@"
    sb_stop "slurmd-$1" 20
    rm -rf "$STATE/etc/slurm-$1"
    start_node "$1"
    resume_when_up "$1"
    sb_log "$1 back on the shared gres.conf: $(node_state "$1")"
    ;;
  add)
    need_node "$@"
    touch "$SB_SLURM_DATA/added-$1"
    sb_slurm_write_configs
    restart_ctld
    start_node "$1"
    resume_when_up "$1"
    sb_log "$1 added: $(node_state "$1")"
    ;;
  remove)
    need_node "$@"
    rm -f "$SB_SLURM_DATA/added-$1"
    sb_stop "slurmd-$1" 20
    sb_slurm_write_configs
    restart_ctld
    sb_log "$1 removed: $(node_state "$1")"
    ;;
  slow)
    need_node "$@"
    pct="${2:-10}"
    [[ "$pct" =~ ^[0-9]+$ && "$pct" -ge 1 && "$pct" -le 100 ]] || sb_die "slow: PERCENT must be 1..100, got '$pct'"
    pid="$(sb_pid "slurmd-$1")"
    sb_pid_alive "slurmd-$1" || sb_die "slow: slurmd of $1 is not running"
    if [[ -f /sys/fs/cgroup/cgroup.controllers ]]; then
      g="/sys/fs/cgroup/mlops-slow-$1"
      mkdir -p "$g"
      echo "$((pct * 1000)) 100000" >"$g/cpu.max"
    else
      g="/sys/fs/cgroup/cpu/mlops-slow-$1"
      mkdir -p "$g"
      echo 100000 >"$g/cpu.cfs_period_us"
      echo "$((pct * 1000))" >"$g/cpu.cfs_quota_us"
    fi
    echo "$pid" >"$g/cgroup.procs"
    sb_log "slurmd of $1 (pid $pid) on $pct % of one CPU ($g)"
    ;;
  unslow)
    need_node "$@"
    for g in "/sys/fs/cgroup/mlops-slow-$1" "/sys/fs/cgroup/cpu/mlops-slow-$1"; do
      [[ -d "$g" ]] || continue
      root="$(dirname "$g")"
      while read -r p; do echo "$p" >"$root/cgroup.procs" 2>/dev/null || true; done <"$g/cgroup.procs"
      rmdir "$g" 2>/dev/null || true
    done
    sb_log "quota on $1 lifted"
    ;;
  *) usage ;;
esac
