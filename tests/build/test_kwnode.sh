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
# Wrong arguments: each names what is wrong, exits 2, and leaves nothing on disk.
out=$($K run -d $tmp/nokey -l /ip4/1.2.3/tcp/1 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "listen '/ip4/1.2.3/tcp/1': .*ip4" && [ ! -e $tmp/nokey/identity.key ] \
    && ok "run -l with a bad multiaddr: exit 2, names it and why, no identity key created" \
    || ko "run -l bad multiaddr: rc=$rc out=$out key=$(ls $tmp/nokey 2>&1)"
printf 'listen = /ip4/1.2.3/tcp/1\n' > $tmp/badlisten.conf
out=$($K run -c $tmp/badlisten.conf -d $tmp/nokey2 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "line 1: listen '/ip4/1.2.3/tcp/1'" && [ ! -e $tmp/nokey2 ] \
    && ok "config listen with a bad multiaddr fails at parse time naming the line, before any key" \
    || ko "config bad listen: rc=$rc out=$out"
out=$($K run -c $tmp/missing.conf -d $tmp/d 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "cannot open $tmp/missing.conf: No such file or directory" \
    && ok "run -c with a missing file says why, exits 2" || ko "run -c missing: rc=$rc out=$out"
for bad in "-n 0:out of range" "-n x:not a number" "-n 5x:not a number" "-i -1:not a number"; do
    arg=${bad%%:*} why=${bad#*:}
    out=$($K ping /ip4/127.0.0.1/tcp/1 $arg 2>&1); rc=$?
    [ $rc -eq 2 ] && echo "$out" | grep -q "$why" && ok "ping $arg: exit 2 ($why)" || ko "ping $arg: rc=$rc out=$out"
done
out=$($K ping /ip4/127.0.0.1/tcpx/1 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "multiaddr '/ip4/127.0.0.1/tcpx/1': .*tcpx" && ok "ping with a malformed multiaddr names it, exit 2" || ko "ping bad maddr: rc=$rc out=$out"

printf 'log_level = 3\nshutdown_drain_ms = 500\n' > $tmp/good.conf
$K run -c $tmp/good.conf -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out 2> $tmp/err &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err; do sleep 0.1; i=$((i + 1)); done
grep -q ready $tmp/err && ok "node reports ready" || ko "node reports ready"
[ "$(stat -c %a $tmp/data)" = 700 ] && ok "data dir created with mode 0700" || ko "data dir mode"
port=$(sed -n 's#^listen /ip4/127.0.0.1/tcp/\([0-9]*\)/p2p/.*#\1#p' $tmp/out | head -1)
out=$($K ping /dns4/localhost/tcp/$port -n 2 -i 10 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "2 pings sent, 2 received" && ok "ping a /dns4/localhost address" || ko "ping /dns4: rc=$rc out=$out"
sleep 0.3
grep -qi 'reset' $tmp/err && { ko "ping closes gracefully (target logged a reset)"; grep -i reset $tmp/err; } || ok "ping closes gracefully: no reset in the target's log"
kill -TERM $pid; wait $pid; rc=$?
[ $rc -eq 0 ] && ok "SIGTERM: exit 0" || ko "SIGTERM: exit $rc"
grep -q 'stopped' $tmp/err && ok "shutdown logged" || { ko "shutdown logged"; cat $tmp/err; }
# A config file's listen replaces the Kconfig default: exactly one listener, on localhost.
printf 'listen = /ip4/127.0.0.1/tcp/0\nshutdown_drain_ms = 200\n' > $tmp/local.conf
$K run -c $tmp/local.conf -d $tmp/data > $tmp/out3 2> $tmp/err3 &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err3; do sleep 0.1; i=$((i + 1)); done
n=$(grep -c '^listen ' $tmp/out3)
[ "$n" = 1 ] && grep -q '^listen /ip4/127.0.0.1/tcp/' $tmp/out3 && ok "config file listen replaces the default (1 listener, localhost)" || { ko "config listen: $n listeners"; cat $tmp/out3; }
kill -TERM $pid; wait $pid
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
# A target that dies mid-run: the summary counts the pings really sent, not the -n asked for.
$K run -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out4 2> $tmp/err4 &
pid=$!
i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err4; do sleep 0.1; i=$((i + 1)); done
addr=$(sed -n 's/^listen //p' $tmp/out4 | head -1)
$K ping $addr -n 100000 -i 1 > $tmp/ping4 2>&1 &
ppid=$!
i=0; while [ $i -lt 100 ] && [ "$(grep -c 'bytes from' $tmp/ping4)" -lt 20 ]; do sleep 0.05; i=$((i + 1)); done
kill -KILL $pid; wait $pid 2>/dev/null
wait $ppid; rc=$?
sent=$(sed -n 's/^\([0-9]*\) pings sent, \([0-9]*\) received.*/\1/p' $tmp/ping4)
got=$(sed -n 's/^\([0-9]*\) pings sent, \([0-9]*\) received.*/\2/p' $tmp/ping4)
[ $rc -eq 1 ] && [ -n "$sent" ] && [ "$got" -ge 20 ] && [ "$sent" -ge "$got" ] && [ "$sent" -le $((got + 1)) ] \
    && ok "ping whose target dies: '$sent pings sent, $got received' counts what was sent, exit 1" \
    || ko "ping whose target dies: rc=$rc $(tail -3 $tmp/ping4)"
out=$($K ping /ip4/127.0.0.1/tcp/1 -t dsa 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "key-type 'dsa'" && ok "ping -t with an unknown key type: exit 2, names it" || ko "ping -t dsa: rc=$rc out=$out"
# -v prints debug lines when the build keeps them (ceiling 4, as host_defconfig); without it
# the runtime default (KW_LOG_DEFAULT_LEVEL, 3) hides them.
cfg=$(dirname $K)/.config
if grep -q '^CONFIG_KW_LOG_LEVEL=4' $cfg 2>/dev/null; then
    for v in -v ""; do
        $K run $v -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out5 2> $tmp/err5 &
        pid=$!
        i=0; while [ $i -lt 100 ] && ! grep -q 'ready' $tmp/err5; do sleep 0.1; i=$((i + 1)); done
        $K ping $(sed -n 's/^listen //p' $tmp/out5 | head -1) -n 1 -i 0 >/dev/null 2>&1
        kill -TERM $pid; wait $pid
        n=$(grep -c ' DBG ' $tmp/err5)
        if [ -n "$v" ]; then
            [ $n -gt 0 ] && ok "run -v prints debug lines ($n)" || ko "run -v printed no debug line"
        else
            [ $n -eq 0 ] && ok "run without -v prints no debug line" || ko "run without -v printed $n debug lines"
        fi
    done
else
    echo "skip - run -v: $cfg compiles debug lines out (CONFIG_KW_LOG_LEVEL < 4)"
fi
# config check: the same parser as run, nothing created; exit 0 / 1 (bad line) / 2 (unreadable)
printf 'data_dir = %s/cc\nlisten = /ip4/127.0.0.1/tcp/0\n' $tmp > $tmp/good.conf
out=$($K config check $tmp/good.conf 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q ": ok$" && echo "$out" | grep -qx "data_dir $tmp/cc" && [ ! -e $tmp/cc ] \
    && ok "config check: a good file prints ok and its data_dir, creates nothing" || ko "config check good: rc=$rc out=$out"
out=$($K config check $tmp/bad.conf 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "line 2: unknown key 'bogus'" \
    && ok "config check: a bad line is named, exit 1" || ko "config check bad: rc=$rc out=$out"
out=$($K config check $tmp/nonexistent.conf 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "cannot open" && ok "config check: an unreadable file exits 2" \
    || ko "config check missing: rc=$rc out=$out"
$K config frob >/dev/null 2>&1; [ $? -eq 2 ] && ok "config with an unknown verb exits 2" || ko "config frob"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
