#!/usr/bin/env bash
# `mailbox bench send-rest` on the same machine, one run each, against:
#   single     one Redis (AOF everysec)
#   encrypted  the same with encryption at rest (storage.encryption_key_file)
#   tls        a TLS-only Redis as the README's ACL user (scripts/tls-redis.sh)
#   cluster    a three-master Redis Cluster (scripts/redis-cluster.sh)
# and raw XADD on the single Redis for the ratio. Appends JSON lines (with a "variant" field) to
# target/bench/variants.jsonl. N=messages (default 60000).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
BIN=$PWD/target/release/mailbox
OUT=target/bench; mkdir -p "$OUT"
N=${N:-60000}
DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
export MAILBOX__AUTH__JWT_SECRET=bench-secret-0123456789
BPID=; RPID=
cleanup() {
  [ -n "$BPID" ] && kill "$BPID" 2>/dev/null || true
  [ -n "$RPID" ] && kill "$RPID" 2>/dev/null || true
  scripts/tls-redis.sh stop "$DIR/tls" 2>/dev/null || true
  scripts/redis-cluster.sh stop 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --dir "$DIR" --appendonly yes --appendfsync everysec \
  --save '' >"$DIR/redis.log" 2>&1 &
RPID=$!
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
RAW=redis://127.0.0.1:$RP

# run VARIANT [VAR=VALUE ...]: a broker with those settings, send-rest against it, broker stopped.
run() {
  local variant=$1; shift
  local bp; bp=$(free_port)
  env "$@" MAILBOX__SERVER__BIND=127.0.0.1:$bp MAILBOX__SPOOL__DIR="$DIR/spool-$variant" \
    MAILBOX__LOG__LEVEL=warn MAILBOX__PERMISSIONS__MODEL=config/casbin/model.conf \
    MAILBOX__PERMISSIONS__POLICY=config/casbin/policy.csv "$BIN" serve >"$DIR/broker-$variant.log" 2>&1 &
  BPID=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$bp/health/ready" >/dev/null && break; sleep 0.1; done
  echo "== $variant" >&2
  "$BIN" bench send-rest --clients 64 --messages "$N" --size 256 --raw-redis "$RAW" --json \
    --url "http://127.0.0.1:$bp" | tee /dev/stderr | tail -1 \
    | python3 -c "import json,sys; v=json.load(sys.stdin); v['variant']='$variant'; print(json.dumps(v))" \
    >>"$OUT/variants.jsonl"
  kill "$BPID"; wait "$BPID" 2>/dev/null || true; BPID=
}

run single MAILBOX__REDIS__URL="$RAW"
head -c 32 /dev/urandom | base64 > "$DIR/key"
run encrypted MAILBOX__REDIS__URL="$RAW" MAILBOX__STORAGE__ENCRYPTION_KEY_FILE="$DIR/key"
TP=$(free_port)
TLS_ENV=$(scripts/tls-redis.sh "$TP" "$DIR/tls" | sed -n 's/^export //p')
# shellcheck disable=SC2086
run tls $TLS_ENV
CLUSTER=$(scripts/redis-cluster.sh)
run cluster MAILBOX__REDIS__CLUSTER_URLS="$CLUSTER"
echo "== appended to $OUT/variants.jsonl" >&2
