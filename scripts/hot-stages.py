#!/usr/bin/env python3
"""Where a cached Enrich call's time goes, stage by stage, beside the
floor's (the recorded echo of `enrichd-bench hot`).

    scripts/hot-stages.py [--seconds N] [--no-build]

Builds enrichd-bench with frame pointers into target/frame-pointers (a
separate release build: about seven minutes on two cores the first time),
runs `hot --only enrichd` and `hot --only floor` under `perf record -g`,
and prints each stage's CPU time per call: the share of the run's samples
whose stack holds the stage's frame, times the process's CPU time per call
(server and load generator, from the bench). Stages nest (the handler is
inside the layers, the pipeline inside the handler), so a column does not
add up. perf's own overhead makes every figure about a fifth longer than
in a run without it; compare the two columns of one run.
"""
import argparse
import collections
import json
import os
import re
import subprocess
import sys
import tempfile

TARGET = "target/frame-pointers"
STAGES = [
    ("layers: auth, admission, metering, routing and all inside",
     r"enrichd::auth::layer::AuthService<S> as tower_service::Service<.*>>::call::\{\{closure\}\}$"),
    ("generated service: the request's decoding and the handler",
     r"enrichment_server::EnrichmentServer<T> as tower_service::Service<.*>>::call::\{\{closure\}\}$"),
    ("handler", r"(EnrichmentService|echo::Echo) as enrichd::proto::v1::enrichment_server::Enrichment>::enrich::\{\{closure\}\}$"),
    ("  pipeline", r"enrichd::pipeline::Enricher::enrich::\{\{closure\}\}::\{\{closure\}\}$"),
    ("  conversion to proto", r"enrichd::api::response::enrichment_to_proto$"),
    ("answer's encoding", r"tonic::codec::encode::encode_item"),
    ("ledger writer (its own task)", r"enrichd_ledger::writer::Writer::start::\{\{closure\}\}$"),
    ("load generator (the bench's clients)", r"enrichd_bench::load::slice::\{\{closure\}\}"),
    ("kernel (system calls)", r"^(entry_SYSCALL_64_after_hwframe|do_syscall_64)$"),
]


def build():
    env = dict(os.environ, CARGO_TARGET_DIR=TARGET, RUSTFLAGS="-C force-frame-pointers=yes")
    subprocess.run(["cargo", "build", "--release", "--locked", "-p", "enrichd-bench"],
                   check=True, env=env)


def stacks(data):
    """The sampled stacks of a perf.data file, each a list of symbols."""
    out = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym"],
                         check=True, capture_output=True, text=True, errors="replace").stdout
    stack = []
    for line in out.splitlines():
        if not line.strip():
            if stack:
                yield stack
            stack = []
            continue
        parts = line.strip().split(None, 1)
        stack.append(parts[1] if len(parts) > 1 else "?")
    if stack:
        yield stack


def measure(side, seconds, scratch):
    data = os.path.join(scratch, f"{side}.data")
    results = os.path.join(scratch, f"{side}.json")
    subprocess.run(["perf", "record", "-q", "-g", "-F", "2999", "-o", data,
                    f"{TARGET}/release/enrichd-bench", "hot", "--only", side,
                    "--seconds", str(seconds), "--json", results],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(results) as f:
        run = json.load(f)["results"][0]
    counts, total = collections.Counter(), 0
    patterns = [(label, re.compile(p)) for label, p in STAGES]
    for stack in stacks(data):
        total += 1
        for label, pattern in patterns:
            if any(pattern.search(frame) for frame in stack):
                counts[label] += 1
    return run["cpu_us"], {label: run["cpu_us"] * counts[label] / max(total, 1)
                           for label, _ in STAGES}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--no-build", action="store_true",
                        help=f"use the bench already built in {TARGET}")
    args = parser.parse_args()
    if not args.no_build:
        build()
    with tempfile.TemporaryDirectory() as scratch:
        floor_cpu, floor = measure("floor", args.seconds, scratch)
        own_cpu, own = measure("enrichd", args.seconds, scratch)
    print(f"{'µs of CPU per call (under perf)':58}{'floor':>10}{'enrichd':>10}{'more':>10}")
    print(f"{'the whole process':58}{floor_cpu:10.1f}{own_cpu:10.1f}{own_cpu - floor_cpu:10.1f}")
    for label, _ in STAGES:
        print(f"{label:58}{floor[label]:10.1f}{own[label]:10.1f}{own[label] - floor[label]:10.1f}")
    print(f"ratio of CPU per call, floor to enrichd: {floor_cpu / own_cpu:.3f}")


if __name__ == "__main__":
    sys.exit(main())
