# shellcheck shell=bash
# hpcnet: the multi-node cluster's network. A Linux bridge mlb0 (10.77.0.1/24) in the root
# namespace and, per SLURM node, a network namespace /run/netns/mln-<node> joined to it by a
# veth pair (host side mlv-<node>, node side eth0) with the node's address and a default
# route via the bridge. Idempotent; `sandbox down` removes it. No daemon: status checks links.
SVC_NAME=hpcnet
source "$SB_DIR/slurm.inc.sh"

svc_install() {
  sb_need_cmd ip iproute2
  sb_need_cmd nsenter util-linux
  sb_need_cmd unshare util-linux
}

# _hpcnet_node NAME: namespace, veth and address of one node (no-op if already there)
_hpcnet_node() {
  local name="$1" addr ns host
  addr="$(sb_node_field "$name" 1)"
  ns="$(sb_netns_of "$name")"
  host="mlv-$name"
  [[ -e "/run/netns/$ns" ]] || ip netns add "$ns"
  if ! ip link show "$host" >/dev/null 2>&1; then
    ip link add "$host" type veth peer name eth0 netns "$ns"
  fi
  ip link set "$host" master "$SB_HPC_BRIDGE" up
  ip -n "$ns" link set lo up
  ip -n "$ns" addr replace "$addr/$SB_HPC_PREFIX" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" route replace default via "$SB_HPC_BRIDGE_ADDR" dev eth0
}

_hpcnet_hosts() {
  # the nodes' names resolve everywhere (jobs use each other's hostnames, e.g. MASTER_ADDR)
  local block="" name tmp
  while IFS= read -r name; do
    block+="$(sb_node_field "$name" 1) $name"$'\n'
  done < <(sb_node_names)
  tmp="$(mktemp /etc/.hosts.XXXXXX)"
  awk '/^# BEGIN mlops-assets sandbox nodes$/ {skip=1} !skip {print} /^# END mlops-assets sandbox nodes$/ {skip=0}' /etc/hosts >"$tmp"
  printf '# BEGIN mlops-assets sandbox nodes\n%s# END mlops-assets sandbox nodes\n' "$block" >>"$tmp"
  if cmp -s "$tmp" /etc/hosts; then rm -f "$tmp"; else chmod 0644 "$tmp"; cat "$tmp" >/etc/hosts; rm -f "$tmp"; fi
}

svc_start() {
  if ! ip link show "$SB_HPC_BRIDGE" >/dev/null 2>&1; then
    ip link add "$SB_HPC_BRIDGE" type bridge
  fi
  ip addr replace "$SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX" dev "$SB_HPC_BRIDGE"
  ip link set "$SB_HPC_BRIDGE" up
  local name
  while IFS= read -r name; do
    _hpcnet_node "$name"
  done < <(sb_node_names)
  _hpcnet_hosts
}

svc_wait() {
  local name
  while IFS= read -r name; do
    nsenter --net="/run/netns/$(sb_netns_of "$name")" true ||
      { sb_log "ERROR: namespace of $name is not usable"; return 1; }
  done < <(sb_node_names)
}

svc_status() {
  local name n=0 bad=()
  local addrs
  addrs="$(ip -o addr show dev "$SB_HPC_BRIDGE" 2>/dev/null || true)"
  if [[ "$addrs" != *" $SB_HPC_BRIDGE_ADDR/"* ]]; then
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX bridge $SB_HPC_BRIDGE missing"
    return 1
  fi
  while IFS= read -r name; do
    n=$((n + 1))
    [[ -e "/run/netns/$(sb_netns_of "$name")" ]] || bad+=("$name")
  done < <(sb_node_names)
  if ((${#bad[@]})); then
    echo "$SVC_NAME down $SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX no namespace for: ${bad[*]}"
    return 1
  fi
  echo "$SVC_NAME up $SB_HPC_BRIDGE_ADDR/$SB_HPC_PREFIX bridge=$SB_HPC_BRIDGE namespaces=$n"
}

svc_stop() {
  local name
  while IFS= read -r name; do
    ip link del "mlv-$name" 2>/dev/null || true
    ip netns del "$(sb_netns_of "$name")" 2>/dev/null || true
  done < <(sb_node_names)
  ip link del "$SB_HPC_BRIDGE" 2>/dev/null || true
}
