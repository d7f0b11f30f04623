# shellcheck shell=bash
# The serving env (issue 19 item 3, "Served"): a venv with KServe's own Python model server,
# kserve 0.21.0 and its closure exactly as deploy/kserve/requirements.txt pins them (by hash,
# nothing resolved), made with --system-site-packages so it sees Debian's CPU-only torch 1.13
# (apt python3-torch, as 55-hpc-python.sh). numpy is pinned to 1.26.4 there: kserve needs
# >= 1.26, and that torch loses its numpy bridge under numpy 2. payloads/serve_mnist.py runs
# in it. Kept apart from hpc-python so kserve's closure (protobuf, grpcio, pandas, ...) never
# moves the [payloads] group's pins. Not a daemon: status = it imports kserve and torch.
SVC_NAME=kserve
SB_KSERVE_DIR="${MLOPS_SANDBOX_KSERVE_PYTHON:-/opt/mlops-assets/kserve}"
SB_KSERVE_BASE="${MLOPS_SANDBOX_HPC_BASE_PYTHON:-/usr/bin/python3}"
SB_KSERVE_REQ="$SB_REPO_ROOT/deploy/kserve/requirements.txt"
SB_KSERVE_IMPORTS='import kserve, torch, numpy; torch.from_numpy(numpy.zeros(1, dtype=numpy.float32))'

# 0 when the venv exists and was made with --system-site-packages (it then sees apt's torch)
_kserve_sees_system() {
  grep -qxE 'include-system-site-packages *= *true' "$SB_KSERVE_DIR/pyvenv.cfg" 2>/dev/null
}

svc_install() {
  [[ -x "$SB_KSERVE_BASE" ]] || sb_apt python3
  "$SB_KSERVE_BASE" -c 'import venv, ensurepip' 2>/dev/null || sb_apt python3-venv
  sb_apt python3-torch
  [[ -r "$SB_KSERVE_REQ" ]] || sb_die "missing $SB_KSERVE_REQ"
  local want have
  want="deploy/kserve/requirements.txt sha256=$(sha256sum "$SB_KSERVE_REQ" | cut -d' ' -f1) system-site-packages"
  have="$(cat "$SB_KSERVE_DIR/.requirements" 2>/dev/null || true)"
  if [[ -x "$SB_KSERVE_DIR/bin/python" && "$want" == "$have" ]] && _kserve_sees_system &&
    "$SB_KSERVE_DIR/bin/python" -c "$SB_KSERVE_IMPORTS" 2>/dev/null; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$SB_KSERVE_DIR")"
  if [[ -x "$SB_KSERVE_DIR/bin/python" ]] && _kserve_sees_system &&
    "$SB_KSERVE_DIR/bin/python" -c 'import pip' 2>/dev/null; then
    sb_log "updating $SB_KSERVE_DIR ($want)"
  else
    sb_log "creating $SB_KSERVE_DIR with --system-site-packages ($want)"
    "$SB_KSERVE_BASE" -m venv --clear --system-site-packages "$SB_KSERVE_DIR"
  fi
  # by version and hash, nothing resolved (requirements.txt holds the closure)
  "$SB_KSERVE_DIR/bin/python" -m pip install -q --disable-pip-version-check --require-hashes \
    --no-deps -r "$SB_KSERVE_REQ" >&2
  printf '%s' "$want" >"$SB_KSERVE_DIR/.requirements"
  chmod -R a+rX "$SB_KSERVE_DIR"
}

svc_start() {
  sb_env_set MLOPS_KSERVE_PYTHON "$SB_KSERVE_DIR/bin/python"
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
