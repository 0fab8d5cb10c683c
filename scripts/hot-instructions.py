#!/usr/bin/env python3
"""Instructions a cached Enrich call costs in enrichd's own code, counted
under valgrind's callgrind: the same count run after run, where the hot
path's timings on a shared machine move by several percent (more than
most single changes to it).

    scripts/hot-instructions.py [BENCH ...]

Runs `BENCH hot --seconds 2` under callgrind for each bench binary given
(default: target/release/enrichd-bench) and prints, per Enrich call, the
instructions of the metering layer with the handler inside it, of the
handler, of the pipeline, of the conversion to proto and of admission. Each is a
function's inclusive count divided by the number of Enrich calls (the
handler futures dropped); the answer's encoding and HTTP/2 are not in them.
Give the binaries of two commits to compare them in one run.
"""
import collections
import re
import subprocess
import sys
import tempfile

HANDLER = ("<enrichd::api::grpc::EnrichmentService as "
           "enrichd::proto::v1::enrichment_server::Enrichment>::enrich::{{closure}}")
ROWS = [
    ("metering and handler", "<enrichd::server::metered::Metered<S> as tower_service::Service<"
     "http::request::Request<B>>>::call::{{closure}}"),
    ("handler", HANDLER),
    ("pipeline", "enrichd::pipeline::Enricher::enrich::{{closure}}::{{closure}}"),
    ("conversion to proto", "enrichd::api::response::enrichment_to_proto"),
    ("admission", "enrichd::server::admission::AdmissionLayer::admit"),
]


def measure(bench):
    with tempfile.NamedTemporaryFile(suffix=".callgrind") as out:
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out.name}",
             bench, "hot", "--seconds", "2"],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        names, calls, callee = {}, collections.Counter(), None
        with open(out.name, errors="replace") as f:
            for line in f:
                m = re.match(r"(c?fn)=\((\d+)\)(?: (.*))?", line)
                if m:
                    if m.group(3):
                        names[m.group(2)] = m.group(3).strip()
                    if m.group(1) == "cfn":
                        callee = names.get(m.group(2))
                    continue
                m = re.match(r"calls=(\d+)", line)
                if m and callee:
                    calls[callee] += int(m.group(1))
        annotated = subprocess.run(
            ["callgrind_annotate", "--inclusive=yes", "--threshold=100", out.name],
            check=True, capture_output=True, text=True).stdout
    inclusive = {}
    for line in annotated.splitlines():
        m = re.match(r"\s*([\d,]+) \([^)]*\)\s+\S*?:(.*?) \[", line)
        if m:
            inclusive[m.group(2)] = int(m.group(1).replace(",", ""))
    enriched = calls[f"core::ptr::drop_in_place<{HANDLER}>"]
    if not enriched:
        sys.exit(f"{bench}: no Enrich call was counted")
    return enriched, {label: inclusive.get(name, 0) / enriched for label, name in ROWS}


def main():
    benches = sys.argv[1:] or ["target/release/enrichd-bench"]
    results = [measure(b) for b in benches]
    print("instructions per Enrich call".ljust(24) + "".join(b[-24:].rjust(26) for b in benches))
    print("calls counted".ljust(24) + "".join(f"{n:26,}" for n, _ in results))
    for label, _ in ROWS:
        print(label.ljust(24) + "".join(f"{r[label]:26,.0f}" for _, r in results))


if __name__ == "__main__":
    main()
