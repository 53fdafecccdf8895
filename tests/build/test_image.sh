#!/bin/sh
# tools/pkg/mkimage.sh on a small stand-in for Raspberry Pi OS: a two-partition disk image
# (FAT boot, ext4 root made with mkfs.ext4 -d from a tiny fake root) built here, then the tool
# run on it with a CONFIG and the result read from the outside with debugfs and mtools:
#     sh tests/build/test_image.sh BUILD_DIR      (a host build; its .deb is made first)
# Checks: the files, their modes and owners, the enabled-unit symlinks, the staged .deb, the
# root file system clean under e2fsck, the FAT partition and BASE unchanged; a BASE without an
# ext4 second partition fails with a message saying so. Needs fdisk, dosfstools, mtools,
# e2fsprogs (tools/install-deps.sh); no root, no loop device, no network. About 5 s.
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
export MTOOLS_SKIP_CHECK=1

echo "== test_image: $B"
DEB=$(sh "$SRC/tools/pkg/mkdeb.sh" "$B" "$T/deb" | tail -n 1)

# ---- BASE: 1 MiB gap, 16 MiB FAT16 boot, 24 MiB ext4 root ----
mkbase() {  # out-image root-partition-file
    truncate -s 41M "$1"
    printf 'label: dos\n2048,32768,c\n34816,49152,83\n' | sfdisk -q "$1"
    dd if="$T/boot.fat" of="$1" bs=512 seek=2048 conv=notrunc status=none
    dd if="$2" of="$1" bs=512 seek=34816 conv=notrunc status=none
}
mkfs.vfat -C -n BOOTFS "$T/boot.fat" 16384 >/dev/null
echo "arm_64bit=1" > "$T/config.txt"
mcopy -i "$T/boot.fat" "$T/config.txt" ::/config.txt
F=$T/fake
mkdir -p "$F/etc/systemd/system" "$F/usr/bin"
echo 'root:x:0:0:root:/root:/bin/bash' > "$F/etc/passwd"
echo '#!/bin/sh' > "$F/usr/bin/true-ish"
mkfs.ext4 -q -L rootfs -d "$F" -E root_owner=0:0 "$T/root.ext4" 24M >/dev/null
mkbase "$T/base.img" "$T/root.ext4"
md5sum "$T/base.img" > "$T/base.md5"

printf 'data_dir = /var/lib/kwaainet-edge\nlog_level = 2\nlisten = /ip4/0.0.0.0/tcp/4011\n' > "$T/node.conf"
echo "fake" > "$T/ssh"
if BOOT_FILES="$T/ssh" sh "$SRC/tools/pkg/mkimage.sh" "$T/base.img" "$DEB" "$T/node.conf" "$T/out" > "$T/log" 2>&1; then
    ok "mkimage.sh BASE DEB CONFIG"
else
    bad "mkimage.sh BASE DEB CONFIG"; cat "$T/log"
fi
IMG=$T/out/base-kwaainet-edge.img
check "prints the image path last" test "$(tail -n 1 "$T/log")" = "$IMG"
check "BASE itself is unchanged" md5sum -c "$T/base.md5"
check "image is as large as BASE" test "$(stat -c %s "$IMG")" -eq "$(stat -c %s "$T/base.img")"
check "partition table unchanged" sh -c "sfdisk -d '$T/base.img' | sed -n 's/^[^ ]*img//p' > '$T/t1'; sfdisk -d '$IMG' | sed -n 's/^[^ ]*img//p' > '$T/t2'; test -s '$T/t1' && cmp '$T/t1' '$T/t2'"

dd if="$IMG" of="$T/p2" bs=512 skip=34816 count=49152 status=none
dd if="$IMG" of="$T/p1" bs=512 skip=2048 count=32768 status=none
dbg() { debugfs -R "$1" "$T/p2" 2>/dev/null; }
check "root file system passes e2fsck -fn" e2fsck -fn "$T/p2"
check "the fake root's own files are still there" sh -c "debugfs -R 'cat /etc/passwd' '$T/p2' 2>/dev/null | grep -q '^root:x:0:0'"
# path mode
for e in "/usr/bin/kwnode 0755" "/usr/lib/systemd/system/kwaainet-edge.service 0644" \
         "/usr/lib/systemd/system/kwaainet-edge-firstboot.service 0644" \
         "/usr/lib/sysusers.d/kwaainet-edge.conf 0644" "/etc/kwaainet-edge/kwnode.conf 0644" \
         "/var/lib/kwaainet-edge-firstboot/$(basename "$DEB") 0644" \
         "/var/lib/kwaainet-edge-firstboot 0700" "/etc/kwaainet-edge 0755"; do
    set -- $e
    dbg "stat $1" > "$T/stat"
    check "$1: mode $2, owner root:root" sh -c "grep -q 'Mode:  $2' '$T/stat' && grep -q 'User: *0 *Group: *0 ' '$T/stat'"
