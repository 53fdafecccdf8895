# Shared by the process tests in tests/build (sourced: `. "$(dirname "$0")/lib.sh"`): the
# pass/fail counters and ok/ko, a scratch directory $tmp, and $pids, the processes stopped at
# exit with KW_CLEANUP_SIG (TERM unless the script sets it first) before $tmp is removed.
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
tmp=$(mktemp -d)
pids=
cleanup() {
    for p in $pids; do kill -"${KW_CLEANUP_SIG:-TERM}" $p 2>/dev/null; done
    for p in $pids; do wait $p 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP
