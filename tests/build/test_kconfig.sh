#!/bin/sh
# Kconfig behaviour of the build: options change what is compiled, a
# disabled module's objects are not built and its code is absent from the binary, and
# mistakes in a defconfig (typo, out-of-range value) fail instead of being ignored.
set -u
O=build/check-kconfig
pass=0 fail=0
ok() { echo "ok   - $1"; pass=$((pass + 1)); }
ko() { echo "FAIL - $1"; fail=$((fail + 1)); }
m() { make --no-print-directory -s O=$O ARCH=$(uname -m | sed s/aarch64/arm64/) CROSS_COMPILE= "$@"; }

rm -rf $O
m host_defconfig >/dev/null 2>&1 && m all >/dev/null 2>&1 || { echo "FAIL - host build"; exit 1; }
ar t $O/libkw.a | grep -qx sys_sim.o && ok "KW_SYS_SIM=y builds sys_sim.o" || ko "KW_SYS_SIM=y builds sys_sim.o"
strings $O/kwnode | grep -q 'ready: arena' && ok "log level 3 keeps INF messages in kwnode" || ko "INF message present at level 3"

# Edit .config by hand, then olddefconfig, as a user would. The runtime default may not
# exceed the ceiling (its range is 0..KW_LOG_LEVEL), so lowering one lowers both.
sed -i 's/^CONFIG_KW_SYS_SIM=y/# CONFIG_KW_SYS_SIM is not set/; s/^CONFIG_KW_LOG_LEVEL=.*/CONFIG_KW_LOG_LEVEL=1/; s/^CONFIG_KW_LOG_DEFAULT_LEVEL=.*/CONFIG_KW_LOG_DEFAULT_LEVEL=1/' $O/.config
m olddefconfig >/dev/null 2>&1 && m all >/dev/null 2>&1 || ko "rebuild after olddefconfig"
ar t $O/libkw.a | grep -qx sys_sim.o && ko "KW_SYS_SIM=n drops sys_sim.o from libkw.a" || ok "KW_SYS_SIM=n drops sys_sim.o from libkw.a"
strings $O/kwnode | grep -q 'ready: arena' && ko "KW_LOG_LEVEL=1 compiles INF messages out" || ok "KW_LOG_LEVEL=1 compiles INF messages out of kwnode"
grep -q 'define CONFIG_KW_LOG_LEVEL 1' $O/include/generated/autoconf.h && ok "autoconf.h follows .config" || ko "autoconf.h follows .config"
if [ -f $O/kernel/sys_sim.o ] && [ $O/kernel/sys_sim.o -nt $O/kernel/loop.o ]; then ko "disabled object not rebuilt"; else ok "disabled object is not rebuilt"; fi
# A .config from before a Kconfig symbol existed (then `git pull`): one `make` adds the symbol
# at its default and builds its object (the .config is remade and make starts over).
m host_defconfig >/dev/null 2>&1 && m all >/dev/null 2>&1
sed -i '/^CONFIG_KW_NET_PING=y$/d' $O/.config
touch -d '2000-01-01' $O/.config
if m all >/dev/null 2>&1 && grep -qx 'CONFIG_KW_NET_PING=y' $O/.config && ar t $O/libkw.a | grep -qx ping.o; then
    ok "a new Kconfig symbol is picked up by one make (stale .config)"
else
    ko "a new Kconfig symbol is picked up by one make (stale .config)"
