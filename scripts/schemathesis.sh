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

. scripts/lib/sandbox-server.sh
"$venv/bin/schemathesis" run "http://127.0.0.1:$port/openapi.json" \
  --checks all --exclude-checks positive_data_acceptance \
  --max-examples 50 --seed 1
