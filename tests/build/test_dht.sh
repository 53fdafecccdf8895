#!/bin/sh
# The DHT end to end with real kwnode processes on 127.0.0.1 (doc/net-kad.md "Using the DHT"):
# five nodes, four bootstrapping from the first; put/get/provide/find-providers/find-peer
# through a running node's control socket and through a transient node; exit codes, not-found,
# usage errors, the control socket's mode, a second node refused on a data dir in use.
# Usage: test_dht.sh path/to/kwnode
set -u
K=$1
. "$(dirname "$0")/lib.sh"

if ! $K dht --help >/dev/null 2>&1; then
    echo "skip - this kwnode has no DHT (CONFIG_KW_NET_KAD_SWARM)"
    exit 0
fi

# start_node N [kwnode run options...]: starts node N, waits for its listen line.
start_node() {
    n=$1; shift
    : > $tmp/n$n.out
    $K run -d $tmp/n$n -l /ip4/127.0.0.1/tcp/0 "$@" > $tmp/n$n.out 2> $tmp/n$n.err &
    pids="$pids $!"
    i=0; while [ $i -lt 100 ] && ! grep -q '^listen ' $tmp/n$n.out; do sleep 0.05; i=$((i + 1)); done
    grep -q '^listen ' $tmp/n$n.out || { ko "node $n did not start"; cat $tmp/n$n.err; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/n$1.out | head -1; }
peer() { sed -n 's/^peer-id //p' $tmp/n$1.out | head -1; }

start_node 0
B=$(addr 0)
for n in 1 2 3 4; do start_node $n -b $B; done
[ "$(stat -c %a $tmp/n1/control.sock)" = 600 ] && ok "control socket is mode 0600" || ko "control socket mode $(stat -c %a $tmp/n1/control.sock)"
sleep 1  # bootstrap and the self lookups (a few round trips on loopback)

out=$($K dht -d $tmp/n1 put /kwaai/test/hello "hello dht" 2>$tmp/e); rc=$?
echo "$out" | grep -Eq '^stored on [1-9][0-9]* peers$' && [ $rc -eq 0 ] \
    && ok "put through a running node: '$out', exit 0" || ko "put: rc=$rc out=$out err=$(cat $tmp/e)"
out=$($K dht -d $tmp/n3 get /kwaai/test/hello 2>$tmp/e); rc=$?
[ "$out" = "hello dht" ] && [ $rc -eq 0 ] && ok "get on another node prints only the value" || ko "get: rc=$rc out='$out' err=$(cat $tmp/e)"
out=$($K dht -d $tmp/cli -b $B get /kwaai/test/hello 2>$tmp/e); rc=$?
[ "$out" = "hello dht" ] && [ $rc -eq 0 ] && ok "get from a transient node (fresh data dir, --bootstrap)" || ko "transient get: rc=$rc out='$out' err=$(cat $tmp/e)"
[ -f $tmp/cli/identity.key ] && [ ! -e $tmp/cli/control.sock ] && ok "transient node created its identity, left no control socket" || ko "transient data dir: $(ls -la $tmp/cli)"
out=$($K dht -d $tmp/n2 get /kwaai/test/nothing-here 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && [ -z "$out" ] && grep -q "no value found" $tmp/e && ok "get of a missing key: exit 1, stderr says so, stdout empty" || ko "missing get: rc=$rc out='$out' err=$(cat $tmp/e)"
out=$($K dht -d $tmp/n4 --hex put 2f6b776161692f686578 "bin" 2>&1); rc=$?
out2=$($K dht -d $tmp/n2 get /kwaai/hex 2>&1); rc2=$?
[ $rc -eq 0 ] && [ $rc2 -eq 0 ] && [ "$out2" = bin ] && ok "--hex KEY is raw bytes (/kwaai/hex)" || ko "--hex: rc=$rc/$rc2 out=$out / $out2"
out=$($K dht -d $tmp/n4 --value-hex put /kwaai/test/bytes 00610a 2>&1); rc=$?
out2=$($K dht -d $tmp/n2 get /kwaai/test/bytes 2>&1 | od -An -tx1 | tr -d ' \n'); rc2=$?
[ $rc -eq 0 ] && [ "$out2" = 00610a ] && ok "--value-hex VALUE keeps NUL and a trailing newline (00 61 0a)" || ko "--value-hex: rc=$rc out=$out got=$out2"
out=$($K dht -d $tmp/n4 --value-hex put /kwaai/test/bytes 0g 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "not hex bytes" && ok "--value-hex with a bad VALUE: usage error naming it" || ko "--value-hex bad: rc=$rc out=$out"

CID=QmYwAPJzv5CZsnA625s3Xf2nemtYgPpHdWEz79ojWnPbdG
out=$($K dht -d $tmp/n2 provide $CID 2>$tmp/e); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -Eq '^stored on [1-9]' && ok "provide: '$out'" || ko "provide: rc=$rc out=$out err=$(cat $tmp/e)"
out=$($K dht -d $tmp/n4 find-providers $CID 2>$tmp/e); rc=$?
[ $rc -eq 0 ] && [ "$out" = "$(peer 2)" ] && ok "find-providers prints the provider's peer ID" || ko "find-providers: rc=$rc out='$out' want $(peer 2) err=$(cat $tmp/e)"
out=$($K dht -d $tmp/n4 find-providers bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy 2>$tmp/e); rc=$?
[ $rc -eq 1 ] && [ -z "$out" ] && ok "find-providers with none: exit 1" || ko "find-providers none: rc=$rc out=$out"
out=$($K dht -d $tmp/n1 find-peer $(peer 4) 2>$tmp/e); rc=$?
port=$(addr 4 | sed 's#.*/tcp/\([0-9]*\)/.*#\1#')
[ $rc -eq 0 ] && echo "$out" | grep -qx "/ip4/127.0.0.1/tcp/$port/p2p/$(peer 4)" && ok "find-peer prints the peer's multiaddr" || ko "find-peer: rc=$rc out='$out' err=$(cat $tmp/e)"

# usage errors: exit 2, naming what is wrong
out=$($K dht -d $tmp/n1 get 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "takes KEY" && ok "get without KEY: exit 2" || ko "get no key: rc=$rc out=$out"
out=$($K dht -d $tmp/x -b /ip4/127.0.0.1/tcp/1 get /kwaai/a 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "needs /p2p/" && ok "--bootstrap without /p2p/: exit 2, says so" || ko "bootstrap no p2p: rc=$rc out=$out"
out=$($K dht -d $tmp/x provide notacid 2>&1); rc=$?
[ $rc -eq 2 ] && echo "$out" | grep -q "CID 'notacid'" && ok "provide with a bad CID: exit 2, names it" || ko "bad cid: rc=$rc out=$out"
out=$($K dht -d $tmp/y get /kwaai/a 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "no bootstrap peer" && ok "no running node and no bootstrap: exit 1, says why" || ko "no bootstrap: rc=$rc out=$out"
printf 'bootstrap = /ip4/127.0.0.1/tcp/4001\n' > $tmp/bad.conf
out=$($K run -c $tmp/bad.conf -d $tmp/z 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "line 1: bootstrap '/ip4/127.0.0.1/tcp/4001': a bootstrap peer needs /p2p/" && ok "config bootstrap without /p2p/ names the line" || ko "config bootstrap: rc=$rc out=$out"
out=$(timeout 10 $K run -d $tmp/n1 -l /ip4/127.0.0.1/tcp/0 2>&1); rc=$?
[ $rc -eq 1 ] && echo "$out" | grep -q "another kwnode is running" && ok "a second node on a data dir in use is refused" || ko "second node: rc=$rc out=$out"

# the control socket refuses what is not a request, naming why, and keeps serving
ctl() {  # ctl SOCKET LINE: sends LINE, prints the reply
    python3 -c 'import socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.sendall(sys.argv[2].encode())
out=b""
while True:
    d=s.recv(65536)
    if not d: break
    out+=d
sys.stdout.write(out.decode())' "$1" "$2"
}
if command -v python3 >/dev/null 2>&1; then
    out=$(ctl $tmp/n1/control.sock "dht get zz
")
    echo "$out" | grep -q "^error bad control request: bad key field" && echo "$out" | grep -qx "exit 2" && ok "control socket: a malformed request gets an error naming the field, exit 2" || ko "control bad line: $out"
    out=$(ctl $tmp/n1/control.sock "frobnicate
")
    echo "$out" | grep -q "^error unknown control command" && ok "control socket: an unknown command is named as such" || ko "control unknown: $out"
    out=$($K dht -d $tmp/n1 get /kwaai/test/hello 2>&1)
    [ "$out" = "hello dht" ] && ok "the node keeps serving its control socket after bad requests" || ko "after bad requests: $out"
fi

# client mode: the node uses the DHT but is not in anyone's table
start_node 5 -b $B --dht-client
sleep 0.5
out=$($K dht -d $tmp/n5 get /kwaai/test/hello 2>$tmp/e); rc=$?
[ "$out" = "hello dht" ] && ok "a --dht-client node can get" || ko "client get: rc=$rc out='$out' err=$(cat $tmp/e)"
out=$($K dht -d $tmp/n1 find-peer $(peer 5) 2>/dev/null); rc=$?
[ $rc -eq 1 ] && ok "a --dht-client node is not found by find-peer (no one keeps it)" || ko "client find-peer: rc=$rc out=$out"

for p in $pids; do kill -TERM $p; done
rcs=0; for p in $pids; do wait $p || rcs=1; done; pids=
[ $rcs -eq 0 ] && ok "all nodes stop on SIGTERM with exit 0" || ko "a node exited non-zero on SIGTERM"
[ ! -e $tmp/n1/control.sock ] && ok "control socket removed at shutdown" || ko "control socket left behind"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