fi
# Modules added later declare themselves here: symbol that must vanish when disabled.
for pair in $(grep -v '^#' tests/build/kconfig_modules.txt 2>/dev/null); do
    sym=${pair%%:*} fn=${pair#*:}
    m host_defconfig >/dev/null 2>&1; m all >/dev/null 2>&1
    # Present when enabled: in libkw.a (built), and in kwnode when the daemon uses it.
    nm $O/libkw.a 2>/dev/null | grep -qE " T $fn\$" || { ko "$fn built with $sym=y"; continue; }
    sed -i "s/^$sym=y/# $sym is not set/" $O/.config
    m olddefconfig >/dev/null 2>&1 && m all >/dev/null 2>&1 || { ko "build with $sym=n"; continue; }
    if nm $O/libkw.a 2>/dev/null | grep -qE " T $fn\$" || nm $O/kwnode | grep -qw "$fn"; then
        ko "$sym=n removes $fn from libkw.a and kwnode"
    else
        ok "$sym=n removes $fn from libkw.a and kwnode"
    fi
done

# A .config naming a symbol that Kconfig no longer has (a removed option, then `git pull`):
# one make drops it with a note and builds.
m host_defconfig >/dev/null 2>&1
echo '# CONFIG_KW_REMOVED_LONG_AGO is not set' >> $O/.config
touch -d '2000-01-01' $O/.config
out=$(m all 2>&1)
if [ $? -eq 0 ] && echo "$out" | grep -q 'dropped KW_REMOVED_LONG_AGO' && ! grep -q REMOVED_LONG_AGO $O/.config; then
    ok "a .config naming a removed symbol builds with one make (symbol dropped, noted)"
else
    ko "a .config naming a removed symbol: $out"
fi

# Every option a user can set in menuconfig explains itself.
nohelp=$(/usr/bin/python3 - <<'PY'
import os, kconfiglib
os.environ.setdefault("srctree", ".")
os.environ["KCONFIG_CONFIG"] = "/dev/null"
k = kconfiglib.Kconfig("Kconfig", warn=False)
for n in k.node_iter():
    if isinstance(n.item, (kconfiglib.Symbol, kconfiglib.Choice)) and n.prompt and not n.help:
        print("%s:%d %s" % (n.filename, n.linenr, getattr(n.item, "name", None) or n.prompt[0]))
PY
)
[ -z "$nohelp" ] && ok "every prompted Kconfig option has help text" || ko "prompted options without help: $nohelp"

# Strictness: kconfiglib exits 0 on these, the Makefile must not.
mkdir -p $O/strict
printf 'CONFIG_KW_ARCH_X86_64=y\nCONFIG_KW_TYPO_OPTION=y\n' > defconfigs/zz_typo_test_defconfig
m O=$O/strict zz_typo_test_defconfig >/dev/null 2>&1 && ko "typo in defconfig fails" || ok "typo in defconfig fails the build"
printf 'CONFIG_KW_ARCH_X86_64=y\nCONFIG_KW_LOG_LEVEL=9\n' > defconfigs/zz_typo_test_defconfig
m O=$O/strict zz_typo_test_defconfig >/dev/null 2>&1 && ko "out-of-range value fails" || ok "out-of-range value in defconfig fails the build"
rm -f defconfigs/zz_typo_test_defconfig
m O=$O/strict no_such_board_defconfig >/dev/null 2>&1 && ko "unknown defconfig fails" || ok "unknown defconfig name fails"

# savedefconfig writes a minimal sorted file back to where the config came from.
m O=$O/strict rpi5_defconfig >/dev/null 2>&1
echo $O/strict/roundtrip_defconfig > $O/strict/.defconfig_origin
m O=$O/strict savedefconfig >/dev/null 2>&1
if sort -c $O/strict/roundtrip_defconfig 2>/dev/null && cmp -s $O/strict/roundtrip_defconfig defconfigs/rpi5_defconfig; then
    ok "savedefconfig reproduces defconfigs/rpi5_defconfig"
else
    ko "savedefconfig reproduces defconfigs/rpi5_defconfig"; diff $O/strict/roundtrip_defconfig defconfigs/rpi5_defconfig
fi
# Every shipped defconfig is already in savedefconfig form (no stale or redundant symbols).
for d in defconfigs/*_defconfig; do
    n=$(basename $d)
    m O=$O/strict $n >/dev/null 2>&1 || { ko "$n loads"; continue; }
    echo $O/strict/rt > $O/strict/.defconfig_origin
    m O=$O/strict savedefconfig >/dev/null 2>&1
    cmp -s $O/strict/rt $d && ok "$n is minimal and sorted" || { ko "$n is minimal and sorted"; diff $O/strict/rt $d; }
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
