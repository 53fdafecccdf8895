#!/bin/sh
# Adds kwaainet-edge to a Raspberry Pi OS SD-card image (doc/install.md, "The SD-card image"):
#     sh tools/pkg/mkimage.sh BASE DEB [CONFIG] [OUT_DIR]     (make image BASE=... runs it)
# BASE: a Raspberry Pi OS Lite (arm64, bookworm) .img, or .img.xz. DEB: the kwaainet-edge .deb
# (make deb BOARD=rpi4). CONFIG: the node's kwnode.conf (default: the shipped one). Writes
# OUT_DIR/<BASE name>-kwaainet-edge.img (OUT_DIR default build/image); BASE is not changed.
#
# The image's partitions are edited as files, never mounted: no loop device, no root. The
# second partition (the ext4 root file system, whose offset and size come from `sfdisk -d`) is
# copied out with dd, changed with `debugfs -w -f` and copied back with conv=notrunc. Into it:
#   /usr/bin/kwnode, /usr/lib/systemd/system/kwaainet-edge.service,
#   /usr/lib/sysusers.d/kwaainet-edge.conf (systemd-sysusers creates the kwaainet user at boot)
#   /etc/kwaainet-edge/kwnode.conf (CONFIG), the unit enabled (the multi-user.target.wants
#   symlink `systemctl enable` makes), and the .deb itself under
#   /var/lib/kwaainet-edge-firstboot/ with kwaainet-edge-firstboot.service, a oneshot unit that
#   runs `dpkg -i` on it at the first boot so dpkg knows the package (apt can upgrade or remove
#   it; postinst adds kwaainet to the gpio group), then deletes it.
# Why both: the node runs on the first boot even if that dpkg step fails (a missing dependency
# is reported in `journalctl -u kwaainet-edge-firstboot`), and dpkg keeps CONFIG because the
# first-boot unit passes --force-confold. The unit goes to /usr/lib/systemd/system, which is
# /lib/systemd/system on Raspberry Pi OS bookworm (merged /usr), so the package's copy lands
# on the same file.
#
# Wi-Fi, the user account and SSH are left to Raspberry Pi OS's own first-boot mechanisms on
# the FAT boot partition (Raspberry Pi Imager's "OS customisation" writes them when the result
# is written with "Use custom"). BOOT_FILES="file ..." copies those files (for example `ssh`,
# `userconf.txt`) into the boot partition's top directory with mtools; nothing else is written
# there.
set -eu
PATH=$PATH:/usr/sbin:/sbin

usage="usage: mkimage.sh BASE DEB [CONFIG] [OUT_DIR]"
BASE=${1:?$usage}
DEB=${2:?$usage}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
CONFIG=${3:-$SRC/tools/pkg/kwnode.conf}
OUT=${4:-build/image}
PKG=kwaainet-edge
FB=/var/lib/$PKG-firstboot

die() { echo "mkimage: $2" >&2; exit "$1"; }
[ -f "$BASE" ] || die 2 "BASE '$BASE' is not a file ($usage)"
[ -f "$DEB" ] || die 2 "DEB '$DEB' is not a file (make deb BOARD=rpi4 writes it)"
[ -f "$CONFIG" ] || die 2 "CONFIG '$CONFIG' is not a file"
for t in sfdisk debugfs dd dpkg-deb; do
    command -v $t >/dev/null 2>&1 || die 1 "$t is missing (apt-get install fdisk e2fsprogs coreutils dpkg)"
done
[ -z "${BOOT_FILES:-}" ] || command -v mcopy >/dev/null 2>&1 || die 1 "mcopy is missing (apt-get install mtools)"
[ "$(dpkg-deb -f "$DEB" Package 2>/dev/null)" = $PKG ] || die 2 "DEB '$DEB' is not a $PKG package"
DARCH=$(dpkg-deb -f "$DEB" Architecture)
[ "$DARCH" = arm64 ] || echo "mkimage: note: $DEB is for $DARCH; a Raspberry Pi OS arm64 image needs the arm64 one (make deb BOARD=rpi4)" >&2

name=$(basename "$BASE"); name=${name%.xz}; name=${name%.img}
IMG=$OUT/$name-$PKG.img
mkdir -p "$OUT"
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

case "$BASE" in
    *.xz) xz -dc "$BASE" > "$IMG.tmp" ;;
    *)    cp --sparse=always "$BASE" "$IMG.tmp" ;;
esac

# ---- the root partition: number 2 in the table, checked to be ext2/3/4 ----
sfdisk -d "$IMG.tmp" > "$W/table" 2>"$W/sfdisk.err" || {
    rm -f "$IMG.tmp"; die 2 "BASE '$BASE' has no partition table sfdisk can read: $(cat "$W/sfdisk.err")"; }
SECT=$(sed -n 's/^sector-size: *//p' "$W/table"); SECT=${SECT:-512}
P2=$(sed -n 's/^[^ ]*[^0-9]2 : start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p' "$W/table")
[ -n "$P2" ] || { rm -f "$IMG.tmp"; die 2 "BASE '$BASE' has no second partition (Raspberry Pi OS has boot=1, root=2)"; }
set -- $P2
START=$1 SIZE=$2
# the ext2/3/4 superblock: 1024 bytes in, magic 0xEF53 (little endian) at byte 56 of it
MAGIC=$(dd if="$IMG.tmp" bs=1 skip=$((START * SECT + 1080)) count=2 status=none | od -An -tx1 | tr -d ' \n')
[ "$MAGIC" = 53ef ] || { rm -f "$IMG.tmp"; die 2 "partition 2 of BASE '$BASE' is not an ext4 file system (no ext superblock at sector $START)"; }

