#!/usr/bin/env bash
# Capture benchmark (issue 4): one run, side by side with the named peers, on the real test guest.
#
#   bench/capture_bench.sh            (as root: drops the page cache between cold runs)
#
# 1. Frozen window of `snapshot create` on a running VM with 2 volumes (root + data), against the
#    guest agent's bare guest-fsfreeze-freeze + guest-fsfreeze-thaw round trip (bench/capture_sock.py,
#    straight to the agent's socket), alternating one bare round trip and one snapshot per sample.
#    Then the same with a third volume of 1 GiB (sparse) and of 8 GiB (filled, see 3.).
# 2. Full snapshot of a stopped VM vs `qemu-img convert -O raw` and `-O qcow2` of the same images,
#    page cache dropped before each run; a fresh repository for every first snapshot, then a second
#    snapshot into the same repository (deduplication).
# 3. Incremental after 1 % of an 8 GiB volume changed while the VM runs: the writes go through
#    QEMU's block layer (HMP qemu-io on the guest's disk), so the VM's dirty bitmap sees them as it
#    sees guest writes. Two layouts of the same 82 MiB: 1312 × 64 KiB and 82 × 1 MiB at random
#    offsets. Time and bytes read against the full of the same volume.
#
# Knobs (environment): WINDOW_SAMPLES (30), BIG_SAMPLES (20), COLD_REPS (3), COLD_GIB (3),
# BIG_GIB (8), CAPTURE_BENCH_WORK (work dir, default a new /tmp/spcb.XXXX),
# CAPTURE_BENCH_OUT (results file, default /var/tmp/capture_bench-DATE.md; raw samples beside it
# as .jsonl). Prints the report on stdout and writes it to the results file.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$top/bench/lib.sh"
WINDOW_SAMPLES="${WINDOW_SAMPLES:-30}"
BIG_SAMPLES="${BIG_SAMPLES:-20}"
COLD_REPS="${COLD_REPS:-3}"
COLD_GIB="${COLD_GIB:-3}"
BIG_GIB="${BIG_GIB:-8}"
stamp="$(date +%Y%m%d-%H%M%S)"
out="${CAPTURE_BENCH_OUT:-/var/tmp/capture_bench-$stamp.md}"
samples="${out%.md}.jsonl"
work="${CAPTURE_BENCH_WORK:-$(mktemp -d /tmp/spcb.XXXX)}"
sock_helper="$top/bench/capture_sock.py"
log() { echo "capture_bench: $*" >&2; }

if [ "$(id -u)" -ne 0 ]; then
  log "run as root (it drops the page cache between cold runs)"
  exit 1
fi
free_gib=$(df -BG --output=avail "$work" | tail -1 | tr -dc 0-9)
if [ "$free_gib" -lt $((BIG_GIB * 2 + COLD_GIB * 3 + 4)) ]; then
  log "needs about $((BIG_GIB * 2 + COLD_GIB * 3 + 4)) GiB free under $work, has $free_gib GiB"
  exit 1
fi

built="$top/build/release/src/cli/stillpoint"
copy_stillpoint "$top" "$work/bin/stillpoint"
guest_dir="$("$top/tests/guest/build-guest.sh" | tail -1)"
# shellcheck source=/dev/null
source "$guest_dir/guest.env"

export STILLPOINT_RUN_DIR="$work/r"  # short: unix socket paths must fit in 107 bytes
live_home="$work/live"
sp() { STILLPOINT_HOME="$live_home" "$work/bin/stillpoint" "$@"; }
running_vms=()
cleanup() {
  local rc=$?
  for vm in "${running_vms[@]}"; do sp vm kill "$vm" >/dev/null 2>&1 || true; done
  rm -rf "$work"
  [ "$rc" -eq 0 ] || log "failed (exit $rc); VMs killed, $work removed"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
: > "$samples"

# record JSON: one line of raw data for the report.
record() { echo "$1" >> "$samples"; }

# ---------------------------------------------------------------------------------------------
# VMs

# The VMs: bench/lib.sh's guest_vm_start, guest_vm_kill, qga_socket and qmp_socket.
start_vm() { guest_vm_start "$@"; }
stop_vm() { guest_vm_kill "$1"; }

# snapshot SECTION VM [ARGS...]: one `snapshot create --json`, wall time added, line recorded.
snapshot() {
  local section="$1" vm="$2"
  shift 2
  local t0 t1 result
  t0=$(now_ms)
  result=$(sp snapshot create "$vm" --json "$@")
  t1=$(now_ms)
  record "$(jq -c --arg s "$section" --argjson wall $((t1 - t0)) \
    '{section: $s, kind: "snapshot", wall_ms: $wall, incremental, consistency,
      t: .timings_ms, bytes}' <<< "$result")"
  jq -c '{c: .consistency, inc: .incremental, t: .timings_ms, b: .bytes}' <<< "$result" >&2
}

