#!/bin/sh
# `kwnode moe` (doc/serve.md "Client and generate") against three kwnode servers on
# 127.0.0.1 that all serve the same generated 2 x 2 grid of hivemind experts ffn.<i>.<j>
# (replicas: the same uids and weights, declared on the Hivemind DHT by each, the newest
# declaration naming one of them): hivemind's beam search over the declarations chooses
# k = 2 experts per row; with all up; with the replica the DHT names killed (kill -9) right
# before the call (the call fails and goes to another replica); with the replica named next
# stopped (SIGSTOP: the attempt times out and the call goes to the last one); then with the
# survivor alone: the four outputs are the same. Then k_min and timeout_after_k_min with
# a replica that hangs; last, `kwnode call` (text and --json) on a server.
# Usage: test_moe.sh KWNODE
set -u
K=${1:-build/h/kwnode}
KW_CLEANUP_SIG=KILL
. "$(dirname "$0")/lib.sh"

if ! $K moe --help >/dev/null 2>&1; then
    echo "skip - this kwnode has no client (CONFIG_KW_APP_SERVE)"
    exit 0
fi
conf=$tmp/node.conf
printf 'hivemind_update_period = 1\n' > $conf

serve() {
    name=$1; shift
    $K serve --experts ffn --grid 2 --hidden 32 --listen /ip4/127.0.0.1/tcp/0 \
        --data-dir $tmp/$name --config $conf "$@" > $tmp/$name.out 2> $tmp/$name.err &
    eval "pid_$name=$!"
    pids="$pids $!"
    i=0; while [ $i -lt 200 ] && ! grep -q "^announce " $tmp/$name.out 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
    grep -q '^announce ' $tmp/$name.out || { ko "server $name did not start: $(tail -3 $tmp/$name.err)"; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/$1.out | head -1; }
peer() { sed -n 's/^peer-id //p' $tmp/$1.out | head -1; }

serve A
serve B --bootstrap $(addr A)
serve C --bootstrap $(addr A)
sleep 1.2   # both declared at least twice: the DHT names one replica per uid

awk 'BEGIN{print "shape 3 32"; for(i=0;i<96;i++) printf "%g ", 0.01*i - 0.3; print ""}' > $tmp/x.txt
moe() {   # moe NAME BOOTSTRAP: kwnode moe -k 2 over the 2 x 2 grid
    $K moe --prefix ffn --grid 2x2 --input $tmp/x.txt -k 2 --bootstrap $2 --peer $(addr A) \
        --peer $(addr B) --peer $(addr C) --timeout-ms ${3:-6000} --stats --data-dir $tmp/cli-$1 > $tmp/$1.out 2> $tmp/$1.err
}
moe both $(addr A); rc=$?
[ $rc -eq 0 ] && grep -q '^kwnode moe: beam search over ffn, grid 2 x 2: [0-9]* prefix records read, [1-4] experts chosen$' $tmp/both.err \
    && [ "$(grep -c '^kwnode moe: row [012]: ffn\.[01]\.[01] ([0-9.]*) ffn\.[01]\.[01] ([0-9.]*)$' $tmp/both.err)" -eq 3 ] \
    && [ "$(grep -c . $tmp/both.out)" -eq 4 ] && grep -q '^kwnode moe: stats: ffn\.[01]\.[01] chosen [1-3] answered [1-3] ' $tmp/both.err \
    && ok "beam search over the DHT: two experts per row of three, mixed, with per-expert statistics" \
    || ko "moe with both replicas: rc=$rc $(grep -v INF $tmp/both.err | head -5)"

# named BOOT: which of the servers in $live the DHT names for $uid now (empty: none of them)
named() {
    p=$($K hivemind -d $tmp/cli-get$1 -b $(addr $1) get $uid 2>/dev/null | tr -d '"')
    for s in $live; do [ "$p" = "$(peer $s)" ] && echo $s; done
}
# the replica the DHT names for the first row's first expert is killed
uid=$(sed -n 's/^kwnode moe: row 0: \([^ ]*\) .*/\1/p' $tmp/both.err)
live="A B C"
victim=$(named A)
[ -n "$victim" ] || victim=A
live=$(echo $live | tr ' ' '\n' | grep -v $victim | tr '\n' ' ')
eval "kill -9 \$pid_$victim"
survivor=${live%% *}
named=$(peer $victim)
moe failover $(addr $survivor); rc=$?
grep -E 'failover|failed|left out' $tmp/failover.err | sed 's/^/    /'
[ $rc -eq 0 ] && cmp -s $tmp/both.out $tmp/failover.out \
    && ok "replica $victim killed ($uid was declared by $( [ "$named" ] && echo "${named%"${named#??????}"}..." || echo '?')): every expert answered, the output is the same" \
    || ko "failover: rc=$rc $(grep -v INF $tmp/failover.err | tail -5)"
grep -q "failover to replica" $tmp/failover.err \
    && echo "    (the call went to $victim first and failed over)" \
    || echo "    (a live replica's declaration was already the newest: no failover needed)"

# the replica named now stops answering: its attempt times out (half the deadline)
sleep 1.2
stopped=$(named $survivor)
[ -n "$stopped" ] || stopped=${live%% *}
live=$(echo $live | tr ' ' '\n' | grep -v $stopped | tr '\n' ' ')
survivor=${live%% *}
eval "kill -STOP \$pid_$stopped"
moe stopped $(addr $survivor) 6000; rc=$?
grep -E "failover to|attempt.s time|deadline" $tmp/stopped.err | sed 's/^/    /'
[ $rc -eq 0 ] && cmp -s $tmp/both.out $tmp/stopped.out \
    && ok "replica $stopped stopped (SIGSTOP): every expert answered through $survivor, the output is the same" \
    || ko "stopped replica: rc=$rc $(grep -v INF $tmp/stopped.err | tail -5)"
eval "kill -CONT \$pid_$stopped; kill -9 \$pid_$stopped"
sleep 1.2
moe alone $(addr $survivor); rc=$?
[ $rc -eq 0 ] && cmp -s $tmp/alone.out $tmp/failover.out && ! grep -q "failover to" $tmp/alone.err \
    && ok "the survivor $survivor alone gives the same output" \
    || ko "survivor alone: rc=$rc $(grep -v INF $tmp/alone.err | tail -5)"

# k_min and timeout_after_k_min: G serves a 2 x 2 grid "gate" and declares for 60 s, H a
# 3 x 3 one declaring for 3 s, so the DHT names G for the uids both serve and H for the rest.
# H stopped: the rows' experts on G answer, those on H hang; once every row has one answer
# the rest get 200 ms, far less than the 10 s deadline
for s in A B C; do eval "kill -9 \$pid_$s 2>/dev/null"; done
printf 'hivemind_update_period = 30\n' > $tmp/g.conf
$K serve --experts gate --grid 2 --hidden 32 --listen /ip4/127.0.0.1/tcp/0 --data-dir $tmp/G \
    --config $tmp/g.conf > $tmp/G.out 2> $tmp/G.err &
pid_G=$!; pids="$pids $!"
i=0; while [ $i -lt 200 ] && ! grep -q "^announce " $tmp/G.out 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
serve H --bootstrap $(addr G) --experts gate --grid 3
sleep 1.2
awk 'BEGIN{print "shape 4 32"; for(i=0;i<128;i++) printf "%g ", (((i%32)*37)%11)*0.1 - 0.5; print ""}' > $tmp/xk.txt
kill -STOP $pid_H
t1=$(date +%s%N)
$K moe --prefix gate --grid 3x3 --input $tmp/xk.txt -k 2 --bootstrap $(addr G) --peer $(addr G) \
    --peer $(addr H) --timeout-ms 10000 --k-min 1 --timeout-after-k-min-ms 200 --stats \
    --data-dir $tmp/cli-k > $tmp/k.out 2> $tmp/k.err; rc=$?
ms=$(( ($(date +%s%N) - t1) / 1000000 ))
kill -CONT $pid_H
grep '^kwnode moe: row' $tmp/k.err | sed 's/^/    /'
[ $rc -eq 0 ] && [ $ms -lt 5000 ] && [ "$(grep -c '^kwnode moe: row [0-3]: gate\.[0-9.]* (1\.000) gate\.[0-9.]* (0\.000) failed$' $tmp/k.err)" -eq 4 ] \
    && ok "k_min 1: every row answered by one expert, the hung ones left out after 200 ms more (${ms} ms, deadline 10 s)" \
    || ko "k_min: rc=$rc ${ms} ms $(grep -v INF $tmp/k.err | tail -5)"

# kwnode call on G: the text form (what --input reads back) and --json (one line) carry the
# same numbers; a remote error exits 1, its text on stderr, nothing on stdout
awk 'BEGIN{print "shape 2 32"; for(i=0;i<64;i++) printf "%g ", 0.01*i - 0.2; print ""}' > $tmp/xc.txt
call() { $K call $(addr G) $1 --input $tmp/xc.txt --data-dir $tmp/cli-call --timeout-ms 5000 ${2:-}; }
call gate.0.0 > $tmp/call.txt 2> $tmp/call.err; rc=$?
call gate.0.0 --json > $tmp/call.json 2>> $tmp/call.err; rcj=$?
call gate.9.9 --json > $tmp/bad.json 2> $tmp/bad.err; rcb=$?
[ $rc -eq 0 ] && [ $rcj -eq 0 ] && [ "$(wc -l < $tmp/call.json)" -eq 1 ] && python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
t = open(sys.argv[2]).read().split("\n")
want = [float(x) for x in " ".join(t[1:]).split()]
assert t[0] == "shape 2 32" and len(want) == 64
assert j["handler"] == "ConnectionHandler.rpc_forward" and j["uid"] == "gate.0.0"
assert len(j["tensors"]) == 1
x = j["tensors"][0]
assert x["shape"] == [2, 32] and x["dtype"] == "float32" and x["compression"] == 0
assert x["bytes"] == 256 and x["values"] == want
' $tmp/call.json $tmp/call.txt \
    && [ $rcb -eq 1 ] && [ ! -s $tmp/bad.json ] && grep -q "raised KeyError('gate.9.9')" $tmp/bad.err \
    && ok "kwnode call --json: one line of JSON with the text form's shape and values; a remote error exits 1 on stderr" \
    || ko "call --json: rc=$rc/$rcj/$rcb $(head -c 300 $tmp/call.json) $(grep -v INF $tmp/call.err $tmp/bad.err | tail -3)"

echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
