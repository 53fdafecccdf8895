#!/bin/sh
# The client demo (`make demo`, doc/serve.md "Client and generate"), checked: four kwnode
# servers on 127.0.0.1 hold a 6-block model written by tools/model/kw_model_write, as Petals
# servers would (A 0:2 plus a 2x2 grid of MoE experts, B 2:4, C 4:6, D 2:4 again); they
# announce themselves on the Hivemind DHT. A client bootstrapping from A finds them all
# through the DHT (their addresses come with --peer: the records carry PeerIDs only), runs
# one forward pass through the chain, then generates 32 tokens that must equal a local run of
# the same checkpoint (tools/model/kw_llama_run, int8 as the servers compute) token for
# token; then the same generation with the server of blocks 2:4 killed with kill -9
# mid-generation: the client bans it, re-routes over the other server of 2:4 and ends with
# the same tokens; then that last server of 2:4 stopped (SIGSTOP) for 1.5 s mid-step:
# timeout, ban, a new session after the ban, the same tokens. An expert found through its
# DHT declaration answers rpc_forward, `kwnode moe` mixes the experts it finds through
# their declarations, and a server stopped with SIGTERM reads OFFLINE. Last, a server E that
# starts after the client, with no --peer for it, is resolved by its PeerID over
# /ipfs/kad/1.0.0 and used. Each step prints its time.
# Usage: test_demo.sh BUILD_DIR   (BUILD_DIR holds kwnode and tools/model/)
set -u
O=${1:-build/h}
K=$O/kwnode
W=$O/tools/model/kw_model_write
R=$O/tools/model/kw_llama_run
KW_CLEANUP_SIG=KILL
. "$(dirname "$0")/lib.sh"

if ! $K generate --help >/dev/null 2>&1; then
    echo "skip - this kwnode has no client (CONFIG_KW_APP_SERVE)"
    exit 0
fi
for f in $W $R; do
    [ -x $f ] || { echo "skip - $f is not built (make tools)"; exit 0; }
done

t0=$(date +%s.%N)
last=$t0
# step TEXT: prints the time since the start and since the previous step
step() {
    now=$(date +%s.%N)
    printf '[%6.2f s, +%5.2f s] %s\n' $(echo "$now - $t0" | bc) $(echo "$now - $last" | bc) "$1"
    last=$now
}

conf=$tmp/node.conf
cat > $conf <<EOF
conns_per_ip = 256
conns_per_subnet = 256
handshakes_per_ip = 64
handshakes_per_subnet = 64
hivemind_update_period = 2
EOF

M=$tmp/demo-llama
$W --out $M --preset tiny --layers 6 --seed 7 > /dev/null || { ko "model writer"; exit 1; }
printf '1\n17\n42\n99\n3\n' > $tmp/prompt.txt
step "wrote a 6-block tiny LLaMA checkpoint ($M), prompt 1 17 42 99 3"

# serve NAME BLOCKS [options]: a server in the background, its output in $tmp/NAME.out
serve() {
    name=$1 blocks=$2; shift 2
    $K serve --model $M --blocks $blocks --listen /ip4/127.0.0.1/tcp/0 --data-dir $tmp/$name \
        --config $conf "$@" > $tmp/$name.out 2> $tmp/$name.err &
    eval "pid_$name=$!"
    pids="$pids $!"
}
wait_listen() {
    i=0; while [ $i -lt 200 ] && ! grep -q '^announce ' $tmp/$1.out; do sleep 0.05; i=$((i + 1)); done
    grep -q '^announce ' $tmp/$1.out || { ko "server $1 did not start: $(tail -3 $tmp/$1.err)"; exit 1; }
}
addr() { sed -n 's/^listen //p' $tmp/$1.out | head -1; }
peer() { sed -n 's/^peer-id //p' $tmp/$1.out | head -1; }

serve A 0:2 --experts ffn --grid 2 --hidden 32
wait_listen A
BOOT=$(addr A)
serve B 2:4 --bootstrap $BOOT
serve C 4:6 --bootstrap $BOOT
serve D 2:4 --bootstrap $BOOT
for s in B C D; do wait_listen $s; done
step "4 servers up: A 0:2 + experts ffn.<i>.<j>, B 2:4, C 4:6, D 2:4 (bootstrap: A)"