bare_round_trip() {
  local section="$1" socket="$2"
  record "$(python3 "$sock_helper" qga-freeze-thaw "$socket" |
    jq -c --arg s "$section" '{section: $s, kind: "bare"} + .')"
}

# window_series SECTION VM N: N × (bare freeze+thaw, snapshot), after one warm-up of each.
window_series() {
  local section="$1" vm="$2" n="$3" socket
  socket=$(qga_socket "$vm")
  python3 "$sock_helper" qga-freeze-thaw "$socket" >/dev/null
  for i in $(seq 1 "$n"); do
    bare_round_trip "$section" "$socket"
    snapshot "$section" "$vm"
    log "$section: sample $i/$n"
  done
}

# ---------------------------------------------------------------------------------------------
# Images

# fill_raw FILE SIZE_GIB RANDOM_GIB TEXT_GIB ZERO_GIB: random, then text, then written zeros, the
# rest left as a hole. Random bytes from AES-CTR (fast, incompressible); text is the host's
# /usr/share and /usr/include (documentation, man pages, headers), repeated to fill.
fill_raw() {
  local file="$1" size="$2" random="$3" text="$4" zero="$5"
  rm -f "$file"
  truncate -s "${size}G" "$file"
  openssl enc -aes-128-ctr -nosalt -pass pass:stillpoint-bench -in /dev/zero 2>/dev/null |
    head -c "$((random << 30))" | dd of="$file" bs=4M conv=notrunc status=none || true
  if [ "$text" -gt 0 ]; then
    local corpus="$work/text.tar"
    [ -s "$corpus" ] ||
      tar cf "$corpus" /usr/share/doc /usr/share/man /usr/include /usr/share/perl* 2>/dev/null || true
    for _ in $(seq 1 $((text * 8 + 1))); do cat "$corpus" || break; done 2>/dev/null |
      head -c "$((text << 30))" |
      dd of="$file" bs=4M seek="$((random << 30))" oflag=seek_bytes conv=notrunc status=none || true
  fi
  if [ "$zero" -gt 0 ]; then
    head -c "$((zero << 30))" /dev/zero |
      dd of="$file" bs=4M seek="$(((random + text) << 30))" oflag=seek_bytes conv=notrunc status=none
  fi
}

# make_qcow2 RAW QCOW2: written zeros stay allocated (-S 0: a guest that wrote zeros has them on
# disk), holes stay holes.
make_qcow2() { qemu-img convert -S 0 -f raw -O qcow2 "$1" "$2"; rm -f "$1"; }

# ---------------------------------------------------------------------------------------------
# Report helpers (nearest-rank percentiles over the samples file)

stat_of() {  # stat_of SECTION KIND JQ_EXPR P -> value (P = 50, 99, ...)
  jq -r --arg s "$1" --arg k "$2" "select(.section == \$s and .kind == \$k) | $3" "$samples" |
    percentile "$4"
}
count_of() { jq -r --arg s "$1" --arg k "$2" 'select(.section == $s and .kind == $k) | 1' "$samples" | wc -l; }

# ---------------------------------------------------------------------------------------------
# 1. Frozen window

log "1. frozen window, 2 volumes"
start_vm w2
window_series w2 w2 1 >/dev/null 2>&1   # warm-up: the first snapshot is a full
sed -i '/"section":"w2"/d' "$samples"
window_series w2 w2 "$WINDOW_SAMPLES"
stop_vm w2

