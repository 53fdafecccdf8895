#!/bin/sh
# Runs cmocka test binaries and prints a total. Every binary runs even if one fails.
#   run-tests.sh "<runner prefix>" <build dir> "<tests>" "<cpu-dependent tests>"
# With a runner (qemu-aarch64), every test runs under QEMU_CPU=cortex-a72 (Pi 4: NEON, no
# dotprod) and the CPU-dependent ones again under cortex-a76 (Pi 5: dotprod) and max (every
# feature qemu has, as issue 4 asks; catches a kernel that assumes a feature set).
set -u
runner=$1 dir=$2 tests=$3 cputests=$4
pass=0 fail=0 bins_failed=""
export OPENBLAS_NUM_THREADS=${OPENBLAS_NUM_THREADS:-1}

run_one() { # $1 test path, $2 cpu model or ""
    t=$1 cpu=$2 out=$(mktemp)
    label=$t${cpu:+ [$cpu]}
    if [ -n "$runner" ]; then
        QEMU_CPU=$cpu $runner "$dir/$t" >"$out" 2>&1; rc=$?
    else
        "$dir/$t" >"$out" 2>&1; rc=$?
    fi
    cat "$out"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test(s)\./\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test(s), listed below:/\1/p' "$out" | awk '{s+=$1} END {print s+0}')
    pass=$((pass + p)); fail=$((fail + f))
    if [ $rc -ne 0 ]; then
        [ "$f" -eq 0 ] && fail=$((fail + 1))   # crashed before cmocka could count
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
echo "==== $(basename "$dir"): test binaries that failed:${bins_failed:- none}"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ -z "$bins_failed" ]
