#!/usr/bin/env bash
# Regenerates the `whatsmyname` source pack (config/packs/whatsmyname.toml)
# from WhatsMyName's wmn-data.json with `enrichd sources import`: its check
# rules become detect rules, its categories interest tags; sites whose
# category reveals GDPR Art. 9 data (political, health, dating, adult) get
# `special_category` (never asked); sites behind Cloudflare, a captcha or
# another shield are disabled with the reason; its known accounts become
# `known_present`. The data is CC BY-SA 4.0: the pack carries the
# attribution and the same licence.
#
#   scripts/whatsmyname-pack.sh [path/to/wmn-data.json]
set -euo pipefail
cd "$(dirname "$0")/.."
src=${1:-data/whatsmyname/wmn-data.json}
cargo build --quiet --bin enrichd
out=config/packs/whatsmyname.toml
{
  echo "# The WhatsMyName pack: username checks of the WhatsMyName project"
  echo "# (https://github.com/WebBreacher/WhatsMyName), converted by"
  echo "# scripts/whatsmyname-pack.sh. Turned on with sources.packs = [\"whatsmyname\"]."
  echo "#"
  echo "# Data: Copyright (C) 2015-2026 Micah Hoffman and the WhatsMyName"
  echo "# contributors, licensed under the Creative Commons Attribution-ShareAlike"
  echo "# 4.0 International License (http://creativecommons.org/licenses/by-sa/4.0/);"
  echo "# this adaptation is under the same licence (config/packs/LICENSE-whatsmyname.md)."
  echo
  target/debug/enrichd sources import --format whatsmyname \
    --purposes marketing,crm_enrichment,fraud_prevention "$src" 2>"$out.skipped" \
    | grep -v '^# Imported from\|^# [0-9]* sources; review'
  # Every entry of the list is accounted for: those that could not become a
  # source are named here with the reason.
  echo
  echo "# Not imported: $(grep -c '^  skipped ' "$out.skipped") entries of the list, each with the reason."
  sed -n 's/^  skipped /#   /p' "$out.skipped"
} > "$out.tmp"
rm -f "$out.skipped"
mv "$out.tmp" "$out"
echo "wrote $out ($(grep -c '^\[\[source\]\]' "$out") sources)"
