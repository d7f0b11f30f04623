# shellcheck shell=bash
# Kubernetes API STAND-IN (deploy/sandbox/standins/kube_api.py): NOT a real kube-apiserver.
# No API server, etcd, k3s or kwok can be had on these machines; this fixture server answers
# kubectl and the kubernetes Python client on http://127.0.0.1:6443 (plain http, bearer token).
# Writes $STATE/keys/kubeconfig (context "sandbox"). Faults: POST /_standin/scenario.
SVC_NAME=kube-standin
KUBE_STANDIN_PORT="${MLOPS_KUBE_STANDIN_PORT:-6443}"
KUBE_STANDIN_URL="http://127.0.0.1:$KUBE_STANDIN_PORT"

svc_install() {
  # kubectl: the machine image ships one (Google Cloud SDK's kubectl, which picks a client
  # version matching the server); otherwise Debian's kubernetes-client (1.20 on bookworm).
  if ! command -v kubectl >/dev/null 2>&1; then
    (sb_apt kubernetes-client) ||
      sb_log "WARNING: no kubectl (Debian kubernetes-client unavailable); the kubernetes client still works"
  fi
}

_kube_write_kubeconfig() {
  local token_file="$STATE/keys/kube-token"
  if [[ ! -s "$token_file" ]]; then
    (umask 077 && sb_rand 48 >"$token_file")
  fi
  local token
  token="$(cat "$token_file")"
  sb_write_file "$STATE/keys/kubeconfig" 0600 <<KUBECONFIG
# Kubernetes API STAND-IN of the mlops_assets sandbox (deploy/sandbox/standins/kube_api.py).
# Not a real cluster: plain http on loopback, objects from kube_fixtures/cluster.json.
apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: $KUBE_STANDIN_URL
users:
- name: sandbox-admin
  user:
    token: $token
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: sandbox-admin
    namespace: default
current-context: sandbox
preferences: {}
KUBECONFIG
}

svc_start() {
  _kube_write_kubeconfig
  sb_env_set MLOPS_KUBECONFIG "$STATE/keys/kubeconfig"
  sb_env_set KUBECONFIG "$STATE/keys/kubeconfig"
  sb_env_set MLOPS_KUBE_CONTEXT sandbox
  sb_env_set MLOPS_KUBE_STANDIN_URL "$KUBE_STANDIN_URL"
  sb_start "$SVC_NAME" "$(sb_python)" -u "$SB_DIR/standins/kube_api.py" \
    --host 127.0.0.1 --port "$KUBE_STANDIN_PORT" --token-file "$STATE/keys/kube-token"
}

_kube_is_standin() {
  # ours (the PID we started), not another instance that holds the port
  local pid
  pid="$(sb_pid "$SVC_NAME")"
  [[ -n "$pid" ]] || return 1
  curl -fsS --max-time 3 "$KUBE_STANDIN_URL/_standin/" 2>/dev/null |
    grep '"standin": "kube-api"' | grep -q "\"pid\": $pid[,}]"
}

svc_wait() {
  local end=$((SECONDS + 20))
  until _kube_is_standin; do
    sb_pid_alive "$SVC_NAME" || { sb_wait_fail "$SVC_NAME" "kube_api.py exited (port $KUBE_STANDIN_PORT taken?)"; return 1; }
    ((SECONDS < end)) || { sb_wait_fail "$SVC_NAME" "the Kubernetes API stand-in did not answer on $KUBE_STANDIN_URL within 20s"; return 1; }
    sleep 0.2
  done
}

svc_status() {
  local v
  v="$(curl -fsS --max-time 3 "$KUBE_STANDIN_URL/version" 2>/dev/null |
    sed -n 's/.*"gitVersion": *"\([^"]*\)".*/\1/p')"
  if sb_pid_alive "$SVC_NAME" && _kube_is_standin; then
    echo "$SVC_NAME up $KUBE_STANDIN_URL ${v:-unknown}+standin"
  else
    echo "$SVC_NAME down $KUBE_STANDIN_URL ${v:-unknown}"
    return 1
  fi
}
