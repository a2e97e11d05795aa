#!/usr/bin/env bash
# Every `mailbox bench` scenario against a release broker on a private Redis (AOF everysec, as in
# production), raw Redis figures from the same Redis in the same run. Appends one JSON line per
# scenario to target/bench/results.jsonl and prints them. QUICK=1 runs each scenario small.
# Extra broker settings can be passed as MAILBOX__… variables in the environment.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "redis-server is required (make test installs it)" >&2; exit 1; }
cargo build --release --quiet
BIN=target/release/mailbox
OUT=target/bench; mkdir -p "$OUT"
DIR=$(mktemp -d)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
RP=$(free_port); BP=$(free_port)
redis-server --port "$RP" --bind 127.0.0.1 --dir "$DIR" --appendonly yes --appendfsync everysec \
  --save '' --daemonize no >"$DIR/redis.log" 2>&1 &
RPID=$!
cleanup() { kill "$BPID" "$RPID" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$DIR"; }
trap cleanup EXIT
for _ in $(seq 100); do redis-cli -p "$RP" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS=redis://127.0.0.1:$RP
export MAILBOX__AUTH__JWT_SECRET=${MAILBOX__AUTH__JWT_SECRET:-bench-secret-0123456789}
MAILBOX__REDIS__URL=$REDIS MAILBOX__SERVER__BIND=127.0.0.1:$BP MAILBOX__SPOOL__DIR=$DIR/spool \
  MAILBOX__LOG__LEVEL=warn \
  MAILBOX__PERMISSIONS__MODEL=config/casbin/model.conf MAILBOX__PERMISSIONS__POLICY=config/casbin/policy.csv \
  "$BIN" serve >"$DIR/broker.log" 2>&1 &
BPID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$BP/health/ready" >/dev/null && break; sleep 0.1; done
ulimit -n 65536 2>/dev/null || true
if [ "${QUICK:-0}" = 1 ]; then N=2000; S=200; C=100; F=50; else N=60000; S=10000; C=100000; F=1000; fi
run() {
  echo "== mailbox bench $*" >&2
  "$BIN" bench "$@" --json --url "http://127.0.0.1:$BP" --redis "$REDIS" | tee /dev/stderr | tail -1 >>"$OUT/results.jsonl"
}
run send-rest --clients 64 --messages "$N" --size 256 --raw-redis "$REDIS"
run send-ws --clients 64 --window 16 --messages "$N" --size 256 --raw-redis "$REDIS"
run e2e --rate 2000 --messages "$((N / 3))" --size 256 --raw-redis "$REDIS"
run ack --consumers 32 --messages "$((N / 3))"
run catchup --messages "$C" --size 256 --raw-redis "$REDIS"
run fanout --subscribers "$F" --rate 100 --messages 300
run sessions --count "$S"
# Neutral load generators: wrk POSTing 256 B messages (64 agents, 64 mailboxes) beside
# redis-benchmark XADDs of 256 B, both with 64 connections.
if command -v wrk >/dev/null && command -v redis-benchmark >/dev/null; then
  TOKENS=$(for i in $(seq 0 63); do "$BIN" token --agent "wrk-$i" --ttl 1h; done | paste -sd,)
  D=$([ "${QUICK:-0}" = 1 ] && echo 3s || echo 20s)
  echo "== wrk -t2 -c64 -d$D -s scripts/wrk-send.lua" >&2
  WRK=$(TOKENS=$TOKENS wrk -t2 -c64 -d"$D" --latency -s scripts/wrk-send.lua "http://127.0.0.1:$BP" | tee /dev/stderr)
  RB=$(redis-benchmark -p "$RP" -c 64 -n "$((N * 3))" -q XADD bench:rb '*' m "$(head -c 256 /dev/zero | tr '\0' x)" | tee /dev/stderr)
  redis-cli -p "$RP" del bench:rb >/dev/null
  python3 - "$WRK" "$RB" >>"$OUT/results.jsonl" <<'PY'
import json, re, sys
wrk, rb = sys.argv[1], sys.argv[2]
rate = float(re.search(r"Requests/sec:\s+([\d.]+)", wrk).group(1))
bad = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk)
raw = float(re.findall(r"([\d.]+) requests per second", rb)[-1])
def ms(p):
    m = re.search(r"^\s+%s%%\s+([\d.]+)(us|ms|s)" % p, wrk, re.M)
    if not m: return None
    return float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
print(json.dumps({"scenario": "wrk-send", "rate": rate, "errors": int(bad.group(1)) if bad else 0,
  "p50_ms": ms(50), "p99_ms": ms(99), "raw": {"scenario": "redis-benchmark XADD", "rate": raw},
  "ratio": round(rate / raw, 3)}))
PY
  tail -1 "$OUT/results.jsonl" >&2
fi
echo "== results appended to $OUT/results.jsonl" >&2
