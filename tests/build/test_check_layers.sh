#!/bin/sh
# tools/check-layers.sh must be able to fail: tiny C files compiled into a fake build tree
# with a table of its own. A downward edge passes; an upward edge, two folders using each
# other (even when the table allows both directions), an object in a folder the table does
# not name, and a table naming a folder without a line of its own each fail, saying which.
#   test_check_layers.sh            (from the top of the source tree; needs cc and nm)
set -eu
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
CC=${HOSTCC:-cc}
check=$(pwd)/tools/check-layers.sh
[ -f "$check" ] || { echo "error: run from the top of the source tree (no tools/check-layers.sh)" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# obj <tree> <path.o> <C source>: compile one object into the fake build tree.
obj() {
    mkdir -p "$tmp/$1/$(dirname "$2")"
    printf '%s\n' "$3" > "$tmp/src.c"
    "$CC" -std=c11 -c "$tmp/src.c" -o "$tmp/$1/$2"
}
# run <tree> [args...]: the checker's output in $out, its exit status in $rc.
run() {
    t=$1; shift
    rc=0
    out=$(cd "$tmp" && sh "$check" -t "$tmp/layers.txt" "$t" "$@" 2>&1) || rc=$?
}
has() { case $out in *"$1"*) return 0 ;; esac; return 1; }

cat > "$tmp/layers.txt" <<'EOF'
# test table
kernel:
net/peer:           kernel
net/swarm:          kernel net/peer   # comment after the list
lo: hi
hi: lo
app:                *
proto:
*:                  proto
EOF

# A tree that follows the table: app -> net/swarm -> net/peer -> kernel; kernel/sub is kernel.
obj good kernel/pool.o     'int kw_pool_alloc(void); int kw_pool_alloc(void) { return 0; }'
obj good kernel/sub/sched.o 'int kw_pool_alloc(void); int kw_sched_run(void); int kw_sched_run(void) { return kw_pool_alloc(); }'
obj good net/peer/key.o    'int kw_pool_alloc(void); int kw_key_new(void); int kw_key_new(void) { return kw_pool_alloc(); }'
obj good net/swarm/swarm.o 'int kw_key_new(void); int kw_pb_use(void); int kw_swarm_up(void); int kw_swarm_up(void) { return kw_key_new() + kw_pb_use(); }'
obj good proto/msg.pb.o    'int kw_pb_use(void); int kw_pb_use(void) { return 1; }'
obj good app/main.o        'int kw_swarm_up(void); int kw_sched_run(void); int kw_from_test_harness(void); int main(void) { return kw_swarm_up() + kw_sched_run() + kw_from_test_harness(); }'
run good
if [ $rc -eq 0 ] && has "6 objects in 5 folders, 5 edges between folders"; then
    ok "a tree that follows the table passes: $out"
else
    ko "a tree that follows the table passes (exit $rc): $out"
fi

# Upward edge: kernel uses the swarm.
cp -R "$tmp/good" "$tmp/up"
obj up kernel/initcalls.o 'int kw_swarm_up(void); int kw_init(void); int kw_init(void) { return kw_swarm_up(); }'
run up
if [ $rc -eq 1 ] && has "error: kernel/initcalls.o uses kw_swarm_up defined in net/swarm/swarm.o: kernel may not use net/swarm"; then
    ok "an upward edge fails naming the symbol and both folders"
else
    ko "an upward edge fails naming the symbol and both folders (exit $rc): $out"
fi
# The same tree passes when the Makefile's object list leaves that object out (a stale one).
run up up/kernel/pool.o up/kernel/sub/sched.o up/net/peer/key.o up/net/swarm/swarm.o up/proto/msg.pb.o up/app/main.o
if [ $rc -eq 0 ]; then ok "only the objects listed are checked"; else ko "only the objects listed are checked (exit $rc): $out"; fi

# Two folders using each other fail even though the table lets each use the other.
obj cycle lo/a.o 'int kw_hi(void); int kw_lo(void); int kw_lo(void) { return kw_hi(); }'
obj cycle hi/b.o 'int kw_lo(void); int kw_hi(void); int kw_hi(void) { return kw_lo(); }'
run cycle
if [ $rc -eq 1 ] && has "error: folders use each other: hi -> lo -> hi"; then
    ok "a cycle between folders fails even when the table allows it"
else
    ko "a cycle between folders fails even when the table allows it (exit $rc): $out"
fi

# A folder the table does not name.
cp -R "$tmp/good" "$tmp/unknown"
obj unknown misc/util.o 'int kw_misc(void); int kw_misc(void) { return 0; }'
run unknown
if [ $rc -eq 1 ] && has "error: misc/util.o: folder misc is not in the layering table"; then
    ok "an object in a folder missing from the table fails"
else
    ko "an object in a folder missing from the table fails (exit $rc): $out"
fi

# A typo in the table is an error, not a silently empty permission.
sed -i 's|^net/swarm: .*|net/swarm: kernel net/pear|' "$tmp/layers.txt"
run good
if [ $rc -eq 2 ] && has "net/swarm may use net/pear, which has no line of its own"; then
    ok "a table naming an unknown folder is rejected"
else
    ko "a table naming an unknown folder is rejected (exit $rc): $out"
fi

echo "test_check_layers: $pass passed, $fail failed"
[ $fail -eq 0 ]
