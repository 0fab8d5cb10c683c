#!/usr/bin/env bash
# A client generated from the served OpenAPI document calls the sandbox:
# openapi-python-client (PyPI) names each function after its operationId,
# so a document without them, or one whose schemas do not match the
# answers, fails here. (The batch upload takes CSV or NDJSON bodies, which
# the generator leaves out; tests/it/batches.rs covers it.)
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/client-venv
if [ ! -x "$venv/bin/openapi-python-client" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet 'openapi-python-client==0.29.1'
fi
. scripts/lib/sandbox-server.sh
out=target/generated-client
rm -rf "$out"
curl -sf "http://127.0.0.1:$port/openapi.json" > "$data/openapi.json"
"$venv/bin/openapi-python-client" generate --path "$data/openapi.json" --meta none \
  --output-path "$out/enrichd_client" > "$data/generate.log" 2>&1 \
  || { cat "$data/generate.log"; exit 1; }
PYTHONPATH="$out" "$venv/bin/python" - "http://127.0.0.1:$port" <<'PY'
import sys
from enrichd_client import Client
from enrichd_client.api.default import access, enrich, erase, list_sources, readyz
from enrichd_client.models import AccessRequest, EnrichRequest, EraseRequest

client = Client(base_url=sys.argv[1], raise_on_unexpected_status=True)
assert readyz.sync_detailed(client=client).status_code == 200
sources = list_sources.sync(client=client).to_dict()
assert sources["sources"], sources
claim = {
    "purpose": "fraud_prevention",
    "lawfulBasis": "LAWFUL_BASIS_LEGITIMATE_INTERESTS",
    "evidence": {"legitimateInterestAssessmentRef": "LIA-1"},
}
answer = enrich.sync(client=client, body=EnrichRequest.from_dict({"email": "jane@gmial.com", **claim})).to_dict()
summary = answer["summary"]
assert summary["didYouMean"] == "gmail.com", summary
assert summary["verdict"] == "VERDICT_DECLINE", summary
erased = erase.sync(client=client, body=EraseRequest.from_dict({"email": "jane@gmial.com", "reference": "DSR-1"})).to_dict()
assert erased["suppressed"], erased
held = access.sync(client=client, body=AccessRequest.from_dict({"email": "jane@gmial.com", "reference": "DSR-2"})).to_dict()
assert held["suppressed"], held
again = enrich.sync(client=client, body=EnrichRequest.from_dict({"email": "jane@gmial.com", **claim})).to_dict()
assert again["summary"]["status"] == "STATUS_SUPPRESSED", again["summary"]
print("generated client: readyz, listSources, enrich, erase, access, enrich again: ok")
PY
