#!/bin/sh
# A flashable SD-card image for a Raspberry Pi with kwaainet-edge (doc/install.md):
#     sh tools/pkg/mkimage.sh BOARD DEB_DIR OUT_DIR        (make image BOARD=rpi4 runs it)
# BOARD: rpi4, rpi5 or rpizero2w. DEB_DIR holds kwaainet-edge_<version>_arm64.deb (make deb).
# Writes OUT_DIR/kwaainet-edge-BOARD.img: an MBR disk with a FAT32 boot partition (Pi
# firmware, kernel, device trees, config.txt, cmdline.txt) and an ext4 root file system.
#
# The root file system is Debian bookworm arm64 from the Debian mirror (mmdebstrap). This
# machine cannot run arm64 binaries in a chroot (no binfmt_misc), so packages are only
# unpacked (--variant=extract): no maintainer script runs here and dpkg records nothing. The
# downloaded .debs stay in the image (/var/cache/apt/archives, with ours), and the image
# finishes the job on its first boot, as debootstrap's second stage would:
# kwaainet-firstboot.service installs them all with dpkg, which runs every maintainer script
# on the board (ours enables and starts kwaainet-edge), then deletes them. Until then
# systemd-sysusers creates the kwaainet user from the package's sysusers.d entry. Everything is built as files (mkfs.vfat -C + mcopy, mke2fs -d, sfdisk on
# the image file): no loop device, no mount.
#
# ROOTFS=dir skips the download and uses dir as the unpacked root (tests/build/test_image.sh
# passes a tiny fake one); MIRROR picks the Debian mirror; SSH_KEY=file installs that public
# key for root (the image has no password login); BOOT_MIB and ROOT_SLACK_MIB size the
# partitions (the test makes them small).
set -eu

BOARD=${1:?usage: mkimage.sh BOARD DEB_DIR OUT_DIR}
DEBDIR=${2:?usage: mkimage.sh BOARD DEB_DIR OUT_DIR}
OUT=${3:?usage: mkimage.sh BOARD DEB_DIR OUT_DIR}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
MIRROR=${MIRROR:-http://deb.debian.org/debian}
# MBR disk identifier: the kernel finds its root as PARTUUID=<id>-02 without an initramfs
DISKID=4b574149
BOOT_MIB=${BOOT_MIB:-256}        # the FAT32 boot partition
ROOT_SLACK_MIB=${ROOT_SLACK_MIB:-256}  # free space in the root file system beyond 30 %

case "$BOARD" in
    rpi4)      DTBS="bcm2711-rpi-4-b.dtb bcm2711-rpi-400.dtb bcm2711-rpi-cm4.dtb" ;;
    rpi5)      DTBS="bcm2712-rpi-5-b.dtb" ;;
    rpizero2w) DTBS="bcm2837-rpi-zero-2-w.dtb bcm2710-rpi-zero-2-w.dtb" ;;
    *) echo "mkimage: BOARD must be rpi4, rpi5 or rpizero2w" >&2; exit 2 ;;
esac
DEB=$(ls "$DEBDIR"/kwaainet-edge_*_*.deb 2>/dev/null | head -n 1)
[ -n "$DEB" ] || { echo "mkimage: no kwaainet-edge .deb in $DEBDIR (make deb BOARD=$BOARD)" >&2; exit 1; }
for t in sfdisk mkfs.vfat mcopy mke2fs dpkg-deb; do
    command -v $t >/dev/null 2>&1 ||
        { echo "mkimage: $t is missing (apt-get install fdisk dosfstools mtools e2fsprogs)" >&2; exit 1; }
done
mkdir -p "$OUT"
W=$OUT/work
rm -rf "$W"
mkdir -p "$W/boot"

# ---- the root file system ----
if [ -n "${ROOTFS:-}" ]; then
    R=$W/root
    cp -a "$ROOTFS" "$R"
