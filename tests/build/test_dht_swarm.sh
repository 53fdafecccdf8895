#!/bin/sh
# Many real kwnode processes on 127.0.0.1 form one DHT: every node puts a value, and every
# node gets the value of every other node through its control socket (N x (N-1) gets).
# Usage: test_dht_swarm.sh path/to/kwnode [N]   (N defaults to 20; KW_DHT_NODES overrides)
# Nodes 2..N-1 bootstrap from nodes 0 and 1. Processes are stopped on every exit path (trap), and the run is bounded by timeouts.
set -u
K=$1
N=${2:-${KW_DHT_NODES:-20}}
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
pids= bg=
cleanup() {
    for p in $bg; do kill $p 2>/dev/null; done
    for p in $pids; do kill -TERM $p 2>/dev/null; done
    for p in $pids; do wait $p 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

if ! $K dht --help >/dev/null 2>&1; then
    echo "skip - this kwnode has no DHT (CONFIG_KW_NET_KAD_SWARM)"
    exit 0
fi
el() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", a - b }'; }
t0=$(date +%s.%N)

# every node dials from 127.0.0.1: lift the per-address inbound limits (8 by default) that
# would otherwise refuse the ninth node (doc/net-swarm.md "Limits under load")
cat > $tmp/node.conf <<EOC
conns_per_ip = 256
conns_per_subnet = 256
handshakes_per_ip = 64
handshakes_per_subnet = 64
EOC
start_node() {
    n=$1; shift
    : > $tmp/n$n.out
    $K run -c $tmp/node.conf -d $tmp/n$n -l /ip4/127.0.0.1/tcp/0 -L 2 "$@" > $tmp/n$n.out 2> $tmp/n$n.err &
    pids="$pids $!"
}
wait_listen() {
    i=0; while [ $i -lt 200 ] && ! grep -q '^listen ' $tmp/n$1.out; do sleep 0.05; i=$((i + 1)); done
    grep -q '^listen ' $tmp/n$1.out || { ko "node $1 did not start"; cat $tmp/n$1.err; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/n$1.out | head -1; }

start_node 0
wait_listen 0
A0=$(addr 0)
start_node 1 -b $A0
wait_listen 1
A1=$(addr 1)
# the rest start together, each bootstrapping from both: the lookups that follow spread the
# peers through every table
n=2
while [ $n -lt $N ]; do start_node $n -b $A0 -b $A1; n=$((n + 1)); done
n=2
while [ $n -lt $N ]; do wait_listen $n; n=$((n + 1)); done
t1=$(date +%s.%N)
ok "$N nodes started ($(el $t1 $t0) s)"
sleep 2  # bootstrap, self lookups and the first refresh round

# every node puts its own key (in parallel, one process per node)
n=0
while [ $n -lt $N ]; do
    ( timeout 30 $K dht -d $tmp/n$n put /kwaai/swarm/$n "value-$n" > $tmp/put$n 2>&1; echo $? >> $tmp/put$n ) &
    bg="$bg $!"
    n=$((n + 1))
done
for j in $bg; do wait $j; done; bg=
bad=0; n=0
while [ $n -lt $N ]; do
    tail -1 $tmp/put$n | grep -qx 0 && grep -Eq '^stored on [1-9]' $tmp/put$n || { bad=$((bad + 1)); [ $bad -le 3 ] && cat $tmp/put$n; }
    n=$((n + 1))
done
t2=$(date +%s.%N)
[ $bad -eq 0 ] && ok "all $N puts stored on >= 1 peer ($(el $t2 $t1) s)" || ko "$bad of $N puts failed"

# every node gets every other node's value; one background job per getter node
n=0
while [ $n -lt $N ]; do
    (
        m=0; miss=0
        while [ $m -lt $N ]; do
            if [ $m -ne $n ]; then
                v=$(timeout 30 $K dht -d $tmp/n$n get /kwaai/swarm/$m 2>>$tmp/get$n.err)
                [ "$v" = "value-$m" ] || { miss=$((miss + 1)); echo "node $n get $m: '$v'" >> $tmp/get$n.err; }
            fi
            m=$((m + 1))
        done
        echo $miss > $tmp/miss$n
    ) &
    bg="$bg $!"
    n=$((n + 1))
done
for j in $bg; do wait $j; done; bg=
t3=$(date +%s.%N)
miss=0; n=0
while [ $n -lt $N ]; do
    k=$(cat $tmp/miss$n 2>/dev/null || echo $N)
    [ "$k" -ne 0 ] && { miss=$((miss + k)); head -3 $tmp/get$n.err; }
    n=$((n + 1))
done
gets=$((N * (N - 1)))
[ $miss -eq 0 ] && ok "all $gets gets returned the value put by the other node ($(el $t3 $t2) s)" || ko "$miss of $gets gets failed"

# every node still up, then a clean stop
alive=0; for p in $pids; do kill -0 $p 2>/dev/null && alive=$((alive + 1)); done
[ $alive -eq $N ] && ok "all $N nodes still running" || ko "only $alive of $N nodes running"
for p in $pids; do kill -TERM $p; done
rcs=0; for p in $pids; do wait $p || rcs=$((rcs + 1)); done; pids=
[ $rcs -eq 0 ] && ok "all $N nodes stop on SIGTERM with exit 0" || ko "$rcs nodes exited non-zero"
echo "figures: $N nodes, start $(el $t1 $t0) s, puts $(el $t2 $t1) s, $gets gets $(el $t3 $t2) s, total $(el $(date +%s.%N) $t0) s"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
