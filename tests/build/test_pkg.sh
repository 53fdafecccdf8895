#!/bin/sh
# The kwaainet-edge .deb (tools/pkg, doc/install.md), built from a host build directory:
#     sh tests/build/test_pkg.sh BUILD_DIR        (make check-host passes build/check-host)
# 1. control fields, Depends from the linked libraries, conffiles, the file list with owners
#    and modes (dpkg-deb -I / -c); lintian when it is installed (it is not installed for this);
# 2. extracted into a throwaway root (dpkg -x): the installed kwnode reads the installed
#    kwnode.conf (`kwnode config check`), the unit passes `systemd-analyze verify`, and its
#    TimeoutStopSec exceeds the config's shutdown_drain_ms (SIGTERM drains before SIGKILL);
# 3. the maintainer scripts against that root (DPKG_ROOT) with systemctl, useradd and friends
#    replaced by stubs that log their calls: first install enables and starts only where
#    systemd runs, an upgrade restarts, `remove` keeps the identity key, `purge` deletes it.
# No network, no root needed, a few seconds.
set -eu

B=${1:?usage: test_pkg.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }
check() { d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }

echo "== test_pkg: $B"
DEB=$(sh "$SRC/tools/pkg/mkdeb.sh" "$B" "$T/out" | tail -n 1)
check "mkdeb wrote $(basename "$DEB")" test -f "$DEB"
ARCH=$(dpkg --print-architecture)
VER=$(sed -n 's/^#define KW_VERSION_STRING "\(.*\)"/\1/p' "$SRC/include/kw/version.h")
check "file name is kwaainet-edge_${VER}_$ARCH.deb" test "$(basename "$DEB")" = "kwaainet-edge_${VER}_$ARCH.deb"

# ---- 1. metadata and contents ----
field() { dpkg-deb -f "$DEB" "$1"; }
check "Package kwaainet-edge" test "$(field Package)" = kwaainet-edge
check "Architecture $ARCH" test "$(field Architecture)" = "$ARCH"
DEP=$(field Depends)
echo "       Depends: $DEP"
# every library kwnode links must be covered: libc6 and libsodium23 always are
check "Depends has versioned libc6" sh -c "echo '$DEP' | grep -Eq 'libc6 \(>= [0-9.]+\)'"
check "Depends has libsodium23" sh -c "echo '$DEP' | grep -q libsodium23"
n_needed=$(readelf -d "$B/kwnode" | grep -c '(NEEDED)')
n_deps=$(echo "$DEP" | tr ',' '\n' | grep -c .)
# libc, libm and libpthread all come from libc6: the count may only shrink
check "Depends lists $n_deps packages for $n_needed NEEDED libraries" test "$n_deps" -ge 3 -a "$n_deps" -le "$n_needed"
dpkg-deb --ctrl-tarfile "$DEB" | tar -x -C "$T" ./conffiles 2>/dev/null || dpkg-deb -e "$DEB" "$T/DEBIAN"
check "conffiles names /etc/kwaainet-edge/kwnode.conf" \
    sh -c "dpkg-deb -I '$DEB' conffiles | grep -qx /etc/kwaainet-edge/kwnode.conf"
dpkg-deb -c "$DEB" | awk '{ print $1, $2, $6 }' > "$T/list"
want() {  # mode owner path
    if grep -qx -- "$1 $2 $3" "$T/list"; then ok "$3 $1 $2"; else bad "$3 $1 $2 (have: $(grep " $3\$" "$T/list" || echo none))"; fi
}
want -rwxr-xr-x root/root ./usr/bin/kwnode
want -rw-r--r-- root/root ./lib/systemd/system/kwaainet-edge.service
want -rw-r--r-- root/root ./etc/kwaainet-edge/kwnode.conf
want -rw-r--r-- root/root ./usr/lib/sysusers.d/kwaainet-edge.conf
want -rw-r--r-- root/root ./usr/share/doc/kwaainet-edge/copyright
want -rw-r--r-- root/root ./usr/share/doc/kwaainet-edge/install.md
check "every entry is root/root" sh -c "! awk '{print \$2}' '$T/list' | grep -v '^root/root$'"
check "nothing under /var/lib (state is made at run time)" sh -c "! grep -q ' ./var/' '$T/list'"
check "no file is group- or world-writable" sh -c "! awk '{print \$1}' '$T/list' | grep -q '^.....w\|^........w'"
dpkg-deb -e "$DEB" "$T/ctl"
for s in postinst prerm postrm; do
    check "$s is executable and parses" sh -c "test -x '$T/ctl/$s' && sh -n '$T/ctl/$s'"
done
check "kwnode is stripped" sh -c "dpkg-deb --fsys-tarfile '$DEB' | tar -xO ./usr/bin/kwnode > '$T/kw' && ! readelf -S '$T/kw' | grep -q '\.debug_info'"
if command -v lintian >/dev/null 2>&1; then
    if lintian --fail-on error "$DEB" > "$T/lintian" 2>&1; then ok "lintian: no errors"; else bad "lintian"; cat "$T/lintian"; fi
else
    echo "  skip lintian (not installed)"
fi

# ---- 2. the installed files ----
R=$T/root
mkdir -p "$R"
dpkg -x "$DEB" "$R"
if "$R/usr/bin/kwnode" config check "$R/etc/kwaainet-edge/kwnode.conf" > "$T/cc" 2> "$T/cc.err"; then
    ok "the installed kwnode.conf parses"
