# shellcheck shell=bash
# Paths and configuration shared by services/1*-*.sh (munge, MariaDB, slurmdbd, slurmctld,
# slurmd). Sourced after lib.sh. Config files live in $STATE/etc/slurm; every daemon and
# client gets SLURM_CONF (daemons via env + -f, ssh sessions via sshd's SetEnv, local shells
# via sandbox.env), and /etc/slurm/{slurm,gres,cgroup}.conf are symlinks to them when
# /etc/slurm holds no real files of those names.

# munged listens on the default socket: SLURM's slurmdbd connections (sacctmgr, sacct, slurmctld
# 22.05) ignore AuthInfo=socket=... and always use /run/munge/munge.socket.2.
SB_MUNGE_RUN=/run/munge
SB_MUNGE_SOCKET="$SB_MUNGE_RUN/munge.socket.2"
SB_MUNGE_KEY="$STATE/etc/munge/munge.key"
SB_MUNGE_DATA="$STATE/data/munge"

SB_MARIADB_CNF="$STATE/etc/mariadb/my.cnf"
SB_MARIADB_DATA="$STATE/data/mariadb"
SB_MARIADB_RUN="$STATE/run/mysqld"
SB_MARIADB_SOCKET="$SB_MARIADB_RUN/mysqld.sock"

SB_SLURM_ETC="$STATE/etc/slurm"
SB_SLURM_CONF="$SB_SLURM_ETC/slurm.conf"
SB_SLURM_DATA="$STATE/data/slurm"
SB_SLURM_RUN="$STATE/run/slurm"
SB_SLURM_CLUSTER=sandbox
SB_SLURM_PARTITION=gpu
SB_SLURM_ACCOUNT=mlops
SB_TRAIN_USER=mlops
SB_GPU_DEV_DIR="$STATE/dev"
SB_SLURMDBD_PASS_FILE="$STATE/keys/slurmdbd-db.pass"

# The multi-node cluster (services/05-hpcnet.sh): one slurmd per node, each in its own network
# and UTS namespace (/run/netns/mln-<name>), joined to the bridge mlb0 (10.77.0.1/24 in the
# root namespace, where slurmctld listens). Columns: name address gres partition state.
# gpu-04 is declared FUTURE: deploy/sandbox/node.sh add gpu-04 brings it in ("a node is added").
SB_HPC_BRIDGE=mlb0
SB_HPC_BRIDGE_ADDR=10.77.0.1
SB_HPC_PREFIX=24
SB_SLURM_DTN_PARTITION=dtn
SB_NODE_TABLE=(
  "gpu-01 10.77.0.11 gpu:h200:2 gpu UNKNOWN"
  "gpu-02 10.77.0.12 gpu:h200:2 gpu UNKNOWN"
  "gpu-03 10.77.0.13 gpu:h100:4 gpu UNKNOWN"
  "cpu-01 10.77.0.14 - dtn UNKNOWN"
  "gpu-04 10.77.0.15 gpu:h200:2 gpu FUTURE"
)

# sb_node_field NAME COLUMN (1 address, 2 gres, 3 partition, 4 state); fails for unknown nodes
sb_node_field() {
  local row f
  for row in "${SB_NODE_TABLE[@]}"; do
    read -r -a f <<<"$row"
    if [[ "${f[0]}" == "$1" ]]; then
      printf '%s' "${f[$2]}"
      return 0
    fi
  done
  return 1
}

# every node name, in table order
sb_node_names() {
  local row
  for row in "${SB_NODE_TABLE[@]}"; do printf '%s\n' "${row%% *}"; done
}

# nodes whose slurmd `sandbox up` starts (FUTURE ones only once node.sh added them)
sb_node_active() {
  [[ "$(sb_node_field "$1" 4)" != FUTURE || -e "$STATE/data/slurm/added-$1" ]]
}

sb_netns_of() { printf 'mln-%s' "$1"; }

export SLURM_CONF="$SB_SLURM_CONF"

# "22.05.8" / "24.11.5" of the installed SLURM packages (empty if none). Asked from dpkg, not
# from `sinfo -V`: without a readable slurm.conf the clients try a configless DNS SRV lookup
# first and hang for a minute.
sb_slurm_version() {
  local p v
  for p in slurm-client slurm-wlm-basic-plugins slurmctld slurmd slurmdbd; do
    v="$(dpkg-query -W -f='${Version}' "$p" 2>/dev/null || true)"
    if [[ -n "$v" ]]; then
      v="${v#*:}"
      printf '%s' "${v%%-*}"
      return 0
    fi
  done
}

