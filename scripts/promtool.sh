#!/usr/bin/env bash
# Prints the path of Prometheus' `promtool` (which the tests use to check /metrics), taken from
# Debian's prometheus package without installing it (installing it would start a Prometheus
# server), cached under ~/.cache/stillpoint/tools/<package version>/.
set -euo pipefail
if command -v promtool >/dev/null 2>&1; then command -v promtool; exit 0; fi
known() { apt-cache show --no-all-versions prometheus 2>/dev/null | sed -n 's/^Version: //p' | head -1; }
version="$(known)"
if [ -z "$version" ] && [ "$(id -u)" -eq 0 ]; then
  apt-get update -q >&2
  version="$(known)"
fi
[ -n "$version" ] || { echo "promtool: no prometheus package known to apt (run apt-get update)" >&2; exit 1; }
dir="${STILLPOINT_TOOLS_CACHE:-$HOME/.cache/stillpoint/tools}/prometheus-${version//[:+~]/_}"
if [ ! -x "$dir/usr/bin/promtool" ]; then
  work="$(mktemp -d)"
  trap 'rm -rf "$work"' EXIT
  (cd "$work" && apt-get download -q "prometheus=$version" >&2)
  mkdir -p "$dir.new"
  dpkg-deb -x "$work"/prometheus_*.deb "$dir.new"
  rm -rf "$dir" && mv "$dir.new" "$dir"
fi
echo "$dir/usr/bin/promtool"
