#!/bin/sh
# Runs every benchmark of a group: binaries $O/tools/bench/bench_<group>* and scripts
# tools/bench/bench_<group>*.sh, in name order. Figures from one run are comparable; runs
# on a shared machine are not, so each benchmark prints its own baseline beside it.
set -eu
o=$1 group=$2
found=0
for b in $(ls "$o/tools/bench/" 2>/dev/null | grep "^bench_${group}" | grep -v '\.' | sort); do
    echo "==== $b"; "$o/tools/bench/$b"; found=1
done
for s in $(ls tools/bench/ | grep "^bench_${group}.*\.sh$" | sort); do
    echo "==== $s"; sh "tools/bench/$s" "$o"; found=1
done
[ $found -eq 1 ] || { echo "no benchmarks for group '$group'" >&2; exit 1; }
