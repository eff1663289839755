#!/usr/bin/env bash
# Sets up (packages, build, test guest) and runs every test; ends with ctest's summary.
#
#   scripts/test.sh [ctest arguments...]     e.g. scripts/test.sh -L unit
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
preset="${STILLPOINT_PRESET:-release}"

"$top/scripts/setup.sh" "$preset"
# The integration tests boot a real guest; build (or reuse) it once, before ctest runs them.
STILLPOINT_GUEST_DIR="$("$top/tests/guest/build-guest.sh")"
export STILLPOINT_GUEST_DIR
# promtool checks the service's /metrics.
STILLPOINT_PROMTOOL="$("$top/scripts/promtool.sh")"
export STILLPOINT_PROMTOOL

cd "$top/build/$preset"
exec ctest --output-on-failure --timeout 900 -j2 "$@"
