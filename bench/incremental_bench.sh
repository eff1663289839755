#!/usr/bin/env bash
# Incremental benchmark (issue 11): a chain of incrementals of a running VM after 1 % of a volume
# changed in 64 KiB pieces scattered over it, then the restore of the chain's last point.
#
#   bench/incremental_bench.sh            (as root: drops the page cache before timed runs)
#
# As bench/capture_bench.sh section 3: a BIG_GIB volume (5/8 random, 1/8 text, 1/8 written zeros,
# the rest a hole) on the real test guest, a full snapshot, then ROUNDS times: 1 % of the volume
# rewritten as 64 KiB writes at distinct random aligned offsets through QEMU's block layer (HMP
# qemu-io, so the dirty bitmap sees them as guest writes), each write of its own random bytes
# (RANDOM_DATA=0: a one-byte pattern, as capture_bench.sh), and an incremental snapshot. Per
# snapshot: wall time, bytes read from the VM's disks, bytes new in the repository, growth of the
# repository directory. Then the VM is stopped and the last point is made into a new VM
# (`vm create-from-snapshot`, qcow2), against `qemu-img convert -O qcow2` of the VM's images and
# against the same restore of the chain's first point (the full).
#
# Knobs: BIG_GIB (4), ROUNDS (30), RANDOM_DATA (1), STILLPOINT_BIN (build/ci's stillpoint),
# INC_BENCH_WORK (work dir, default a new /tmp/spib.XXXX). Prints one JSON line per measurement
# and a summary.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIG_GIB="${BIG_GIB:-4}"
ROUNDS="${ROUNDS:-30}"
RANDOM_DATA="${RANDOM_DATA:-1}"
work="${INC_BENCH_WORK:-$(mktemp -d /tmp/spib.XXXX)}"
log() { echo "incremental_bench: $*" >&2; }
[ "$(id -u)" -eq 0 ] || { log "run as root (it drops the page cache)"; exit 1; }

mkdir -p "$work/bin"
cp "${STILLPOINT_BIN:-$top/build/ci/src/cli/stillpoint}" "$work/bin/stillpoint"
guest_dir="$("$top/tests/guest/build-guest.sh" | tail -1)"
# shellcheck source=/dev/null
source "$guest_dir/guest.env"
export STILLPOINT_RUN_DIR="$work/r" STILLPOINT_HOME="$work/home"
sp() { "$work/bin/stillpoint" "$@"; }
vm_running=0
cleanup() {
  [ "$vm_running" -eq 0 ] || sp vm kill inc >/dev/null 2>&1 || true
  [ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }
repo_bytes() { du -sb "$STILLPOINT_HOME/repo" | cut -f1; }

# The volume, as capture_bench.sh's fill_raw builds it.
size=$((BIG_GIB << 30))
random_gib=$((BIG_GIB * 5 / 8)) text_gib=$((BIG_GIB / 8)) zero_gib=$((BIG_GIB / 8))
log "building the ${BIG_GIB} GiB volume"
truncate -s "${BIG_GIB}G" "$work/big.raw"
openssl enc -aes-128-ctr -nosalt -pass pass:stillpoint-bench -in /dev/zero 2>/dev/null |
  head -c "$((random_gib << 30))" | dd of="$work/big.raw" bs=4M conv=notrunc status=none || true
tar cf "$work/text.tar" /usr/share/doc /usr/share/man /usr/include 2>/dev/null || true
for _ in $(seq 1 $((text_gib * 8 + 1))); do cat "$work/text.tar" || break; done 2>/dev/null |
  head -c "$((text_gib << 30))" |
  dd of="$work/big.raw" bs=4M seek="$((random_gib << 30))" oflag=seek_bytes conv=notrunc \
    status=none || true
head -c "$((zero_gib << 30))" /dev/zero |
  dd of="$work/big.raw" bs=4M seek="$(((random_gib + text_gib) << 30))" oflag=seek_bytes \
    conv=notrunc status=none
qemu-img convert -S 0 -f raw -O qcow2 "$work/big.raw" "$work/big.qcow2"
rm -f "$work/big.raw" "$work/text.tar"
cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/root.qcow2"
cp --sparse=always "$GUEST_DATA_IMAGE" "$work/data.qcow2"
images=("$work/root.qcow2" "$work/data.qcow2" "$work/big.qcow2")

sp vm define inc --memory 256M --nic none --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" \
  --append "$GUEST_APPEND" \
  --volume "name=root,path=$work/root.qcow2,boot,serial=$GUEST_ROOT_SERIAL" \
  --volume "name=data,path=$work/data.qcow2,serial=$GUEST_DATA_SERIAL" \
  --volume "name=big,path=$work/big.qcow2,serial=sp-big" >/dev/null
sp vm start inc >/dev/null
vm_running=1
for _ in $(seq 1 300); do
  sp vm agent ping inc --timeout 1 >/dev/null 2>&1 && break
  sleep 0.5
done
uuid=$(sp vm show inc --json | jq -r '.uuid')
qmp="$STILLPOINT_RUN_DIR/${uuid:0:8}/qmp.sock"

# snapshot LABEL: one timed `snapshot create`, page cache dropped first; prints a JSON line.
snapshot() {
  drop_caches
  local before t0 t1 result
  before=$(repo_bytes 2>/dev/null || echo 0)
  t0=$(now_ms)
  result=$(sp snapshot create inc --consistency crash-only --json)
  t1=$(now_ms)
  jq -c --arg what "$1" --argjson wall $((t1 - t0)) --argjson growth $(($(repo_bytes) - before)) \
    '{what: $what, id, incremental, wall_ms: $wall, read: .bytes.read, new: .bytes.new,
      repo_growth: $growth}' <<< "$result"
}