# ---- the files, from the package ----
dpkg-deb -x "$DEB" "$W/deb"
for f in usr/bin/kwnode lib/systemd/system/$PKG.service usr/lib/sysusers.d/$PKG.conf; do
    [ -f "$W/deb/$f" ] || { rm -f "$IMG.tmp"; die 2 "DEB '$DEB' has no /$f"; }
done
DEBNAME=$(basename "$DEB")
cat > "$W/firstboot.service" <<EOT
# Registers the kwaainet-edge package with dpkg on the first boot (tools/pkg/mkimage.sh
# installed its files into the image without running dpkg). --force-confold keeps the
# kwnode.conf written into the image. Runs once: the .deb and its directory are deleted.
[Unit]
Description=kwaainet-edge image: install the staged package with dpkg on first boot
ConditionPathExists=$FB/$DEBNAME
# After the node, not before: postinst's systemctl enable --now waits for the node's start
# job, which would wait for this unit if it were ordered first.
After=systemd-remount-fs.service systemd-sysusers.service $PKG.service

[Service]
Type=oneshot
ExecStart=/usr/bin/dpkg -i --force-confold --force-confdef $FB/$DEBNAME
ExecStartPost=/bin/rm -rf $FB

[Install]
WantedBy=multi-user.target
EOT

# debugfs: `write` refuses an existing name, so each file is removed first (an error for a
# name that is not there is harmless). Only missing directories are made: debugfs 1.47's
# mkdir of an existing name can leave an orphan inode behind (e2fsck finds it). Owner root,
# modes as the package has them.
# byte offsets with 1 MiB blocks: a 2 GiB root in 512-byte blocks would be 4 M system calls
dd if="$IMG.tmp" of="$W/root.ext4" bs=1M iflag=skip_bytes,count_bytes skip=$((START * SECT)) \
    count=$((SIZE * SECT)) status=none
U=/usr/lib/systemd/system
WANTS=/etc/systemd/system/multi-user.target.wants
{
    for d in /usr /usr/bin /usr/lib /usr/lib/systemd $U /usr/lib/sysusers.d /etc \
             /etc/$PKG /etc/systemd /etc/systemd/system $WANTS /var /var/lib $FB; do
        debugfs -R "stat $d" "$W/root.ext4" 2>/dev/null | grep -q '^Inode:' || echo "mkdir $d"
    done
    echo "sif $FB mode 040700"; echo "sif $FB uid 0"; echo "sif $FB gid 0"
    echo "sif /etc/$PKG uid 0"; echo "sif /etc/$PKG gid 0"
    put() {  # host-file image-path mode
        echo "rm $2"; echo "write $1 $2"
        echo "sif $2 mode 0100$3"; echo "sif $2 uid 0"; echo "sif $2 gid 0"
    }
    put "$W/deb/usr/bin/kwnode" /usr/bin/kwnode 755
    put "$W/deb/lib/systemd/system/$PKG.service" $U/$PKG.service 644
    put "$W/deb/usr/lib/sysusers.d/$PKG.conf" /usr/lib/sysusers.d/$PKG.conf 644
    put "$CONFIG" /etc/$PKG/kwnode.conf 644
    put "$W/firstboot.service" $U/$PKG-firstboot.service 644
    put "$DEB" $FB/$DEBNAME 644
    for u in $PKG $PKG-firstboot; do
        echo "rm $WANTS/$u.service"; echo "symlink $WANTS/$u.service $U/$u.service"
    done
} > "$W/cmds"

debugfs -w -f "$W/cmds" "$W/root.ext4" > "$W/debugfs.log" 2>&1 || {
    cat "$W/debugfs.log" >&2; rm -f "$IMG.tmp"; die 1 "debugfs could not edit the root file system"; }
# debugfs goes on after a failed command; the harmless ones are the rm/mkdir of names that
# are (not) there. Anything else (no space, no inodes) stops here.
if grep -v -e 'File not found by ext2_lookup' -e 'Ext2 directory already exists' \
        -e 'Ext2 file already exists' -e '^debugfs' -e '^Allocated inode:' "$W/debugfs.log" | grep -q .; then
    cat "$W/debugfs.log" >&2; rm -f "$IMG.tmp"; die 1 "debugfs reported an error editing the root file system"
fi
if command -v e2fsck >/dev/null 2>&1 && ! e2fsck -fn "$W/root.ext4" > "$W/fsck.log" 2>&1; then
    cat "$W/fsck.log" >&2; rm -f "$IMG.tmp"; die 1 "the edited root file system does not pass e2fsck -fn"
fi
dd if="$W/root.ext4" of="$IMG.tmp" bs=1M oflag=seek_bytes seek=$((START * SECT)) conv=notrunc status=none

# ---- the boot partition: only the files asked for ----
if [ -n "${BOOT_FILES:-}" ]; then
    P1=$(sed -n 's/^[^ ]*[^0-9]1 : start= *\([0-9]*\),.*/\1/p' "$W/table")
    [ -n "$P1" ] || { rm -f "$IMG.tmp"; die 2 "BASE '$BASE' has no first (boot) partition for BOOT_FILES"; }
    for f in $BOOT_FILES; do
        MTOOLS_SKIP_CHECK=1 mcopy -o -i "$IMG.tmp@@$((P1 * SECT))" "$f" ::/ ||
            { rm -f "$IMG.tmp"; die 1 "mcopy could not copy $f into the boot partition"; }
    done
fi
mv "$IMG.tmp" "$IMG"
echo "$IMG"
