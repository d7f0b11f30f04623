# shellcheck shell=bash
# slurmd: the one compute node "localhost" (127.0.0.1:6818) with Gres=gpu:2 on fake devices.
SVC_NAME=slurmd
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_apt slurmd slurm-client
}

svc_start() {
  sb_ensure_user "$SB_TRAIN_USER"
  sb_slurm_write_configs
  # slurmd binds every interface: the preload keeps it on loopback
  local preload
  preload="$(sb_loopback_preload)"
  sb_start "$SVC_NAME" env SLURM_CONF="$SB_SLURM_CONF" LD_PRELOAD="$preload" \
    /usr/sbin/slurmd -D -N localhost -f "$SB_SLURM_CONF"
}

# long node state, e.g. idle, mixed, drained, down* ("" if slurmctld does not answer)
_slurmd_node_state() {
  sinfo -h -N -n localhost -o '%T' 2>/dev/null | head -n 1
}

_slurmd_ok() {
  local st
  st="$(_slurmd_node_state)"
  [[ -n "$st" && "$st" != *'*' && "$st" != down* && "$st" != unknown* && "$st" != future* ]]
}

svc_wait() {
  local end=$((SECONDS + 60))
  until _slurmd_ok; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "slurmd exited"; return 1; }
    if ((SECONDS >= end)); then
      sb_wait_fail "$SVC_NAME" "node localhost is '$(_slurmd_node_state)' after 60s; reason: $(sinfo -h -R -n localhost -o '%E' 2>/dev/null)"
      return 1
    fi
    sleep 0.5
  done
  local st
  st="$(_slurmd_node_state)"
  if [[ "$st" == drain* ]]; then
    sb_log "NOTE: node localhost is $st (reason: $(sinfo -h -R -n localhost -o '%E' 2>/dev/null)); 'scontrol update nodename=localhost state=resume' brings it back"
  fi
}

svc_status() {
  local v st
  v="$(sb_slurm_version)"
  st="$(_slurmd_node_state)"
  if sb_pid_alive "$SVC_NAME" && _slurmd_ok; then
    echo "$SVC_NAME up 127.0.0.1:6818 ${v:-unknown} node=localhost state=$st gres=gpu:2"
  else
    echo "$SVC_NAME down 127.0.0.1:6818 ${v:-unknown} node=localhost state=${st:-?}"
    return 1
  fi
}

# Cancel running jobs first so no slurmstepd/job process outlives the sandbox.
svc_stop() {
  sb_slurm_ctld_up || return 0
  local jobs=()
  mapfile -t jobs < <(squeue -h -o '%i' 2>/dev/null)
  ((${#jobs[@]})) || return 0
  sb_log "cancelling jobs: ${jobs[*]}"
  scancel "${jobs[@]}" 2>/dev/null || true
  local end=$((SECONDS + 20))
  while ((SECONDS < end)) && [[ -n "$(squeue -h -t R,CG -o '%i' 2>/dev/null)" ]]; do
    sleep 0.5
  done
}
