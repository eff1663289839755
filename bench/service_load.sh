#!/usr/bin/env bash
# Service load benchmark: 200 concurrent clients on loopback for 30 s against the API's list and
# show endpoints (wrk, bench/service_load.lua), once with the service idle and once while captures
# of a running VM run back to back through the API. Reports requests/s, p50/p90/p99/max latency,
# errors, and the service's resident memory (sampled every 0.5 s, and its peak).
#
#   bench/service_load.sh
#
# Knobs (environment): CLIENTS (200), SECONDS_PER_RUN (30), WRK_THREADS (2),
# STILLPOINT_BIN (default build/release/src/cli/stillpoint, built by scripts/setup.sh release when
# missing), SERVICE_LOAD_OUT (results file, default /var/tmp/service_load-DATE.md).
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLIENTS="${CLIENTS:-200}"
SECONDS_PER_RUN="${SECONDS_PER_RUN:-30}"
WRK_THREADS="${WRK_THREADS:-2}"
stamp="$(date +%Y%m%d-%H%M%S)"
out="${SERVICE_LOAD_OUT:-/var/tmp/service_load-$stamp.md}"
work="$(mktemp -d /tmp/spsl.XXXX)"
log() { echo "service_load: $*" >&2; }

command -v wrk >/dev/null || apt-get install -y wrk >&2
command -v jq >/dev/null || apt-get install -y jq >&2
built="${STILLPOINT_BIN:-$top/build/release/src/cli/stillpoint}"
[ -x "$built" ] || "$top/scripts/setup.sh" release >&2
mkdir -p "$work/bin"
cp "$built" "$work/bin/stillpoint"
guest_dir="$("$top/tests/guest/build-guest.sh" | tail -1)"
# shellcheck source=/dev/null
source "$guest_dir/guest.env"

export STILLPOINT_HOME="$work/home" STILLPOINT_RUN_DIR="$work/r"
sp() { "$work/bin/stillpoint" "$@"; }
service_pid=""
cleanup() {
  local rc=$?
  [ -z "$service_pid" ] || kill "$service_pid" 2>/dev/null || true
  sp vm kill web01 >/dev/null 2>&1 || true
  rm -rf "$work"
  [ "$rc" -eq 0 ] || log "failed (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A running VM with one point, and the service over the same state.
cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/root.qcow2"
cp --sparse=always "$GUEST_DATA_IMAGE" "$work/data.qcow2"
sp vm define web01 --memory 256M --nic none --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" \
  --append "$GUEST_APPEND" \
  --volume "name=root,path=$work/root.qcow2,boot,serial=$GUEST_ROOT_SERIAL" \
  --volume "name=data,path=$work/data.qcow2,serial=$GUEST_DATA_SERIAL" >/dev/null
sp vm start web01 >/dev/null
for _ in $(seq 1 300); do
  sp vm agent ping web01 --timeout 1 >/dev/null 2>&1 && break
  sleep 0.5
done
point=$(sp snapshot create web01 --json | jq -r .id)
token=$(sp token create load --role operator --expires 1d --json | jq -r .secret)

"$work/bin/stillpoint" serve --listen 127.0.0.1:0 > "$work/service.log" 2>&1 &
service_pid=$!
port=""
for _ in $(seq 1 300); do
  port=$(sed -n 's|^stillpointd: serving https://127.0.0.1:\([0-9]*\)/.*|\1|p' "$work/service.log")
  [ -n "$port" ] && break
  sleep 0.1
done
[ -n "$port" ] || { cat "$work/service.log" >&2; exit 1; }
api() { curl -sk -H "Authorization: Bearer $token" "$@"; }
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$service_pid/status"; }
peak_kib() { awk '/^VmHWM/ {print $2}' "/proc/$service_pid/status"; }

# captures_until FILE: snapshots through the API back to back until FILE exists; prints the count
# of succeeded and failed jobs.
captures_until() {
  local stop="$1" ok=0 failed=0 id state
  while [ ! -e "$stop" ]; do
    id=$(api -X POST -H 'Content-Type: application/json' -d '{}' \
      "https://127.0.0.1:$port/api/v1/vms/web01/snapshots" | jq -r .job.id)
    while :; do
      state=$(api "https://127.0.0.1:$port/api/v1/jobs/$id" | jq -r .state)
      case "$state" in queued | running) sleep 0.5 ;; *) break ;; esac
    done
    if [ "$state" = succeeded ]; then ok=$((ok + 1)); else failed=$((failed + 1)); fi
  done
  echo "$ok $failed"
}

