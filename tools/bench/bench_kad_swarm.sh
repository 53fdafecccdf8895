#!/bin/sh
# bench_kad_swarm: Kademlia lookups (latency, requests) in a 100-node loopback swarm of C
# nodes next to a 100-node swarm of js-libp2p kad-dht nodes, and the memory of a C node next
# to a js node holding the same routing table (run by `make bench-kad`, argument: build dir).
# The driver is tests/interop/bench-kad.mjs (its header says what is measured and how);
# env BENCH_KAD_NODES, BENCH_KAD_LOOKUPS, BENCH_KAD_JS_PER_PROC, BENCH_KAD_RT.
set -eu
o=${1:-build/bench}
[ -x "$o/kwnode" ] && [ -x "$o/tools/interop/kw_kad_bench" ] || {
    echo "bench_kad_swarm: $o/kwnode or $o/tools/interop/kw_kad_bench missing (make all tools)" >&2; exit 1; }
[ -d tests/interop/node_modules ] || { echo "bench_kad_swarm: tests/interop/node_modules missing (make deps)" >&2; exit 1; }
exec node tests/interop/bench-kad.mjs "$o"
