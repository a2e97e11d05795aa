# Inter-LLM Mailbox. The two commands: `make run` (a running broker) and `make test` (every test).
SHELL := /bin/bash
REDIS_PORT ?= 6379
DATA ?= .data
CARGO ?= cargo

.PHONY: run test lint fmt build release bench redis-up redis-down cluster-up cluster-down ensure-redis-server ensure-python ensure-node ensure-chromium

## run: install and start a local Redis if none answers, build, print an admin token, serve.
run: redis-up release
	@echo "== admin token (valid 24 h):"
	@./target/release/mailbox token --agent admin --roles admin
	@echo "== broker on http://127.0.0.1:7700 (Ctrl-C to stop)"
	MAILBOX__REDIS__URL=redis://127.0.0.1:$(REDIS_PORT) \
	MAILBOX__PERMISSIONS__MODEL=config/casbin/model.conf \
	MAILBOX__PERMISSIONS__POLICY=config/casbin/policy.csv ./target/release/mailbox serve

## test: every test (unit, behaviour suite on both engines and on a Redis Cluster, Redis faults, CLI, MCP with the official
## Python and TypeScript SDKs, pycasbin parity of the policy, the dashboard in headless Chromium).
## Installs redis-server, python3-venv, npm and chromium if missing; the MCP
## tests install the SDKs themselves (pip, npm) into target/tmp once.
test: ensure-redis-server ensure-python ensure-node ensure-chromium
	$(CARGO) test --workspace --all-targets

## lint: formatting and clippy, warnings are errors.
lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

build:
	$(CARGO) build

release:
	$(CARGO) build --release

## cluster-up / cluster-down: a throwaway 3-master Redis Cluster (prints MAILBOX__REDIS__CLUSTER_URLS).
cluster-up: ensure-redis-server
	@scripts/redis-cluster.sh

cluster-down:
	@scripts/redis-cluster.sh stop

## bench: send-rest against a broker started by `make run`, beside raw Redis.
bench: release
	./target/release/mailbox bench send-rest --clients 64 --messages 100000 --size 256 --raw-redis redis://127.0.0.1:$(REDIS_PORT)

ensure-redis-server:
	@command -v redis-server >/dev/null || { \
	  echo "== installing redis-server"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-server >/dev/null; }
	@command -v redis-server >/dev/null || { echo "redis-server is required and could not be installed" >&2; exit 1; }
	@command -v redis-cli >/dev/null || { \
	  echo "== installing redis-tools (redis-cli builds the test Redis Clusters)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq redis-tools >/dev/null; }
	@command -v redis-cli >/dev/null || { echo "redis-cli is required and could not be installed" >&2; exit 1; }

ensure-python:
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { \
	  echo "== installing python3 and python3-venv (the MCP tests run the official Python SDK, the policy test pycasbin)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq python3 python3-venv >/dev/null; }
	@python3 -c 'import ensurepip, venv' 2>/dev/null || { echo "python3 with venv is required and could not be installed" >&2; exit 1; }

ensure-chromium:
	@command -v chromium >/dev/null || { \
	  echo "== installing chromium (the dashboard test drives it headless)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is required and could not be installed" >&2; exit 1; }

ensure-node:
	@command -v npm >/dev/null || { \
	  echo "== installing nodejs and npm (the MCP tests run the official TypeScript SDK)"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq nodejs npm >/dev/null; }
	@command -v npm >/dev/null || { echo "npm is required and could not be installed" >&2; exit 1; }

## redis-up: start a local Redis on 127.0.0.1:$(REDIS_PORT) with AOF in $(DATA)/redis, unless one answers.
redis-up: ensure-redis-server
	@if redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping 2>/dev/null | grep -q PONG; then \
	  echo "== Redis already answers on 127.0.0.1:$(REDIS_PORT)"; \
	else \
	  mkdir -p $(DATA)/redis; \
	  redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --dir $(abspath $(DATA))/redis --appendonly yes \
	    --daemonize yes --pidfile $(abspath $(DATA))/redis/redis.pid --logfile $(abspath $(DATA))/redis/redis.log; \
	  for i in $$(seq 50); do redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping 2>/dev/null | grep -q PONG && break; sleep 0.1; done; \
	  echo "== started Redis on 127.0.0.1:$(REDIS_PORT) (data in $(DATA)/redis)"; \
	fi

## redis-down: stop the Redis that redis-up started.
redis-down:
	@if [ -f $(DATA)/redis/redis.pid ]; then kill $$(cat $(DATA)/redis/redis.pid) && rm -f $(DATA)/redis/redis.pid; fi