# run NAME WITH_CAPTURES: one wrk run; its JSON line (plus memory and captures) on stdout.
run() {
  local name="$1" with_captures="$2" rss_max=0 captures="0 0"
  rm -f "$work/stop"
  if [ "$with_captures" = yes ]; then
    captures_until "$work/stop" > "$work/captures" &
    sleep 2  # the first capture is under way
  fi
  (
    while [ ! -e "$work/stop" ]; do rss_kib >> "$work/rss-$name"; sleep 0.5; done
  ) &
  local sampler=$!
  local rss_before
  rss_before=$(rss_kib)
  STILLPOINT_TOKEN="$token" STILLPOINT_POINT="$point" wrk -t "$WRK_THREADS" -c "$CLIENTS" \
    -d "${SECONDS_PER_RUN}s" --timeout 10s -s "$top/bench/service_load.lua" \
    "https://127.0.0.1:$port" > "$work/wrk-$name" 2>&1
  touch "$work/stop"
  wait "$sampler" 2>/dev/null || true
  if [ "$with_captures" = yes ]; then wait; captures=$(cat "$work/captures"); fi
  rss_max=$(sort -n "$work/rss-$name" | tail -1)
  tail -1 "$work/wrk-$name" | jq -c --arg name "$name" --argjson before "$rss_before" \
    --argjson max "$rss_max" --argjson after "$(rss_kib)" \
    --argjson ok "${captures% *}" --argjson failed "${captures#* }" \
    '{run: $name} + . + {rss_before_kib: $before, rss_max_kib: $max, rss_after_kib: $after,
      captures_succeeded: $ok, captures_failed: $failed}'
}

# single PATH: the median of 20 sequential requests to PATH on one connection each, in ms.
single() {
  local path="$1"
  for _ in $(seq 1 20); do
    api -o /dev/null -w '%{time_total}\n' "https://127.0.0.1:$port$path"
  done | sort -n | awk '{a[NR] = $1} END {printf "%.1f", a[int((NR + 1) / 2)] * 1000}'
}
singles=""
for path in /api/v1/vms /api/v1/vms/web01 "/api/v1/snapshots?limit=50" "/api/v1/snapshots/$point" \
  /api/v1/jobs "/api/v1/events?limit=50"; do
  singles+="| \`$path\` | $(single "$path") ms |"$'\n'
done
log "service on port $port; $CLIENTS clients, ${SECONDS_PER_RUN} s per run"
idle=$(run idle no)
log "$idle"
busy=$(run captures yes)
log "$busy"
peak=$(peak_kib)
threads=$(awk '/^Threads/ {print $2}' "/proc/$service_pid/status")

{
  echo "### $(date -u +%Y-%m-%d), $(. /etc/os-release; echo "$PRETTY_NAME"), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo) RAM, $CLIENTS clients × ${SECONDS_PER_RUN} s"
  echo
  echo "| run | requests/s | p50 | p90 | p99 | max | errors | captures done | service RSS before / max / after |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
  for line in "$idle" "$busy"; do
    jq -r '"| \(.run) | \((.requests / .seconds) | floor) | \(.p50_ms) ms | \(.p90_ms) ms | \(.p99_ms) ms | \(.max_ms) ms | \(.non_2xx + .connect_errors + .read_errors + .write_errors + .timeouts) | \(.captures_succeeded) (\(.captures_failed) failed) | \(.rss_before_kib / 1024 | floor) / \(.rss_max_kib / 1024 | floor) / \(.rss_after_kib / 1024 | floor) MiB |"' <<< "$line"
  done
  echo
  echo "Service peak RSS (VmHWM) over both runs: $((peak / 1024)) MiB; threads at the end: $threads."
  echo
  echo "One request at a time (median of 20, each on a new TLS connection, service idle):"
  echo
  echo "| endpoint | time |"
  echo "|---|---:|"
  printf '%s' "$singles"
} | tee "$out"
log "results in $out"
