#!/bin/sh
# The status page as a browser renders it (doc/status.md): headless Chromium (Debian package
# `chromium`, installed by tools/install-deps.sh) loads http://127.0.0.1:<port>/ from a running
# kwnode, and the DOM it dumps after running the page's inline script must show the peer id,
# the policy state and a chart whose points the browser itself counted through the SVG DOM
# (SVGPolylineElement.points) equal to what the node says it drew (data-n), with a non-empty
# bounding box. The page may load nothing from elsewhere (the unit test checks the HTML for
# external references, the node sends a Content-Security-Policy of default-src 'none', and
# Chromium runs here with every host but 127.0.0.1 unresolvable), so it renders offline.
# Saves the screenshot as <outdir>/status.png.
# About 30 s (two Chromium starts; the node waits for its second history sample).
# usage: test_status_page.sh path/to/kwnode outdir
set -u
K=$1 OUT=$2
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
    echo "FAIL - chromium is not installed (sudo sh tools/install-deps.sh installs it)"
    exit 1
fi
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

for try in 1 2 3 4 5; do
    port=$((20000 + ($$ * 13 + try * 977) % 30000))
    printf 'status_port = %s\nshutdown_drain_ms = 200\nlog_level = 3\n' $port > $tmp/c.conf
    "$K" run -c $tmp/c.conf -d $tmp/data -l /ip4/127.0.0.1/tcp/0 > $tmp/out 2> $tmp/err &
    pid=$!
    i=0; while [ $i -lt 100 ] && ! grep -q ' ready' $tmp/err; do sleep 0.1; i=$((i + 1)); done
    grep -q "status page http://127.0.0.1:$port/" $tmp/err && break
    kill $pid; wait $pid 2>/dev/null; pid=
done
[ -n "$pid" ] || { echo "FAIL - no node with a free status port"; cat $tmp/err; exit 1; }
peer=$(sed -n 's/^peer-id //p' $tmp/out)
url=http://127.0.0.1:$port/

# Chromium as root needs --no-sandbox; a profile of its own; nothing but loopback resolves.
chrome() {
    timeout 50 "$CHROMIUM" --headless --no-sandbox --disable-gpu --no-first-run \
        --user-data-dir=$tmp/profile --host-resolver-rules="MAP * ~NOTFOUND, EXCLUDE 127.0.0.1" \
        --window-size=900,1000 "$@" 2>>$tmp/chromium.log
}
chrome --dump-dom "$url" > $tmp/dom.html; rc=$?
[ $rc -eq 0 ] && [ -s $tmp/dom.html ] && ok "chromium loaded $url" || { ko "chromium --dump-dom: rc=$rc"; tail -5 $tmp/chromium.log; }
grep -q "<td id=\"peer-id\">$peer</td>" $tmp/dom.html && ok "the page shows the peer id" || ko "peer id $peer not in the DOM"
grep -q '<span id="state" class="contributing">contributing</span>' $tmp/dom.html \
    && ok "the page shows the policy state" || ko "state not in the DOM"
# what the browser counted vs what the node drew
drawn=$(grep -o 'data-n="[0-9]*"' $tmp/dom.html | tr -dc '0-9\n' | awk '{s+=$1} END {print s+0}')
line=$(grep -o '<p id="rendered" data-points="[0-9]*">chart: [^<]*' $tmp/dom.html)
counted=$(echo "$line" | sed -n 's/.*data-points="\([0-9]*\)".*/\1/p')
w=$(echo "$line" | sed -n 's/.* points, \([0-9]*\)x\([0-9]*\) px/\1/p')
[ -n "$counted" ] && [ "$counted" -gt 0 ] && [ "$counted" = "$drawn" ] && [ "${w:-0}" -gt 600 ] \
    && echo "$line" | grep -q 'chart: 5 series' \
    && ok "the chart rendered: the browser counted $counted points in 5 series (node drew $drawn), ${w} px wide" \
    || ko "chart: browser '$line', node drew $drawn"
mkdir -p "$OUT"
rm -f "$OUT/status.png"
chrome --screenshot="$(cd "$OUT" && pwd)/status.png" "$url" >/dev/null; rc=$?
if [ $rc -eq 0 ] && [ "$(head -c 8 "$OUT/status.png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] \
    && [ "$(stat -c %s "$OUT/status.png")" -gt 10000 ]; then
    ok "screenshot saved: $OUT/status.png ($(stat -c %s "$OUT/status.png") bytes)"
else
    ko "screenshot: rc=$rc"
fi
curl -s http://127.0.0.1:$port/metrics | grep -q '^kwnode_status_http_requests_total [2-9]' \
    && ok "the node counted the browser's requests" || ko "browser requests not counted"
kill -TERM $pid; wait $pid; rc=$?; pid=
[ $rc -eq 0 ] && ok "node exits 0 on SIGTERM" || ko "node exit $rc"
echo "test_status_page.sh: $pass passed, $fail failed"
[ $fail -eq 0 ]