log "1. frozen window, + 1 GiB sparse volume"
qemu-img create -q -f qcow2 "$work/w1g-big.qcow2" 1G
start_vm w1g "name=big,path=$work/w1g-big.qcow2,serial=sp-big"
window_series w1g w1g 1 >/dev/null 2>&1
sed -i '/"section":"w1g"/d' "$samples"
window_series w1g w1g "$BIG_SAMPLES"
stop_vm w1g
rm -f "$work"/w1g-*.qcow2 "$work"/w2-*.qcow2

# ---------------------------------------------------------------------------------------------
# 3. (with the 8 GiB window) Full, then incrementals after 1 % changed, on a running VM

big_random=$((BIG_GIB * 5 / 8)) big_text=$((BIG_GIB / 8)) big_zero=$((BIG_GIB / 8))
log "3. building the ${BIG_GIB} GiB volume: ${big_random} GiB random, ${big_text} GiB text, ${big_zero} GiB zeros, rest hole"
fill_raw "$work/big.raw" "$BIG_GIB" "$big_random" "$big_text" "$big_zero"
make_qcow2 "$work/big.raw" "$work/w8g-big.qcow2"
start_vm w8g "name=big,path=$work/w8g-big.qcow2,serial=sp-big"
drop_caches
snapshot full8 w8g
log "1. frozen window, + ${BIG_GIB} GiB filled volume"
window_series w8g w8g "$BIG_SAMPLES"
big_bytes=$((BIG_GIB << 30))
change=$((big_bytes / 100))
qmp=$(qmp_socket w8g)
for layout in 65536 1048576; do
  writes=$((change / layout))
  log "3. changing ${writes} × ${layout} B of the ${BIG_GIB} GiB volume"
  record "$(python3 "$sock_helper" qmp-scatter "$qmp" big "$big_bytes" "$((writes * layout))" \
    "$layout" "$layout" | jq -c --arg s "change$layout" '{section: $s, kind: "change"} + .')"
  drop_caches
  snapshot "inc$layout" w8g
done
stop_vm w8g
rm -f "$work"/w8g-*.qcow2
rm -rf "$live_home/repo"

# ---------------------------------------------------------------------------------------------
# 2. Stopped VM: full snapshot vs qemu-img convert

cold_random=$((COLD_GIB / 3 > 0 ? COLD_GIB / 3 : 1))
log "2. building the ${COLD_GIB} GiB volume"
fill_raw "$work/cold.raw" "$COLD_GIB" "$cold_random" 1 0
# 512 MiB of written zeros after the text; the last part stays a hole.
head -c 512M /dev/zero | dd of="$work/cold.raw" bs=4M seek="$(((cold_random + 1) << 30))" \
  oflag=seek_bytes conv=notrunc status=none
make_qcow2 "$work/cold.raw" "$work/cold-data.qcow2"
cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/cold-root.qcow2"
cp --sparse=always "$GUEST_DATA_IMAGE" "$work/cold-small.qcow2"
cold_images=("$work/cold-root.qcow2" "$work/cold-small.qcow2" "$work/cold-data.qcow2")
cold_virtual=0 cold_allocated=0
for image in "${cold_images[@]}"; do
  cold_virtual=$((cold_virtual + $(qemu-img info --output=json "$image" | jq '."virtual-size"')))
  cold_allocated=$((cold_allocated + $(qemu-img map --output=json "$image" |
    jq '[.[] | select(.data) | .length] | add')))
done

