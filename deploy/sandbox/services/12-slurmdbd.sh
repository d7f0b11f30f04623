# shellcheck shell=bash
# slurmdbd: SLURM accounting (sacct) backed by the sandbox MariaDB, 10.77.0.1:6819 (the bridge:
# slurmdbd pushes account changes back to slurmctld at the address it registered from).
SVC_NAME=slurmdbd
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_apt slurmdbd slurm-client
}

svc_start() {
  sb_slurm_write_configs
  local pass
  pass="$(sb_slurm_db_password)"
  # SQL on stdin, so the password never shows in a process list
  mariadb --defaults-file="$SB_MARIADB_CNF" -u root <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pass';
ALTER USER 'slurm'@'localhost' IDENTIFIED BY '$pass';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
GRANT ALL PRIVILEGES ON slurm_acct_db.* TO 'slurm'@'localhost';
FLUSH PRIVILEGES;
SQL
  # slurmdbd has no -f: it finds slurmdbd.conf next to $SLURM_CONF
  # slurmdbd binds every interface (DbdAddr only names the address): the preload keeps it on loopback
  local preload
  preload="$(sb_loopback_preload)"
  sb_start "$SVC_NAME" env SLURM_CONF="$SB_SLURM_CONF" LD_PRELOAD="$preload" \
    SB_BIND_ADDR="$SB_HPC_BRIDGE_ADDR" /usr/sbin/slurmdbd -D
}

_slurmdbd_ok() {
  sacctmgr -n -P show cluster format=cluster >/dev/null 2>&1
}

svc_wait() {
  local end=$((SECONDS + 60))
  until sb_wait_tcp "$SB_HPC_BRIDGE_ADDR" 6819 1 && _slurmdbd_ok; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "slurmdbd exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "slurmdbd did not answer sacctmgr within 60s"; return 1; }
    sleep 0.5
  done
}

svc_status() {
  local v
  v="$(sb_slurm_version)"
  if sb_pid_alive "$SVC_NAME" && sb_wait_tcp "$SB_HPC_BRIDGE_ADDR" 6819 1; then
    echo "$SVC_NAME up $SB_HPC_BRIDGE_ADDR:6819 ${v:-unknown}"
  else
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR:6819 ${v:-unknown}"
    return 1
  fi
}
