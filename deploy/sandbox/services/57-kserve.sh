# shellcheck shell=bash
# The serving env (issue 19 item 3, "Served"): a venv with KServe's own Python model server,
# kserve 0.21.0 and its closure exactly as deploy/kserve/requirements.txt pins them (by hash,
# nothing resolved), made with --system-site-packages so it sees Debian's CPU-only torch 1.13
# (apt python3-torch, as 55-hpc-python.sh). numpy is pinned to 1.26.4 there: kserve needs
# >= 1.26, and that torch loses its numpy bridge under numpy 2. payloads/serve_mnist.py runs
# in it. Kept apart from hpc-python so kserve's closure (protobuf, grpcio, pandas, ...) never
# moves the [payloads] group's pins. Not a daemon: status = it imports kserve and torch. The
# model servers defs/serving starts outlive their run, as a pod would; `down` stops them.
SVC_NAME=kserve
SB_KSERVE_DIR="${MLOPS_SANDBOX_KSERVE_PYTHON:-/opt/mlops-assets/kserve}"
SB_KSERVE_BASE="${MLOPS_SANDBOX_HPC_BASE_PYTHON:-/usr/bin/python3}"
SB_KSERVE_REQ="$SB_REPO_ROOT/deploy/kserve/requirements.txt"
SB_KSERVE_IMPORTS='import kserve, torch, numpy; torch.from_numpy(numpy.zeros(1, dtype=numpy.float32))'

svc_install() {
  sb_apt python3-torch
  [[ -r "$SB_KSERVE_REQ" ]] || sb_die "missing $SB_KSERVE_REQ"
  sb_venv_by_hash "$SB_KSERVE_DIR" "$SB_KSERVE_BASE" "$SB_KSERVE_REQ" \
    deploy/kserve/requirements.txt "$SB_KSERVE_IMPORTS"
}

svc_start() {
  sb_env_set MLOPS_KSERVE_PYTHON "$SB_KSERVE_DIR/bin/python"
}

svc_stop() {
  sb_stop_announced_servers
}

svc_wait() {
  "$SB_KSERVE_DIR/bin/python" -c "$SB_KSERVE_IMPORTS" ||
    { sb_log "ERROR: $SB_KSERVE_DIR/bin/python cannot import kserve/torch (or torch has no numpy)"; return 1; }
}

svc_status() {
  local v
  local code='import sys, importlib.metadata as m
import torch
print("python-%s kserve-%s torch-%s numpy-%s" % (sys.version.split()[0], m.version("kserve"), torch.__version__, m.version("numpy")))'
  if v="$("$SB_KSERVE_DIR/bin/python" -c "$code" 2>/dev/null)"; then
    echo "$SVC_NAME up $SB_KSERVE_DIR/bin/python $v"
  else
    echo "$SVC_NAME down $SB_KSERVE_DIR/bin/python -"
    return 1
  fi
}
