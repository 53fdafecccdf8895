#!/bin/sh
# kwaainet-edge.service under a real systemd (doc/install.md, "The unit under a real systemd"):
#     sh tests/build/test_systemd.sh BUILD_DIR        (make check-host passes build/check-host)
# Boots /lib/systemd/systemd as PID 1 of fresh PID, mount, cgroup, network, UTS and IPC
# namespaces, on an overlay of / (so nothing on the host changes), installs the .deb built
# from BUILD_DIR with dpkg (its postinst enables and starts the unit for real), then drives
# the unit with systemctl: readiness (Type=notify), the kwaainet user and the identity key,
# the watchdog (a SIGSTOPped node is killed and restarted), kill -9, a draining stop, and
# ProtectSystem=strict; then dpkg -r and --purge. Needs root and a cgroup v2 hierarchy;
# skips with one line otherwise.
# Every process it starts lives in those namespaces and dies with their PID 1; every mount is
# inside the private mount namespace and goes with it. About 12 s.
set -u
. "$(dirname "$0")/lib.sh"

B=${1:?usage: test_systemd.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
SYSTEMD=/lib/systemd/systemd
skip() { echo "test_systemd: skip: $1"; exit 0; }

# ---- can systemd boot here? ----
[ "$(id -u)" = 0 ] || skip "needs root (namespaces, mounts, cgroups)"
[ -x "$SYSTEMD" ] || skip "no $SYSTEMD (Debian package systemd)"
for c in unshare nsenter setpriv dpkg systemctl journalctl; do
    command -v $c >/dev/null 2>&1 || skip "no $c"
done
if [ "$(stat -fc %T /sys/fs/cgroup 2>/dev/null)" = cgroup2fs ]; then
    CG2=/sys/fs/cgroup
elif [ "$(stat -fc %T /sys/fs/cgroup/unified 2>/dev/null)" = cgroup2fs ]; then
    CG2=/sys/fs/cgroup/unified
else
    skip "no cgroup v2 hierarchy mounted (/sys/fs/cgroup or /sys/fs/cgroup/unified)"
fi
# our own cgroup v2 path; the namespaced systemd gets a child of it as its cgroup root
own=$(sed -n 's/^0:://p' /proc/self/cgroup)
CG=$CG2${own%/}/kwtest-systemd.$$
# a run killed with SIGKILL (no trap) leaves its empty cgroup: remove those of dead runs
for d in "$CG2${own%/}"/kwtest-systemd.*; do
    [ -d "$d" ] && ! kill -0 "${d##*.}" 2>/dev/null && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done
mkdir "$CG" 2>/dev/null || skip "cannot create a cgroup under $CG2${own%/}"
unshare --pid --fork --mount --cgroup --net --uts --ipc true 2>/dev/null ||
    { rmdir "$CG"; skip "unshare of pid/mount/cgroup/net/uts/ipc namespaces refused"; }

# ---- the .deb and the files staged into the guest root ----
DEB=$(sh "$SRC/tools/pkg/mkdeb.sh" "$B" "$tmp/out" | tail -n 1)
[ -f "$DEB" ] || { rmdir "$CG"; echo "FAIL - mkdeb.sh $B"; exit 1; }
S=$tmp/stage
mkdir -p "$S/kwtest" "$S/etc/systemd/system/kwaainet-edge.service.d"
cp "$DEB" "$S/kwtest/kwaainet-edge.deb"
# A sanitizer build (make check-san): LeakSanitizer's exit-time scan stops the process with
# ptrace, which the unit's SystemCallFilter=@system-service denies, and the node would hang
# at exit until TimeoutStopSec. Leaks are what the SAN=1 unit tests check.
san_env=
readelf -d "$B/kwnode" 2>/dev/null | grep -q 'NEEDED.*libasan' && san_env='Environment=ASAN_OPTIONS=detect_leaks=0'
# The boot target: only journald (for journalctl) is started at boot; the unit's own
# dependencies (sysinit.target, basic.target) come with its start.
cat > "$S/etc/systemd/system/kwtest.target" <<'EOF'
[Unit]
Description=kwaainet-edge systemd test
Wants=systemd-journald.service systemd-journald.socket
EOF
# Test timings: WatchdogSec=30s and RestartSec=5s would make the test a minute long.
cat > "$S/etc/systemd/system/kwaainet-edge.service.d/test.conf" <<'EOF'
[Service]
WatchdogSec=2s
RestartSec=1s
EOF
[ -z "$san_env" ] || echo "$san_env" >> "$S/etc/systemd/system/kwaainet-edge.service.d/test.conf"
# Units that would reach past the namespaces into the shared kernel (modules, sysctl, clock,
# binfmt, audit) or that have no business in a test boot. The capability bounding set and a
# read-only /proc/sys stop them anyway; masking keeps the log quiet.
for u in systemd-modules-load.service systemd-sysctl.service systemd-binfmt.service \
         proc-sys-fs-binfmt_misc.automount systemd-timesyncd.service systemd-pstore.service \
         systemd-remount-fs.service systemd-journald-audit.socket systemd-firstboot.service \
         systemd-repart.service systemd-random-seed.service kmod-static-nodes.service \
         sys-kernel-debug.mount sys-kernel-tracing.mount sys-kernel-config.mount \
         sys-fs-fuse-connections.mount systemd-tmpfiles-clean.timer timers.target \
         getty.target console-getty.service dbus.socket dbus.service; do
    ln -s /dev/null "$S/etc/systemd/system/$u"
done

# PID 1 of the new namespaces: an overlay of / with a tmpfs upper layer as the guest root,
# fresh /proc (read-only /proc/sys), read-only /sys with our cgroup as /sys/fs/cgroup, a
# minimal /dev whose console is a file, then pivot_root and exec systemd without the
# capabilities that act on the whole machine.
cat > "$tmp/init.sh" <<'EOF'
set -e
T=$1
mkdir -p "$T/ovl" "$T/root"
mount -t tmpfs -o mode=0755 kwtest "$T/ovl"
mkdir "$T/ovl/upper" "$T/ovl/work"
cp -a "$T/stage/." "$T/ovl/upper/"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/ovl/upper,workdir=$T/ovl/work" "$T/root"
R=$T/root
mount -t proc proc "$R/proc"
mount --bind "$R/proc/sys" "$R/proc/sys"
mount -o remount,bind,ro "$R/proc/sys"
if [ -e "$R/proc/sysrq-trigger" ]; then
    mount --bind "$R/proc/sysrq-trigger" "$R/proc/sysrq-trigger"
    mount -o remount,bind,ro "$R/proc/sysrq-trigger"
fi
mount -t sysfs -o ro sysfs "$R/sys"
mount -t cgroup2 cgroup2 "$R/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid tmpfs "$R/dev"
for d in null zero full random urandom tty; do
    touch "$R/dev/$d"; mount --bind "/dev/$d" "$R/dev/$d"
done
: > "$T/console"
touch "$R/dev/console"; mount --bind "$T/console" "$R/dev/console"
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
ln -s /proc/self/fd "$R/dev/fd"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/dev/shm"
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$R/run"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$R/tmp"
cd "$R"
mkdir -p .oldroot
pivot_root . .oldroot
cd /
umount -l /.oldroot
rmdir /.oldroot
exec env -i container=kwtest PATH=/usr/sbin:/usr/bin:/sbin:/bin \
    setpriv --bounding-set -sys_module,-sys_time,-sys_rawio,-syslog,-wake_alarm,-block_suspend,-mac_admin,-mac_override,-sys_pacct,-audit_control,-audit_read,-audit_write,-sys_boot,-perfmon \
    /lib/systemd/systemd --unit=kwtest.target --show-status=no --log-target=journal </dev/null >/dev/console 2>&1
EOF

upid=
teardown() {
    # SIGKILL to unshare: --kill-child turns it into SIGKILL for systemd, PID 1 of the
    # namespace, and the kernel kills every other process in it; the mounts go with it
    if [ -n "$upid" ]; then
        kill -KILL "$upid" 2>/dev/null; wait "$upid" 2>/dev/null
    fi
    i=0
    while grep -qs 'populated 1' "$CG/cgroup.events"; do
        i=$((i + 1)); [ $i -gt 50 ] && break; sleep 0.1
    done
    [ -d "$CG" ] && find "$CG" -depth -type d -exec rmdir {} + 2>/dev/null
    cleanup
}
trap teardown EXIT

# unshare dies with this script even on SIGKILL (--pdeathsig), and takes PID 1 with it
sh -c 'echo $$ > "$1/cgroup.procs" && exec setpriv --pdeathsig KILL unshare --pid --fork \
    --kill-child=SIGKILL --mount --cgroup --net --uts --ipc sh "$2/init.sh" "$2"' \
    sh "$CG" "$tmp" > "$tmp/unshare.log" 2>&1 &
upid=$!
# PID 1 as the host numbers it, once it is systemd: only after its exec is its root the
# guest's (before, nsenter -r would enter the host's root)
pid1=
i=0
while [ $i -lt 100 ] && kill -0 "$upid" 2>/dev/null; do
    c=$(cat /proc/$upid/task/$upid/children 2>/dev/null | tr -d ' ')
    if [ -n "$c" ] && [ "$(cat /proc/$c/comm 2>/dev/null)" = systemd ]; then pid1=$c; break; fi
    sleep 0.1; i=$((i + 1))
done
if [ -z "$pid1" ]; then
    # the guest root could not be set up: a mount or pivot_root this kernel or sandbox refuses
    kill -0 "$upid" 2>/dev/null ||
        skip "cannot set up the guest root: $(grep . "$tmp/unshare.log" | head -n 1)"
    ko "systemd did not start within 10 s"; exit 1
fi
# a command inside the namespaces, bounded so a hung job cannot hang the test
guest() { timeout 30 nsenter -t "$pid1" -m -u -i -n -p -C -r -w "$@"; }

state=
i=0
while [ $i -lt 100 ]; do
    state=$(guest systemctl is-system-running 2>/dev/null)
    case "$state" in running|degraded) break ;; esac
    sleep 0.2; i=$((i + 1))
