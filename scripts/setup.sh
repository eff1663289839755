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
# The OpenAPI validator (tools/openapi) runs on Node.js: the machine's when it has npm, else
# Debian's.
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi
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

# The npm packages of tools/openapi (Redocly's CLI, which lints the service's OpenAPI document),
# exactly as package-lock.json pins them; installed again only when the lock file changed.
openapi_tools="$top/tools/openapi"
lock_digest="$(sha256sum "$openapi_tools/package-lock.json" | cut -d' ' -f1)"
lock_stamp="$openapi_tools/node_modules/.stillpoint-lock-sha256"
if [ "$(cat "$lock_stamp" 2>/dev/null || true)" != "$lock_digest" ]; then
  echo "setup: installing the npm packages of tools/openapi" >&2
  (cd "$openapi_tools" && npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_digest" >"$lock_stamp"
fi

cd "$top"
cmake --preset "$preset" >/dev/null
cmake --build --preset "$preset" ${STILLPOINT_SETUP_BUILD_TARGET:+--target "$STILLPOINT_SETUP_BUILD_TARGET"}
echo "setup: built $top/build/$preset/src/cli/stillpoint" >&2
