#!/bin/sh
# The Hivemind DHT end to end with real kwnode processes on 127.0.0.1 (doc/net-hivemind.md
# "The node on the Hivemind DHT"): five nodes with `hivemind = on`, four bootstrapping from the
# first; `kwnode hivemind store` through one node and `kwnode hivemind get` through every other
# one, subkeys, --hex, ping, not-found, usage errors, a client-mode node nobody keeps. JSON
# output (get; store and ping --json) is read back with python3's json module.
# Usage: test_hivemind.sh path/to/kwnode
set -u
K=$1
. "$(dirname "$0")/lib.sh"

if ! $K hivemind --help >/dev/null 2>&1; then
    echo "skip - this kwnode has no Hivemind DHT (CONFIG_KW_APP_HIVEMIND)"
    exit 0
fi

# Every node and every transient CLI node connects from 127.0.0.1: lift the per-address
# admission limits that protect a node on a real network (doc/net-swarm.md).
loopback='conns_per_ip = 256
conns_per_subnet = 256
handshakes_per_ip = 64
handshakes_per_subnet = 64'

# start_node N CONFIG-LINES [kwnode run options...]: starts node N, waits for its listen line.
start_node() {
    n=$1; shift
    printf '%s\nhivemind = on\n%s\n' "$loopback" "$1" > $tmp/c$n.conf; shift
    : > $tmp/n$n.out
    $K run -d $tmp/n$n -l /ip4/127.0.0.1/tcp/0 -c $tmp/c$n.conf "$@" > $tmp/n$n.out 2> $tmp/n$n.err &
    pids="$pids $!"
    i=0; while [ $i -lt 100 ] && ! grep -q '^listen ' $tmp/n$n.out; do sleep 0.05; i=$((i + 1)); done
    grep -q '^listen ' $tmp/n$n.out || { ko "node $n did not start"; cat $tmp/n$n.err; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/n$1.out | head -1; }
peer() { sed -n 's/^peer-id //p' $tmp/n$1.out | head -1; }
hm() { $K hivemind -d $tmp/cli "$@"; }   # a transient client-mode node
# json_is 'PYTHON-EXPR' < OUT: OUT is one JSON document ending in a newline and EXPR holds
# with v = the document (time and math imported)
json_is() {
    python3 -c 'import json, math, sys, time
t = sys.stdin.read()
assert t.endswith("\n") and t.count("\n") == 1, "not one line"
v = json.loads(t)
sys.exit(0 if (eval(sys.argv[1])) else 1)' "$1" 2>/dev/null
}
# (the checker itself refuses the old tab-separated text and two documents)
printf '"a"\t"b"\t1.0\n' | json_is True && ko "json_is takes text that is not JSON"
printf '1\n2\n' | json_is True && ko "json_is takes two documents"

start_node 0 ''
B=$(addr 0)
for n in 1 2 3 4; do start_node $n "hivemind_bootstrap = $B" -b $B; done
sleep 1  # validate pings, ping-backs and the searches for their own ids

# every node stores a value; every other node finds it
for n in 0 1 2 3 4; do
    out=$(hm -b $(addr $n) store "key-$n" "\"value of $n\"" 2>$tmp/e); rc=$?
    echo "$out" | head -1 | grep -Eq '^stored on [1-9][0-9]* of [0-9]+ nodes$' && [ $rc -eq 0 ] \
        || ko "store through node $n: rc=$rc out=$out err=$(cat $tmp/e)"
done
good=0
for n in 0 1 2 3 4; do
    for m in 0 1 2 3 4; do
        [ $n -eq $m ] && continue
        out=$(hm -b $(addr $m) get "key-$n" 2>$tmp/e); rc=$?
        if [ "$out" = "\"value of $n\"" ] && [ $rc -eq 0 ]; then good=$((good + 1))
        else ko "get key-$n through node $m: rc=$rc out='$out' err=$(cat $tmp/e)"; fi
    done
done
[ $good -eq 20 ] && ok "5 stores, 20 gets through every other node find the value" || ko "only $good of 20 gets"

out=$(hm -b $(addr 1) store typed '[1, -2, 2.5, 1.0, true, null, <00ff>, {"a": "b", "$c": [<01>]}]' 2>&1) \
    && hm -b $(addr 3) get typed > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v == [1, -2, 2.5, 1.0, True, None, {"$bin": "00ff"}, {"$map": [["a", "b"], ["$c", [{"$bin": "01"}]]]}] and type(v[3]) is float' < $tmp/o \
    && ok "get prints JSON: ints, floats, bool, null, bytes as \$bin, a map with a \$ key as \$map" || ko "typed: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
out=$(hm -b $(addr 2) --hex store hexkey 92c3c2 2>&1) && out=$(hm -b $(addr 4) --hex get hexkey 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = 92c3c2 ] && ok "--hex stores and prints msgpack bytes" || ko "hex: rc=$rc out=$out"

hm -b $(addr 1) store -s '"peer-a"' blocks '"online"' > $tmp/sa 2>&1
hm -b $(addr 2) store --subkey peer-b blocks '"joining"' > $tmp/sb 2>&1
# A transient client's first operation asks the whole beam: its kad lookups of the replicas
# named by PeerID wait for kad to know a peer (doc/net-hivemind.md), so no retries here.
hm -v -b $(addr 4) --latest get blocks > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v == {"peer-a": "online", "peer-b": "joining"}' < $tmp/o \
    && ok "subkeys stored through two nodes come back as one JSON object" || ko "dict: rc=$rc out=$(cat $tmp/o) err=$(grep -v ' DBG ' $tmp/e) kad: $(grep 'DBG kad\|DBG hivemind' $tmp/e | head -12)"
out=$(hm -b $(addr 3) --latest get blocks peer-b 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = '"joining"' ] && ok "get KEY SUBKEY prints that entry's value" || ko "get subkey: rc=$rc out=$out stores: $(cat $tmp/sa $tmp/sb | tr '\n\t' '  ')"

hm -b $(addr 4) --latest --subkeys get blocks > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'sorted(v) == ["peer-a", "peer-b"] and v["peer-b"]["value"] == "joining" and 500 < v["peer-a"]["expiration"] - time.time() <= 600' < $tmp/o \
    && ok "get --subkeys: each subkey's value and expiration" || ko "subkeys: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
# (its own identity: the nodes' per-peer request limits count the other steps' requests)
hmr() { $K hivemind -d $tmp/cli-rt "$@"; }
v=$(hmr -b $(addr 3) get typed 2>/dev/null) && hmr -b $(addr 2) store typed2 "$v" >/dev/null 2>&1 \
    && out=$(hmr -b $(addr 4) get typed2 2>&1); rc=$?
[ $rc -eq 0 ] && [ -n "$v" ] && [ "$out" = "$v" ] && ok "what get prints stores back as the same value" || ko "round trip: rc=$rc '$v' -> '$out'"
out=$(hm -b $(addr 1) get nothing-here 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && [ -z "$out" ] && grep -q "not found" $tmp/e && ok "get of a missing key: exit 1, stderr says so" || ko "missing: rc=$rc out=$out err=$(cat $tmp/e)"
out=$(hm ping $(addr 3) 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "^$(peer 3) node_id [0-9a-f]\{40\} dht_time " && ok "ping prints the peer, its node id and DHT time" || ko "ping: rc=$rc out=$out"
hm --json ping $(addr 3) > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v["peer"] == "'$(peer 3)'" and v["client_mode"] is False and len(v["node_id"]) == 40 and abs(v["dht_time"] - time.time()) < 60 and abs(v["clock_skew"]) < 60' < $tmp/o \
    && ok "ping --json: peer, node id, DHT time, clock skew" || ko "ping json: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
hm -b $(addr 1) --json store jkey '"x"' > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v["key"] == "jkey" and 1 <= v["stored_on"] <= v["tried"] == len(v["nodes"]) and sum(n["outcome"] == "ok" for n in v["nodes"]) == v["stored_on"] and all(n["outcome"] in ("ok", "refused", "no answer") for n in v["nodes"])' < $tmp/o \
    && ok "store --json: stored_on, the nodes tried and each outcome" || ko "store json: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"

# against a running node: -d names its data directory, the command runs on that node over
# <data-dir>/control.sock (no --bootstrap needed) with the same output and exit codes
hmd() { d=$1; shift; $K hivemind -d $tmp/n$d "$@"; }
out=$(hmd 1 store run-key '"run value"' 2>$tmp/e); rc=$?
[ $rc -eq 0 ] && echo "$out" | head -1 | grep -Eq '^stored on [1-9][0-9]* of [0-9]+ nodes$' \
    && echo "$out" | grep -q '^(this node)	ok$' \
    && ok "store through a running node: stored, the node itself among them" || ko "running store: rc=$rc out=$out err=$(cat $tmp/e)"
out=$(hmd 3 get run-key 2>$tmp/e); rc=$?
[ $rc -eq 0 ] && [ "$out" = '"run value"' ] && ok "get through another running node finds it" || ko "running get: rc=$rc out=$out err=$(cat $tmp/e)"
# the same text standalone and through the running node; a dictionary written through two
# nodes may miss an entry on a replica that timed out under load: asked up to 3 times
a=$(hm -b $(addr 2) get run-key 2>&1); ra=$?
b=$(hmd 2 get run-key 2>&1); rb=$?
[ "$a" = "$b" ] && [ $ra -eq $rb ] && [ $ra -eq 0 ] && ok "a value prints the same standalone and through the running node" || ko "differs: '$a' vs '$b'"
for try in 1 2 3; do
    hmd 2 --latest --subkeys get blocks > $tmp/o 2>$tmp/e; rc=$?
    json_is 'v["peer-a"]["value"] == "online" and v["peer-b"]["value"] == "joining" and all(500 < e["expiration"] - time.time() <= 600 for e in v.values())' < $tmp/o && break
    sleep 1
done
[ $rc -eq 0 ] && json_is 'sorted(v) == ["peer-a", "peer-b"]' < $tmp/o \
    && ok "a dictionary through the running node: get --subkeys, value and expiration per subkey (try $try)" || ko "running dict: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
a=$(hm -b $(addr 1) get typed 2>&1); ra=$?
b=$(hmd 3 get typed 2>&1); rb=$?
[ "$a" = "$b" ] && [ $ra -eq 0 ] && [ $rb -eq 0 ] && ok "typed JSON prints the same standalone and through the running node" || ko "typed differs: '$a' vs '$b'"
hmd 1 --json store jkey2 7 > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v["stored_on"] >= 1 and any(n["self"] and n["outcome"] == "ok" for n in v["nodes"])' < $tmp/o \
    && ok "store --json through a running node: the node itself among them" || ko "running store json: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
hmd 1 --json ping $(addr 3) > $tmp/o 2>$tmp/e; rc=$?
[ $rc -eq 0 ] && json_is 'v["peer"] == "'$(peer 3)'" and len(v["node_id"]) == 40' < $tmp/o \
    && ok "ping --json through a running node" || ko "running ping json: rc=$rc out=$(cat $tmp/o) err=$(cat $tmp/e)"
out=$(hmd 4 --hex get run-key 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = a972756e2076616c7565 ] && ok "--hex through a running node" || ko "running hex: rc=$rc out=$out"
# (a node holds what it stored itself: this one does not depend on the other replicas)
hmd 1 store -s '"s1"' rdict '"first"' >/dev/null 2>&1 && hmd 1 store -s s2 rdict 7 >/dev/null 2>&1
out=$(hmd 1 get rdict s2 2>&1); rc=$?
[ $rc -eq 0 ] && [ "$out" = '7' ] && ok "store -s and get KEY SUBKEY through a running node" || ko "running subkey: rc=$rc out=$out"
out=$(hmd 1 get nothing-here 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && [ -z "$out" ] && grep -q "^kwnode hivemind: nothing-here not found" $tmp/e && ok "a missing key through a running node: exit 1, stderr says so" || ko "running missing: rc=$rc out=$out err=$(cat $tmp/e)"
out=$(hmd 1 ping $(addr 3) 2>&1); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "^$(peer 3) node_id [0-9a-f]\{40\} dht_time " && ok "ping from a running node" || ko "running ping: rc=$rc out=$out"
out=$(hmd 1 ping /ip4/127.0.0.1/tcp/1 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "not a multiaddr with /p2p/" && ok "ping of a multiaddr without /p2p/ through a running node: exit 1, says why" || ko "running bad ping: rc=$rc out=$out"
hmd 1 store -s '"'$(peer 1)'"' m1.0 '[2, 1.5, {"start_block": 0, "end_block": 1}]' > /dev/null 2>&1
out=$(hmd 2 -n 1 servers m1 2>$tmp/e); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "^$(peer 1)	" && ok "servers through a running node lists the server of m1.0" || ko "running servers: rc=$rc out=$out err=$(cat $tmp/e)"
out=$(hmd 2 -n 1 servers nomodel 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && grep -q "no server of nomodel found" $tmp/e && ok "servers of an unknown model through a running node: exit 1" || ko "running no servers: rc=$rc out=$out err=$(cat $tmp/e)"
out=$(hmd 1 store k '[1, 2' 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "missing ']'" && ok "a usage error with a running node still exits 2 before asking it" || ko "running usage: rc=$rc out=$out"

# usage errors: exit 2
out=$(hm -b $B get 2>&1); rc=$?
[ $rc -eq 2 ] && ok "get without KEY: exit 2" || ko "no key: rc=$rc out=$out"
out=$(hm -b $B store k '[1, 2' 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "missing ']'" && ok "a malformed VALUE: exit 2 naming the problem" || ko "bad value: rc=$rc out=$out"
out=$(hm -b /ip4/127.0.0.1/tcp/1 get k 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "needs /p2p/" && ok "--bootstrap without /p2p/: exit 2" || ko "no p2p: rc=$rc out=$out"
out=$(hm get k 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "no Hivemind peer" && ok "no bootstrap peer: exit 1, says why" || ko "no peer: rc=$rc out=$out"

# a node in client mode asks the DHT but no one keeps it or can call it
start_node 5 "hivemind_bootstrap = $B
hivemind_client = on" -b $B
sleep 0.5
out=$(hm ping $(addr 5) 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "does not serve DHTProtocol.rpc_ping" && ok "a hivemind_client node serves no DHTProtocol handler" || ko "client ping: rc=$rc out=$out"

# SIGINT (Ctrl-C on a foreground node) says OFFLINE first, as SIGTERM does
start_node 6 "hivemind_bootstrap = $B
hivemind_prefix = m2
hivemind_blocks = 0:1" -b $B
p6=$(echo $pids | awk '{print $NF}')
sleep 0.5
kill -INT $p6; wait $p6; rc=$?
pids=$(echo $pids | sed "s/ *$p6\$//")
out=$(hmd 1 -n 1 --json servers m2 2>&1)
[ $rc -eq 0 ] && grep -q "OFFLINE announced" $tmp/n6.err && echo "$out" | grep -q "\"peer\":\"$(peer 6)\",\"state\":\"OFFLINE\"" \
    && ok "a node stopped with SIGINT announces OFFLINE first and exits 0" || ko "sigint: rc=$rc out=$out log=$(grep -h OFFLINE $tmp/n6.err | tr '\n' ' ')"

for p in $pids; do kill -TERM $p; done
rcs=0; for p in $pids; do wait $p || rcs=1; done; pids=
[ $rcs -eq 0 ] && ok "all nodes stop on SIGTERM with exit 0" || ko "a node exited non-zero on SIGTERM"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
