#!/usr/bin/env bash
# Runs the tests that need AWS APIs other than the embedded DynamoDB — Secrets
# Manager, S3, and a second DynamoDB implementation (one without PartiQL
# inserts) — against moto's server on loopback; moto is installed once into the
# project-local venv .venv-ci.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=.venv-ci
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
[ -x "$venv/bin/moto_server" ] || "$venv/bin/pip" install -q 'moto[server]'

mkdir -p target
port=${MOTO_PORT:-5999}
"$venv/bin/moto_server" -H 127.0.0.1 -p "$port" > target/moto.log 2>&1 &
moto_pid=$!
trap 'kill "$moto_pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do (echo > "/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done

MOTO_ENDPOINT="http://127.0.0.1:$port" cargo test --test it -- --ignored --test-threads=1 secrets_manager:: s3_archive:: other_stores::