else
    command -v mmdebstrap >/dev/null 2>&1 ||
        { echo "mkimage: mmdebstrap is missing (apt-get install mmdebstrap)" >&2; exit 1; }
    [ "$(id -u)" = 0 ] || { echo "mkimage: run as root (mmdebstrap --mode=root)" >&2; exit 1; }
    R=$W/root
    # the .deb's own dependencies, without versions (apt picks bookworm's, which satisfy them)
    deps=$(dpkg-deb -f "$DEB" Depends | sed -e 's/([^)]*)//g' -e 's/ //g')
    mmdebstrap --arch=arm64 --variant=extract --mode=root --components=main,non-free-firmware \
        --skip=cleanup/apt/cache \
        --include='?priority(required)' \
        --include="systemd,systemd-sysv,udev,kmod,iproute2,netbase,openssh-server,linux-image-arm64,raspi-firmware,$deps" \
        bookworm "$R" "$MIRROR"
fi
# the package itself: unpacked like the rest, installed properly at first boot
dpkg-deb -x "$DEB" "$R"
mkdir -p "$R/var/cache/apt/archives"
cp "$DEB" "$R/var/cache/apt/archives/"
# what base-passwd's postinst would have written
[ -s "$R/etc/passwd" ] || cp "$R/usr/share/base-passwd/passwd.master" "$R/etc/passwd"
[ -s "$R/etc/group" ] || cp "$R/usr/share/base-passwd/group.master" "$R/etc/group"
[ -e "$R/etc/shadow" ] || { sed 's/:.*//; s/$/:*:19000:0:99999:7:::/' "$R/etc/passwd" > "$R/etc/shadow"; chmod 0640 "$R/etc/shadow"; }
echo "kwaainet-$BOARD" > "$R/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tkwaainet-%s\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
    "$BOARD" > "$R/etc/hosts"
cat > "$R/etc/fstab" <<EOT
PARTUUID=$DISKID-02  /               ext4  rw,noatime           0 1
PARTUUID=$DISKID-01  /boot/firmware  vfat  rw,noatime,umask=077 0 2
EOT
mkdir -p "$R/boot/firmware" "$R/etc/systemd/network" "$R/etc/systemd/system/multi-user.target.wants"
cat > "$R/etc/systemd/network/20-wired.network" <<EOT
[Match]
Name=e*

[Network]
DHCP=yes
EOT
cat > "$R/etc/systemd/system/kwaainet-firstboot.service" <<EOT
# Finishes the unpacked image on its first boot (tools/pkg/mkimage.sh): installs every
# package it was built from with dpkg (maintainer scripts run here, on the board, as in
# debootstrap's second stage; kwaainet-edge's postinst enables and starts the node), then
# deletes the .debs and never runs again.
[Unit]
Description=kwaainet-edge image: install the packages on first boot
ConditionPathExists=/var/lib/kwaainet-firstboot
After=systemd-remount-fs.service systemd-sysusers.service
Before=kwaainet-edge.service ssh.service

[Service]
Type=oneshot
Environment=DEBIAN_FRONTEND=noninteractive
ExecStart=/bin/sh -c 'dpkg --install --force-depends --force-confold /var/cache/apt/archives/*.deb; dpkg --configure -a --force-confold'
ExecStartPost=/bin/sh -c 'rm -f /var/cache/apt/archives/*.deb /var/lib/kwaainet-firstboot'
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
EOT
: > "$R/var/lib/kwaainet-firstboot"
for u in kwaainet-firstboot.service; do
    ln -sf "/etc/systemd/system/$u" "$R/etc/systemd/system/multi-user.target.wants/$u"
done
for u in kwaainet-edge.service systemd-networkd.service; do
    ln -sf "/lib/systemd/system/$u" "$R/etc/systemd/system/multi-user.target.wants/$u"
done
if [ -n "${SSH_KEY:-}" ]; then
    install -d -m 0700 "$R/root/.ssh"
    install -m 0600 "$SSH_KEY" "$R/root/.ssh/authorized_keys"
fi