timed() {  # timed SECTION KIND COMMAND...: wall time of the command, page cache dropped first
  local section="$1" kind="$2"
  shift 2
  drop_caches
  local t0 t1
  t0=$(now_ms)
  "$@"
  t1=$(now_ms)
  record "{\"section\":\"$section\",\"kind\":\"$kind\",\"wall_ms\":$((t1 - t0))}"
}
convert_all() {
  local format="$1"
  for image in "${cold_images[@]}"; do
    qemu-img convert -f qcow2 -O "$format" "$image" "$work/convert.out"
    rm -f "$work/convert.out"
  done
}
for rep in $(seq 1 "$COLD_REPS"); do
  log "2. cold run $rep/$COLD_REPS"
  timed cold convert_raw convert_all raw
  timed cold convert_qcow2 convert_all qcow2
  cold_home="$work/cold-home"
  rm -rf "$cold_home"
  STILLPOINT_HOME="$cold_home" "$work/bin/stillpoint" vm define cold --nic none \
    --volume "name=root,path=${cold_images[0]},boot" --volume "name=small,path=${cold_images[1]}" \
    --volume "name=data,path=${cold_images[2]}" >/dev/null
  for kind in first second; do
    drop_caches
    t0=$(now_ms)
    result=$(STILLPOINT_HOME="$cold_home" "$work/bin/stillpoint" snapshot create cold --json)
    t1=$(now_ms)
    record "$(jq -c --arg k "$kind" --argjson wall $((t1 - t0)) \
      '{section: "cold", kind: $k, wall_ms: $wall, consistency, t: .timings_ms, bytes}' <<< "$result")"
  done
  rm -rf "$cold_home"
done

# ---------------------------------------------------------------------------------------------
# Report

