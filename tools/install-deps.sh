#!/bin/sh
# Installs every Debian package the build, the tests and the arm64 cross build need.
# Idempotent: packages already present are skipped, so `make run` and `make check` can call
# it every time. Needs root (apt-get); as another user it prints what to install and fails.
set -eu

HOST_PKGS="build-essential make file pkg-config python3 python3-kconfiglib python3-numpy \
  libcmocka-dev libmbedtls-dev libsodium-dev libsecp256k1-dev libnanopb-dev nanopb \
  libopenblas-pthread-dev libgpiod-dev \
  clang llvm libclang-rt-14-dev \
  gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user \
  iproute2 \
  fdisk dosfstools mtools e2fsprogs xz-utils \
  curl chromium"
ARM64_PKGS="libc6:arm64 libcmocka-dev:arm64 libmbedtls-dev:arm64 libsodium-dev:arm64 libsecp256k1-dev:arm64 \
  libnanopb-dev:arm64 libopenblas-pthread-dev:arm64 libgpiod-dev:arm64"

# js-libp2p for tests/interop at the versions pinned in its package-lock.json. Runs `npm ci`
# only when node_modules is missing or the lockfile changed since the last install (a stamp
# holds the lockfile's hash), so repeated `make check` runs cost nothing. No root needed.
interop_deps() {
    dir="$(dirname "$0")/../tests/interop"
    [ -f "$dir/package-lock.json" ] || return 0
    command -v npm >/dev/null 2>&1 || return 0
    want=$(sha256sum "$dir/package-lock.json" | cut -d' ' -f1)
    have=$(cat "$dir/node_modules/.kw-lock-sha256" 2>/dev/null || true)
    [ -d "$dir/node_modules" ] && [ "$want" = "$have" ] && return 0
    echo "kwaainet-edge: npm ci --prefix tests/interop (js-libp2p for the interop tests)"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
    echo "$want" > "$dir/node_modules/.kw-lock-sha256"
}

missing=""
# js-libp2p interop needs node >= 18 with npm; a node from elsewhere (nodesource) is kept,
# since Debian's npm conflicts with it.
command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || HOST_PKGS="$HOST_PKGS nodejs npm"
for p in $HOST_PKGS $ARM64_PKGS; do
    st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    case "$st" in
        *"ok installed") ;;
        *) missing="$missing $p" ;;
    esac
done
need_arch=0
dpkg --print-foreign-architectures 2>/dev/null | grep -qx arm64 || need_arch=1

if [ -z "$missing" ] && [ $need_arch -eq 0 ]; then
    interop_deps
    exit 0
fi

if [ "$(id -u)" != 0 ]; then
    echo "kwaainet-edge: missing Debian packages:$missing" >&2
    [ $need_arch -eq 1 ] && echo "  and the arm64 foreign architecture (dpkg --add-architecture arm64)" >&2
    echo "Run as root:  sudo sh tools/install-deps.sh" >&2
    exit 1
fi

echo "kwaainet-edge: installing:$missing"
export DEBIAN_FRONTEND=noninteractive
[ $need_arch -eq 1 ] && dpkg --add-architecture arm64
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $HOST_PKGS $ARM64_PKGS
interop_deps
