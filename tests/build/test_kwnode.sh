#!/bin/sh
# Daemon smoke test on the host: CLI contract, config errors, clean SIGTERM shutdown.
set -u
K=$1
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

$K --version | grep -q '^kwnode [0-9]' && ok "--version" || ko "--version"
$K --help | grep -q 'run' && ok "--help lists commands" || ko "--help lists commands"
for c in $($K --help | awk '/^commands:/{f=1;next} f&&!NF{exit} f{print $1}'); do
    $K $c --help >/dev/null 2>&1 && ok "$c --help exits 0" || ko "$c --help exits 0"
done
$K frobnicate >/dev/null 2>&1; [ $? -eq 2 ] && ok "unknown command exits 2" || ko "unknown command exits 2"
printf 'log_level = 3\nbogus = 1\n' > $tmp/bad.conf
out=$($K run -c $tmp/bad.conf -d $tmp/d 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "line 2: unknown key 'bogus'" && ok "bad config names the line, exits 1" || ko "bad config: rc=$rc out=$out"
printf 'log_level = 3\nshutdown_drain_ms = 500\n' > $tmp/good.conf
$K run -c $tmp/good.conf -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out 2> $tmp/err &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err; do sleep 0.1; i=$((i + 1)); done
grep -q ready $tmp/err && ok "node reports ready" || ko "node reports ready"
[ "$(stat -c %a $tmp/data)" = 700 ] && ok "data dir created with mode 0700" || ko "data dir mode"
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] && ok "SIGTERM: exit 0" || ko "SIGTERM: exit $rc"
grep -q 'stopped' $tmp/err && ok "shutdown logged" || { ko "shutdown logged"; cat $tmp/err; }
# A library that starts threads before main() (OpenBLAS does, from its constructor) must not
# turn SIGTERM into a kill: the signal has to reach the drain path whichever thread gets it.
blas=$(ldconfig -p 2>/dev/null | awk '/libopenblas\.so\.0 .*x86-64|libopenblas\.so\.0 .*AArch64/ {print $NF; exit}')
# (An ASan build links OpenBLAS already and refuses a preload ahead of its runtime.)
ldd $K 2>/dev/null | grep -q libopenblas && blas=linked
if [ -n "$blas" ]; then
    pre=; [ "$blas" = linked ] || pre=LD_PRELOAD=$blas
    env $pre OPENBLAS_NUM_THREADS=2 $K run -c $tmp/good.conf -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out2 2> $tmp/err2 &
    pid=$!
    i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err2; do sleep 0.1; i=$((i + 1)); done
    n=$(ls /proc/$pid/task 2>/dev/null | wc -l)
    kill -TERM $pid; wait $pid; rc=$?
    [ $rc -eq 0 ] && grep -q stopped $tmp/err2 && ok "SIGTERM with $n threads (OpenBLAS preloaded): drained, exit 0" || { ko "SIGTERM with $n threads (OpenBLAS preloaded): exit $rc"; cat $tmp/err2; }
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
