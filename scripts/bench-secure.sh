#!/usr/bin/env bash
# `mailbox bench send-rest` in one run against three brokers (release build), same load each:
#   plain      — Redis on loopback, no encryption at rest (the baseline)
#   encrypted  — the same, with storage.encryption_key_file (AES-256-GCM per record)
#   tls-redis  — rediss:// to a TLS-only Redis as the README's ACL user (scripts/tls-redis.sh)
# and prints each run's JSON line and the rates relative to `plain`. N=… sets the message count;
# BIN=… runs another build (e.g. BIN=target/debug/mailbox N=500 to try the script itself).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "redis-server is required (make test installs it)" >&2; exit 1; }
if [ -z "${BIN:-}" ]; then cargo build --release --quiet; BIN=target/release/mailbox; fi
N=${N:-60000}
DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); TP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --dir "$DIR" --appendonly yes --appendfsync everysec \
  --save '' --daemonize no >"$DIR/redis.log" 2>&1 &
RPID=$!
scripts/tls-redis.sh "$TP" "$DIR/tls" >"$DIR/tls.env"
BPID=
cleanup() {
  [ -n "$BPID" ] && kill "$BPID" 2>/dev/null || true
  kill "$RPID" 2>/dev/null || true
  scripts/tls-redis.sh stop "$DIR/tls" || true
  wait 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
openssl rand -base64 32 >"$DIR/at-rest.key"
export MAILBOX__AUTH__JWT_SECRET=${MAILBOX__AUTH__JWT_SECRET:-bench-secret-0123456789}
export MAILBOX__LOG__LEVEL=warn
export MAILBOX__PERMISSIONS__MODEL=config/casbin/model.conf MAILBOX__PERMISSIONS__POLICY=config/casbin/policy.csv
bench() { # name, then env assignments for the broker
  local name=$1; shift
  local bp; bp=$(free_port)
  env "$@" MAILBOX__SERVER__BIND=127.0.0.1:$bp MAILBOX__SPOOL__DIR="$DIR/spool-$name" \
    "$BIN" serve >"$DIR/broker-$name.log" 2>&1 &
  BPID=$!
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$bp/health/ready" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$bp/health/ready" >/dev/null || { cat "$DIR/broker-$name.log" >&2; exit 1; }
  echo "== $name: mailbox bench send-rest --clients 64 --messages $N --size 256" >&2
  "$BIN" bench send-rest --clients 64 --messages "$N" --size 256 --json --url "http://127.0.0.1:$bp" \
    | tail -1 | sed "s/^/$name /" | tee -a "$DIR/results"
  kill "$BPID"; wait "$BPID" 2>/dev/null || true; BPID=
}
bench plain MAILBOX__REDIS__URL="redis://127.0.0.1:$RP"
redis-cli -p "$RP" flushall >/dev/null
bench encrypted MAILBOX__REDIS__URL="redis://127.0.0.1:$RP" MAILBOX__STORAGE__ENCRYPTION_KEY_FILE="$DIR/at-rest.key"
# shellcheck disable=SC2046
bench tls-redis $(grep '^export MAILBOX__' "$DIR/tls.env" | sed 's/^export //')
python3 - "$DIR/results" <<'PY'
import json, sys
rows = [l.split(" ", 1) for l in open(sys.argv[1]) if l.strip()]
rate = {name: json.loads(j)["rate"] for name, j in rows}
base = rate.get("plain")
for name, r in rate.items():
    print(f"{name:10s} {r:10.0f} msg/s  x{r / base:.3f} of plain" if base else f"{name} {r}")
PY
