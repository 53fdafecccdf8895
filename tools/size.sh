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
# the RSS is qemu's process: qemu itself (its code, libraries and translated-code cache) plus
# the guest's touched pages, so it overstates the board's figure. `zero2w-native` is the
# rpizero2w configuration (arena, pools, limits) built for this machine and run without qemu:
# the same data structures, x86_64 code; its RSS is the honest estimate of the Zero's.
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
        run="env QEMU_LD_PREFIX=/usr/aarch64-linux-gnu QEMU_CPU=$(cpu_of "$b") qemu-aarch64"
        how="qemu-aarch64 + guest"
    else
        SIZE=size run=env how="native"
    fi
    set -- $($SIZE "$d/kwnode" | tail -n 1)
    text=$1 data=$2 bss=$3
    rm -rf "$T/data"
    $run "$d/kwnode" run -d "$T/data" -l /ip4/127.0.0.1/tcp/0 >"$T/out" 2>"$T/err" &
    pid=$!
    i=0
    while [ $i -lt 300 ] && ! grep -q ' ready: ' "$T/err" && kill -0 $pid 2>/dev/null; do
        sleep 0.1; i=$((i + 1))
    done
    arena=$(sed -n 's/.* ready: arena \([0-9]*\/[0-9]*\) KiB used.*/\1/p' "$T/err")
    rss=?
    if [ -n "$arena" ]; then
        sleep "$IDLE_S"
        rss=$(sed -n 's/^VmRSS:[[:space:]]*\([0-9]*\) kB/\1/p' /proc/$pid/status 2>/dev/null)
        rss="$rss KiB"
    else
        echo "size: $b: no ready line:" >&2; cat "$T/err" >&2; arena=?; rc=1
    fi
    kill -TERM $pid 2>/dev/null; wait $pid 2>/dev/null
    printf '| %-13s | %-6s | %7s | %5s | %8s | %-21s | %-10s | %s |\n' "$b" "$arch" "$text" \
        "$data" "$bss" "$arena" "$rss" "$how"
done
exit $rc
