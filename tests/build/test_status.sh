#!/bin/sh
# The status endpoint and `kwnode status` against a running kwnode on loopback (doc/status.md):
# the three GETs answer with what the node is, bad requests get 400/404/405/431/408/503 and
# are counted while the node keeps serving, `kwnode status` exits 0 contributing, 3 paused
# (a fake on-battery sysfs tree), 1 when no node runs. About 15 s (one 5 s read timeout).
# usage: test_status.sh path/to/kwnode
set -u
K=$1
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
pids=""
cleanup() { for p in $pids; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
command -v curl >/dev/null || { echo "test_status.sh: needs curl"; exit 1; }
PY=/usr/bin/python3

# Starts a node with data dir $1 and config $2 (plus a free status port), kwnode run options
# $3.. after them; sets $port, $pid.
nstart=0
start() {
    d=$1 conf=$2; shift 2
    nstart=$((nstart + 1))   # each node its own candidates: earlier nodes still hold theirs
    for try in 1 2 3 4 5; do
        port=$((20000 + ($$ * 7 + nstart * 3571 + try * 911) % 30000))
        { cat "$conf"; echo "status_port = $port"; } > "$d.conf"
        "$K" run -c "$d.conf" -d "$d" -l /ip4/127.0.0.1/tcp/0 "$@" > "$d.out" 2> "$d.err" &
        pid=$!
        i=0; while [ $i -lt 100 ] && ! grep -q ' ready' "$d.err"; do sleep 0.1; i=$((i + 1)); done
        if grep -q "status page http://127.0.0.1:$port/" "$d.err"; then
            pids="$pids $pid"
            return 0
        fi
        kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null  # port taken: another one
    done
    echo "could not start a node with a free status port"; cat "$d.err"; exit 1
}

# Sends raw bytes ($1, printf format) to the status port; prints the status line.
raw() {
    $PY - "$port" "$1" "${2:-0}" <<'EOF'
import socket, sys, time
port, data, hold = int(sys.argv[1]), sys.argv[2].encode().decode('unicode_escape').encode('latin-1'), float(sys.argv[3])
s = socket.create_connection(("127.0.0.1", port), timeout=10)
if data:
    s.sendall(data)
time.sleep(hold)
out = b""
while True:
    try:
        b = s.recv(65536)
    except ConnectionResetError:
        break
    if not b: break
    out += b
print(out.split(b"\r\n")[0].decode() if out else "(closed)")
EOF
}

printf 'shutdown_drain_ms = 200\nlog_level = 3\n' > $tmp/base.conf
start $tmp/a $tmp/base.conf
peer=$(sed -n 's/^peer-id //p' $tmp/a.out)
[ -n "$peer" ] && ok "node up, status endpoint on 127.0.0.1:$port" || ko "no peer-id line"
ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port " && ! ss -ltn | grep -q "0.0.0.0:$port " \
    && ok "the endpoint listens on 127.0.0.1 only" || ko "listen socket: $(ss -ltn | grep ":$port ")"

code=$(curl -s -o $tmp/page.html -w '%{http_code} %{content_type}' http://127.0.0.1:$port/)
[ "$code" = "200 text/html; charset=utf-8" ] && grep -q "<td id=\"peer-id\">$peer</td>" $tmp/page.html \
    && grep -q '<svg id="chart"' $tmp/page.html && ok "GET / : the HTML page names the peer and has the chart" \
    || ko "GET / : $code"
code=$(curl -s -o $tmp/s.json -w '%{http_code}' http://127.0.0.1:$port/status.json)
[ "$code" = 200 ] && $PY -c "
import json,sys; d=json.load(open('$tmp/s.json'))
assert d['peer_id']=='$peer', d['peer_id']
assert d['policy']['state']=='contributing' and d['contributing'] is True
assert d['served']==[] and d['addresses']['listen'][0].startswith('/ip4/127.0.0.1/tcp/')
assert d['reachability']['verdict']=='local-only' and 'listen = /ip4/0.0.0.0/tcp/' in d['reachability']['fix']
assert any(p['name']=='swarm_conn' for p in d['memory']['pools'])
" && ok "GET /status.json : valid JSON with peer id, state, addresses, reachability, pools" || ko "status.json: $code $(cat $tmp/s.json)"
# some traffic, so the counters move
"$K" ping $(sed -n 's/^listen //p' $tmp/a.out | head -1) -n 3 -i 10 >/dev/null 2>&1
code=$(curl -s -o $tmp/m.txt -w '%{http_code}' http://127.0.0.1:$port/metrics)
in=$(sed -n 's/^kwnode_bytes_total{direction="in"} //p' $tmp/m.txt)
[ "$code" = 200 ] && grep -q '^kwnode_policy_state{state="contributing"} 1$' $tmp/m.txt \
    && grep -q '^# TYPE kwnode_requests_total counter$' $tmp/m.txt && [ "${in:-0}" -gt 0 ] \
    && grep -q '^kwnode_pool_high_water{pool="swarm_conn"} [1-9]' $tmp/m.txt \
    && ok "GET /metrics : Prometheus text; bytes ($in in) and pool high-water moved after a ping" \
    || ko "metrics: $code in=$in"

# bad requests: answered, counted, the node keeps serving
[ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/nope)" = 404 ] && ok "unknown path: 404" || ko "404"
[ "$(curl -s -o /dev/null -w '%{http_code}' -X POST http://127.0.0.1:$port/)" = 405 ] && ok "POST: 405" || ko "405"
r=$(raw 'GET / HTTP/1.1\r\nno colon here\r\n\r\n'); [ "$r" = "HTTP/1.1 400 Bad Request" ] && ok "malformed header: 400" || ko "400: $r"
r=$(raw 'GET / HTTP/3.0\r\n\r\n'); [ "$r" = "HTTP/1.1 505 HTTP Version Not Supported" ] && ok "HTTP/3.0: 505" || ko "505: $r"
big=$(head -c 3000 /dev/zero | tr '\0' a)
r=$(raw "GET / HTTP/1.1\\r\\nX: $big\\r\\n\\r\\n"); [ "$r" = "HTTP/1.1 431 Request Header Fields Too Large" ] && ok "3 KB head: 431" || ko "431: $r"
# two idle clients hold both slots (CONFIG_KW_STATUS_CLIENTS=2): a third is told 503
raw 'GET / HTTP/1.1\r\n' 0 > $tmp/slow1 & s1=$!
raw 'GET / HTTP/1.1\r\n' 0 > $tmp/slow2 & s2=$!
sleep 0.5
r=$(raw ''); [ "$r" = "HTTP/1.1 503 Service Unavailable" ] && ok "third client while two are idle: 503" || ko "503: $r"
wait $s1 $s2
[ "$(cat $tmp/slow1)" = "HTTP/1.1 408 Request Timeout" ] && ok "an idle client gets 408 after the read timeout" || ko "408: $(cat $tmp/slow1)"
code=$(curl -s -o $tmp/m2.txt -w '%{http_code}' http://127.0.0.1:$port/metrics)
[ "$code" = 200 ] && grep -q '^kwnode_errors_total{reason="http_bad_request"} 2$' $tmp/m2.txt \
    && grep -q '^kwnode_errors_total{reason="http_not_found"} 1$' $tmp/m2.txt \
    && grep -q '^kwnode_errors_total{reason="http_bad_method"} 1$' $tmp/m2.txt \
    && grep -q '^kwnode_errors_total{reason="http_too_large"} 1$' $tmp/m2.txt \
    && grep -q '^kwnode_errors_total{reason="http_busy"} 1$' $tmp/m2.txt \
    && grep -q '^kwnode_errors_total{reason="http_timeout"} 2$' $tmp/m2.txt \
    && ok "after the bad requests the node still serves, each refusal counted by reason" \
    || { ko "counts after bad requests: $code"; grep http_ $tmp/m2.txt; }

# kwnode status through the control socket
out=$("$K" status -d $tmp/a); rc=$?
[ $rc -eq 0 ] && echo "$out" | grep -q "^peer id: *$peer$" && echo "$out" | grep -q '^state: *contributing' \
    && echo "$out" | grep -q '^reachability: *local-only' && echo "$out" | grep -q '^  fix: ' \
    && ok "kwnode status: summary with peer id, state, reachability and fix; exit 0" || ko "kwnode status: rc=$rc $out"
"$K" status -d $tmp/a --json > $tmp/cli.json; rc=$?
[ $rc -eq 0 ] && $PY -c "import json; d=json.load(open('$tmp/cli.json')); assert d['peer_id']=='$peer'" \
    && ok "kwnode status --json: the same JSON document" || ko "status --json: rc=$rc"

# a paused node: on battery (fake sysfs tree) with policy_require_ac
mkdir -p $tmp/sys/sys/class/power_supply/AC $tmp/sys/sys/class/power_supply/BAT0
printf 'Mains\n' > $tmp/sys/sys/class/power_supply/AC/type; printf '0\n' > $tmp/sys/sys/class/power_supply/AC/online
b=$tmp/sys/sys/class/power_supply/BAT0
printf 'Battery\n' > $b/type; printf '1\n' > $b/present; printf '80\n' > $b/capacity; printf 'Discharging\n' > $b/status
printf 'shutdown_drain_ms = 200\nsysfs_root = %s\npolicy_require_ac = yes\n' $tmp/sys > $tmp/batt.conf
start $tmp/b $tmp/batt.conf
out=$("$K" status -d $tmp/b); rc=$?
[ $rc -eq 3 ] && echo "$out" | grep -q '^state: *paused since start: on battery power' && echo "$out" | grep -q 'battery 80%' \
    && ok "kwnode status on a paused node: exit 3, says why (battery)" || ko "paused: rc=$rc $out"

# a paused node that serves (doc/serve.md "Pausing"): a call is refused with the pause named
{ cat $tmp/batt.conf; printf 'hivemind = yes\nserve_experts = ffn\nserve_grid = 1\nserve_hidden = 16\n'; } > $tmp/bserve.conf
start $tmp/c $tmp/bserve.conf
addr=$(sed -n 's/^listen //p' $tmp/c.out | head -1)
$PY -c "print('shape 1 16'); print(*[0.1 * i for i in range(16)])" > $tmp/x.txt
"$K" call "$addr" ffn.0.0 --input $tmp/x.txt --data-dir $tmp/cli > $tmp/call.out 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "RuntimeError('server is pausing (contribution policy)" $tmp/call.out \
    && ok "a paused serving node refuses a call, naming the pause" || ko "paused serve: rc=$rc $(cat $tmp/call.out)"

"$K" status -d $tmp/nothing > $tmp/none.out 2>&1; rc=$?
[ $rc -eq 1 ] && grep -q "no node is running with data directory $tmp/nothing" $tmp/none.out \
    && ok "kwnode status without a node: exit 1, says so" || ko "no node: rc=$rc $(cat $tmp/none.out)"
"$K" status --bogus >/dev/null 2>&1; [ $? -eq 2 ] && ok "kwnode status with a bad option: exit 2" || ko "bad option"

# The dial-back check (doc/status.md "Reachability"): h serves rpc_check; r and x bootstrap
# from it and ask it to dial them back. Everything is on 127.0.0.1, which the check does not
# skip (the checker dials only addresses on the IP the caller's connection comes from: here
# loopback), so this proves the mechanism, not reachability from the Internet.
if "$K" hivemind --help >/dev/null 2>&1; then
    printf 'shutdown_drain_ms = 200\nlog_level = 3\nhivemind = on\n' > $tmp/hm.conf
    start $tmp/h $tmp/hm.conf
    haddr=$(sed -n 's/^listen //p' $tmp/h.out | head -1)
    { cat $tmp/hm.conf; echo "hivemind_bootstrap = $haddr"; } > $tmp/hmb.conf
    start $tmp/r $tmp/hmb.conf
    # a port nobody listens on: bind one, note it, close it
    closed=$($PY -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])")
    start $tmp/x $tmp/hmb.conf --announce /ip4/127.0.0.1/tcp/$closed
    i=0; while [ $i -lt 100 ]; do
        grep -q 'reachability: .* peers dialled us back' $tmp/r.err && \
            grep -q 'reachability: .* peers dialled us back' $tmp/x.err && break
        sleep 0.1; i=$((i + 1))
    done
    out=$("$K" status -d $tmp/r)
    # r asks h, and x too when x is up by then: at least one of them dialled r back
    echo "$out" | grep -Eq '^reachability: *reachable: [1-9][0-9]* of [1-9][0-9]* Hivemind peers that checked dialled this node back on a new connection at its listen address' \
        && ok "dial-back: a peer dialled the node back on a new connection; status says reachable" \
        || { ko "dial-back reachable: $out"; tail -5 $tmp/r.err $tmp/h.err; }
    out=$("$K" status -d $tmp/x)
    echo "$out" | grep -Eq "^reachability: *not-reachable: 0 of [1-9][0-9]* Hivemind peers that checked could dial this node back directly at its announced address /ip4/127.0.0.1/tcp/$closed" \
        && echo "$out" | grep -q "^  fix: *forward TCP port $closed on the router to this board's LAN address" \
        && echo "$out" | grep -q "^announcing: */ip4/127.0.0.1/tcp/$closed$" \
        && ok "dial-back with --announce on a closed port: not-reachable, the fix names the port and announce" \
        || { ko "dial-back not reachable: $out"; tail -5 $tmp/x.err; }
    "$K" status -d $tmp/x --json > $tmp/x.json
    $PY -c "
import json; d=json.load(open('$tmp/x.json'))['reachability']
assert d['verdict']=='not-reachable' and d['dial_back']['answered']>=1 and d['dial_back']['available']==0, d
" && ok "status --json: reachability.dial_back has the counts" || ko "dial_back json: $(cat $tmp/x.json)"
    # averaging in the daemon (doc/ml-avg.md "In the daemon"): p and q average a tensor file
    # (all 1.0 and all 3.0) in groups of 2; both status pages count rounds, both files hold 2.0
    printf 'hivemind = on\naveraging_prefix = t\naveraging_size = 4\n' > $tmp/avgchk.conf
    if "$K" config check $tmp/avgchk.conf >/dev/null 2>&1; then
        mkdir -p $tmp/p $tmp/q
        $PY -c "import numpy as np; np.full(1000, 1.0, np.float32).tofile('$tmp/p/t.bin'); np.full(1000, 3.0, np.float32).tofile('$tmp/q/t.bin')"
        printf 'averaging_prefix = kwtest\naveraging_tensor = t.bin\naveraging_target_group_size = 2\naveraging_period = 1\naveraging_match_timeout_ms = 1000\n' > $tmp/avg.conf
        cat $tmp/hm.conf $tmp/avg.conf > $tmp/avgp.conf
        start $tmp/p $tmp/avgp.conf
        paddr=$(sed -n 's/^listen //p' $tmp/p.out | head -1)
        { cat $tmp/avgp.conf; echo "hivemind_bootstrap = $paddr"; } > $tmp/avgq.conf
        start $tmp/q $tmp/avgq.conf
        i=0; while [ $i -lt 100 ]; do
            "$K" status -d $tmp/p | grep -Eq '^averaging: .*: [1-9][0-9]* rounds?, the last' && \
                "$K" status -d $tmp/q | grep -Eq '^averaging: .*: [1-9][0-9]* rounds?, the last' && break
            sleep 0.1; i=$((i + 1))
        done
        out=$("$K" status -d $tmp/q)
        echo "$out" | grep -Eq '^averaging: *(idle|matching|averaging): [1-9][0-9]* rounds?, the last [0-9]+ s ago \(2 peers' \
            && $PY -c "
import numpy as np
for n in 'pq':
    x = np.fromfile('$tmp/' + n + '/t.bin', np.float32)
    assert x.size == 1000 and abs(x - 2.0).max() < 1e-6, (n, x[:4])
" && ok "two kwnode run average their tensor files in the background; status counts the rounds" \
            || { ko "daemon averaging: $out"; tail -5 $tmp/p.err $tmp/q.err; }
        "$K" status -d $tmp/p --json > $tmp/p.json
        $PY -c "
import json; d=json.load(open('$tmp/p.json'))['averaging']
assert d['rounds']>=1 and d['last_group']==2 and d['failures']['round_failed']==0, d
" && ok "status --json: averaging rounds, last group and failures" || ko "averaging json: $(cat $tmp/p.json)"
        # a star: v and w bootstrap from u only, yet the three average in groups of 3
        # (tensors 0, 3 and 6: every file ends at 3.0); v and w reach each other by PeerID
        mkdir -p $tmp/u $tmp/v $tmp/w
        $PY -c "import numpy as np; [np.full(1000, 3.0 * k, np.float32).tofile('$tmp/' + n + '/t.bin') for k, n in enumerate('uvw')]"
        sed 's/kwtest/kwtest3/; s/group_size = 2/group_size = 3/' $tmp/avgp.conf > $tmp/avgu.conf
        echo 'averaging_min_group_size = 3' >> $tmp/avgu.conf
        start $tmp/u $tmp/avgu.conf
        uaddr=$(sed -n 's/^listen //p' $tmp/u.out | head -1)
        { cat $tmp/avgu.conf; echo "hivemind_bootstrap = $uaddr"; } > $tmp/avgv.conf
        start $tmp/v $tmp/avgv.conf
        start $tmp/w $tmp/avgv.conf
        i=0; while [ $i -lt 100 ]; do
            done3=0
            for n in u v w; do
                "$K" status -d $tmp/$n | grep -Eq '^averaging: .*: [1-9][0-9]* rounds?, the last .*\(3 peers' \
                    && done3=$((done3 + 1))
            done
            [ $done3 -eq 3 ] && break
            sleep 0.1; i=$((i + 1))
        done
        out=$("$K" status -d $tmp/w)
        echo "$out" | grep -Eq '^averaging: .*: [1-9][0-9]* rounds?, the last [0-9]+ s ago \(3 peers' \
            && $PY -c "
import numpy as np
for n in 'uvw':
    x = np.fromfile('$tmp/' + n + '/t.bin', np.float32)
    assert x.size == 1000 and abs(x - 3.0).max() < 1e-6, (n, x[:4])
" && ok "three kwnode run in a star (two bootstrapped from the third) average in one group" \
            || { ko "star averaging: $out"; for n in u v w; do tail -n 8 $tmp/$n.err; done; }
    else
        echo "skip - daemon averaging: not built in (CONFIG_KW_APP_AVERAGING)"
    fi
    "$K" run -d $tmp/bad --announce /ip4/0.0.0.0/tcp/4001 > /dev/null 2> $tmp/bad.err; rc=$?
    [ $rc -ne 0 ] && grep -q "announce '/ip4/0.0.0.0/tcp/4001': peers must be able to dial it" $tmp/bad.err \
        && ok "--announce 0.0.0.0 is refused with the reason" || ko "bad announce: rc=$rc $(cat $tmp/bad.err)"
else
    echo "skip - dial-back check: this kwnode has no Hivemind (CONFIG_KW_APP_HIVEMIND)"
fi

for p in $pids; do kill -TERM $p; wait $p; rc=$?; [ $rc -eq 0 ] || ko "node $p exit $rc"; done
pids=""
echo "test_status.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