# the DHT view a client gets through A alone
i=0
while :; do
    out=$($K hivemind -d $tmp/cli -b $BOOT servers demo-llama 2>/dev/null)
    [ "$(echo "$out" | grep -c '	ONLINE	')" -eq 4 ] && break
    i=$((i + 1)); [ $i -lt 20 ] || break; sleep 0.5
done
echo "$out" | sed 's/^/    /'
[ "$(echo "$out" | grep -c '	ONLINE	')" -eq 4 ] && echo "$out" | head -1 | grep -q '^demo-llama: 6 blocks, 4 servers$' \
    && ok "the DHT lists the 4 servers ONLINE with their spans (6 blocks from _petals.models)" \
    || ko "DHT view: $out"
line=$(echo "$out" | grep "^$(peer B)	")
case "$line" in *"ONLINE	2:4	"*) ok "B's ServerInfo: ONLINE 2:4, the span it loaded" ;; *) ko "B: $line" ;; esac
step "servers found through the Hivemind DHT"

# the local reference: the same checkpoint, int8, greedy
mkdir -p $tmp/ref
$R --model $M --out $tmp/ref --path int8 --prompt 1,17,42,99,3 --gen 32 > /dev/null \
    || { ko "kw_llama_run"; exit 1; }
ref=$(sed -n 2p $tmp/ref/tokens.txt)
step "local run (kw_llama_run, int8): $ref"

# gen OUT N [options]: kwnode generate through the DHT, knowing the servers' addresses
gen() {
    o=$1 n=$2; shift 2
    $K generate --model $M --prompt-tokens $tmp/prompt.txt -n $n --data-dir $tmp/cli --bootstrap $BOOT \
        --peer $(addr B) --peer $(addr C) --peer $(addr D) "$@" > $tmp/$o.out 2> $tmp/$o.err
}

gen fwd 1; rc=$?
first=$(echo $ref | cut -d' ' -f1)
[ $rc -eq 0 ] && [ "$(cat $tmp/fwd.out)" = "$first" ] \
    && ok "one forward pass through the chain: next token $first as the local run" \
    || ko "forward: rc=$rc got '$(cat $tmp/fwd.out)' want $first: $(tail -3 $tmp/fwd.err)"
grep 'route for' $tmp/fwd.err | sed 's/^/    /'
step "forward pass"

gen g32 32; rc=$?
got=$(tr '\n' ' ' < $tmp/g32.out | sed 's/ $//')
[ $rc -eq 0 ] && [ "$got" = "$ref" ] && ok "32 tokens through remote blocks equal the local run token for token" \
    || ko "generate: rc=$rc got '$got' want '$ref': $(tail -3 $tmp/g32.err)"
tail -1 $tmp/g32.err | sed 's/^/    /'
step "32-token generation (rpc_inference sessions)"

gen fw32 32 --forward; rc=$?
got=$(tr '\n' ' ' < $tmp/fw32.out | sed 's/ $//')
[ $rc -eq 0 ] && [ "$got" = "$ref" ] && ok "the same 32 tokens with rpc_forward of the whole prefix per token" \
    || ko "generate --forward: rc=$rc got '$got' want '$ref': $(tail -3 $tmp/fw32.err)"
tail -1 $tmp/fw32.err | sed 's/^/    /'
step "32-token generation (rpc_forward)"

# the same with the server of 2:4 on the route killed mid-generation
gen kill 32 --step-delay-ms 60 &
gpid=$!
i=0; while [ $i -lt 200 ] && ! grep -q 'token 8 of' $tmp/kill.err 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
hop=$(sed -n 's/.* 2:4@\([^.]*\)\.\..*/\1/p' $tmp/kill.err | head -1)
victim=
for s in B D; do case "$(peer $s)" in "$hop"*) victim=$s ;; esac; done
if [ -n "$victim" ]; then
    eval "kill -9 \$pid_$victim"
    step "kill -9 of server $victim (blocks 2:4) after $(grep -c '^kwnode generate: token' $tmp/kill.err) tokens"