done
if [ "$state" != running ]; then
    ko "systemd booted to kwtest.target (state '$state')"
    cat "$tmp/unshare.log" "$tmp/console" 2>/dev/null | tail -n 30
    guest systemctl --failed --no-pager 2>/dev/null
    exit 1
fi
ok "systemd $(guest systemctl --version | sed -n '1s/systemd \([0-9]*\).*/\1/p') booted as PID 1 of the namespaces ($(guest systemd-detect-virt --container))"

U=kwaainet-edge.service
check() { d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else ko "$d"; fi; }
prop() { guest systemctl show -p "$1" --value $U; }
mainpid() { prop MainPID; }
# Port 4001 (the shipped listen address) in LISTEN state in the namespace's /proc/net/tcp
listening() { guest grep -q ':0FA1 00000000:0000 0A' /proc/net/tcp; }
# wait_restart N OLDPID: until NRestarts > N and the unit is active with a new main PID
wait_restart() {
    i=0
    while [ $i -lt 100 ]; do
        if [ "$(prop NRestarts)" -gt "$1" ] && [ "$(prop ActiveState)" = active ] &&
           [ "$(mainpid)" != "$2" ] && [ "$(mainpid)" != 0 ]; then return 0; fi
        sleep 0.2; i=$((i + 1))
    done
    return 1
}
# jwait PATTERN: within 3 s, PATTERN is in the unit's journal (the node's stderr and
# systemd's lines about the unit)
jwait() {
    i=0
    while [ $i -lt 30 ]; do
        guest journalctl --no-pager -o cat -u $U | grep -q "$1" && return 0
        sleep 0.1; i=$((i + 1))
    done
    return 1
}
# signal the node's main PID (namespace numbering); never 0 or empty, which kill(1) would
# read as "my process group"
gkill() { case "$2" in ''|0|*[!0-9]*) return 1 ;; esac; guest kill -"$1" "$2"; }
peerid() { guest kwnode id -d /var/lib/kwaainet-edge 2>&1; }

