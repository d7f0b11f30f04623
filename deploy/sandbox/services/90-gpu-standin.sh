# shellcheck shell=bash
# The nvidia-smi STAND-IN (standins/nvidia-smi) where jobs on the sandbox node can run it.
SVC_NAME=gpu-standin
_here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
_bin="$STATE/bin/nvidia-smi"

svc_install() { mkdir -p "$STATE/bin"; chmod 755 "$STATE" "$STATE/bin"; }
svc_start() { install -m 755 "$_here/standins/nvidia-smi" "$_bin"; }
svc_wait() { [ -x "$_bin" ] || { echo "gpu-standin: $_bin missing" >&2; return 1; }; }
svc_status() {
  if [ -x "$_bin" ]; then echo "$SVC_NAME up $_bin stand-in(H200x2 recorded)"; return 0; fi
  echo "$SVC_NAME down $_bin -"; return 1
}
