#!/bin/bash
# podnet: the pod network of a kind cluster built here (kindnetd, kind's own, cannot be
# built from the module proxy). On its node, every few seconds:
#   - writes the CNI config: a ptp link per pod, addresses from this node's pod CIDR;
#   - routes each other node's pod CIDR to that node's address;
#   - masquerades pod traffic that leaves the cluster's pod subnet (POD_SUBNET).
# Runs with the host's network namespace; reads the nodes through the API server.
set -euo pipefail
: "${NODE_NAME:?}" "${POD_SUBNET:?}"
CONF=/host/etc/cni/net.d/10-podnet.conflist
INTERVAL="${PODNET_INTERVAL:-5}"

write_config() {
  local cidr=$1 tmp
  tmp="$(mktemp "${CONF}.XXXX")"
  cat >"$tmp" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [
    {"type": "ptp", "mtu": 1500,
     "ipam": {"type": "host-local", "dataDir": "/run/cni-ipam-state",
              "routes": [{"dst": "0.0.0.0/0"}], "ranges": [[{"subnet": "$cidr"}]]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON
  if ! cmp -s "$tmp" "$CONF"; then mv "$tmp" "$CONF"; echo "podnet: CNI config for $cidr"; else rm -f "$tmp"; fi
}

masquerade() {
  iptables -t nat -N PODNET-MASQ 2>/dev/null || true
  iptables -t nat -C POSTROUTING -s "$POD_SUBNET" -j PODNET-MASQ 2>/dev/null ||
    iptables -t nat -A POSTROUTING -s "$POD_SUBNET" -j PODNET-MASQ
  iptables -t nat -C PODNET-MASQ -d "$POD_SUBNET" -j RETURN 2>/dev/null ||
    iptables -t nat -A PODNET-MASQ -d "$POD_SUBNET" -j RETURN
  iptables -t nat -C PODNET-MASQ -j MASQUERADE 2>/dev/null || iptables -t nat -A PODNET-MASQ -j MASQUERADE
}

masquerade
while true; do
  # name, pod CIDR and internal address of every node, one line each
  nodes="$(kubectl get nodes -o jsonpath='{range .items[*]}{.metadata.name} {.spec.podCIDR} {.status.addresses[?(@.type=="InternalIP")].address}{"\n"}{end}')" || {
    sleep "$INTERVAL"; continue; }
  while read -r name cidr address; do
    [ -n "$cidr" ] || continue
    if [ "$name" = "$NODE_NAME" ]; then
      write_config "$cidr"
    elif [ -n "$address" ]; then
      ip route replace "$cidr" via "$address"
    fi
  done <<<"$nodes"
  sleep "$INTERVAL"
done
