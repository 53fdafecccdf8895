#!/bin/sh
# bench_net_swarm: connection setup, one-stream throughput and memory of the C swarm next to
# js-libp2p, measured in one run on 127.0.0.1 (run by `make bench-net`, argument: build dir).
#   handshake: fresh TCP + mss /noise + Noise XX + yamux (dial() until usable), median of N
#   throughput: one yamux stream, 256 MiB in 64 KiB writes to a sink that acks the count
#   ceiling: libsodium ChaCha20-Poly1305 encrypt on 64 KiB (bench_net_aead), measured right
#            before each of the three C transfers; the goal compares each run with its own
#            ceiling (median of the three ratios)
#   memory: pool bytes in use per idle connection / per open idle stream (C only)
# Both sides of each pair are separate processes driven by the line protocol of
# tests/interop/peer.mjs. Env: BENCH_DIALS (default 200), BENCH_MIB (default 256),
# BENCH_SKIP_JS=1 (C only, for A/B runs of two builds).
set -eu
o=${1:-build/bench}
peer=$o/tools/interop/kw_interop_peer
aead=$o/tools/bench/bench_net_aead
js="node tests/interop/peer.mjs"
dials=${BENCH_DIALS:-200}
mib=${BENCH_MIB:-256}
bytes=$((mib * 1048576))
tmp=$(mktemp -d)
trap 'exec 7>&- 2>/dev/null || true; rm -rf "$tmp"' EXIT

[ -x "$peer" ] || { echo "bench_net_swarm: $peer missing (make tools)" >&2; exit 1; }
if [ ! -d tests/interop/node_modules ]; then
    echo "bench_net_swarm: tests/interop/node_modules missing (make deps)" >&2; exit 1
fi

# run_pair <listener cmd> <dialer cmd> <commands for the dialer, with @MA@ and @ID@>
run_pair() {
    mkfifo "$tmp/in"
    $1 < "$tmp/in" > "$tmp/l.out" 2> "$tmp/l.err" &
    lpid=$!
    exec 7> "$tmp/in"
    i=0
    while ! grep -q '^ready' "$tmp/l.out" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 600 ] || { echo "listener did not start" >&2; cat "$tmp/l.err" >&2; exit 1; }
        sleep 0.1
    done
    ma=$(grep '^listen' "$tmp/l.out" | head -1 | cut -d' ' -f2)
    id=$(grep '^peer-id' "$tmp/l.out" | cut -d' ' -f2)
    printf '%s\n' "$3" | sed "s|@MA@|$ma|g; s|@ID@|$id|g" > "$tmp/cmds"
    # through a pipe: the C peer watches stdin with epoll, which refuses regular files
    cat "$tmp/cmds" | $2 > "$tmp/d.out" 2> "$tmp/d.err" || true
    echo stats >&7
    sleep 0.3
    echo quit >&7
    exec 7>&-
    wait $lpid || true
    rm -f "$tmp/in"
}

field() { grep "^ok $1" "$2" | head -${3:-1} | tail -1 | cut -d' ' -f$4; }

hs_cmds="dial @MA@
dialbench @MA@ $dials
quit"
sink_cmds="dial @MA@
sink @ID@ $bytes
quit"
# libsodium encrypt MiB/s on 64 KiB messages, measured now (128 MiB, no handshakes)
ceiling() { "$aead" 128 0 | awk '/ceiling/ { for (i = 1; i <= NF; i++) if ($i == "encrypt") { print $(i + 1); exit } }'; }

echo "C -> C ($dials dials)..."
run_pair "$peer" "$peer --no-listen" "$hs_cmds"
c_hs=$(field dialbench "$tmp/d.out" 1 3); c_hs10=$(field dialbench "$tmp/d.out" 1 4); c_hs90=$(field dialbench "$tmp/d.out" 1 5)
# Each transfer gets its own ceiling, measured just before it: on a shared machine the speed
# of both drifts within seconds, so only a ratio of neighbours means something.
c_t="" ceils="" ratios=""
for r in 1 2 3; do
    echo "C -> C one stream, $mib MiB (run $r of 3, ceiling measured first)..."
    cl=$(ceiling)
    run_pair "$peer" "$peer --no-listen" "$sink_cmds"
    t=$(field sink "$tmp/d.out" 1 4)
    c_t="$c_t $t" ceils="$ceils $cl" ratios="$ratios $(awk -v a="$t" -v b="$cl" 'BEGIN { printf "%.1f", 100 * a / b }')"
done
c_t=${c_t# } ceils=${ceils# } ratios=${ratios# }

if [ "${BENCH_SKIP_JS:-0}" = 1 ]; then
    j_hs=0 j_hs10=- j_hs90=- j_t="0 0 0"
else
    echo "js -> js ($dials dials, 3 x $mib MiB)..."
    run_pair "$js" "$js --no-listen" "dial @MA@
dialbench @MA@ $dials
sink @ID@ $bytes
sink @ID@ $bytes
sink @ID@ $bytes
quit"
    j_hs=$(field dialbench "$tmp/d.out" 1 3); j_hs10=$(field dialbench "$tmp/d.out" 1 4); j_hs90=$(field dialbench "$tmp/d.out" 1 5)
    j_t="$(field sink "$tmp/d.out" 1 4) $(field sink "$tmp/d.out" 2 4) $(field sink "$tmp/d.out" 3 4)"
fi

echo "C memory (1 idle connection, then 100 idle streams)..."
run_pair "$peer" "$peer --no-listen" "stats
dial @MA@
protocols @ID@
wait 200
stats
hold @ID@ 100
wait 200
stats
release @ID@
wait 200
stats
quit"
pb() { grep '^ok stats' "$tmp/d.out" | sed -n "${1}p" | sed 's/.*poolbytes=//'; }
m0=$(pb 1); m1=$(pb 2); m2=$(pb 3); m3=$(pb 4)

med3() { printf '%s\n' $1 | sort -n | sed -n 2p; }
c_tm=$(med3 "$c_t"); j_tm=$(med3 "$j_t"); ceil=$(med3 "$ceils"); c_rm=$(med3 "$ratios")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "?" }'; }
pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.0f%%", 100 * a / b; else print "?" }'; }

echo
echo "                                   C (kwaainet-edge)      js-libp2p 3.3.11      goal"
printf "handshake + yamux, median ms       %-22s %-21s C <= js/5 (%s ms): C is %sx faster\n" \
    "$c_hs (p10 $c_hs10 p90 $c_hs90)" "$j_hs (p10 $j_hs10 p90 $j_hs90)" \
    "$(awk -v j="$j_hs" 'BEGIN { printf "%.2f", j / 5 }')" "$(ratio "$j_hs" "$c_hs")"
printf "one stream, MiB/s (median of 3)    %-22s %-21s C >= 60%% of ceiling: %s%% (median of the runs' ratios)\n" "$c_tm ($c_t)" "$j_tm ($j_t)" "$c_rm"
printf "ChaCha20-Poly1305 ceiling, MiB/s   %-22s (libsodium encrypt, 64 KiB messages, just before each C run)\n" "$ceil ($ceils)"
printf "one stream / ceiling, per run      %-22s\n" "$(printf '%s%% ' $ratios)"
printf "pool bytes, idle connection        %-22s goal < 16384\n" "$((m1 - m0))"
printf "pool bytes per open idle stream    %-22s (100 streams)\n" "$(((m2 - m1) / 100))"
printf "pool bytes after release           %-22s (back to the idle connection: %s)\n" "$m3" "$m1"
