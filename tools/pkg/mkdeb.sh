#!/bin/sh
# Builds the kwaainet-edge .deb from a configured and built tree (doc/install.md):
#     sh tools/pkg/mkdeb.sh BUILD_DIR [OUT_DIR]
# BUILD_DIR holds .config and kwnode (`make deb` builds both first). The package is written to
# OUT_DIR (default BUILD_DIR) as kwaainet-edge_<version>_<arch>.deb and its path printed last.
# Files are root-owned through dpkg-deb --root-owner-group, so neither root nor fakeroot is
# needed. Depends comes from the shared libraries kwnode actually links (see deps() below).
set -eu

B=${1:?usage: mkdeb.sh BUILD_DIR [OUT_DIR]}
OUT=${2:-$B}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
PKG=kwaainet-edge

cfg() { sed -n "s/^$1=\"\{0,1\}\([^\"]*\)\"\{0,1\}$/\1/p" "$B/.config"; }
[ -f "$B/.config" ] && [ -x "$B/kwnode" ] || { echo "mkdeb: $B has no .config or kwnode (run make first)" >&2; exit 1; }
KARCH=$(cfg CONFIG_KW_ARCH)
BOARD=$(cfg CONFIG_KW_BOARD_NAME)
case "$KARCH" in
    x86_64) DARCH=amd64; GNU=x86_64-linux-gnu ;;
    arm64)  DARCH=arm64; GNU=aarch64-linux-gnu ;;
    *) echo "mkdeb: unknown CONFIG_KW_ARCH '$KARCH'" >&2; exit 1 ;;
esac
VERSION=$(sed -n 's/^#define KW_VERSION_STRING "\(.*\)"/\1/p' "$SRC/include/kw/version.h")
# A cross build strips with the target's binutils.
STRIP=strip
[ "$DARCH" = "$(dpkg --print-architecture)" ] || STRIP=$GNU-strip

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
R=$WORK/root
install -d -m 0755 "$R/DEBIAN" "$R/usr/bin" "$R/lib/systemd/system" "$R/usr/lib/sysusers.d" \
    "$R/etc/$PKG" "$R/usr/share/doc/$PKG"
install -m 0755 "$B/kwnode" "$R/usr/bin/kwnode"
$STRIP --strip-unneeded --remove-section=.comment --remove-section=.note "$R/usr/bin/kwnode"
install -m 0644 "$SRC/tools/pkg/kwaainet-edge.service" "$R/lib/systemd/system/$PKG.service"
install -m 0644 "$SRC/tools/pkg/kwaainet-edge.sysusers" "$R/usr/lib/sysusers.d/$PKG.conf"
install -m 0644 "$SRC/tools/pkg/kwnode.conf" "$R/etc/$PKG/kwnode.conf"
for d in install.md config.md board.md; do
    install -m 0644 "$SRC/doc/$d" "$R/usr/share/doc/$PKG/$d"
done
cat > "$R/usr/share/doc/$PKG/copyright" <<EOT
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: kwaainet-edge
Comment: Built from the kwaainet-edge source tree for board $BOARD. The tree does not state a
 licence yet; until it does, redistribution terms are those of its authors.
EOT
for f in postinst prerm postrm; do
    install -m 0755 "$SRC/tools/pkg/debian/$f" "$R/DEBIAN/$f"
done
install -m 0644 "$SRC/tools/pkg/debian/conffiles" "$R/DEBIAN/conffiles"

# Depends: dpkg-shlibdeps maps each DT_NEEDED library of kwnode to the package that ships it,
# with the minimum version from that package's symbols file: the same answer debhelper gives
# in a Debian build. It needs a debian/control to read and, for arm64, the :arm64 libraries
# that tools/install-deps.sh installs (found through the dpkg database, no sysroot). Without
# dpkg-dev, each NEEDED library is looked up with `dpkg -S` instead (names, no versions).
deps() {
    if [ -z "${KW_NO_SHLIBDEPS:-}" ] && command -v dpkg-shlibdeps >/dev/null 2>&1; then
        mkdir -p "$WORK/src/debian"
        printf 'Source: %s\n\nPackage: %s\nArchitecture: any\n' $PKG $PKG > "$WORK/src/debian/control"
        (cd "$WORK/src" && DEB_HOST_ARCH=$DARCH DEB_HOST_MULTIARCH=$GNU DEB_HOST_GNU_TYPE=$GNU \
            dpkg-shlibdeps -O -e"$R/usr/bin/kwnode" 2>"$WORK/shlibdeps.err") |
            sed -n 's/^shlibs:Depends=//p'
        return
    fi
    for lib in $({ LC_ALL=C $GNU-readelf -d "$R/usr/bin/kwnode" 2>/dev/null ||
                   LC_ALL=C readelf -d "$R/usr/bin/kwnode"; } |
                 sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
        dpkg -S "*/$GNU/$lib" 2>/dev/null | sed -n "s/:$DARCH: .*//p; s/: .*//p" | head -n 1
    done | sort -u | paste -sd, - | sed 's/,/, /g'
}
DEPENDS=$(deps)
if [ -z "$DEPENDS" ]; then
    echo "mkdeb: cannot compute Depends for $B/kwnode:" >&2
    cat "$WORK/shlibdeps.err" >&2 2>/dev/null || true
    exit 1
fi
SIZE=$(du -sk --exclude=DEBIAN "$R" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$DARCH/" -e "s/@SIZE@/$SIZE/" \
    -e "s/@DEPENDS@/$DEPENDS/" -e "s/@BOARD@/$BOARD/" \
    "$SRC/tools/pkg/debian/control.in" > "$R/DEBIAN/control"
chmod 0644 "$R/DEBIAN/control"
(cd "$R" && find . -path ./DEBIAN -prune -o -type f -print | sed 's|^\./||' | LC_ALL=C sort |
    xargs md5sum) > "$R/DEBIAN/md5sums"
chmod 0644 "$R/DEBIAN/md5sums"

mkdir -p "$OUT"
DEB=$OUT/${PKG}_${VERSION}_${DARCH}.deb
# --root-owner-group: every file root:root whoever builds; fixed mtimes come from the tree.
dpkg-deb --root-owner-group -Zxz --build "$R" "$DEB" >/dev/null
echo "$DEB"
