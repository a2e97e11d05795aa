#!/usr/bin/env bash
# Starts a throwaway TLS-only Redis for benchmarks and manual tries of `rediss://`:
# a private CA and a server certificate for 127.0.0.1/localhost (openssl), the README's ACL
# user `mailbox` with a random password written to a file, and redis-server on --tls-port.
#
#   scripts/tls-redis.sh [PORT] [DIR]        # default 6390, .data/tls-redis
#   scripts/tls-redis.sh stop [DIR]
#
# It prints the MAILBOX__REDIS__* variables that point a broker at it.
set -euo pipefail
if [[ "${1:-}" == "stop" ]]; then
  dir="${2:-.data/tls-redis}"
  [[ -f "$dir/redis.pid" ]] && kill "$(cat "$dir/redis.pid")" && rm -f "$dir/redis.pid"
  exit 0
fi
port="${1:-6390}"
dir="${2:-.data/tls-redis}"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
cd "$dir"
if [[ ! -f ca.pem ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
    -subj "/CN=mailbox bench CA" -keyout ca.key -out ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -subj "/CN=localhost" -keyout redis.key -out redis.csr 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > san.ext
  openssl x509 -req -in redis.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile san.ext -out redis.pem 2>/dev/null
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > password
  head -c 24 /dev/urandom | base64 | tr -d '/+=' > admin-password
fi
acl="$(grep -m1 '^ACL SETUSER mailbox ' "$OLDPWD/README.md" 2>/dev/null || true)"
[[ -n "$acl" ]] || { echo "run from the repository root (the ACL line comes from README.md)" >&2; exit 1; }
rules="${acl#ACL SETUSER mailbox }"
rules="${rules/>CHANGE-ME/>$(cat password)}"
cat > redis.conf <<CONF
port 0
tls-port $port
bind 127.0.0.1
tls-cert-file $dir/redis.pem
tls-key-file $dir/redis.key
tls-ca-cert-file $dir/ca.pem
tls-auth-clients no
dir $dir
appendonly yes
save ""
daemonize yes
pidfile $dir/redis.pid
logfile $dir/redis.log
user default on >$(cat admin-password) ~* &* +@all
user mailbox $rules
CONF
redis-server redis.conf
cat <<OUT
TLS Redis on 127.0.0.1:$port (stop: scripts/tls-redis.sh stop $dir)
export MAILBOX__REDIS__URL=rediss://mailbox@127.0.0.1:$port
export MAILBOX__REDIS__PASSWORD_FILE=$dir/password
export MAILBOX__REDIS__TLS_CA_FILE=$dir/ca.pem
admin: redis-cli --tls --cacert $dir/ca.pem -p $port --user default --pass \$(cat $dir/admin-password)
OUT