# ---- install: postinst enables and starts the unit; start returns after READY=1 ----
# --force-depends: a build machine has the libraries kwnode links but not always the
# packages Depends names (libopenblas0 is the metapackage over libopenblas0-pthread); the
# loader check below is what matters here.
if guest dpkg -i --force-depends /kwtest/kwaainet-edge.deb > "$tmp/dpkg.log" 2>&1; then
    ok "dpkg -i kwaainet-edge.deb"
else
    ko "dpkg -i kwaainet-edge.deb"; cat "$tmp/dpkg.log"
fi
check "the installed kwnode finds every library it links" \
    sh -c "nsenter -t $pid1 -m -p -r -w ldd /usr/bin/kwnode > '$tmp/ldd' && ! grep -q 'not found' '$tmp/ldd'"
check "postinst enabled the unit (is-enabled: $(guest systemctl is-enabled $U))" \
    test "$(guest systemctl is-enabled $U)" = enabled
check "postinst started it: is-active right after dpkg returned ($(prop ActiveState))" \
    test "$(prop ActiveState)" = active
check "Type=notify, NotifyAccess=main, WatchdogUSec 2s (test drop-in)" \
    test "$(prop Type) $(prop NotifyAccess) $(prop WatchdogUSec)" = "notify main 2s"
