#!/usr/bin/env bash
# Restore benchmark: materializing a volume from the repository as qcow2 (`vm create-from-snapshot`)
# against `qemu-img convert -O qcow2` of the original image, same host, page cache warm.
#
#   bench/restore_bench.sh
#
# The volume: VOLUME_GIB (2) GiB, half of it random data in 64 MiB runs, half holes, as qcow2.
# It is captured once (stopped VM, offline read), then REPS (3) times each: qemu-img convert of the
# original, and a new VM made from the point (its images written to a fresh directory).
# Knobs: VOLUME_GIB, REPS, STILLPOINT_PRESET (ci), RESTORE_BENCH_WORK (default /tmp/sprb.XXXX).
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VOLUME_GIB="${VOLUME_GIB:-2}"
REPS="${REPS:-3}"
preset="${STILLPOINT_PRESET:-ci}"
work="${RESTORE_BENCH_WORK:-$(mktemp -d /tmp/sprb.XXXX)}"
mkdir -p "$work"
export STILLPOINT_HOME="$work/home" STILLPOINT_RUN_DIR="$work/run"
sp() { "$top/build/$preset/src/cli/stillpoint" "$@"; }
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

raw="$work/vol.raw"
truncate -s "${VOLUME_GIB}G" "$raw"
runs=$(( VOLUME_GIB * 1024 / 128 ))
for i in $(seq 0 $(( runs - 1 ))); do
  dd if=/dev/urandom of="$raw" bs=1M count=64 seek=$(( i * 128 )) conv=notrunc status=none
done
qemu-img convert -f raw -O qcow2 "$raw" "$work/orig.qcow2"
rm -f "$raw"
sp vm define bench --volume "name=vol,path=$work/orig.qcow2,boot" --nic none >/dev/null
sp snapshot create bench --json > "$work/snap.json"
point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/snap.json")

best_convert=0; best_restore=0
for r in $(seq 1 "$REPS"); do
  rm -f "$work/conv.qcow2"; sync
  t0=$(now_ms); qemu-img convert -f qcow2 -O qcow2 "$work/orig.qcow2" "$work/conv.qcow2"; sync
  convert_ms=$(( $(now_ms) - t0 ))
  t0=$(now_ms); sp vm create-from-snapshot "$point" --name "b$r" --dir "$work/restore$r" >/dev/null; sync
  restore_ms=$(( $(now_ms) - t0 ))
  echo "run $r: qemu-img convert ${convert_ms} ms, create-from-snapshot ${restore_ms} ms"
  if [ "$best_convert" -eq 0 ] || [ "$convert_ms" -lt "$best_convert" ]; then best_convert=$convert_ms; fi
  if [ "$best_restore" -eq 0 ] || [ "$restore_ms" -lt "$best_restore" ]; then best_restore=$restore_ms; fi
  sp vm remove "b$r" >/dev/null; rm -rf "$work/restore$r"
done
data_mib=$(( VOLUME_GIB * 1024 / 2 ))
python3 - "$best_convert" "$best_restore" "$data_mib" <<'PY'
import sys
c, r, mib = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
print(f"best of runs: qemu-img convert {c} ms ({mib / (c / 1000):.0f} MiB/s of data), "
      f"create-from-snapshot {r} ms ({mib / (r / 1000):.0f} MiB/s); ratio {c / r:.2f}x "
      f"(goal >= 0.9x)")
PY
[ -n "${KEEP_WORK:-}" ] || rm -rf "$work"
