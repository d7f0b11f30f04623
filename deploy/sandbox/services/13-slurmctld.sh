# shellcheck shell=bash
# slurmctld: the controller, 10.77.0.1:6817 (the bridge of services/05-hpcnet.sh), cluster "sandbox", partition "gpu" (default).
SVC_NAME=slurmctld
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_apt slurmctld slurm-client
}

# Cluster, account and users in slurmdbd, so that every job is accounted to an association.
_slurmctld_accounting() {
  if ! sacctmgr -n -P show cluster format=cluster | grep -qx "$SB_SLURM_CLUSTER"; then
    sacctmgr -i add cluster "$SB_SLURM_CLUSTER" >/dev/null
  fi
  if ! sacctmgr -n -P show account "$SB_SLURM_ACCOUNT" format=account | grep -qx "$SB_SLURM_ACCOUNT"; then
    sacctmgr -i add account "$SB_SLURM_ACCOUNT" Cluster="$SB_SLURM_CLUSTER" \
      Description="sandbox training jobs" Organization=mlops >/dev/null
  fi
  local u
  for u in "$SB_TRAIN_USER" root; do
    if ! sacctmgr -n -P show assoc where user="$u" account="$SB_SLURM_ACCOUNT" \
      cluster="$SB_SLURM_CLUSTER" format=user | grep -qx "$u"; then
      if sacctmgr -n -P show user "$u" format=user | grep -qx "$u"; then
        sacctmgr -i add user "$u" Account="$SB_SLURM_ACCOUNT" Cluster="$SB_SLURM_CLUSTER" >/dev/null
      else
        sacctmgr -i add user "$u" DefaultAccount="$SB_SLURM_ACCOUNT" Cluster="$SB_SLURM_CLUSTER" >/dev/null
      fi
    fi
  done
}

svc_start() {
  sb_slurm_write_configs
  _slurmctld_accounting
  # slurmctld binds every interface: the preload keeps it on the bridge address, which the
  # nodes' namespaces reach and no other machine does
  local preload
  preload="$(sb_loopback_preload)"
  sb_start "$SVC_NAME" env SLURM_CONF="$SB_SLURM_CONF" LD_PRELOAD="$preload" SB_BIND_ADDR="$SB_HPC_BRIDGE_ADDR" \
    /usr/sbin/slurmctld -D -f "$SB_SLURM_CONF"
}

# slurmctld fetches associations from slurmdbd after it answers pings; a job submitted before
# that runs without an account (seen on 24.11 right after the first start).
_slurmctld_assoc_loaded() {
  scontrol show assoc_mgr users="$SB_TRAIN_USER" flags=assoc 2>/dev/null |
    grep -q "Account=$SB_SLURM_ACCOUNT UserName=$SB_TRAIN_USER"
}

svc_wait() {
  local end=$((SECONDS + 60))
  until sb_slurm_ctld_up && _slurmctld_assoc_loaded; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "slurmctld exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "slurmctld did not answer 'scontrol ping' with the $SB_TRAIN_USER association loaded within 60s"; return 1; }
    sleep 0.3
  done
}

svc_status() {
  local v
  v="$(sb_slurm_version)"
  if sb_pid_alive "$SVC_NAME" && sb_slurm_ctld_up; then
    echo "$SVC_NAME up $SB_HPC_BRIDGE_ADDR:6817 ${v:-unknown} cluster=$SB_SLURM_CLUSTER partition=$SB_SLURM_PARTITION"
  else
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR:6817 ${v:-unknown}"
    return 1
  fi
}
