#!/usr/bin/env bash
# The Debian package as an admin installs it: built with CPack from the build directory,
# installed with dpkg -i, the binary run from /usr/bin, the unit checked by systemd-analyze, the
# state directory made with the right owner and mode. Removed again at the end (the test changes
# the machine, so it needs root).
#
#   tests/package/package_test.sh BUILD_DIR
set -euo pipefail
build="$1"
[ "$(id -u)" -eq 0 ] || { echo "package test: needs root (dpkg -i)" >&2; exit 1; }
work="$(mktemp -d)"
cleanup() { dpkg --purge stillpoint >/dev/null 2>&1 || true; rm -rf "$work"; }
trap cleanup EXIT

(cd "$build" && cpack -G DEB -B "$work" >"$work/cpack.log") || { cat "$work/cpack.log"; exit 1; }
deb="$(ls "$work"/stillpoint_*.deb)"
echo "built $(basename "$deb")"
listing="$(dpkg-deb -c "$deb")"
grep -q './usr/bin/stillpoint$' <<<"$listing"
grep -q './usr/lib/stillpoint/nbdkit-stillpoint-plugin.so$' <<<"$listing"
grep -q '/lib/systemd/system/stillpointd.service$' <<<"$listing"
grep -qx /etc/stillpoint/stillpointd.toml <<<"$(dpkg-deb -I "$deb" conffiles)"

dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; exit 1; }
version="$(/usr/bin/stillpoint --version)"
echo "installed: $version"
[[ "$version" == "stillpoint "* ]]
# nbdkit loads the installed plugin (where `snapshot mount` looks for it).
nbdkit --dump-plugin /usr/lib/stillpoint/nbdkit-stillpoint-plugin.so | grep -qx name=stillpoint
mode="$(stat -c '%a %U' /var/lib/stillpoint)"
[ "$mode" = "700 root" ] || { echo "state directory is '$mode', want '700 root'" >&2; exit 1; }
unit="$(ls /usr/lib/systemd/system/stillpointd.service /lib/systemd/system/stillpointd.service 2>/dev/null | head -1)"
systemd-analyze verify "$unit"
# The installed configuration is one the service accepts.
/usr/bin/stillpoint serve --config /etc/stillpoint/stillpointd.toml --check-config
echo "package test passed"
