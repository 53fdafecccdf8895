#!/bin/sh
# Runs cmocka test binaries and prints per-run and total counts of passed, failed and skipped
# tests. Every binary runs even if one fails; the exit status is non-zero if any test failed
# or any binary exited non-zero.
#   run-tests.sh "<runner prefix>" <build dir> "<tests>" "<cpu-dependent tests>"
# With a runner (qemu-aarch64), every test runs under QEMU_CPU=cortex-a72 (Pi 4: NEON, no
# dotprod) and the CPU-dependent ones again under cortex-a76 (Pi 5: dotprod) and max (every
# feature qemu has; catches a kernel that assumes a feature set). Each output line of a run
# under qemu starts with its CPU model, so three runs of one binary can be told apart.
set -eu
runner=$1 dir=$2 tests=$3 cputests=$4
pass=0 fail=0 skip=0 runs=0 bins_failed="" skipped_list=""
export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-1}"

# count <pattern> <file>: sum of the first number on the lines of <file> matching <pattern>
# (a binary may run several cmocka groups, each with its own summary).
count() {
    sed -n "s/$1/\\1/p" "$2" | awk '{ s += $1 } END { print s + 0 }'
}

run_one() { # $1 test path, $2 cpu model or ""
    t=$1 cpu=$2 out=$(mktemp)
    label=$t${cpu:+ [QEMU_CPU=$cpu]}
    rc=0
    if [ -n "$runner" ]; then
        QEMU_CPU=$cpu $runner "$dir/$t" >"$out" 2>&1 || rc=$?
    else
        "$dir/$t" >"$out" 2>&1 || rc=$?
    fi
    if [ -n "$cpu" ]; then sed "s/^/[$cpu] /" "$out"; else cat "$out"; fi
    # cmocka 1.1: "[==========] N test(s) run." counts passed, failed, errored (a failing
    # setup or teardown, which its "listed below" line leaves out) and skipped tests.
    r=$(count '^\[==========\] \([0-9]*\) test(s) run\.$' "$out")
    p=$(count '^\[  PASSED  \] \([0-9]*\) test(s)\.$' "$out")
    s=$(count '^\[  SKIPPED \] \([0-9]*\) test(s), listed below:$' "$out")
    f=$((r - p - s))
    if [ $rc -ne 0 ] && [ $f -le 0 ]; then
        f=1   # crashed or exited before cmocka could count
    fi
    if [ "$s" -gt 0 ]; then
        names=$(sed -n 's/^\[  SKIPPED \] \([A-Za-z0-9_]*\)$/\1/p' "$out" | sort -u | tr '\n' ' ')
        skipped_list="$skipped_list
  $label: ${names% }"
    fi
    pass=$((pass + p)); fail=$((fail + f)); skip=$((skip + s)); runs=$((runs + 1))
    ex=""; [ $rc -eq 0 ] || ex=" (exit $rc)"
    echo "---- $label: $p passed, $f failed, $s skipped$ex"
    if [ $rc -ne 0 ] || [ $f -gt 0 ]; then
        bins_failed="$bins_failed
  $label (exit $rc)"
    fi
    rm -f "$out"
}

for t in $tests; do
    if [ -n "$runner" ]; then
        run_one "$t" cortex-a72
        case " $cputests " in *" $t "*) run_one "$t" cortex-a76; run_one "$t" max ;; esac
    else
        run_one "$t" ""
    fi
done
echo
echo "==== $(basename "$dir"): $runs binary runs; skipped tests:${skipped_list:- none}"
echo "==== $(basename "$dir"): binary runs that failed:${bins_failed:- none}"
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ] && [ -z "$bins_failed" ]