snapshot full | tee "$work/results.jsonl"
change=$((size / 100))
source_dir=""
[ "$RANDOM_DATA" = 1 ] && source_dir="$work"
for round in $(seq 1 "$ROUNDS"); do
  scatter=$(python3 "$top/bench/capture_sock.py" qmp-scatter "$qmp" big "$size" "$change" 65536 \
    "$round" $source_dir)
  log "round $round: $scatter"
  snapshot "inc$round" | tee -a "$work/results.jsonl"
done
last=$(tail -1 "$work/results.jsonl" | jq -r '.id')
sp vm kill inc >/dev/null
vm_running=0

drop_caches
t0=$(now_ms)
for image in "${images[@]}"; do
  qemu-img convert -f qcow2 -O qcow2 "$image" "$work/convert.qcow2"
  rm -f "$work/convert.qcow2"
done
sync
convert_ms=$(($(now_ms) - t0))
# restore NAME POINT: a new VM of the point, page cache dropped first; prints the milliseconds.
restore() {
  drop_caches
  local t0
  t0=$(now_ms)
  sp vm create-from-snapshot "$2" --name "$1" --dir "$work/$1" >/dev/null
  sync
  echo $(($(now_ms) - t0))
  sp vm remove "$1" >/dev/null
  rm -rf "${work:?}/$1"
}
first=$(head -1 "$work/results.jsonl" | jq -r '.id')
full_restore_ms=$(restore restored-full "$first")
restore_ms=$(restore restored "$last")
echo "{\"what\":\"restore\",\"point\":\"$last\",\"convert_qcow2_ms\":$convert_ms,\"restore_ms\":$restore_ms,\"full_restore_ms\":$full_restore_ms}" |
  tee -a "$work/results.jsonl"

jq -s --argjson change "$change" '
  (.[0]) as $full | (.[1]) as $first | ([.[] | select(.what | startswith("inc"))]) as $incs |
  (.[-1]) as $restore |
  {full_ms: $full.wall_ms, changed_bytes: $change,
   first_incremental: {ms: $first.wall_ms, read: $first.read, new: $first.new,
                       repo_growth: $first.repo_growth,
                       read_per_changed: ($first.read / $change),
                       time_vs_full: ($first.wall_ms / $full.wall_ms)},
   chain: {rounds: ($incs | length),
           ms_median: ($incs | map(.wall_ms) | sort | .[length / 2 | floor]),
           read_max: ($incs | map(.read) | max), read_total: ($incs | map(.read) | add),
           growth_total: ($incs | map(.repo_growth) | add)},
   restore_after_chain: {restore_ms: $restore.restore_ms, convert_ms: $restore.convert_qcow2_ms,
                         ratio: ($restore.convert_qcow2_ms / $restore.restore_ms),
                         restore_of_the_full_ms: $restore.full_restore_ms}}' \
  "$work/results.jsonl"
