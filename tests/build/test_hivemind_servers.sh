#!/bin/sh
# Server records end to end (doc/net-hivemind.md "Server records"): 20 kwnode processes on
# 127.0.0.1 with `hivemind = on`, each announcing one block of a model as a Petals server does
# (node i serves block i); `kwnode hivemind servers` through every node finds all 20
# ServerInfos; a node stopped with SIGTERM shows OFFLINE at once; a node killed with kill -9
# disappears once its record expires (hivemind_expiration = 8 here); the record the C node
# published is read field by field by a Python-stdlib reader (tests/interop/hm_read.py).
# Usage: test_hivemind_servers.sh path/to/kwnode [NODES]
set -u
K=$1
N=${2:-20}
PY=tests/interop/hm_read.py
KW_CLEANUP_SIG=KILL
. "$(dirname "$0")/lib.sh"

if ! $K hivemind --help 2>/dev/null | grep -q servers; then
    echo "skip - this kwnode has no Hivemind DHT (CONFIG_KW_APP_HIVEMIND)"
    exit 0
fi
command -v python3 >/dev/null || { echo "skip - no python3 for the record reader"; exit 0; }

# Every node and every transient CLI node connects from 127.0.0.1: lift the per-address
# admission limits that protect a node on a real network (doc/net-swarm.md).
loopback='conns_per_ip = 256
conns_per_subnet = 256
handshakes_per_ip = 64
handshakes_per_subnet = 64'

# spawn_node N CONFIG-LINES [kwnode run options...]: starts node N in the background;
# wait_node N waits for its listen line (nodes start in parallel: each takes most of a second).
spawn_node() {
    n=$1; shift
    printf '%s\nhivemind = on\n%s\n' "$loopback" "$1" > $tmp/c$n.conf; shift
    : > $tmp/n$n.out
    $K run -d $tmp/n$n -l /ip4/127.0.0.1/tcp/0 -c $tmp/c$n.conf "$@" > $tmp/n$n.out 2> $tmp/n$n.err &
    eval "pid$n=$!"
    pids="$pids $!"
}
wait_node() {
    i=0; while [ $i -lt 200 ] && ! grep -q '^listen ' $tmp/n$1.out; do sleep 0.05; i=$((i + 1)); done
    grep -q '^listen ' $tmp/n$1.out || { ko "node $1 did not start"; cat $tmp/n$1.err; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/n$1.out | head -1; }
peer() { sed -n 's/^peer-id //p' $tmp/n$1.out | head -1; }
hm() { $K hivemind -d $tmp/cli "$@"; }   # a transient client-mode node
# announce N: what node N serves (block N of "proc-model", 20 blocks in all)
announce() {
    printf 'hivemind_prefix = proc-model\nhivemind_blocks = %d:%d\nhivemind_public_name = node-%d\nhivemind_throughput = %d.5\nhivemind_num_blocks = %d\nhivemind_update_period = 2\nhivemind_expiration = 8' \
        $1 $(($1 + 1)) $1 $1 $N
}

t0=$(date +%s)
spawn_node 0 "$(announce 0)"
wait_node 0
B=$(addr 0)
n=1; while [ $n -lt $N ]; do spawn_node $n "hivemind_bootstrap = $B
$(announce $n)" -b $B; n=$((n + 1)); done
n=1; while [ $n -lt $N ]; do wait_node $n; n=$((n + 1)); done
sleep 3  # bootstrap, then the first announcements of every node

# every node's view: all N servers ONLINE, each with its own block and name (10 at a time:
# each view is 21 DHT gets that mostly wait on the network)
# A view that misses a server is asked again, a second later, and counted: on a loaded
# 2-core machine (30 processes here) a get can time out or a 2 s refresh can come late; three
# misses in a row fail the test, naming the blocks missing from the last view.
view() {
    for try in 1 2 3; do
        out=$(hm -d $tmp/cli$1 -b $(addr $1) servers --json proc-model 2>$tmp/e$1); echo "rc=$?" > $tmp/v$1
        echo "$out" | grep -o '"state":"ONLINE"' | wc -l >> $tmp/v$1
        [ "$(cat $tmp/v$1 | tr '\n' ' ')" = "rc=0 $N " ] && break
        echo retry >> $tmp/retries
        b=0; : > $tmp/m$1
        while [ $b -lt $N ]; do
            echo "$out" | grep -q "\"start_block\":$b," || printf '%d ' $b >> $tmp/m$1
            b=$((b + 1))
        done
        sleep 1
    done
}
n=0; while [ $n -lt $N ]; do
    vp=; m=$n; while [ $m -lt $((n + 10)) ] && [ $m -lt $N ]; do view $m & vp="$vp $!"; m=$((m + 1)); done
    for p in $vp; do wait $p; done
    n=$m
done
good=0
n=0; while [ $n -lt $N ]; do
    if [ "$(cat $tmp/v$n | tr '\n' ' ')" = "rc=0 $N " ]; then good=$((good + 1))
    else ko "servers through node $n: $(cat $tmp/v$n | tr '\n' ' ')(rc, ONLINE), blocks missing: $(cat $tmp/m$n 2>/dev/null) err=$(head -3 $tmp/e$n)"; fi
    n=$((n + 1))
done
retries=$(cat $tmp/retries 2>/dev/null | wc -l)
[ $good -eq $N ] && ok "servers through each of $N nodes lists all $N ServerInfos ONLINE ($retries view(s) asked again)" \
    || ko "only $good of $N views complete"

for try in 1 2 3; do   # asked again like the views above
    out=$(hm -b $B servers proc-model 2>&1); rc=$?
    echo "$out" | head -1 | grep -q "^proc-model: $N blocks, $N servers$" && break
    sleep 1
done
line=$(echo "$out" | grep "^$(peer 3)	")
[ $rc -eq 0 ] && echo "$out" | head -1 | grep -q "^proc-model: $N blocks, $N servers$" \
    && [ "$line" = "$(peer 3)	ONLINE	3:4	3.500	node-3" ] \
    && ok "the table: peer, state, span, throughput, public name (block count from _petals.models)" \
    || ko "table: rc=$rc line='$line' head=$(echo "$out" | head -1)"

# the bytes the C node published, read by a reader that shares no code with it
hex=$(hm -b $(addr 9) --hex --latest get proc-model.3 2>$tmp/e); rc=$?
out=$(python3 $PY --peer $(peer 3) --expect state=ONLINE --expect start_block=3 --expect end_block=4 \
      --expect public_name=node-3 --expect throughput=3.5 "$hex" 2>&1); prc=$?
[ $rc -eq 0 ] && [ $prc -eq 0 ] && ok "Python-stdlib reader decodes node 3's ServerInfo field by field" \
    || ko "python reader: get rc=$rc, reader rc=$prc: $out"
hex=$(hm -b $B --hex get _petals.models aa70726f632d6d6f64656c 2>/dev/null)
[ "$hex" = "82aa6e756d5f626c6f636b73$(printf '%02x' $N)aa7265706f7369746f7279c0" ] \
    && ok "_petals.models[proc-model] = {num_blocks: $N, repository: None}" || ko "models: $hex"

# SIGTERM: OFFLINE at once (a newer record), the process exits 0
# (a view may meet a replica the OFFLINE store missed on a loaded machine: up to three views,
# a second apart, all well before the ONLINE record's 8 s expiration)
kill -TERM $pid5
wait $pid5; rc=$?
tries=0
while [ $tries -lt 3 ]; do
    tries=$((tries + 1))
    out=$(hm -b $B servers --json proc-model 2>&1)
    echo "$out" | grep -q "\"peer\":\"$(peer 5)\",\"state\":\"OFFLINE\"" && break
    sleep 1
done
echo "$out" | grep -q "\"peer\":\"$(peer 5)\",\"state\":\"OFFLINE\"" && [ $rc -eq 0 ] \
    && ok "a node stopped with SIGTERM shows OFFLINE at once and exits 0 (view $tries)" \
    || ko "sigterm: rc=$rc, node 5 said: $(grep -h OFFLINE $tmp/n5.err | tr '\n' ' '); view: $(echo "$out" | grep -o "\"peer\":\"$(peer 5)\",\"state\":\"[A-Z]*\"")"

