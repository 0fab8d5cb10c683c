#!/usr/bin/env bash
# Property-based checks of the JSON API against its own OpenAPI document:
# schemathesis (PyPI) generates requests from /openapi.json and fails on
# any 5xx, any response that breaks the schema, an undocumented status or
# content type. Semantic validation (a declared purpose, a lawful basis...)
# refuses most generated bodies with a documented 400, so the "schema-valid
# data must be accepted" check is left out.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/schemathesis-venv
if [ ! -x "$venv/bin/schemathesis" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'schemathesis==4.32.5'
fi

cargo build --locked --bin enrichd
data=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
grpc=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
target/debug/enrichd serve --sandbox --data-dir "$data" --listen "127.0.0.1:$grpc" \
  --http-listen "127.0.0.1:$port" > "$data/serve.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 50 --seed 1
