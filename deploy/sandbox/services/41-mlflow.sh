# shellcheck shell=bash
# MLflow tracking server + model registry (venv's mlflow), sqlite backend, artifacts proxied
# to s3://mlflow/artifacts on the sandbox S3. 127.0.0.1:5000.
SVC_NAME=mlflow
SB_MLFLOW_PORT=5000
SB_MLFLOW_URL="http://127.0.0.1:$SB_MLFLOW_PORT"
SB_MLFLOW_DATA="$STATE/data/mlflow"

_mlflow_bin() {
  sb_venv_bin mlflow
}

svc_install() {
  if ! _mlflow_bin >/dev/null; then
    sb_log "ERROR: no 'mlflow' next to $(sb_python) or on PATH: pip install 'mlflow==3.17.2' (extra [sandbox])"
    return 1
  fi
}

svc_start() {
  local ak sk bin
  ak="$(sb_env_get MLOPS_S3_ACCESS_KEY_ID)"
  sk="$(sb_env_get MLOPS_S3_SECRET_ACCESS_KEY)"
  [[ -n "$ak" && -n "$sk" ]] || { sb_log "ERROR: no S3 keys in sandbox.env: start 40-s3 first"; return 1; }
  install -d -m 0755 "$SB_MLFLOW_DATA"
  bin="$(_mlflow_bin)"
  # Secrets go through the environment of this subshell, never through argv or the log.
  MLFLOW_S3_ENDPOINT_URL="$(sb_env_get MLOPS_S3_ENDPOINT_URL)"
  export MLFLOW_S3_ENDPOINT_URL
  export AWS_ACCESS_KEY_ID="$ak" AWS_SECRET_ACCESS_KEY="$sk" AWS_DEFAULT_REGION=us-east-1
  export MLFLOW_DISABLE_TELEMETRY=true DO_NOT_TRACK=true
  # without it the server starts job workers that take ~2.5 GB
  export MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false
  export MLFLOW_HOME="$SB_MLFLOW_DATA"
  cd "$SB_MLFLOW_DATA" || return 1
  sb_start "$SVC_NAME" "$bin" server \
    --backend-store-uri "sqlite:///$SB_MLFLOW_DATA/mlflow.db" \
    --artifacts-destination s3://mlflow/artifacts \
    --host 127.0.0.1 --port "$SB_MLFLOW_PORT" --workers 1
  sb_env_set MLOPS_MLFLOW_TRACKING_URI "$SB_MLFLOW_URL"
}

svc_wait() {
  local end=$((SECONDS + 90))
  until curl -fsS --max-time 3 "$SB_MLFLOW_URL/health" 2>/dev/null | grep -q OK; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "mlflow server exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "$SB_MLFLOW_URL/health did not answer OK within 90s"; return 1; }
    sleep 0.5
  done
}

svc_status() {
  local v
  v="$(curl -fsS --max-time 3 "$SB_MLFLOW_URL/version" 2>/dev/null || true)"
  if sb_pid_alive "$SVC_NAME" && curl -fsS --max-time 3 "$SB_MLFLOW_URL/health" 2>/dev/null | grep -q OK; then
    echo "$SVC_NAME up $SB_MLFLOW_URL mlflow-${v:-unknown} artifacts=s3://mlflow/artifacts"
  else
    echo "$SVC_NAME down $SB_MLFLOW_URL mlflow-${v:-unknown}"
    return 1
  fi
}