else
    bad "the installed kwnode.conf parses: $(cat "$T/cc.err")"
fi
check "its data_dir is the unit's StateDirectory" grep -qx 'data_dir /var/lib/kwaainet-edge' "$T/cc"
UNIT=$R/lib/systemd/system/kwaainet-edge.service
check "unit runs kwnode run --config /etc/kwaainet-edge/kwnode.conf" \
    grep -qx 'ExecStart=/usr/bin/kwnode run --config /etc/kwaainet-edge/kwnode.conf' "$UNIT"
check "unit: StateDirectory=kwaainet-edge" grep -qx 'StateDirectory=kwaainet-edge' "$UNIT"
for k in User=kwaainet Restart=on-failure NoNewPrivileges=yes ProtectSystem=strict ProtectHome=yes \
         PrivateTmp=yes CapabilityBoundingSet= ReadWritePaths=/var/lib/kwaainet-edge KillSignal=SIGTERM \
         Type=notify NotifyAccess=main WatchdogSec=30s Environment=OPENBLAS_NUM_THREADS=1; do
    check "unit: $k" grep -qx "$k" "$UNIT"
done
drain_ms=$(sed -n 's/^shutdown_drain_ms //p' "$T/cc")
stop_s=$(sed -n 's/^TimeoutStopSec=\([0-9]*\)s$/\1/p' "$UNIT")
check "TimeoutStopSec ${stop_s}s > shutdown_drain_ms ${drain_ms} ms" test "$((stop_s * 1000))" -gt "$drain_ms"
check "sysusers entry creates the kwaainet user" grep -q '^u kwaainet ' "$R/usr/lib/sysusers.d/kwaainet-edge.conf"
if command -v systemd-analyze >/dev/null 2>&1; then
    # verify checks that ExecStart exists: point it at the extracted binary
    sed "s|/usr/bin/kwnode|$R/usr/bin/kwnode|" "$UNIT" > "$T/kwaainet-edge.service"
    if systemd-analyze verify "$T/kwaainet-edge.service" > "$T/verify" 2>&1; then
        ok "systemd-analyze verify"
    else
        bad "systemd-analyze verify"; cat "$T/verify"
    fi
else
    echo "  skip systemd-analyze (not installed)"
fi

# ---- 3. maintainer scripts, with stubs ----
S=$T/stubs
mkdir -p "$S"
LOG=$T/calls
for c in systemctl useradd usermod userdel groupdel systemd-sysusers; do
    printf '#!/bin/sh\necho "%s $*" >> "%s"\n' "$c" "$LOG" > "$S/$c"
done
# the user exists from useradd or systemd-sysusers until userdel: the file $T/user
echo "touch '$T/user'" | tee -a "$S/useradd" >> "$S/systemd-sysusers"
echo "rm -f '$T/user'" >> "$S/userdel"
# getent: that user; the gpio group exists if $T/gpio does. id -nG: no extra group yet.
cat > "$S/getent" <<EOT
#!/bin/sh
case "\$1 \$2" in
    "passwd kwaainet"|"group kwaainet") test -e "$T/user" ;;
    "group gpio") test -e "$T/gpio" ;;
    *) exit 2 ;;
esac
EOT
printf '#!/bin/sh\necho kwaainet\n' > "$S/id"
chmod 755 "$S"/*
run() { DPKG_ROOT=$R PATH=$S:$PATH sh "$T/ctl/$1" "$2" ${3:+"$3"}; }
calls() { cat "$LOG" 2>/dev/null || true; }

: > "$LOG"
run postinst configure ""
check "install without systemd: user made, systemctl not called" \
    sh -c "grep -q 'useradd\|systemd-sysusers' '$LOG' && ! grep -q systemctl '$LOG'"
rm -f "$LOG" "$T/user"
mkdir -p "$R/run/systemd/system"
touch "$T/gpio"
run postinst configure ""
check "first install with systemd: enable --now" grep -qx 'systemctl enable --now kwaainet-edge.service' "$LOG"
check "gpio group exists: kwaainet added to it" grep -qx 'usermod -a -G gpio kwaainet' "$LOG"
: > "$LOG"
run postinst configure "$VER"
check "upgrade: try-restart, no enable" sh -c "grep -qx 'systemctl try-restart kwaainet-edge.service' '$LOG' && ! grep -q enable '$LOG'"
check "upgrade: the existing user is kept" sh -c "! grep -q 'useradd\|systemd-sysusers' '$LOG'"
: > "$LOG"
run prerm upgrade "$VER"
check "prerm upgrade leaves the service running" sh -c "! grep -q 'stop' '$LOG'"
mkdir -p "$R/var/lib/kwaainet-edge"
echo key > "$R/var/lib/kwaainet-edge/identity.key"
run prerm remove
check "prerm remove stops and disables" sh -c "grep -qx 'systemctl stop kwaainet-edge.service' '$LOG' && grep -qx 'systemctl disable kwaainet-edge.service' '$LOG'"
run postrm remove
check "postrm remove keeps the identity key" test -f "$R/var/lib/kwaainet-edge/identity.key"
check "postrm remove keeps the user" sh -c "! grep -q userdel '$LOG'"
run postrm purge
check "postrm purge deletes the state directory" test ! -e "$R/var/lib/kwaainet-edge"
check "postrm purge deletes the user" grep -qx 'userdel kwaainet' "$LOG"

echo "test_pkg: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
