#!/bin/sh
# `make size`: one table of kwnode's footprint per defconfig (README, "Footprint"):
#     sh tools/size.sh [BOARD...]      (boards: host rpi4 rpi5 rpizero2w qemu_arm64 zero2w-native)
# Configures (once) and builds each in build/size-BOARD first. For each board: the
# binary's text/data/bss (size(1); aarch64-linux-gnu-size for arm64 builds), the arena and
# the arena bytes used at start (kwnode's `ready` log line), and the resident set after the
# node has been idle for IDLE_S seconds (default 3), read from /proc/PID/status.
#
# How each runs: host builds directly; arm64 builds under qemu-aarch64 with the board's CPU
# model and -L /usr/aarch64-linux-gnu, as tests/build/test_board_boot.sh does. Under qemu-user
# VmRSS is qemu's whole process: qemu itself (its code, libraries, translated-code cache) plus
# the guest's touched pages. The guest's own share is separated through the layout qemu-user
# gives a 64-bit guest on a 64-bit host (guest_base 0; the guest's binary, libraries, heap,
# arena and stack mapped from 0x5500000000, far below qemu's own code, libraries and heap, which
# the host maps above 2^46): "guest RSS" is the Rss of every mapping below 1 TiB in
# /proc/PID/smaps.
# The same run measures a control: a static aarch64 program that only calls pause(), whose
# guest RSS must be tiny while its qemu total is qemu's own floor (printed under the table).
# `zero2w-native` is the rpizero2w configuration (arena, pools, limits) built for this machine
# and run without qemu: the same data structures, x86_64 code.
set -u
IDLE_S=${IDLE_S:-3}
boards=${*:-host rpi4 rpi5 rpizero2w qemu_arm64 zero2w-native}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT

# ---- build (configure once; `make` is a no-op when nothing changed) ----
MAKE=${MAKE:-make}
HOSTARCH=${HOSTARCH:-$(uname -m)}
for b in $boards; do
    d=build/size-$b
    case $b in
        host|zero2w-native) a="ARCH=$HOSTARCH CROSS_COMPILE=" ;;
        *) a="ARCH=arm64" ;;
    esac
    if [ ! -f "$d/.config" ]; then
        case $b in
            host) $MAKE --no-print-directory O=$d $a host_defconfig >/dev/null ;;
            zero2w-native)
                # host_defconfig, then rpizero2w's sizes replacing the host's (kconfig refuses a
                # symbol set twice, so the old lines go first)
                $MAKE --no-print-directory O=$d $a host_defconfig >/dev/null &&
                grep '^CONFIG_KW_\(ARENA\|NET\|TIMER\)' defconfigs/rpizero2w_defconfig > "$T/z" &&
                while IFS== read -r k v; do
                    sed -i "/^$k=/d; /^# $k is not set/d" "$d/.config"; echo "$k=$v" >> "$d/.config"
                done < "$T/z" &&
                $MAKE --no-print-directory O=$d $a olddefconfig >/dev/null ;;
            *) $MAKE --no-print-directory O=$d $a ${b}_defconfig >/dev/null ;;
        esac || { echo "size: cannot configure $d" >&2; exit 1; }
    fi
    $MAKE --no-print-directory O=$d $a SAN=0 all >/dev/null || { echo "size: $d does not build" >&2; exit 1; }
done