else
    ko "no server of 2:4 on the route: $(grep 'route for' $tmp/kill.err)"
fi
wait $gpid; rc=$?
got=$(tr '\n' ' ' < $tmp/kill.out | sed 's/ $//')
grep -E 'failed|route for' $tmp/kill.err | sed 's/^/    /'
[ $rc -eq 0 ] && [ "$got" = "$ref" ] \
    && ok "with $victim killed mid-generation the client re-routes and ends with the same 32 tokens" \
    || ko "failover: rc=$rc got '$got' want '$ref': $(tail -3 $tmp/kill.err)"
grep -q 'failed: ' $tmp/kill.err && [ "$(grep -c 'route for' $tmp/kill.err)" -ge 2 ] \
    && ok "the failure was seen, the server banned and blocks 2:6 routed again" \
    || ko "no failure / re-route in the log"
step "generation with a server killed"

# the remaining server of 2:4 stops answering mid-step (SIGSTOP) and comes back 1.5 s later:
# the step in flight times out, the server is banned, no chain is left until the ban ends,
# then a new session on the same server replays the history
other=B; [ "$victim" = B ] && other=D
gen stop 32 --step-delay-ms 60 --timeout-ms 700 &
gpid=$!
i=0; while [ $i -lt 200 ] && ! grep -q 'token 8 of' $tmp/stop.err 2>/dev/null; do sleep 0.05; i=$((i + 1)); done
eval "kill -STOP \$pid_$other"
step "SIGSTOP of server $other (blocks 2:4) after $(grep -c '^kwnode generate: token' $tmp/stop.err) tokens"
sleep 1.5
eval "kill -CONT \$pid_$other"
wait $gpid; rc=$?
got=$(tr '\n' ' ' < $tmp/stop.out | sed 's/ $//')
grep -E 'failed|route for' $tmp/stop.err | sed 's/^/    /'
[ $rc -eq 0 ] && [ "$got" = "$ref" ] && grep -q "on $(peer $other) failed: " $tmp/stop.err \
    && ok "a server that stops answering mid-step times out, is banned, and after its ban a new session ends with the same 32 tokens" \
    || ko "stopped server: rc=$rc got '$got' want '$ref': $(grep -v INF $tmp/stop.err | tail -3)"
step "generation with a server stopped for 1.5 s"

# an expert through its declaration on the DHT (hivemind declare_experts: uid -> PeerID)
epeer=$($K hivemind -d $tmp/cli -b $BOOT get ffn.1.0 2>/dev/null | tr -d '"')
eaddr=$(addr A)
python3 -c 'print("shape 2 32"); print(*[0.01*i for i in range(64)])' > $tmp/x.txt 2>/dev/null \
    || awk 'BEGIN{print "shape 2 32"; for(i=0;i<64;i++) printf "%g ", 0.01*i; print ""}' > $tmp/x.txt
[ "$epeer" = "$(peer A)" ] && $K call $eaddr ffn.1.0 --input $tmp/x.txt --data-dir $tmp/cli > $tmp/e.out 2> $tmp/e.err \
    && [ "$(grep -c . $tmp/e.out)" -eq 3 ] \
    && ok "expert ffn.1.0 found through its DHT declaration on A answers rpc_forward (2 x 32)" \
    || ko "expert: declared by '$epeer' (A is $(peer A)): $(head -3 $tmp/e.out) $(tail -2 $tmp/e.err)"
step "MoE expert via the DHT"

# hivemind's mixture of experts over the grid A declares: k = 1 is the chosen expert's own
# answer; k = 2 mixes two per row
$K moe --prefix ffn --grid 2x2 --input $tmp/x.txt -k 1 --bootstrap $BOOT --peer $eaddr \
    --data-dir $tmp/cli > $tmp/moe1.out 2> $tmp/moe1.err; rc=$?
