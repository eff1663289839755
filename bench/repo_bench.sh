#!/usr/bin/env bash
# Repository benchmark: ingest and read back a realistic disk image with stillpoint's repository
# and compare with restic, borg and qemu-img on the same bytes. Prints a Markdown report.
#
#   bench/repo_bench.sh [WORK_DIR]        (root: installs tools, builds the image with debootstrap)
#
# The image (cached in WORK_DIR across runs): a 4 GiB raw disk holding ext4 with a Debian root
# filesystem (debootstrap --variant=minbase), 1 GiB of incompressible files, 512 MiB of written
# zeros, and the rest unallocated. All runs read the image from a warm page cache.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$top/bench/lib.sh"
work="${1:-/var/tmp/stillpoint-bench}"
image="$work/disk.raw"
mkdir -p "$work"

if [ "$(id -u)" -ne 0 ]; then
  echo "repo_bench: run as root (it installs packages and runs debootstrap)" >&2
  exit 1
fi

ensure_packages restic borgbackup debootstrap time qemu-utils e2fsprogs

cmake --preset release >/dev/null
cmake --build --preset release --target repo_ingest stillpoint >&2
ingest="$top/build/release/bench/repo_ingest"

if [ ! -f "$image" ]; then
  echo "repo_bench: building $image" >&2
  root="$work/rootfs"
  rm -rf "$root"
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian >&2
  mkdir -p "$root/srv/data"
  for i in 1 2 3 4; do
    head -c 256M /dev/urandom > "$root/srv/data/random-$i.bin"
  done
  head -c 512M /dev/zero > "$root/srv/data/zeros.bin"
  rm -f "$image.tmp"
  truncate -s 4G "$image.tmp"
  mkfs.ext4 -q -F -d "$root" "$image.tmp"
  mv "$image.tmp" "$image"
  rm -rf "$root"
fi
cat "$image" > /dev/null  # warm the page cache: every tool reads from memory

size=$(stat -c %s "$image")
allocated=$(( $(stat -c %b "$image") * 512 ))
runs="$work/runs"
rm -rf "$runs"
mkdir -p "$runs"
export RESTIC_PASSWORD=bench BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes

# measure NAME COMMAND...: runs it under /usr/bin/time -v; records seconds and peak RSS.
declare -A seconds rss
measure() {
  local name="$1"
  shift
  sync
  /usr/bin/time -v -o "$runs/$name.time" "$@" > "$runs/$name.out" 2> "$runs/$name.err"
  local elapsed
  elapsed=$(grep "Elapsed (wall clock)" "$runs/$name.time" | awk '{print $NF}')
  seconds[$name]=$(echo "$elapsed" | awk -F: '{ if (NF == 3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss[$name]=$(( $(grep "Maximum resident set size" "$runs/$name.time" | awk '{print $NF}') / 1024 ))
  echo "repo_bench: $name ${seconds[$name]} s, peak RSS ${rss[$name]} MiB" >&2
}

STILLPOINT_HOME="$runs/home" "$top/build/release/src/cli/stillpoint" repo init "$runs/sp-repo" >&2
restic init --repo "$runs/restic" >/dev/null
borg init --encryption none "$runs/borg" >/dev/null

measure qemu-img-convert qemu-img convert -O raw "$image" "$runs/copy.raw"
rm -f "$runs/copy.raw"
measure stillpoint-ingest "$ingest" ingest "$runs/sp-repo" "$image" bench
point=$(cat "$runs/stillpoint-ingest.out")
measure stillpoint-ingest-again "$ingest" ingest "$runs/sp-repo" "$image" bench
measure restic-backup sh -c "restic backup --repo '$runs/restic' --stdin --stdin-filename disk.raw < '$image'"
measure borg-create sh -c "borg create '$runs/borg::one' - < '$image'"
measure stillpoint-read "$ingest" restore "$runs/sp-repo" "$point" vda "$runs/restored.raw"
measure qemu-img-read qemu-img convert -O raw "$image" "$runs/copy.raw"
cmp "$image" "$runs/restored.raw" >&2 && echo "repo_bench: read-back is identical" >&2

sp_stored=$(du -sb "$runs/sp-repo" | cut -f1)
restic_stored=$(du -sb "$runs/restic" | cut -f1)
borg_stored=$(du -sb "$runs/borg" | cut -f1)
rate() { awk -v b="$size" -v s="$1" 'BEGIN { printf "%.0f", b / 1048576 / s }'; }
speedup() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }  # how many times A is faster than B

cat <<REPORT
### $(date -u +%Y-%m-%d) on $(nproc) CPUs ($(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(free -g | awk '/Mem:/ {print $2}') GiB RAM)

Image: $(mib "$size") MiB virtual, $(mib "$allocated") MiB allocated (ext4 with Debian bookworm minbase,
1 GiB random files, 512 MiB written zeros). Warm page cache. MiB/s are of the virtual size.

| run | seconds | MiB/s | peak RSS MiB | stored MiB | stillpoint is ×faster |
|---|---:|---:|---:|---:|---:|
| stillpoint ingest | ${seconds[stillpoint-ingest]} | $(rate "${seconds[stillpoint-ingest]}") | ${rss[stillpoint-ingest]} | $(mib "$sp_stored") | |
| stillpoint second ingest (dedup) | ${seconds[stillpoint-ingest-again]} | $(rate "${seconds[stillpoint-ingest-again]}") | ${rss[stillpoint-ingest-again]} | (same repo) | |
| restic backup --stdin | ${seconds[restic-backup]} | $(rate "${seconds[restic-backup]}") | ${rss[restic-backup]} | $(mib "$restic_stored") | $(speedup "${seconds[stillpoint-ingest]}" "${seconds[restic-backup]}") |
| borg create - | ${seconds[borg-create]} | $(rate "${seconds[borg-create]}") | ${rss[borg-create]} | $(mib "$borg_stored") | $(speedup "${seconds[stillpoint-ingest]}" "${seconds[borg-create]}") |
| qemu-img convert -O raw (copy) | ${seconds[qemu-img-convert]} | $(rate "${seconds[qemu-img-convert]}") | ${rss[qemu-img-convert]} | | $(speedup "${seconds[stillpoint-ingest]}" "${seconds[qemu-img-convert]}") |
| stillpoint read-back | ${seconds[stillpoint-read]} | $(rate "${seconds[stillpoint-read]}") | ${rss[stillpoint-read]} | | |
| qemu-img convert of the original | ${seconds[qemu-img-read]} | $(rate "${seconds[qemu-img-read]}") | ${rss[qemu-img-read]} | | $(speedup "${seconds[stillpoint-read]}" "${seconds[qemu-img-read]}") |
REPORT
