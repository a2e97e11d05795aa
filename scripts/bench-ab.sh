#!/usr/bin/env bash
# A/B of two broker builds on this machine:
#   scripts/bench-ab.sh OLD_BIN NEW_BIN ROUNDS SCENARIO [bench args...]
# e.g. scripts/bench-ab.sh /tmp/mailbox.old target/release/mailbox 3 ack --consumers 32 --messages 60000
#
# Runs `mailbox bench SCENARIO ARGS --json` against a fresh OLD broker, then a fresh NEW one,
# ROUNDS times in turn, both on one private Redis (AOF everysec, as in production), so the two
# builds see the same machine and the same Redis. Runs on a 2-core box vary by ±20 % from one to
# the next, which is why changes here are judged by alternating runs rather than one run each.
# `RAW` in the args stands for that Redis's URL (`--raw-redis RAW`). The bench client is NEW's.
# Prints one JSON line per run, then the median of each figure per build.
set -euo pipefail
[ $# -ge 4 ] || { sed -n '2,3p' "$0" >&2; exit 2; }
OLD=$(realpath "$1"); NEW=$(realpath "$2"); ROUNDS=$3; shift 3
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "redis-server is required (make test installs it)" >&2; exit 1; }
DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --dir "$DIR" --appendonly yes --appendfsync everysec \
  --save '' >"$DIR/redis.log" 2>&1 &
RPID=$!
BPID=
cleanup() { kill $BPID "$RPID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS=redis://127.0.0.1:$RP
export MAILBOX__AUTH__JWT_SECRET=${MAILBOX__AUTH__JWT_SECRET:-bench-secret-0123456789}
ulimit -n 65536 2>/dev/null || true
ARGS=("${@//RAW/$REDIS}")
for _ in $(seq "$ROUNDS"); do
  for v in old new; do
    BIN=$OLD; [ "$v" = new ] && BIN=$NEW
    BP=$(free_port)
    MAILBOX__REDIS__URL=$REDIS MAILBOX__SERVER__BIND=127.0.0.1:$BP MAILBOX__SPOOL__DIR=$DIR/spool-$v \
      MAILBOX__LOG__LEVEL=warn \
      MAILBOX__PERMISSIONS__MODEL=config/casbin/model.conf MAILBOX__PERMISSIONS__POLICY=config/casbin/policy.csv \
      "$BIN" serve >"$DIR/broker-$v.log" 2>&1 &
    BPID=$!
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BP/health/ready" >/dev/null && break; sleep 0.1; done
    line=$("$NEW" bench "${ARGS[@]}" --json --url "http://127.0.0.1:$BP" --redis "$REDIS" 2>/dev/null | tail -1)
    echo "$v $line" | tee -a "$DIR/runs.txt"
    kill "$BPID"; wait "$BPID" 2>/dev/null || true; BPID=
  done
done
python3 - "$DIR/runs.txt" <<'PY'
import json, statistics, sys
runs = {}
for line in open(sys.argv[1]):
    v, _, j = line.partition(" ")
    try:
        runs.setdefault(v, []).append(json.loads(j))
    except ValueError:
        print(f"{v}: no result ({j.strip()[:120]})")
keys = ["rate", "p50_ms", "p99_ms", "broker_cpu_us_per_op", "redis_cpu_us_per_op", "kib_per_session", "seconds"]
print("median of", {v: len(r) for v, r in runs.items()}, "runs")
for v, rs in runs.items():
    med = {k: round(statistics.median(r[k] for r in rs), 3) for k in keys if all(r.get(k) is not None for r in rs)}
    print(v, json.dumps(med))
PY
