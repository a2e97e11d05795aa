#!/usr/bin/env bash
# A throwaway three-master Redis Cluster on free ports in a temp dir, for benches and trials.
#   scripts/redis-cluster.sh          start it; prints the comma-separated URLs (for
#                                     MAILBOX__REDIS__CLUSTER_URLS) and remembers the dir
#   scripts/redis-cluster.sh stop     stop it and remove its dir
# Example:
#   export MAILBOX__REDIS__CLUSTER_URLS=$(scripts/redis-cluster.sh)
#   ./target/release/mailbox serve &  ./target/release/mailbox bench send-rest ...
set -euo pipefail
STATE="${TMPDIR:-/tmp}/mailbox-redis-cluster.dir"

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

if [ "${1:-start}" = stop ]; then
  [ -f "$STATE" ] || { echo "no cluster started by this script" >&2; exit 1; }
  dir=$(cat "$STATE")
  for pid in "$dir"/*/redis.pid; do
    [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
  done
  rm -rf "$dir" "$STATE"
  echo "stopped" >&2
  exit 0
fi

command -v redis-server >/dev/null && command -v redis-cli >/dev/null || {
  echo "redis-server and redis-cli are required (apt-get install redis-server redis-tools)" >&2; exit 1; }
[ -f "$STATE" ] && { echo "a cluster is already running ($(cat "$STATE")); run: $0 stop" >&2; exit 1; }

dir=$(mktemp -d "${TMPDIR:-/tmp}/mailbox-redis-cluster.XXXXXX")
echo "$dir" > "$STATE"
ports=()
for _ in 1 2 3; do
  port=$(free_port); bus=$(free_port)
  mkdir -p "$dir/$port"
  redis-server --port "$port" --bind 127.0.0.1 --cluster-enabled yes --cluster-port "$bus" \
    --cluster-config-file nodes.conf --cluster-node-timeout 3000 --save "" --appendonly yes \
    --dir "$dir/$port" --daemonize yes --pidfile "$dir/$port/redis.pid" --logfile "$dir/$port/redis.log"
  ports+=("$port")
done
for p in "${ports[@]}"; do
  for _ in $(seq 100); do redis-cli -p "$p" ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done
done
nodes=(); for p in "${ports[@]}"; do nodes+=("127.0.0.1:$p"); done
redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
for p in "${ports[@]}"; do
  for _ in $(seq 200); do redis-cli -p "$p" cluster info | grep -q 'cluster_state:ok' && break; sleep 0.1; done
done
urls=(); for p in "${ports[@]}"; do urls+=("redis://127.0.0.1:$p"); done
(IFS=,; echo "${urls[*]}")
