#!/bin/sh
# Every int/hex Kconfig option with a range must build and pass the unit tests at both ends
# of its range: a range that admits a value the code cannot take is a bug in the range or in
# the code, and a test that cannot work at an in-range value must skip(), not fail.
# Two host builds from host_defconfig: every ranged option at its minimum, then every one at
# its maximum (the exceptions below stay where a node can still be built, with the reason).
#   [SAN=1] test_kconfig_ranges.sh [min|max ...]      (from the top of the source tree)
# Build dirs: build/check-kconfig-min, build/check-kconfig-max (-san with SAN=1).
set -eu
PYTHON=${PYTHON:-/usr/bin/python3}
SAN=${SAN:-0}
san=; [ "$SAN" = 1 ] && san=-san
ends=${*:-min max}
HOSTARCH=$(uname -m | sed s/aarch64/arm64/)
if [ ! -f Kconfig ] || [ ! -f defconfigs/host_defconfig ]; then
    echo "error: run from the top of the source tree" >&2; exit 2
fi
"$PYTHON" -c 'import kconfiglib' 2>/dev/null || {
    echo "error: $PYTHON cannot import kconfiglib (Debian python3-kconfiglib; make deps)" >&2; exit 2; }

# Options kept off an end of their range, as SYMBOL=value (=default: the Kconfig default), and
# why. Each is a limit of what one build can hold, not a value a test would rather not see: a
# test that fails at an end of a range is a finding (fix the test, make it skip(), or narrow
# the range), never a reason to add a line here.
#  max pool sizes (KW_NET_SWARM_BUFFERS, _NEGOTIATIONS, _STREAMS, _CHUNKS,
#    KW_NET_IDENTIFY_STREAMS, KW_NET_PING_INBOUND_MAX): at their tops the pools alone need
#    more than 32 GiB (65536 x 4 x 64 KiB socket buffers, 1048576 x 16 KiB chunks, ...), more than
#    the largest arena, so no node holds them all; they stay at their defaults and the
#    remaining options (limits, timeouts, tables) take their tops.
#  KW_NET_KAD_BUFFERS: 256 buffers of the largest Kademlia message (4 MiB) are 1 GiB, the
#    largest arena, per node.
keep_min=""
keep_max="CONFIG_KW_NET_SWARM_BUFFERS=default
  CONFIG_KW_NET_SWARM_NEGOTIATIONS=default CONFIG_KW_NET_SWARM_STREAMS=default
  CONFIG_KW_NET_SWARM_CHUNKS=default CONFIG_KW_NET_IDENTIFY_STREAMS=default
  CONFIG_KW_NET_PING_INBOUND_MAX=default CONFIG_KW_NET_KAD_BUFFERS=default"

m() { make --no-print-directory -s O="$O" ARCH="$HOSTARCH" CROSS_COMPILE= SAN="$SAN" "$@"; }

# gen <min|max> <.config> [SYMBOL=value ...]: sets every visible ranged int/hex option of the
# .config to that end of its active range, except the kept ones; prints the values it set.
gen() {
    KCONFIG_CONFIG=$2 "$PYTHON" - "$@" <<'EOF'
import sys, kconfiglib
end, path, keep = sys.argv[1], sys.argv[2], dict(a.split("=", 1) for a in sys.argv[3:])
kconf = kconfiglib.Kconfig("Kconfig", warn_to_stderr=True)
kconf.load_config(path)
# Forget the loaded values of the options about to be set: a range that depends on another
# option (KW_LOG_DEFAULT_LEVEL's top is KW_LOG_LEVEL) would otherwise see a stale value
# outside its new range, and kconfiglib warns.
for sym in kconf.unique_defined_syms:
    if sym.type in (kconfiglib.INT, kconfiglib.HEX) and sym.ranges and \
            "CONFIG_" + sym.name not in keep:
        sym.unset_value()
changed, passes = True, 0
while changed:                       # a range may depend on another option's value
    changed, passes = False, passes + 1
    if passes > 10:
        sys.exit("error: the ranged options do not settle (a kept value outside its range?)")
    for sym in kconf.unique_defined_syms:
        if sym.type not in (kconfiglib.INT, kconfiglib.HEX) or not sym.visibility:
            continue
        name = "CONFIG_" + sym.name
        rng = next(((lo, hi) for lo, hi, cond in sym.ranges if kconfiglib.expr_value(cond)), None)
        if rng is None:
            continue
        base = 16 if sym.type == kconfiglib.HEX else 10
        val = int((rng[0] if end == "min" else rng[1]).str_value, base)
        if keep.get(name) == "default":
            if sym.user_value is not None:
                sym.unset_value()
                changed = True
            continue
        if name in keep:
            val = int(keep[name], 0)
        s = hex(val) if base == 16 else str(val)
        if sym.str_value != s:
            sym.set_value(s)
            changed = True
for sym in kconf.unique_defined_syms:
    if sym.type in (kconfiglib.INT, kconfiglib.HEX) and sym.visibility and sym.ranges:
        print("CONFIG_%s=%s%s" % (sym.name, sym.str_value, "  (kept, see the script)" if "CONFIG_" + sym.name in keep else ""))
kconf.write_config(path, header="")
EOF
}

failed=""
for end in $ends; do
    case $end in
    min) keep=$keep_min ;;
    max) keep=$keep_max ;;
    *) echo "error: '$end' is neither min nor max" >&2; exit 2 ;;
    esac
    O=build/check-kconfig-$end$san
    echo "==== Kconfig ranges at their $end ($O) ===="
    mkdir -p "$O"
    m host_defconfig
    # The strict olddefconfig below rejects any value kconfiglib would refuse.
    # shellcheck disable=SC2086 # $keep is a list of words
    if ! gen "$end" "$O/.config" $keep > "$O/ranges.txt" 2> "$O/ranges.err"; then
        cat "$O/ranges.err" >&2; echo "error: could not write the $end configuration" >&2; exit 1
    fi
    [ -s "$O/ranges.txt" ] || { echo "error: no ranged option found in Kconfig" >&2; exit 1; }
    if grep -q 'warning:' "$O/ranges.err"; then
        cat "$O/ranges.err" >&2; echo "error: kconfiglib warned (see above)" >&2; exit 1
    fi
    m olddefconfig
    # olddefconfig must not have moved anything (kconfiglib clamps silently otherwise).
    while read -r line; do
        v=${line%%  *}
        grep -qx "$v" "$O/.config" || { echo "error: $v did not survive olddefconfig" >&2; exit 1; }
    done < "$O/ranges.txt"
    tr '\n' ' ' < "$O/ranges.txt"; echo
    if m -j2 all tests && m run-tests; then
        echo "ok   - unit tests pass with every ranged option at its $end"
    else
        echo "FAIL - unit tests with every ranged option at its $end ($O/ranges.txt lists the values)"
        failed="$failed $end"
    fi
done
[ -z "$failed" ] || { echo "test_kconfig_ranges: failed at:$failed"; exit 1; }
echo "test_kconfig_ranges: unit tests pass at both ends of every range"
