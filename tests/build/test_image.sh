#!/bin/sh
# tools/pkg/mkimage.sh without the download: an image of a tiny fake root file system (fake
# Pi firmware, kernel and device tree files, base-passwd's tables) plus a real .deb, checked
# from the outside as a Pi's boot ROM and kernel would see it:
#     sh tests/build/test_image.sh BUILD_DIR      (a host build; its .deb is made first)
# the MBR (disk id, a bootable FAT32 partition then a Linux one), the boot partition's files
# (firmware, kernel, DTB, config.txt, cmdline.txt naming the root by PARTUUID) read with
# mtools, and the root file system's files read with debugfs (kwnode, the unit enabled, the
# config, fstab, the first-boot unit). Needs fdisk, dosfstools, mtools, e2fsprogs (installed
# by tools/install-deps.sh); no root, no loop device, no network. About 10 s.
set -eu

B=${1:?usage: test_image.sh BUILD_DIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0 fail=0
ok()  { pass=$((pass + 1)); echo "  ok   $1"; }
bad() { fail=$((fail + 1)); echo "  FAIL $1"; }
check() { d=$1; shift; if "$@" >/dev/null 2>&1; then ok "$d"; else bad "$d"; fi; }
PATH=$PATH:/usr/sbin:/sbin

echo "== test_image: $B"
sh "$SRC/tools/pkg/mkdeb.sh" "$B" "$T/deb" >/dev/null
F=$T/fake
KV=6.1.0-99-arm64
mkdir -p "$F/usr/lib/raspi-firmware" "$F/boot" "$F/usr/lib/linux-image-$KV/broadcom" \
    "$F/usr/share/base-passwd" "$F/etc" "$F/var/lib" "$F/lib/systemd/system"
echo firmware > "$F/usr/lib/raspi-firmware/start4.elf"
echo fixup > "$F/usr/lib/raspi-firmware/fixup4.dat"
echo kernel > "$F/boot/vmlinuz-$KV"
echo dtb > "$F/usr/lib/linux-image-$KV/broadcom/bcm2711-rpi-4-b.dtb"
printf 'root:*:0:0:root:/root:/bin/sh\n' > "$F/usr/share/base-passwd/passwd.master"
printf 'root:*:0:\n' > "$F/usr/share/base-passwd/group.master"

if ROOTFS=$F BOOT_MIB=40 ROOT_SLACK_MIB=8 sh "$SRC/tools/pkg/mkimage.sh" rpi4 "$T/deb" "$T/out" > "$T/log" 2>&1; then
    ok "mkimage.sh rpi4 with a fake root"
else
    bad "mkimage.sh rpi4 with a fake root"; cat "$T/log"
fi
IMG=$T/out/kwaainet-edge-rpi4.img
check "image written" test -s "$IMG"
check "boot partition is not reported missing" sh -c "! grep -q '^missing' '$T/log'"

# ---- the partition table ----
sfdisk -d "$IMG" > "$T/table"
check "MBR disk id 0x4b574149" grep -q '^label-id: 0x4b574149' "$T/table"

check "partition 1: FAT32 LBA, bootable, 4 MiB + 40 MiB" grep -Eq 'img1 : start= *8192, size= *81920, type=c, bootable' "$T/table"
check "partition 2: Linux, right after it" grep -Eq 'img2 : start= *90112, .*type=83' "$T/table"
P2=$(sed -n 's/.*img2 : start= *\([0-9]*\), size= *\([0-9]*\).*/\1 \2/p' "$T/table")
set -- $P2
check "partition 2 ends inside the image" test $(( ($1 + $2) * 512 )) -le "$(stat -c %s "$IMG")"
dd if="$IMG" of="$T/p1" bs=1M skip=4 count=40 status=none
dd if="$IMG" of="$T/p2" bs=1M skip=$(($1 / 2048)) count=$(($2 / 2048)) status=none

# ---- the boot partition ----
export MTOOLS_SKIP_CHECK=1
check "boot is FAT32 labelled KWBOOT" sh -c "minfo -i '$T/p1' :: | grep -q 'volume label: KWBOOT' || mlabel -i '$T/p1' -s :: | grep -q KWBOOT"
for f in start4.elf fixup4.dat vmlinuz bcm2711-rpi-4-b.dtb config.txt cmdline.txt; do
    check "boot has $f" mtype -i "$T/p1" "::/$f"
done
check "config.txt: 64-bit, kernel=vmlinuz" sh -c "mtype -i '$T/p1' ::/config.txt | grep -qx arm_64bit=1 && mtype -i '$T/p1' ::/config.txt | grep -qx kernel=vmlinuz"
check "cmdline.txt: root=PARTUUID=4b574149-02" sh -c "mtype -i '$T/p1' ::/cmdline.txt | grep -q 'root=PARTUUID=4b574149-02 rootfstype=ext4 rootwait'"
check "kernel copied intact" sh -c "test \"\$(mtype -i '$T/p1' ::/vmlinuz)\" = kernel"

# ---- the root file system ----
dbg() { debugfs -R "$1" "$T/p2" 2>/dev/null; }
check "root is ext4 labelled kwroot" sh -c "dumpe2fs -h '$T/p2' 2>/dev/null | grep -q 'volume name: *kwroot'"
for f in /usr/bin/kwnode /etc/kwaainet-edge/kwnode.conf /lib/systemd/system/kwaainet-edge.service \
         /usr/lib/sysusers.d/kwaainet-edge.conf /etc/fstab /etc/passwd /etc/hostname \
         /etc/systemd/system/kwaainet-firstboot.service /var/lib/kwaainet-firstboot \
         /var/cache/apt/archives/$(basename "$(ls "$T"/deb/*.deb)"); do
    check "root has $f" sh -c "dbg() { debugfs -R \"\$1\" '$T/p2' 2>/dev/null; }; dbg 'stat $f' | grep -q 'Inode:'"
done
check "kwaainet-edge.service is enabled" sh -c "debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/kwaainet-edge.service' '$T/p2' 2>/dev/null | grep -q 'Fast link dest: \"/lib/systemd/system/kwaainet-edge.service\"'"
check "kwnode is mode 0755, owned by root" sh -c "debugfs -R 'stat /usr/bin/kwnode' '$T/p2' 2>/dev/null | grep -q 'Mode:  0755' && debugfs -R 'stat /usr/bin/kwnode' '$T/p2' 2>/dev/null | grep -q 'User: *0 *Group: *0'"
dbg "cat /etc/fstab" > "$T/fstab"
check "fstab mounts root and boot by PARTUUID" sh -c "grep -q '^PARTUUID=4b574149-02 *\/ ' '$T/fstab' && grep -q '^PARTUUID=4b574149-01 *\/boot\/firmware ' '$T/fstab'"
dbg "cat /usr/bin/kwnode" > "$T/kwnode"
check "kwnode in the image is the packaged one" sh -c "dpkg-deb --fsys-tarfile '$T'/deb/*.deb | tar -xO ./usr/bin/kwnode | cmp -s - '$T/kwnode'"

echo "test_image: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