# With Type=simple, start would return right after the fork, before kwnode listens.
guest systemctl stop $U
guest systemctl start $U
st=$(prop ActiveState)
if listening; then l=yes; else l=no; fi
check "systemctl start returned with the unit active ($st) and port 4001 listening ($l): READY=1 came after the listeners" \
    test "$st $l" = "active yes"
# the node's stderr is the journal stream ($JOURNAL_STREAM): it writes '<6>INF main: ...'
# without its timestamp, and journald takes the '<6>' as the priority (a raw '<6>' or a
# leading timestamp in the text would show that either side got it wrong)
check "journal: the node's 'ready' line reads 'INF main: kwnode ... ready' (no timestamp, '<6>' parsed)" \
    sh -c "nsenter -t $pid1 -m -p -r -w journalctl --no-pager -o cat -u $U | grep -q '^INF main: kwnode .* ready'"

# ---- the kwaainet user, the state directory, the identity key ----
pid=$(mainpid)
uid=$(guest id -u kwaainet 2>/dev/null)
check "the kwaainet user exists (systemd-sysusers from postinst, uid $uid)" test -n "$uid"
puid=$(guest sed -n 's/^Uid:[[:space:]]*\([0-9]*\).*/\1/p' /proc/$pid/status)
check "the node (pid $pid in the namespace) runs as uid $puid = kwaainet" test -n "$uid" -a "$puid" = "$uid"
d=$(guest stat -c '%U:%G %a' /var/lib/kwaainet-edge)
k=$(guest stat -c '%U:%G %a' /var/lib/kwaainet-edge/identity.key 2>&1)
check "state directory /var/lib/kwaainet-edge is kwaainet:kwaainet 700 ($d)" test "$d" = "kwaainet:kwaainet 700"
check "identity.key is kwaainet:kwaainet 600 ($k)" test "$k" = "kwaainet:kwaainet 600"
p1=$(peerid)
guest systemctl restart $U
p2=$(peerid)
check "the peer ID survives a restart ($p1)" test -n "$p1" -a "$p1" = "$p2" -a "$(mainpid)" != "$pid"

# ---- watchdog: a running node pings (WATCHDOG=1 every 1 s for WatchdogSec=2s) and lives
# past WatchdogSec; a stopped node stops pinging, systemd kills and restarts it ----
n=$(prop NRestarts); pid=$(mainpid); w0=$(prop WatchdogTimestampMonotonic)
sleep 2.5
w1=$(prop WatchdogTimestampMonotonic)
check "WATCHDOG=1 pings reach systemd (last ping at ${w0} us, then ${w1} us)" \
    test "${w1:-0}" -gt "${w0:-0}"
check "a running node outlives WatchdogSec (pid $pid -> $(mainpid), NRestarts $n -> $(prop NRestarts))" \
    test "$(mainpid) $(prop NRestarts)" = "$pid $n"
n=$(prop NRestarts); pid=$(mainpid)
gkill STOP "$pid"
wait_restart "$n" "$pid"
check "SIGSTOPped node: restarted (NRestarts $n -> $(prop NRestarts), pid $pid -> $(mainpid))" \
    test "$(prop NRestarts)" -gt "$n" -a "$(prop ActiveState)" = active
check "systemd's log: '$(guest journalctl --no-pager -o cat -u $U | grep -o 'Watchdog timeout.*' | head -n 1)'" \
    jwait 'Watchdog timeout'
check "... and the stopped node was killed with SIGABRT (WatchdogSignal)" jwait 'status=6/ABRT'
check "same peer ID after the watchdog restart" test "$(peerid)" = "$p1"

# ---- kill -9: Restart=on-failure ----
n=$(prop NRestarts); pid=$(mainpid)
gkill KILL "$pid"
wait_restart "$n" "$pid"
check "kill -9: restarted (NRestarts $n -> $(prop NRestarts), pid $pid -> $(mainpid))" \
    test "$(prop NRestarts)" -gt "$n" -a "$(prop ActiveState)" = active

