# shellcheck shell=bash
# slurmd: one real slurmd per SLURM node of the multi-node cluster (slurm.inc.sh SB_NODE_TABLE),
# each in its node's network namespace (services/05-hpcnet.sh) and in a UTS namespace of its
# own with the node's hostname, so a job sees its node's name and address. Pid files
# slurmd-<node>.pid; spool $STATE/data/slurm/d/<node>; deploy/sandbox/node.sh drives faults.
SVC_NAME=slurmd
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_apt slurmd slurm-client
}

svc_start() {
  sb_ensure_user "$SB_TRAIN_USER"
  sb_slurm_write_configs
  # the controller re-reads node definitions (a node added by node.sh, a changed table)
  if ((SB_CHANGED)) || [[ -n "${SB_SLURM_RECONFIGURE:-}" ]]; then
    scontrol reconfigure >/dev/null 2>&1 || true
  fi
  local name
  while IFS= read -r name; do
    sb_node_active "$name" || continue
    sb_slurmd_start "$name"
  done < <(sb_node_names)
}

# long node state, e.g. idle, mixed, drained, down* ("" if slurmctld does not answer)
_slurmd_node_state() {
  sinfo -h -N -n "$1" -o '%T' 2>/dev/null | head -n 1
}

_slurmd_ok() {
  local st
  st="$(_slurmd_node_state "$1")"
  [[ -n "$st" && "$st" != *'*' && "$st" != down* && "$st" != unknown* && "$st" != future* ]]
}

svc_wait() {
  local end=$((SECONDS + 60)) name st
  while IFS= read -r name; do
    sb_node_active "$name" || continue
    until _slurmd_ok "$name"; do
      sb_pid_alive "$SVC_NAME-$name" || { sb_wait_fail "$SVC_NAME-$name" "slurmd of $name exited"; return 1; }
      if [[ "$(_slurmd_node_state "$name")" == down* ]]; then
        # a node DOWN from an earlier run (e.g. a fault drill) comes back once its slurmd answers
        scontrol update nodename="$name" state=resume >/dev/null 2>&1 || true
      fi
      if ((SECONDS >= end)); then
        sb_wait_fail "$SVC_NAME-$name" "node $name is '$(_slurmd_node_state "$name")' after 60s; reason: $(sinfo -h -R -n "$name" -o '%E' 2>/dev/null)"
        return 1
      fi
      sleep 0.5
    done
    st="$(_slurmd_node_state "$name")"
    if [[ "$st" == drain* ]]; then
      sb_log "NOTE: node $name is $st (reason: $(sinfo -h -R -n "$name" -o '%E' 2>/dev/null)); 'scontrol update nodename=$name state=resume' brings it back"
    fi
  done < <(sb_node_names)
}

svc_status() {
  local v name st addr gres n=0 down=0 lines=()
  v="$(sb_slurm_version)"
  while IFS= read -r name; do
    addr="$(sb_node_field "$name" 1)"
    gres="$(sb_node_field "$name" 2)"
    if ! sb_node_active "$name"; then
      lines+=("  node $name $addr state=future gres=$gres partition=$(sb_node_field "$name" 3) (node.sh add $name)")
      continue
    fi
    n=$((n + 1))
    st="$(_slurmd_node_state "$name")"
    if ! sb_pid_alive "$SVC_NAME-$name" || ! _slurmd_ok "$name"; then
      down=$((down + 1))
    fi
    sb_pid_alive "$SVC_NAME-$name" || st="${st:-?}(no slurmd)"
    lines+=("  node $name $addr state=${st:-?} gres=$gres partition=$(sb_node_field "$name" 3)")
  done < <(sb_node_names)
  if ((down == 0)); then
    echo "$SVC_NAME up $SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX:6818 ${v:-unknown} nodes=$n"
  else
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX:6818 ${v:-unknown} nodes=$n down=$down"
  fi
  printf '%s\n' "${lines[@]}"
  ((down == 0))
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
