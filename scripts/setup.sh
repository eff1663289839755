#!/usr/bin/env bash
# Installs everything stillpoint needs to build, test and run its demo on Debian 12, then
# configures and builds it. Idempotent: a second run only rebuilds what changed.
#
#   scripts/setup.sh [PRESET]      PRESET: release (default), debug, asan, ci, clang
set -euo pipefail

preset="${1:-${STILLPOINT_PRESET:-release}}"
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

packages=(
  # build
  build-essential cmake ninja-build pkg-config
  # libraries: NBD client, JSON, compression, hashing/encryption, catalog, CLI, errors, tests
  libnbd-dev nlohmann-json3-dev libzstd-dev libssl-dev libsqlite3-dev libcli11-dev libabsl-dev
  libgtest-dev libgmock-dev
  # the service: HTTPS server, configuration file, password hashes, systemd readiness
  libcpp-httplib-dev libtomlplusplus-dev libargon2-dev libsystemd-dev
  # the NBD server of `snapshot mount` (and its plugin API), NBD clients for the tests
  nbdkit nbdkit-plugin-dev libnbd-bin
  # QEMU, image tools and the pieces of the test guest
  qemu-system-x86 qemu-utils qemu-guest-agent busybox-static e2fsprogs cpio zstd fdisk
  # the Debian package and its test: dpkg-shlibdeps, systemd-analyze
  dpkg-dev systemd
)
# The clang preset: thread-safety analysis, libFuzzer targets, and the format/tidy checks.
if [ "$preset" = clang ]; then
  packages+=(clang clang-format clang-tidy libclang-rt-14-dev)
fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
    missing+=("$package")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run this script as root (sudo $0) to install them" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cd "$top"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" ${STILLPOINT_SETUP_BUILD_TARGET:+--target "$STILLPOINT_SETUP_BUILD_TARGET"}
echo "setup: built $top/build/$preset/src/cli/stillpoint" >&2
