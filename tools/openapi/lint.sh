#!/usr/bin/env bash
# Checks an OpenAPI document (default: src/server/openapi.json) with Redocly's CLI under
# redocly.yaml beside this script: the recommended rules, every warning an error. The CLI is the
# npm package pinned in package-lock.json, installed into node_modules/ here by scripts/setup.sh.
# A missing or stale install fails the check (it never skips).
#
#   tools/openapi/lint.sh [DOCUMENT]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
document="${1:-$here/../../src/server/openapi.json}"
fail() { echo "openapi lint: $*; run scripts/setup.sh" >&2; exit 1; }

command -v node >/dev/null 2>&1 || fail "node is not installed"
cli="$here/node_modules/@redocly/cli/bin/cli.js"
[ -f "$cli" ] || fail "Redocly's CLI is not installed in $here/node_modules"
installed="$(cat "$here/node_modules/.stillpoint-lock-sha256" 2>/dev/null || true)"
[ "$installed" = "$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)" ] ||
  fail "$here/node_modules was not installed from the current package-lock.json"

# No telemetry, no update check: the check is offline and the same every run.
export REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true NO_UPDATE_NOTIFIER=1
exec node "$cli" lint --config "$here/redocly.yaml" "$document"