# ---- ProtectSystem=strict: the node's mount namespace ----
pid=$(mainpid)
check "show: ProtectSystem=strict ($(prop ProtectSystem))" test "$(prop ProtectSystem)" = strict
check "show: ReadWritePaths=/var/lib/kwaainet-edge ($(prop ReadWritePaths))" test "$(prop ReadWritePaths)" = /var/lib/kwaainet-edge
check "show: StateDirectory=kwaainet-edge ($(prop StateDirectory))" test "$(prop StateDirectory)" = kwaainet-edge
inunit() { guest nsenter -t "$pid" -m "$@"; }
for f in /usr/kwtest /etc/kwtest /var/kwtest /var/lib/kwtest; do
    if inunit touch $f > "$tmp/touch" 2>&1; then
        ko "the node's mounts: $f writable"
    else
        ok "the node's mounts: $f refused ($(sed 's/.*: //' "$tmp/touch"))"
    fi
done
check "the node's mounts: /var/lib/kwaainet-edge writable" \
    inunit sh -c 'touch /var/lib/kwaainet-edge/kwtest && rm /var/lib/kwaainet-edge/kwtest'
check "outside the unit the same root is writable (so the refusals are the unit's)" \
    sh -c "nsenter -t $pid1 -m -p -r -w touch /etc/kwtest"
g="nsenter -t $pid1 -m -p -r -w"
check "PrivateTmp: the node's /tmp is its own (a file made there is not in the guest's /tmp)" \
    sh -c "$g nsenter -t $pid -m touch /tmp/kwtest-private && ! $g test -e /tmp/kwtest-private"
# what the kernel enforces on the running node: no new privileges, seccomp filter mode, no
# capabilities even in the bounding set (CapabilityBoundingSet= empty)
guest cat /proc/$pid/status > "$tmp/status"
check "kernel view of the node: NoNewPrivs 1, Seccomp 2 (filter), CapEff and CapBnd 0" \
    sh -c "grep -q '^NoNewPrivs:[[:space:]]*1$' '$tmp/status' && grep -q '^Seccomp:[[:space:]]*2$' '$tmp/status' &&
           grep -q '^CapEff:[[:space:]]*0*$' '$tmp/status' && grep -q '^CapBnd:[[:space:]]*0*$' '$tmp/status'"

# ---- stop drains and exits 0 ----
inv=$(prop InvocationID)
t0=$(date +%s%N)
guest systemctl stop $U
t1=$(date +%s%N)
r=$(prop ActiveState)/$(prop ExecMainStatus)/$(prop Result)
check "systemctl stop: after $(((t1 - t0) / 1000000)) ms, state/exit status/result $r (want inactive/0/success)" \
    test "$r" = "inactive/0/success"
guest journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$inv" > "$tmp/stop.log" 2>&1
check "the node's log says it drained: '$(grep -o 'received.*draining[^)]*)' "$tmp/stop.log")'" \
    grep -q 'draining' "$tmp/stop.log"
check "... and stopped: '$(grep -o 'stopped (.*' "$tmp/stop.log")'" grep -q 'stopped (' "$tmp/stop.log"

# ---- the maintainer scripts against this systemd: remove stops and disables, purge deletes ----
# six starts in 10 s so far: reset systemd's start rate limit (StartLimitBurst=5), which the
# shipped RestartSec=5s never reaches, so that this start is not refused
guest systemctl reset-failed $U
guest systemctl start $U
check "started again for dpkg -r ($(prop ActiveState))" test "$(prop ActiveState)" = active
inv=$(prop InvocationID)
guest dpkg -r kwaainet-edge > "$tmp/dpkg-r.log" 2>&1 || { ko "dpkg -r kwaainet-edge"; cat "$tmp/dpkg-r.log"; }
guest journalctl --no-pager -o cat _SYSTEMD_INVOCATION_ID="$inv" > "$tmp/rm.log" 2>&1
check "dpkg -r: prerm stopped the running node, which drained (is-active: $(guest systemctl is-active $U))" \
    sh -c "test '$(guest systemctl is-active $U)' = inactive && grep -q draining '$tmp/rm.log'"
check "dpkg -r: no longer enabled (no multi-user.target.wants link)" \
    guest test ! -e /etc/systemd/system/multi-user.target.wants/$U
check "dpkg -r: identity.key kept" guest test -f /var/lib/kwaainet-edge/identity.key
guest dpkg --purge kwaainet-edge > "$tmp/dpkg-p.log" 2>&1 || { ko "dpkg --purge kwaainet-edge"; cat "$tmp/dpkg-p.log"; }
check "dpkg --purge: /var/lib/kwaainet-edge deleted" guest test ! -e /var/lib/kwaainet-edge
check "dpkg --purge: the kwaainet user deleted" sh -c "! nsenter -t $pid1 -m -p -r -w getent passwd kwaainet"

echo "test_systemd: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
