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

svc_install() {
  sb_apt "${SB_HPC_PY_APT[@]}"
  local req
  req="$(mktemp)"
  _hpc_py_requirements "$req"
  sb_venv_by_hash "$SB_HPC_PY_DIR" "$SB_HPC_PY_BASE" "$req" "uv.lock[payloads]" \
    "$SB_HPC_PY_IMPORTS"
  rm -f "$req"
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