# Rss (KiB) of the mappings of PID that lie below 1 TiB: the guest's, under qemu-user.
guest_rss() {
    awk '/^[0-9a-f]+-[0-9a-f]+ /{ split($1, a, "-"); low = (length(a[1]) <= 10) }
         /^Rss:/{ if (low) g += $2 } END { print g + 0 }' "/proc/$1/smaps" 2>/dev/null
}
vm_rss() { sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' "/proc/$1/status" 2>/dev/null; }

# The control for the qemu figures: an idle static aarch64 program.
idle_line=
case " $boards " in *" rpi"*|*" qemu_arm64 "*)
    printf '#include <unistd.h>\nint main(void) { pause(); return 0; }\n' > "$T/idle.c"
    if aarch64-linux-gnu-gcc -static -O2 -o "$T/idle" "$T/idle.c" 2>"$T/idle.err"; then
        QEMU_CPU=cortex-a53 qemu-aarch64 "$T/idle" & ip=$!
        sleep "$IDLE_S"
        idle_line="control: an idle static aarch64 program under qemu-aarch64 (cortex-a53): guest RSS $(guest_rss $ip) KiB, qemu process $(vm_rss $ip) KiB"
        kill $ip 2>/dev/null; wait $ip 2>/dev/null
    else
        idle_line="control: cannot build the static aarch64 program: $(head -n 1 "$T/idle.err")"
    fi ;;
esac

cpu_of() {
    case $1 in
        rpi4) echo cortex-a72 ;; rpi5) echo cortex-a76 ;; rpizero2w) echo cortex-a53 ;; *) echo max ;;
    esac
}
printf '| %-13s | %-6s | %7s | %5s | %8s | %-21s | %-10s | %s |\n' board arch text data bss \
    "arena used/size (KiB)" "idle RSS" "RSS measured as"
printf '|%s|%s|%s|%s|%s|%s|%s|%s|\n' --------------- -------- --------- ------- ---------- \
    ----------------------- ------------ -----------------
rc=0
for b in $boards; do
    d=build/size-$b
    if [ ! -x "$d/kwnode" ]; then echo "size: $d/kwnode is missing (make size builds it)" >&2; rc=1; continue; fi
    arch=$(sed -n 's/^CONFIG_KW_ARCH="\(.*\)"/\1/p' "$d/.config")
    if [ "$arch" = arm64 ]; then
        SIZE=aarch64-linux-gnu-size
        # one OpenBLAS thread: its pool never starts under qemu-user (test_board_boot.sh)
        run="env OPENBLAS_NUM_THREADS=1 QEMU_LD_PREFIX=/usr/aarch64-linux-gnu QEMU_CPU=$(cpu_of "$b") qemu-aarch64"
        how="guest pages under qemu-aarch64"
    else
        SIZE=size run=env how="native"
    fi
    set -- $($SIZE "$d/kwnode" | tail -n 1)
    text=$1 data=$2 bss=$3
    rm -rf "$T/data"
    $run "$d/kwnode" run -d "$T/data" -l /ip4/127.0.0.1/tcp/0 >"$T/out" 2>"$T/err" &
    pid=$!
    i=0
    while [ $i -lt 1200 ] && ! grep -q ' ready: ' "$T/err" && kill -0 $pid 2>/dev/null; do
        sleep 0.1; i=$((i + 1))
    done
    arena=$(sed -n 's/.* ready: arena \([0-9]*\/[0-9]*\) KiB used.*/\1/p' "$T/err")
    rss=?
    if [ -n "$arena" ]; then
        sleep "$IDLE_S"
        if [ "$arch" = arm64 ]; then
            rss="$(guest_rss $pid) KiB"
            how="$how (qemu process $(vm_rss $pid) KiB)"
            # the guest's binary must lie in the range counted, or the figure means nothing
            grep -q "^[0-9a-f]\{1,10\}-.*$(basename "$d")/kwnode\$" /proc/$pid/maps ||
                { rss="? KiB"; how="guest not at qemu-user's usual layout: not separable"; }
        else
            rss="$(vm_rss $pid) KiB"
        fi
    else
        echo "size: $b: no ready line:" >&2; cat "$T/err" >&2; arena=?; rc=1
    fi
    kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
    printf '| %-13s | %-6s | %7s | %5s | %8s | %-21s | %-10s | %s |\n' "$b" "$arch" "$text" \
        "$data" "$bss" "$arena" "$rss" "$how"
done
[ -n "$idle_line" ] && echo "$idle_line"
exit $rc