done
dbg "cat /usr/bin/kwnode" > "$T/kwnode"
check "kwnode in the image is the packaged one" sh -c "dpkg-deb --fsys-tarfile '$DEB' | tar -xO ./usr/bin/kwnode | cmp -s - '$T/kwnode'"
dbg "cat /etc/kwaainet-edge/kwnode.conf" > "$T/conf"
check "kwnode.conf is the CONFIG given" cmp -s "$T/conf" "$T/node.conf"
dbg "cat /var/lib/kwaainet-edge-firstboot/$(basename "$DEB")" > "$T/staged.deb"
check "the staged .deb is the one given" cmp -s "$T/staged.deb" "$DEB"
for u in kwaainet-edge kwaainet-edge-firstboot; do
    check "$u.service enabled (multi-user.target.wants symlink)" sh -c "debugfs -R 'stat /etc/systemd/system/multi-user.target.wants/$u.service' '$T/p2' 2>/dev/null | grep -q 'Fast link dest: \"/usr/lib/systemd/system/$u.service\"'"
done
dbg "cat /usr/lib/systemd/system/kwaainet-edge-firstboot.service" > "$T/fb"
check "first-boot unit runs dpkg -i on the staged .deb, keeping the config" grep -q "^ExecStart=/usr/bin/dpkg -i --force-confold .*/var/lib/kwaainet-edge-firstboot/$(basename "$DEB")\$" "$T/fb"
check "first-boot unit is ordered after the node (postinst starts it)" sh -c "grep -q '^After=.* kwaainet-edge.service' '$T/fb' && ! grep -q '^Before=' '$T/fb'"
check "first-boot unit's text is written as is (no shell expansion in it)" grep -q "postinst's systemctl enable --now waits" "$T/fb"
check "installed config passes kwnode config check" "$B/kwnode" config check "$T/conf"

check "FAT: boot partition still labelled BOOTFS" sh -c "mlabel -i '$T/p1' -s :: | grep -q 'Volume label is BOOTFS'"
check "FAT: its config.txt intact" sh -c "test \"\$(mtype -i '$T/p1' ::/config.txt)\" = arm_64bit=1"
check "FAT: BOOT_FILES copied (ssh)" sh -c "test \"\$(mtype -i '$T/p1' ::/ssh)\" = fake"
check "FAT: passes fsck.fat -n" fsck.fat -n "$T/p1"

# ---- a second run on the result replaces the files rather than failing ----
if sh "$SRC/tools/pkg/mkimage.sh" "$IMG" "$DEB" "$T/node.conf" "$T/out2" > "$T/log2" 2>&1; then
    ok "runs again on its own output (replaces the files)"
else
    bad "runs again on its own output (replaces the files)"; cat "$T/log2"
fi

# ---- bad BASEs ----
mkfs.vfat -C "$T/notext4" 24576 >/dev/null
mkbase "$T/fat2.img" "$T/notext4"
set +e
sh "$SRC/tools/pkg/mkimage.sh" "$T/fat2.img" "$DEB" "" "$T/out3" > "$T/err" 2>&1; rc=$?
set -e
check "BASE whose partition 2 is not ext4: exit 2" test "$rc" -eq 2
check "... and says so" grep -q "partition 2 of BASE .* is not an ext4 file system" "$T/err"
check "... and leaves no image behind" sh -c "! ls '$T/out3'/*.img"
truncate -s 8M "$T/one.img"
printf 'label: dos\n2048,,c\n' | sfdisk -q "$T/one.img"
set +e
sh "$SRC/tools/pkg/mkimage.sh" "$T/one.img" "$DEB" "" "$T/out3" > "$T/err" 2>&1; rc=$?
set -e
check "BASE with one partition: exit 2, 'no second partition'" sh -c "test $rc -eq 2 && grep -q 'has no second partition' '$T/err'"

echo "test_image: $pass passed, $fail failed"
[ "$fail" -eq 0 ]
