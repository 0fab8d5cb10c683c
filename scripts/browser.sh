#!/usr/bin/env bash
# The web console in a real browser: Debian's chromium (apt) driven by
# playwright-core (npm), against a sandbox server that requires keys. The
# tests take the screenshots in docs/console/ (SCREENSHOTS=dir to put them
# elsewhere).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  apt-get install -y --no-install-recommends chromium > /dev/null \
    || { apt-get update > /dev/null && apt-get install -y --no-install-recommends chromium > /dev/null; } \
    || { echo "browser.sh: chromium cannot be installed (apt-get install chromium)" >&2; exit 1; }
fi
( cd tests/browser && npm ci --no-audit --no-fund --silent )

# A key with every scope, in the server's own data directory.
export ENRICHD__AUTH__REQUIRED=true
# Metrics on: the sources page shows the server's counters.
export ENRICHD__SERVER__METRICS_LISTEN=127.0.0.1:0
keydir=$(mktemp -d)
cargo build --locked --bin enrichd
key=$(target/debug/enrichd keys create --data-dir "$keydir" --name console-test \
  --scopes enrich,stream,sources,access,erase,feedback 2>/dev/null | tail -1)
ENRICHD_DATA_DIR="$keydir" . scripts/lib/sandbox-server.sh
trap 'kill $server 2>/dev/null || true; rm -rf "$data" "$keydir"' EXIT
cd tests/browser
ENRICHD_URL="http://127.0.0.1:$port" ENRICHD_KEY="$key" node --test --test-reporter=spec console.test.mjs