u0=$(sed -n 's/^kwnode moe: row 0: \([^ ]*\) (1.000)$/\1/p' $tmp/moe1.err)
u1=$(sed -n 's/^kwnode moe: row 1: \([^ ]*\) (1.000)$/\1/p' $tmp/moe1.err)
python3 -c 'print("shape 1 32"); print(*[0.01*i for i in range(32)])' > $tmp/x0.txt 2>/dev/null
$K call $eaddr "$u0" --input $tmp/x0.txt --data-dir $tmp/cli 2>/dev/null | sed -n 2p > $tmp/call0.out
[ $rc -eq 0 ] && grep -q "^kwnode moe: beam search over ffn, grid 2 x 2: [0-9]* prefix records read, [12] experts chosen$" $tmp/moe1.err && [ -n "$u0" ] && [ -n "$u1" ] && [ "$(sed -n 2p $tmp/moe1.out)" = "$(cat $tmp/call0.out)" ] \
    && ok "kwnode moe -k 1: the best expert per row found by beam search over the declarations; row 0 is $u0's own answer" \
    || ko "moe -k 1: rc=$rc row0='$u0' $(grep -v INF $tmp/moe1.err | head -3)"
$K moe --prefix ffn --grid 2x2 --input $tmp/x.txt -k 2 --bootstrap $BOOT --peer $eaddr \
    --data-dir $tmp/cli > $tmp/moe2.out 2> $tmp/moe2.err; rc=$?
grep '^kwnode moe: row' $tmp/moe2.err | sed 's/^/    /'
[ $rc -eq 0 ] && [ "$(grep -c '^kwnode moe: row [01]: ffn\.[01]\.[01] ([0-9.]*) ffn\.[01]\.[01] ([0-9.]*)$' $tmp/moe2.err)" -eq 2 ] \
    && [ "$(grep -c . $tmp/moe2.out)" -eq 3 ] \
    && ok "kwnode moe -k 2: two experts per row, mixed by the softmax of their scores" \
    || ko "moe -k 2: rc=$rc $(grep -v INF $tmp/moe2.err | head -3)"
step "mixture of experts through the DHT (kwnode moe)"

# SIGTERM: kwnode serve announces OFFLINE before it exits, so clients stop routing to it
kill -TERM $pid_C
wait $pid_C; rc=$?
line=$($K hivemind -d $tmp/cli -b $BOOT servers demo-llama 2>/dev/null | grep "^$(peer C)	")
case "$line" in *"	OFFLINE	4:6	"*) [ $rc -eq 0 ] && ok "C stopped with SIGTERM: exit 0, its ServerInfo OFFLINE at once" || ko "C exit $rc" ;;
    *) ko "C after SIGTERM: rc=$rc '$line'" ;; esac
step "SIGTERM of server C"

# a server that joins after the client started, with no --peer for it: C (the only holder of
# 4:6) is OFFLINE, so the client finds no route and reads the records again; E then starts
# with 4:6, is found by its ServerInfo, its PeerID resolved to an address over
# /ipfs/kad/1.0.0 (E and A run it in server mode, as p2pd does) and used
gen late 8 &
gpid=$!
sleep 1
serve E 4:6 --bootstrap $BOOT
wait_listen E
step "server E (blocks 4:6) started after the client, no --peer for it"
wait $gpid; rc=$?
got=$(tr '\n' ' ' < $tmp/late.out | sed 's/ $//')
want=$(echo $ref | cut -d' ' -f1-8)
grep -E 'found over|route for' $tmp/late.err | sed 's/^/    /'
[ $rc -eq 0 ] && [ "$got" = "$want" ] && grep -q "route for blocks .*4:6@$(peer E | cut -c1-16)" $tmp/late.err \
    && ok "E, started after the client and given by no --peer, is resolved by PeerID and runs 4:6: the same 8 tokens" \
    || ko "late server: rc=$rc got '$got' want '$want': $(grep -v INF $tmp/late.err | tail -3)"
step "generation through a server that joined later"

echo "$pass passed, $fail failed ($(echo "$(date +%s.%N) - $t0" | bc | cut -c1-5) s)"
[ $fail -eq 0 ]