# 2205, 2411, ... (0 if unknown)
sb_slurm_vnum() {
  local v major minor
  v="$(sb_slurm_version)"
  major="${v%%.*}"
  minor="${v#*.}"
  minor="${minor%%.*}"
  [[ "$major" =~ ^[0-9]+$ && "$minor" =~ ^[0-9]+$ ]] || { echo 0; return 0; }
  echo $((10#$major * 100 + 10#$minor))
}

sb_slurm_db_password() {
  if [[ ! -s "$SB_SLURMDBD_PASS_FILE" ]]; then
    install -d -m 0700 "$STATE/keys"
    (umask 077 && sb_rand 32 >"$SB_SLURMDBD_PASS_FILE")
  fi
  cat "$SB_SLURMDBD_PASS_FILE"
}

sb_slurm_gpu_devices() {
  install -d -m 0755 "$SB_GPU_DEV_DIR"
  local i
  for i in 0 1 2 3; do
    if [[ ! -c "$SB_GPU_DEV_DIR/nvidia$i" ]]; then
      rm -f "$SB_GPU_DEV_DIR/nvidia$i"
      mknod -m 0666 "$SB_GPU_DEV_DIR/nvidia$i" c 195 "$i"
    fi
  done
}

# Writes slurm.conf, gres.conf, cgroup.conf, slurmdbd.conf and the directories they name.
sb_slurm_write_configs() {
  local vnum cpus mem_mb real_mem
  vnum="$(sb_slurm_vnum)"
  ((vnum > 0)) || sb_die "SLURM is not installed (no sinfo/slurmctld/slurmd)"
  cpus="$(nproc)"
  mem_mb="$(awk '/^MemTotal:/ { print int($2 / 1024) }' /proc/meminfo)"
  real_mem=$((mem_mb * 8 / 10))
  ((real_mem > 4000)) && real_mem=4000

  id -u slurm >/dev/null 2>&1 || sb_die "the slurm user is missing (package slurm-wlm-basic-plugins/slurm-client creates it)"
  install -d -m 0755 "$SB_SLURM_ETC"
  install -d -m 0755 -o slurm -g slurm "$SB_SLURM_RUN" "$SB_SLURM_DATA"
  install -d -m 0700 -o slurm -g slurm "$SB_SLURM_DATA/ctld"
  install -d -m 0755 "$SB_SLURM_DATA/d"
  sb_slurm_gpu_devices

  local nodes="" gres_lines="" row f name addr gres part state gpu_nodes=() dtn_nodes=()
  for row in "${SB_NODE_TABLE[@]}"; do
    read -r -a f <<<"$row"
    name="${f[0]}" addr="${f[1]}" gres="${f[2]}" part="${f[3]}" state="${f[4]}"
    sb_node_active "$name" && state=UNKNOWN
    install -d -m 0755 "$SB_SLURM_DATA/d/$name"
    nodes+="NodeName=$name NodeHostname=$name NodeAddr=$addr CPUs=$cpus RealMemory=$real_mem"
    if [[ "$gres" != - ]]; then
      nodes+=" Gres=$gres"
      local n="${gres##*:}" type="${gres#gpu:}"
      type="${type%%:*}"
      gres_lines+="NodeName=$name Name=gpu Type=$type File=$SB_GPU_DEV_DIR/nvidia[0-$((n - 1))]"$'\n'
    fi
    nodes+=" State=$state"$'\n'
    if [[ "$part" == gpu ]]; then gpu_nodes+=("$name"); else dtn_nodes+=("$name"); fi
  done
  local gpu_list dtn_list
  gpu_list="$(IFS=,; printf '%s' "${gpu_nodes[*]}")"
  dtn_list="$(IFS=,; printf '%s' "${dtn_nodes[*]}")"

  sb_write_file "$SB_SLURM_CONF" 0644 root:root <<EOF
# Generated by deploy/sandbox/slurm.inc.sh on every \`sandbox.sh up\`; edits are overwritten.
# SLURM $(sb_slurm_version): slurmctld on the bridge $SB_HPC_BRIDGE ($SB_HPC_BRIDGE_ADDR), one slurmd
# per node in its own network + UTS namespace (services/05-hpcnet.sh, 14-slurmd.sh), fake
# GPUs (mknod c 195 N, no driver). Every node declares the machine's $cpus CPUs: they share them.
ClusterName=$SB_SLURM_CLUSTER
SlurmctldHost=localhost($SB_HPC_BRIDGE_ADDR)
SlurmUser=slurm
SlurmdUser=root
SlurmctldPort=6817
SlurmdPort=6818
SrunPortRange=60001-60100
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$SB_SLURM_DATA/ctld
SlurmdSpoolDir=$SB_SLURM_DATA/d/%n
SlurmctldPidFile=$SB_SLURM_RUN/slurmctld.pid
SlurmdPidFile=$SB_SLURM_RUN/slurmd-%n.pid
SlurmctldDebug=info
SlurmdDebug=info
# cgroup plugins would move processes out of the caller's cgroup on these machines; the
# device constraint is configured in cgroup.conf (ConstrainDevices=yes) and read, not run.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
GresTypes=gpu
ReturnToService=2
SlurmctldTimeout=30
# low, so that a killed slurmd is DOWN within seconds (the node fault tests)
SlurmdTimeout=15
InactiveLimit=0
MinJobAge=300
KillWait=10
Waittime=0
MailProg=/bin/true
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
JobCompType=jobcomp/none
AccountingStorageType=accounting_storage/slurmdbd
# on the bridge: slurmdbd records the address slurmctld connects from and pushes account
# changes (sacctmgr ... adminlevel) back to it; 127.0.0.1:6817 has no listener
AccountingStorageHost=$SB_HPC_BRIDGE_ADDR
AccountingStoragePort=6819
AccountingStorageTRES=gres/gpu
${nodes%$'\n'}
PartitionName=$SB_SLURM_PARTITION Nodes=$gpu_list Default=YES MaxTime=INFINITE State=UP
PartitionName=$SB_SLURM_DTN_PARTITION Nodes=$dtn_list MaxTime=INFINITE State=UP
# one partition per GPU type: h100 holds gpu-03 alone (a one-node partition for the DDP smoke)
PartitionName=h100 Nodes=gpu-03 MaxTime=INFINITE State=UP
# every node, for jobs that span the GPU and data-mover nodes (srun -N 4 -p all)
PartitionName=all Nodes=ALL MaxTime=INFINITE State=UP
EOF

  printf '# Fake GPUs: character devices made with mknod (major 195 like /dev/nvidiaN), no driver behind.\n%s' \
    "$gres_lines" | sb_write_file "$SB_SLURM_ETC/gres.conf" 0644 root:root

  local cg_extra=""
  if ((vnum >= 2405)); then
    # 24.05+ would otherwise initialise a cgroup plugin in slurmd (and want systemd/dbus on v2)
    cg_extra="CgroupPlugin=disabled"
  fi
  sb_write_file "$SB_SLURM_ETC/cgroup.conf" 0644 root:root <<EOF
# GPU isolation as on the real cluster: the task/cgroup plugin would only expose the
# allocated /dev/nvidiaN to a job. The sandbox keeps TaskPlugin=task/none (see slurm.conf),
# so this file is configuration to be read by checks, not enforcement.
ConstrainDevices=yes
ConstrainCores=yes
ConstrainRAMSpace=yes
$cg_extra
EOF

  local pass
  pass="$(sb_slurm_db_password)"
  sb_write_file "$SB_SLURM_ETC/slurmdbd.conf" 0600 slurm:slurm <<EOF
# Generated by deploy/sandbox/slurm.inc.sh. Holds the database password: mode 600, SlurmUser.
AuthType=auth/munge
DbdHost=localhost
DbdAddr=$SB_HPC_BRIDGE_ADDR
DbdPort=6819
SlurmUser=slurm
PidFile=$SB_SLURM_RUN/slurmdbd.pid
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$pass
StorageLoc=slurm_acct_db
EOF

  sb_slurm_link_etc
  sb_env_set SLURM_CONF "$SB_SLURM_CONF"
}

# /etc/slurm/X -> $STATE/etc/slurm/X, unless /etc/slurm/X is a real file (never overwritten).
sb_slurm_link_etc() {
  local f
  install -d -m 0755 /etc/slurm
  for f in slurm.conf gres.conf cgroup.conf; do
    if [[ -e "/etc/slurm/$f" && ! -L "/etc/slurm/$f" ]]; then
      sb_log "WARNING: /etc/slurm/$f is a real file; left alone (clients need SLURM_CONF=$SB_SLURM_CONF)"
      continue
    fi
    if [[ "$(readlink "/etc/slurm/$f" 2>/dev/null)" != "$SB_SLURM_ETC/$f" ]]; then
      ln -sfn "$SB_SLURM_ETC/$f" "/etc/slurm/$f"
    fi
  done
}

sb_slurm_ctld_up() {
  scontrol ping 2>/dev/null | grep -q 'is UP'
}

# sb_slurmd_start NAME: that node's slurmd, in its network namespace (nsenter, not `ip netns
# exec`, which remounts /sys and hides /sys/fs/cgroup from slurmd) and a UTS namespace of its
# own whose hostname is the node name. Pid file slurmd-NAME (no-op if it runs).
sb_slurmd_start() {
  local name="$1" ns
  sb_node_field "$name" 1 >/dev/null || sb_die "unknown node '$name' (nodes: $(sb_node_names | tr '\n' ' '))"
  ns="$(sb_netns_of "$name")"
  [[ -e "/run/netns/$ns" ]] || sb_die "no network namespace /run/netns/$ns: run 'sandbox up hpcnet' first"
  sb_start "slurmd-$name" nsenter --net="/run/netns/$ns" unshare --uts \
    sh -c 'hostname "$1" && shift && exec "$@"' sh "$name" \
    env SLURM_CONF="$SB_SLURM_CONF" /usr/sbin/slurmd -D -N "$name" -f "$SB_SLURM_CONF"
}
