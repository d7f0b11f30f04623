# shellcheck shell=bash
# bridge-relays: the services that jobs reach answer on the bridge address too. A job runs in
# its node's network namespace, where 127.0.0.1 is the namespace's own; socat relays
# 10.77.0.1:PORT -> 127.0.0.1:PORT (S3, MLflow, Prometheus, Pushgateway, the hub mirror), bound
# to the bridge address only, so the services still listen on no outside interface.
SVC_NAME=bridge-relays
source "$SB_DIR/slurm.inc.sh"

# name:port
SB_RELAYS=(s3:8333 mlflow:5000 prometheus:9090 pushgateway:9091 hub-mirror:8088)

svc_install() {
  sb_need_cmd socat socat
}

svc_start() {
  local r name port
  for r in "${SB_RELAYS[@]}"; do
    name="${r%%:*}" port="${r##*:}"
    sb_start "$SVC_NAME-$name" socat \
      "TCP-LISTEN:$port,bind=$SB_HPC_BRIDGE_ADDR,reuseaddr,fork" "TCP:127.0.0.1:$port"
  done
}

svc_wait() {
  local r name port
  for r in "${SB_RELAYS[@]}"; do
    name="${r%%:*}" port="${r##*:}"
    sb_wait_tcp "$SB_HPC_BRIDGE_ADDR" "$port" 15 ||
      { sb_wait_fail "$SVC_NAME-$name" "relay $SB_HPC_BRIDGE_ADDR:$port -> 127.0.0.1:$port does not accept"; return 1; }
  done
}

svc_status() {
  local r name port bad=() ok=()
  for r in "${SB_RELAYS[@]}"; do
    name="${r%%:*}" port="${r##*:}"
    if sb_pid_alive "$SVC_NAME-$name"; then ok+=("$name:$port"); else bad+=("$name:$port"); fi
  done
  if ((${#bad[@]})); then
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR missing: ${bad[*]}"
    return 1
  fi
  echo "$SVC_NAME up $SB_HPC_BRIDGE_ADDR ${ok[*]}"
}
