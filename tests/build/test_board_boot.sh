#!/bin/sh
# Boots a board build of kwnode under qemu-aarch64 with that board's CPU model: the node must
# fit its pools in the board's arena, listen, report ready, and exit 0 on SIGTERM. Catches a
# defconfig whose pools outgrow its arena (init fails with ENOMEM) or whose -mcpu emits
# instructions the board's core lacks (SIGILL). qemu-user stands in for the hardware; the RSS
# it reports includes qemu itself, so it is not the board's figure.
#   test_board_boot.sh <build dir> <qemu cpu>
set -u
dir=$1 cpu=$2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# OpenBLAS (linked for the fp32 path) starts its thread pool from a library constructor, and
# under qemu-user those threads spin without ever starting: one thread, as tools/run-tests.sh
# runs every arm64 test binary. A board runs it natively.
OPENBLAS_NUM_THREADS=1 QEMU_LD_PREFIX=${QEMU_LD_PREFIX:-/usr/aarch64-linux-gnu} QEMU_CPU=$cpu \
    qemu-aarch64 "$dir/kwnode" run -d "$tmp/data" -l /ip4/127.0.0.1/tcp/0 >"$tmp/out" 2>"$tmp/err" &
pid=$!
i=0; while [ $i -lt 300 ] && ! grep -q 'ready' "$tmp/err" && kill -0 $pid 2>/dev/null; do sleep 0.1; i=$((i + 1)); done
if ! grep -q 'ready' "$tmp/err"; then
    echo "FAIL - $dir on $cpu: no ready line"; cat "$tmp/err"; kill -KILL $pid 2>/dev/null; exit 1
fi
grep -q '^listen /ip4/127.0.0.1/tcp/[1-9][0-9]*/p2p/' "$tmp/out" || { echo "FAIL - $dir: no listen line"; cat "$tmp/out"; kill -KILL $pid; exit 1; }
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] || { echo "FAIL - $dir on $cpu: SIGTERM exit $rc"; cat "$tmp/err"; exit 1; }
echo "ok   - $(basename "$dir") boots on qemu $cpu: $(sed -n 's/.*ready: \(arena [0-9/]* KiB used\).*/\1/p' "$tmp/err"), SIGTERM exit 0"
