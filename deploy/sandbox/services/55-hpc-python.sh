# shellcheck shell=bash
# The HPC side's Python for the payloads (mlops_assets/payloads): a venv that the login user can
# run, with huggingface_hub, dagster-pipes, boto3 (sync_s3.py, the MinIO copy of the models) and
# pyarrow (load_check.py reads the staged parquet/Arrow data with it; required, no fallback)
# and their closure exactly as uv.lock pins them (pyproject's [payloads] group, by hash), plus
# Debian's CPU-only torch and torchvision (apt python3-torch/python3-torchvision: 1.13.1/0.14.1
# on bookworm) for the smoke payloads, which the sandbox's fake GPUs make run on CPU. The venv is made with --system-site-packages so it
# sees those apt packages; a venv made without it is recreated. The orchestrator's .venv lives
# under /root, which `mlops` cannot read. The catalog's sandbox profile names this interpreter
# as hpc.python. Not a daemon: status = it imports.
SVC_NAME=hpc-python
SB_HPC_PY_DIR="${MLOPS_SANDBOX_HPC_PYTHON:-/opt/mlops-assets/hpc-python}"
SB_HPC_PY_BASE="${MLOPS_SANDBOX_HPC_BASE_PYTHON:-/usr/bin/python3}"
SB_HPC_PY_APT=(python3-torch python3-torchvision)
SB_HPC_PY_IMPORTS='import huggingface_hub, dagster_pipes, boto3, pyarrow.parquet, torch, torchvision'

# uv.lock's [payloads] group, with hashes, into file $1 (the orchestrator venv's uv exports it)
_hpc_py_requirements() {
  "$(sb_python)" "$SB_REPO_ROOT/deploy/lock.py" requirements --only-group payloads >"$1" ||
    sb_die "cannot export uv.lock's [payloads] group with $(sb_python) (run bash deploy/setup.sh first)"
}

# 0 when the venv exists and was made with --system-site-packages (it then sees apt's torch)
_hpc_py_sees_system() {
  grep -qxE 'include-system-site-packages *= *true' "$SB_HPC_PY_DIR/pyvenv.cfg" 2>/dev/null
}

svc_install() {
  [[ -x "$SB_HPC_PY_BASE" ]] || sb_apt python3
  "$SB_HPC_PY_BASE" -c 'import venv, ensurepip' 2>/dev/null || sb_apt python3-venv
  sb_apt "${SB_HPC_PY_APT[@]}"
  local req want have
  req="$(mktemp)"
  _hpc_py_requirements "$req"
  want="uv.lock[payloads] sha256=$(sha256sum "$req" | cut -d' ' -f1) system-site-packages"
  have="$(cat "$SB_HPC_PY_DIR/.requirements" 2>/dev/null || true)"
  if [[ -x "$SB_HPC_PY_DIR/bin/python" && "$want" == "$have" ]] && _hpc_py_sees_system &&
    "$SB_HPC_PY_DIR/bin/python" -c "$SB_HPC_PY_IMPORTS" 2>/dev/null; then
    rm -f "$req"
    return 0
  fi
  install -d -m 0755 "$(dirname "$SB_HPC_PY_DIR")"
  if [[ -x "$SB_HPC_PY_DIR/bin/python" ]] && _hpc_py_sees_system &&
    "$SB_HPC_PY_DIR/bin/python" -c 'import pip' 2>/dev/null; then
    # the lock changed: install into the working venv (payloads may be running)
    sb_log "updating $SB_HPC_PY_DIR ($want)"
  else
    # new, or made without --system-site-packages (it would not see apt's torch): recreate
    sb_log "creating $SB_HPC_PY_DIR with --system-site-packages ($want)"
    "$SB_HPC_PY_BASE" -m venv --clear --system-site-packages "$SB_HPC_PY_DIR"
  fi
  # by version and hash, nothing resolved (the lock holds the closure)
  "$SB_HPC_PY_DIR/bin/python" -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r "$req" >&2
  rm -f "$req"
  printf '%s' "$want" >"$SB_HPC_PY_DIR/.requirements"
  chmod -R a+rX "$SB_HPC_PY_DIR"
}

svc_start() {
  sb_env_set MLOPS_HPC_PYTHON "$SB_HPC_PY_DIR/bin/python"
}

svc_wait() {
  local user=mlops
  id -u "$user" >/dev/null 2>&1 || { sb_log "ERROR: user $user missing"; return 1; }
  setpriv --reuid="$user" --regid="$(id -g "$user")" --init-groups \
    "$SB_HPC_PY_DIR/bin/python" -c "$SB_HPC_PY_IMPORTS" ||
    { sb_log "ERROR: $user cannot import huggingface_hub/dagster_pipes/boto3/pyarrow.parquet/torch/torchvision with $SB_HPC_PY_DIR/bin/python"; return 1; }
}

svc_status() {
  local v
  local code='import sys, importlib.metadata as m
import torch
print("python-%s huggingface_hub-%s dagster-pipes-%s boto3-%s pyarrow-%s torch-%s(cuda=%s) torchvision-%s" % (sys.version.split()[0], m.version("huggingface_hub"), m.version("dagster-pipes"), m.version("boto3"), m.version("pyarrow"), torch.__version__, torch.cuda.is_available(), m.version("torchvision")))'
  if v="$("$SB_HPC_PY_DIR/bin/python" -c "$code" 2>/dev/null)"; then
    echo "$SVC_NAME up $SB_HPC_PY_DIR/bin/python $v"
  else
    echo "$SVC_NAME down $SB_HPC_PY_DIR/bin/python -"
    return 1
  fi
}