cpu=$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
ram=$(free -g | awk '/^Mem:/ { print $2 }')
{
  echo "### $(date -u +%Y-%m-%d) — $(nproc) vCPUs ($cpu), ${ram} GiB RAM, kernel $(uname -r), QEMU $(qemu-img --version | head -1 | awk '{print $3}') under TCG"
  echo
  echo "stillpoint: build/release binary of $(date -u -r "$built" '+%Y-%m-%d %H:%M UTC'), tree at $(git -C "$top" rev-parse --short HEAD)."
  echo
  echo "Load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (machine shared with other builds and tests)."
  echo
  echo "#### 1. Frozen window (ms; p99 is nearest-rank)"
  echo
  echo "| VM | n | bare freeze+thaw p50 / p99 | window p50 / p99 | added p50 / p99 (window − bare) | window − own freeze − thaw p50 / p99 | freeze p50 | cut (QMP) p50 / p99 | vCPUs paused p50 / p99 | thaw p50 |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
  for section in w2 w1g w8g; do
    case $section in
      w2) label="root + data (256 + 128 MiB)" ;;
      w1g) label="+ 1 GiB sparse" ;;
      w8g) label="+ ${BIG_GIB} GiB filled" ;;
    esac
    b50=$(stat_of $section bare .round_trip_ms 50) b99=$(stat_of $section bare .round_trip_ms 99)
    w50=$(stat_of $section snapshot .t.frozen_window 50) w99=$(stat_of $section snapshot .t.frozen_window 99)
    o50=$(stat_of $section snapshot '(.t.frozen_window - .t.freeze - .t.thaw)' 50)
    o99=$(stat_of $section snapshot '(.t.frozen_window - .t.freeze - .t.thaw)' 99)
    echo "| $label | $(count_of $section snapshot) | $b50 / $b99 | $w50 / $w99 |" \
      "$(awk -v a="$w50" -v b="$b50" 'BEGIN{printf "%.1f", a-b}') / $(awk -v a="$w99" -v b="$b99" 'BEGIN{printf "%.1f", a-b}') |" \
      "$o50 / $o99 | $(stat_of $section snapshot .t.freeze 50) |" \
      "$(stat_of $section snapshot .t.qmp 50) / $(stat_of $section snapshot .t.qmp 99) |" \
      "$(stat_of $section snapshot .t.paused 50) / $(stat_of $section snapshot .t.paused 99) |" \
      "$(stat_of $section snapshot .t.thaw 50) |"
  done
  echo
  echo "Snapshot wall time per sample (incrementals, little changed): p50 $(stat_of w2 snapshot .wall_ms 50) ms (2 volumes), $(stat_of w8g snapshot .wall_ms 50) ms (+ ${BIG_GIB} GiB)."
  echo
  echo "#### 2. Full snapshot of a stopped VM vs qemu-img convert (page cache dropped before each; median of $COLD_REPS)"
  echo
  echo "Images: guest root (256 MiB) + data (128 MiB) + a ${COLD_GIB} GiB qcow2 (${cold_random} GiB random, 1 GiB text from /usr/share and /usr/include, 512 MiB written zeros, rest never written); $(mib $cold_virtual) MiB virtual, $(mib $cold_allocated) MiB allocated. MiB/s are of the allocated bytes."
  echo
  echo "| run | seconds | MiB/s | read MiB | new MiB | stillpoint ÷ peer throughput |"
  echo "|---|---:|---:|---:|---:|---:|"
  sfirst=$(stat_of cold first .wall_ms 50)
  for kind in first second convert_raw convert_qcow2; do
    ms=$(stat_of cold $kind .wall_ms 50)
    case $kind in
      first) label="stillpoint snapshot create (fresh repository)" extra="| $(mib "$(stat_of cold first .bytes.read 50)") | $(mib "$(stat_of cold first .bytes.new 50)") | |" ;;
      second) label="stillpoint second snapshot (dedup)" extra="| $(mib "$(stat_of cold second .bytes.read 50)") | $(mib "$(stat_of cold second .bytes.new 50)") | |" ;;
      convert_raw) label="qemu-img convert -O raw" extra="| | | **$(ratio "$ms" "$sfirst")×** |" ;;
      convert_qcow2) label="qemu-img convert -O qcow2" extra="| | | **$(ratio "$ms" "$sfirst")×** |" ;;
    esac
    echo "| $label | $(awk -v m="$ms" 'BEGIN{printf "%.2f", m/1000}') | $(awk -v m="$ms" -v b="$cold_allocated" 'BEGIN{printf "%.0f", b/1048576/(m/1000)}') $extra"
  done
  echo
  echo "All cold runs (ms): $(jq -r 'select(.section == "cold") | "\(.kind)=\(.wall_ms)"' "$samples" | tr '\n' ' ')"
  echo
  echo "#### 3. Incremental after 1 % of the ${BIG_GIB} GiB volume changed (running VM, page cache dropped before each)"
  echo
  echo "Volume: ${BIG_GIB} GiB qcow2, ${big_random} GiB random, ${big_text} GiB text, ${big_zero} GiB written zeros, the rest never written. The VM also has its root and data disks."
  echo
  echo "| snapshot | seconds | read MiB | new MiB | 4 MiB chunks touched | time ÷ full | read ÷ full |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  full_ms=$(stat_of full8 snapshot .wall_ms 50) full_read=$(stat_of full8 snapshot .bytes.read 50)
  echo "| full (first, fresh repository) | $(awk -v m="$full_ms" 'BEGIN{printf "%.2f", m/1000}') | $(mib "$full_read") | $(mib "$(stat_of full8 snapshot .bytes.new 50)") | | | |"
  for layout in 65536 1048576; do
    ms=$(stat_of "inc$layout" snapshot .wall_ms 50) read=$(stat_of "inc$layout" snapshot .bytes.read 50)
    writes=$(stat_of "change$layout" change .writes 50) chunks=$(stat_of "change$layout" change .chunks_4m 50)
    echo "| incremental after ${writes%.*} × $((layout / 1024)) KiB random writes | $(awk -v m="$ms" 'BEGIN{printf "%.2f", m/1000}') | $(mib "$read") | $(mib "$(stat_of "inc$layout" snapshot .bytes.new 50)") | ${chunks%.*} | **$(awk -v a="$ms" -v b="$full_ms" 'BEGIN{printf "%.1f %%", 100*a/b}')** | $(awk -v a="$read" -v b="$full_read" 'BEGIN{printf "%.1f %%", 100*a/b}') |"
  done
  echo
  echo "Seconds are the wall time of \`stillpoint snapshot create\` (process start to exit); timings_ms.total of each: full $(stat_of full8 snapshot .t.total 50), incrementals $(stat_of inc65536 snapshot .t.total 50) and $(stat_of inc1048576 snapshot .t.total 50) ms."
} | tee "$out"
log "report in $out, raw samples in $samples"