# ---- the boot partition: what raspi-firmware's hooks would copy ----
missing=""
if [ -d "$R/usr/lib/raspi-firmware" ]; then
    cp -a "$R/usr/lib/raspi-firmware/." "$W/boot/"
else
    missing="$missing raspi-firmware"
fi
KERNEL=$(ls "$R"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n 1)
if [ -n "$KERNEL" ]; then
    KVER=${KERNEL##*/vmlinuz-}
    cp "$KERNEL" "$W/boot/vmlinuz"
    for d in $DTBS; do
        f=$(ls "$R/usr/lib/linux-image-$KVER"/broadcom/$d 2>/dev/null || true)
        [ -n "$f" ] && cp "$f" "$W/boot/"
    done
    ls "$W"/boot/*.dtb >/dev/null 2>&1 || missing="$missing device-tree($DTBS)"
else
    missing="$missing linux-image-arm64"
fi
initramfs=""
if ls "$R"/boot/initrd.img-* >/dev/null 2>&1; then
    cp "$(ls "$R"/boot/initrd.img-* | sort -V | tail -n 1)" "$W/boot/initrd.img"
    initramfs="initramfs initrd.img followkernel"
fi
cat > "$W/boot/config.txt" <<EOT
# kwaainet-edge image for $BOARD (tools/pkg/mkimage.sh)
arm_64bit=1
enable_uart=1
upstream_kernel=1
kernel=vmlinuz
$initramfs
disable_overscan=1
EOT
echo "console=tty1 console=serial0,115200 root=PARTUUID=$DISKID-02 rootfstype=ext4 rootwait fsck.repair=yes" \
    > "$W/boot/cmdline.txt"

# ---- partitions as files, then the disk ----
root_mib=$(( $(du -sm "$R" | cut -f1) * 13 / 10 + ROOT_SLACK_MIB ))
mkfs.vfat -C -F 32 -n KWBOOT "$W/boot.fat" $((BOOT_MIB * 1024)) >/dev/null
mcopy -s -i "$W/boot.fat" "$W"/boot/* ::/
mke2fs -q -t ext4 -L kwroot -d "$R" "$W/root.ext4" "${root_mib}M"
IMG=$OUT/kwaainet-edge-$BOARD.img
rm -f "$IMG"
truncate -s $((4 + BOOT_MIB + root_mib))M "$IMG"
sfdisk -q "$IMG" <<EOT
label: dos
label-id: 0x$DISKID
start=4MiB, size=${BOOT_MIB}MiB, type=c, bootable
start=$((4 + BOOT_MIB))MiB, type=83
EOT
dd if="$W/boot.fat" of="$IMG" bs=1M seek=4 conv=notrunc status=none
dd if="$W/root.ext4" of="$IMG" bs=1M seek=$((4 + BOOT_MIB)) conv=notrunc status=none
echo "image: $IMG ($(( (4 + BOOT_MIB + root_mib) )) MiB; boot ${BOOT_MIB} MiB FAT32, root ${root_mib} MiB ext4)"
if [ -z "$initramfs" ] && [ -n "$KERNEL" ]; then
    # without an initramfs the kernel mounts the root itself: ext4 and the SD host driver
    # must be built in, which Debian's arm64 kernel does not do
    kcfg=$(ls "$R/boot/config-$KVER" 2>/dev/null || true)
    if [ -n "$kcfg" ] && grep -q '^CONFIG_EXT4_FS=y' "$kcfg" && grep -q '^CONFIG_MMC_SDHCI_IPROC=y\|^CONFIG_MMC_BCM2835=y' "$kcfg"; then
        echo "note: no initramfs; kernel $KVER mounts the ext4 root from the SD card by itself"
    else
        echo "WARNING: this image does not boot as it is: no initramfs (mkinitramfs must run arm64" \
             "programs, which this machine cannot), and kernel ${KVER:-?} builds ext4 and the SD" \
             "host driver as modules (doc/install.md, 'Limits of the image')"
    fi
fi
[ -n "$missing" ] && echo "missing from the boot partition:$missing"
rm -rf "$W"
exit 0