# kill -9: still listed until its record expires (8 s), then gone; the others stay ONLINE
kill -KILL $pid7
out=$(hm -b $B servers --json proc-model 2>&1)
echo "$out" | grep -q "\"peer\":\"$(peer 7)\",\"state\":\"ONLINE\"" \
    && ok "a node killed with kill -9 is still listed before its record expires" || ko "kill -9 early: $out"
sleep 9
out=$(hm -b $B servers --json proc-model 2>&1); rc=$?
c=$(echo "$out" | grep -o '"state":"ONLINE"' | wc -l)
! echo "$out" | grep -q "$(peer 7)" && ! echo "$out" | grep -q "$(peer 5)" && [ $c -eq $((N - 2)) ] && [ $rc -eq 0 ] \
    && ok "after the expiration the killed and the stopped node are gone, $((N - 2)) refreshed ONLINE" \
    || ko "after expiry: rc=$rc, $c ONLINE: $out"

# usage and not found
out=$(hm -b $B servers bad.prefix 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "without '.'" && ok "servers with a prefix holding '.': exit 2" || ko "bad prefix: rc=$rc $out"
out=$(hm -b $B servers no-such-model 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && grep -q "no server of no-such-model" $tmp/e && ok "servers of an unknown model: exit 1, says so" || ko "unknown: rc=$rc $out"
out=$(python3 $PY "c70340920205" 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "throughput" && ok "the Python reader refuses an int throughput as Petals does" || ko "reader strict: rc=$rc $out"

live=
for p in $pids; do [ $p = $pid5 ] || [ $p = $pid7 ] || live="$live $p"; done
for p in $live; do kill -TERM $p; done
rcs=0; for p in $live; do wait $p || rcs=1; done; pids=
[ $rcs -eq 0 ] && ok "all nodes stop on SIGTERM with exit 0" || ko "a node exited non-zero on SIGTERM"
echo "$pass passed, $fail failed ($(($(date +%s) - t0)) s)"
[ $fail -eq 0 ]
