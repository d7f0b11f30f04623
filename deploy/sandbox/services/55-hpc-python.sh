# shellcheck shell=bash
# The HPC side's Python for the staging payloads (mlops_assets/payloads): a venv that the
# login user can run, with huggingface_hub, dagster-pipes and boto3 (sync_s3.py, the MinIO copy
# of the models) at the versions pyproject.toml pins. The orchestrator's .venv lives under /root, which `mlops` cannot read. The catalog's
# sandbox profile names this interpreter as hpc.python. Not a daemon: status = it imports.
SVC_NAME=hpc-python
SB_HPC_PY_DIR="${MLOPS_SANDBOX_HPC_PYTHON:-/opt/mlops-assets/hpc-python}"
SB_HPC_PY_BASE="${MLOPS_SANDBOX_HPC_BASE_PYTHON:-/usr/bin/python3}"

# requirement lines of pyproject.toml for the packages the payloads import
_hpc_py_requirements() {
  local pyproject="$SB_REPO_ROOT/pyproject.toml" name line
  for name in huggingface_hub dagster-pipes boto3; do
    line="$(grep -oE "\"$name[^\"]*\"" "$pyproject" | head -n 1 | tr -d '"')"
    [[ -n "$line" ]] || sb_die "$name is not in $pyproject"
    printf '%s\n' "$line"
  done
}

svc_install() {
  [[ -x "$SB_HPC_PY_BASE" ]] || sb_apt python3
  "$SB_HPC_PY_BASE" -c 'import venv, ensurepip' 2>/dev/null || sb_apt python3-venv
  local want have
  want="$(_hpc_py_requirements | LC_ALL=C sort | tr '\n' ' ')"
  have="$(cat "$SB_HPC_PY_DIR/.requirements" 2>/dev/null || true)"
  if [[ -x "$SB_HPC_PY_DIR/bin/python" && "$want" == "$have" ]] &&
    "$SB_HPC_PY_DIR/bin/python" -c 'import huggingface_hub, dagster_pipes, boto3' 2>/dev/null; then
    return 0
  fi
  install -d -m 0755 "$(dirname "$SB_HPC_PY_DIR")"
  if [[ -x "$SB_HPC_PY_DIR/bin/python" ]] && "$SB_HPC_PY_DIR/bin/python" -c 'import pip' 2>/dev/null; then
    # a requirement was added: install into the working venv (payloads may be running)
    sb_log "updating $SB_HPC_PY_DIR ($want)"
  else
    sb_log "creating $SB_HPC_PY_DIR ($want)"
    "$SB_HPC_PY_BASE" -m venv --clear "$SB_HPC_PY_DIR"
  fi
  # shellcheck disable=SC2046
  "$SB_HPC_PY_DIR/bin/python" -m pip install -q --disable-pip-version-check $(_hpc_py_requirements) >&2
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
    "$SB_HPC_PY_DIR/bin/python" -c 'import huggingface_hub, dagster_pipes, boto3' ||
    { sb_log "ERROR: $user cannot import huggingface_hub/dagster_pipes/boto3 with $SB_HPC_PY_DIR/bin/python"; return 1; }
}

svc_status() {
  local v
  local code='import sys, importlib.metadata as m
print("python-%s huggingface_hub-%s dagster-pipes-%s boto3-%s" % (sys.version.split()[0], m.version("huggingface_hub"), m.version("dagster-pipes"), m.version("boto3")))'
  if v="$("$SB_HPC_PY_DIR/bin/python" -c "$code" 2>/dev/null)"; then
    echo "$SVC_NAME up $SB_HPC_PY_DIR/bin/python $v"
  else
    echo "$SVC_NAME down $SB_HPC_PY_DIR/bin/python -"
    return 1
  fi
}
