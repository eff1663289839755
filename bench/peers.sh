#!/usr/bin/env bash
# shellcheck disable=SC2016  # the sh -c scripts expand their own arguments
# Side by side with the peers (issue 11): one disk image, every tool, interleaved rounds.
#
#   bench/peers.sh                                   (as root; ~40 min at the default scale)
#   IMAGE_GIB=1 ROUNDS=1 CHAIN=3 WINDOW_SAMPLES=3 bench/peers.sh    (a quick check, ~8 min)
#
# The image (built here, cached under /root/.cache/stillpoint/bench/<hash of the inputs>): an
# IMAGE_GIB (4) GiB ext4 filesystem made with `mkfs.ext4 -d` (no loop mount) from a Debian
# bookworm root (debootstrap --variant=minbase, from apt's configured mirror), 24 files of
# incompressible data (600 MiB at 4 GiB) and 12 files of log-like text (300 MiB at 4 GiB), all
# seeded; fixed ext4 UUID, hash seed and timestamps. The "changed" image has 40 MiB (at 4 GiB)
# rewritten in 8 places (5 MiB at the start of 8 of the data files, found with debugfs).
#
# In each of ROUNDS (3) rounds, the page cache dropped before every measured run:
#   offline  qemu-img convert -O raw / -O qcow2 of the image (the plain-copy references; -O raw
#            also with -t writeback, which flushes the output: the default cache=unsafe does not);
#            restic backup --stdin and borg create - (fixed 4 MiB chunks) of the raw image, the
#            same again, the changed image, and a restore (restic dump / borg extract) of the first;
#            stillpoint snapshot create of a stopped VM with the image: full, same again, changed;
#            restore of the full (snapshot export --format qcow2 and raw, vm create-from-snapshot),
#            repo verify of the three points.
#   live     a running VM (the test guest of tests/guest, TCG) with the image as a third disk:
#            stillpoint full, incremental with nothing changed, incremental after the same 40 MiB
#            in 8 places, incremental after 1 % of the disk in 64 KiB writes at random offsets —
#            all writes through QEMU's block layer (HMP qemu-io with data from pattern files), so
#            the dirty bitmaps see them as guest writes; the same in a libvirt domain (TCG, same
#            guest and disks, agent channel) with virtnbdbackup full / inc / inc / inc and a
#            virtnbdrestore of the full. libvirtd (and virtlogd) are started here and stopped
#            at the end unless they ran already.
# Then once: a chain of CHAIN (30) such 1 % incrementals on a running VM and, ROUNDS times, the
# restore of the last point to qcow2 and raw against qemu-img convert of the VM's image; the
# frozen window of a 2-volume and an 8-volume VM, WINDOW_SAMPLES (20) snapshots each beside the
# agent's bare freeze+thaw; `openssl speed sha256` and `zstd -b` on a sample of the image (the
# limits for verify and read-back).
#
# Every run records wall time, user and sys CPU seconds and peak RSS (GNU time) and, where it
# applies, bytes read and stored; the report (medians) and every goal of issue 11 (met / not
# met) are printed and written to PEERS_OUT (default /var/tmp/peers-DATE.md), the raw runs to
# the .jsonl beside it.
#
# Knobs: IMAGE_GIB, ROUNDS, CHAIN, WINDOW_SAMPLES, SEED (11), PEERS_WORK (work directory,
# default a new /var/tmp/spp.XXXX, removed at the end unless KEEP_WORK=1), PEERS_OUT,
# DEBIAN_MIRROR (default: apt's configured mirror), STILLPOINT_BIN (default: the tree's
# build/release binary, built by scripts/setup.sh release when missing), SKIP_PEERS: comma-separated parts to leave
# out: restic, borg, virtnbdbackup, live (stillpoint on a running VM), chain, window, limits.
set -euo pipefail

top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=bench/lib.sh
source "$top/bench/lib.sh"

IMAGE_GIB="${IMAGE_GIB:-4}"
ROUNDS="${ROUNDS:-3}"
CHAIN="${CHAIN:-30}"
WINDOW_SAMPLES="${WINDOW_SAMPLES:-20}"
SEED="${SEED:-11}"
SKIP_PEERS="${SKIP_PEERS:-}"
stamp="$(date -u +%Y%m%d-%H%M%S)"
out="${PEERS_OUT:-/var/tmp/peers-$stamp.md}"
samples="${out%.md}.jsonl"
meta="${out%.md}.meta.json"
cache_root=/root/.cache/stillpoint/bench
suite=bookworm
epoch=1764547200                              # 2025-12-01 00:00:00 UTC: every timestamp
fs_uuid=5e11a7e0-0b00-4c11-9000-00000000000b  # the ext4 UUID and directory hash seed
log() { echo "peers: $*" >&2; }
skip() { [[ ",$SKIP_PEERS," == *",$1,"* ]]; }

if [ "$(id -u)" -ne 0 ]; then
  log "run as root (installs packages, runs debootstrap, drops the page cache, starts libvirtd)"
  exit 1
fi
for part in ${SKIP_PEERS//,/ }; do
  case "$part" in
    restic | borg | virtnbdbackup | live | chain | window | limits) ;;
    *) log "SKIP_PEERS: unknown part '$part' (restic, borg, virtnbdbackup, live, chain, window, limits)"; exit 2 ;;
  esac
done

packages=(debootstrap jq time qemu-utils e2fsprogs openssl zstd python3)
skip restic || packages+=(restic)
skip borg || packages+=(borgbackup)
skip virtnbdbackup || packages+=(virtnbdbackup libvirt-daemon-system libvirt-clients python3-libvirt)
ensure_packages "${packages[@]}"

# apt's configured Debian mirror (deb822 sources or the one-line format).
apt_mirror() {
  local uri
  uri=$(awk '/^URIs:/ && $2 !~ /security/ { print $2; exit }' /etc/apt/sources.list.d/*.sources 2>/dev/null || true)
  [ -n "$uri" ] || uri=$(awk '$1 == "deb" && $0 !~ /security/ { print $2; exit }' \
    /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null || true)
  echo "${uri:-http://deb.debian.org/debian}"
}
mirror="${DEBIAN_MIRROR:-$(apt_mirror)}"

work="${PEERS_WORK:-$(mktemp -d /var/tmp/spp.XXXX)}"
mkdir -p "$work"
chmod 0755 "$work"  # libvirt's QEMU runs as libvirt-qemu and opens the disks and pattern files here
runs="$work/runs"
mkdir -p "$runs" "$work/bin"
spbin="$work/bin/stillpoint"
copy_stillpoint "$top" "$spbin"
export STILLPOINT_RUN_DIR="$work/r"  # short: unix socket paths must fit in 107 bytes
sock_helper="$top/bench/capture_sock.py"
: > "$samples"

# ---------------------------------------------------------------------------------------------
# The image

# stream NAME BYTES: BYTES incompressible bytes, the same for the same NAME and SEED (AES-CTR).
stream() {
  head -c "$2" /dev/zero |
    openssl enc -aes-128-ctr -nosalt -pass "pass:stillpoint-bench-$SEED-$1" 2>/dev/null
}

# log_text NAME BYTES: BYTES of web-server-like log lines, the same for the same NAME and SEED.
log_text() {
  awk -v seed="$SEED$(cksum <<< "$1" | cut -d' ' -f1)" -v bytes="$2" 'BEGIN {
    srand(seed % 2147483647)
    split("INFO INFO INFO INFO INFO WARN DEBUG DEBUG ERROR", level, " ")
    split("GET GET GET POST PUT DELETE", method, " ")
    split("/api/v1/orders /api/v1/users /api/v1/items /healthz /static/app.js /login /api/v1/cart /search", path, " ")
    split("200 200 200 200 201 204 304 400 404 500", status, " ")
    t = 0; n = 0
    while (n < bytes) {
      t += rand() * 0.5
      s = int(t)
      line = sprintf("2025-12-%02dT%02d:%02d:%02d.%03dZ web%02d app[%d]: %s %s %s%s status=%s bytes=%d dur_ms=%.1f req=%08x user=u%05d",
        1 + int(s / 86400) % 28, int(s / 3600) % 24, int(s / 60) % 60, s % 60, int((t - s) * 1000),
        1 + int(rand() * 12), 1000 + int(rand() * 5000), level[1 + int(rand() * 9)],
        method[1 + int(rand() * 6)], path[1 + int(rand() * 8)],
        rand() < 0.3 ? sprintf("?id=%d", int(rand() * 100000)) : "", status[1 + int(rand() * 10)],
        int(rand() * 65536), rand() * 250, int(rand() * 4294967295), int(rand() * 100000))
      if (n + length(line) + 1 > bytes) line = substr(line, 1, bytes - n - 1)
      print line
      n += length(line) + 1
    }
  }'
}

# build_image DIR: base.raw/.qcow2, changed.raw/.qcow2, the change plan (offset length pattern
# per line, pattern names relative to DIR) and the pattern files for the live writes.
build_image() {
  local dir="$1" root="$1/rootfs" boot_tar
  local file_bytes=$((IMAGE_GIB * 25 * 1048576 / 4))     # 24 × 25 MiB random, 12 × 25 MiB text at 4 GiB
  local change_bytes=$((IMAGE_GIB * 5 * 1048576 / 4))    # 8 × 5 MiB changed at 4 GiB
  boot_tar="$cache_root/debootstrap-$suite-$(sha256sum <<< "$mirror" | cut -c1-12).tar"
  if [ ! -s "$boot_tar" ]; then
    log "debootstrap --variant=minbase $suite from $mirror"
    rm -rf "${dir:?}/boot"
    debootstrap --variant=minbase "$suite" "$dir/boot" "$mirror" >&2
    tar -C "$dir/boot" -cf "$boot_tar.tmp" . && mv "$boot_tar.tmp" "$boot_tar"
    rm -rf "${dir:?}/boot"
  fi
  mkdir -p "$root" "$dir/patterns"
  tar -C "$root" -xf "$boot_tar"
  rm -rf "${root:?}"/var/cache/apt/archives/*.deb
  mkdir -p "$root/srv/blobs" "$root/var/log/app"
  local i
  for i in $(seq -w 0 23); do stream "blob-$i" "$file_bytes" > "$root/srv/blobs/blob-$i.bin"; done
  for i in $(seq -w 0 11); do log_text "app-$i" "$file_bytes" > "$root/var/log/app/app-$i.log"; done
  find "$root" -exec touch -h -d "@$epoch" {} +
  truncate -s "${IMAGE_GIB}G" "$dir/base.raw"
  E2FSPROGS_FAKE_TIME="$epoch" SOURCE_DATE_EPOCH="$epoch" mkfs.ext4 -q -F -b 4096 -U "$fs_uuid" \
    -E "root_owner=0:0,hash_seed=$fs_uuid" -d "$root" "$dir/base.raw"
  rm -rf "$root"
  # mkfs.ext4 -d copies each file's ctime, which touch cannot set: set them to the epoch too.
  local used
  used=$(dumpe2fs -h "$dir/base.raw" 2>/dev/null | awk -F: '/^Inode count/ { c = $2 } /^Free inodes/ { f = $2 } END { print c - f }')
  seq 1 "$used" | awk -v t="$(date -u -d "@$epoch" +%Y%m%d%H%M%S)" \
    '{ printf "sif <%d> ctime %s\nsif <%d> ctime_extra 0\n", $1, t, $1 }' > "$dir/ctime.cmds"
  E2FSPROGS_FAKE_TIME="$epoch" debugfs -w -f "$dir/ctime.cmds" "$dir/base.raw" >/dev/null 2>&1
  rm -f "$dir/ctime.cmds"
  cp --sparse=always "$dir/base.raw" "$dir/changed.raw"
  : > "$dir/change.plan"
  local block last blocks=$((change_bytes / 4096))
  for i in 0 1 2 3 4 5 6 7; do
    local file
    file=/srv/blobs/blob-$(printf %02d $((i * 3))).bin
    block=$(debugfs -R "bmap $file 0" "$dir/base.raw" 2>/dev/null)
    last=$(debugfs -R "bmap $file $((blocks - 1))" "$dir/base.raw" 2>/dev/null)
    if [ "$last" -ne $((block + blocks - 1)) ]; then
      log "$file is not contiguous in the image ($block..$last)"
      return 1
    fi
    stream "change-$i" "$change_bytes" > "$dir/patterns/change-$i.bin"
    dd if="$dir/patterns/change-$i.bin" of="$dir/changed.raw" bs=4096 seek="$block" conv=notrunc status=none
    echo "$((block * 4096)) $change_bytes patterns/change-$i.bin" >> "$dir/change.plan"
  done
  # More patterns than one round of scattered writes has writes (655 for 4 GiB): each write of a
  # round has data of its own, so no write deduplicates against another.
  for i in $(seq -w 0 1023); do stream "scatter-$i" 65536 > "$dir/patterns/scatter-$i.bin"; done
  qemu-img convert -f raw -O qcow2 "$dir/base.raw" "$dir/base.qcow2"
  qemu-img convert -f raw -O qcow2 "$dir/changed.raw" "$dir/changed.qcow2"
}

image_key=$( { declare -f stream log_text build_image; echo "$IMAGE_GIB $SEED $suite $mirror $epoch $fs_uuid";
  dpkg-query -W -f='${Version}' debootstrap e2fsprogs; } | sha256sum | cut -c1-16)
image="$cache_root/$IMAGE_GIB-GiB-$image_key"
if [ ! -s "$image/changed.qcow2" ]; then
  log "building the ${IMAGE_GIB} GiB image in $image"
  mkdir -p "$cache_root"
  rm -rf "$image.tmp"
  mkdir -p "$image.tmp"
  build_image "$image.tmp"
  rm -rf "$image"
  mv "$image.tmp" "$image"
fi
# The pattern files go where libvirt's QEMU can read them; the plans name them there.
cp -r "$image/patterns" "$work/patterns"
chmod -R a+rX "$work/patterns"
sed "s|patterns/|$work/patterns/|" "$image/change.plan" > "$work/change.plan"
image_bytes=$((IMAGE_GIB << 30))
allocated=$(qemu-img map --output=json -f raw "$image/base.raw" | jq '[.[] | select(.data) | .length] | add')
scatter_bytes=$((image_bytes / 100 / 65536 * 65536))
scatter_patterns=("$work"/patterns/scatter-*.bin)
# scatter_plan SEED FILE: 1 % of the disk as 64 KiB writes at random offsets.
scatter_plan() {
  /usr/bin/python3 "$sock_helper" plan-scatter "$image_bytes" "$scatter_bytes" 65536 "$1" "${scatter_patterns[@]}" > "$2"
}
scatter_plan "$SEED" "$work/scatter.plan"
# What the scattered writes come to after compression (the repository-growth goal's yardstick).
pattern_zstd=$(cat "${scatter_patterns[@]}" | zstd -3 -c | wc -c)
scatter_zstd=$((pattern_zstd * (scatter_bytes / 65536) / ${#scatter_patterns[@]}))

# ---------------------------------------------------------------------------------------------
# Measuring

round=0
# measure TOOL OP COMMAND...: drops the page cache, runs COMMAND under GNU time (stdout to
# $runs/TOOL.OP.out), and sets m_wall m_user m_sys (seconds) and m_rss (KiB, the largest process).
measure() {
  local tool="$1" op="$2"
  shift 2
  m_base="$runs/$tool.$op"
  drop_caches
  local t0 t1
  t0=$(date +%s%N)
  if ! /usr/bin/time -f '%U %S %M' -o "$m_base.time" "$@" > "$m_base.out" 2> "$m_base.err"; then
    log "$tool $op failed: $*"
    tail -20 "$m_base.err" >&2
    return 1
  fi
  t1=$(date +%s%N)
  m_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
  read -r m_user m_sys m_rss < <(tail -1 "$m_base.time")
}
# record TOOL OP [JSON]: one line for the last measure(), with the fields of JSON added.
record() {
  local line extra="${3:-}"
  [ -n "$extra" ] || extra='{}'
  line=$(jq -cn --arg tool "$1" --arg op "$2" --argjson round "$round" --argjson wall "$m_wall" \
    --argjson user "$m_user" --argjson sys "$m_sys" --argjson rss "$m_rss" --argjson extra "$extra" \
    '{round: $round, tool: $tool, op: $op, wall_s: $wall, user_s: $user, sys_s: $sys, rss_kib: $rss} + $extra')
  echo "$line" >> "$samples"
  log "round $round: $1 $2 ${m_wall} s (user ${m_user}, sys ${m_sys}, peak RSS $((m_rss / 1024)) MiB)" \
    "$(jq -c 'del(.t, .id)' <<< "$extra")"
}
# note JSON: a line that is not a timed run (writes done, sizes, limits).
note() { jq -c --argjson round "$round" '{round: $round} + .' <<< "$1" >> "$samples"; }
size_of() { du -sb "$1" | cut -f1; }
# snapshot_fields: what a `snapshot create --json` answer says about bytes and time.
snapshot_fields() { jq -c '{id, incremental, read: .bytes.read, new: .bytes.new, t: .timings_ms}' "$m_base.out"; }

# ---------------------------------------------------------------------------------------------
# Offline: qemu-img, restic, borg, stillpoint on a stopped VM

offline_qemu_img() {
  measure qemu-img convert_raw qemu-img convert -f qcow2 -O raw "$image/base.qcow2" "$work/conv.raw"
  record qemu-img convert_raw
  rm -f "$work/conv.raw"
  # qemu-img convert writes with cache=unsafe by default (no flush at the end; the data may still
  # be in the page cache when it exits), stillpoint's repository syncs before its commit: the same
  # copy with -t writeback (one flush at the end) is the reference with durable output.
  measure qemu-img convert_raw_flushed qemu-img convert -t writeback -f qcow2 -O raw "$image/base.qcow2" "$work/conv.raw"
  record qemu-img convert_raw_flushed
  rm -f "$work/conv.raw"
  measure qemu-img convert_qcow2 qemu-img convert -f qcow2 -O qcow2 "$image/base.qcow2" "$work/conv.qcow2"
  record qemu-img convert_qcow2
  rm -f "$work/conv.qcow2"
}

offline_restic() {
  local repo="$work/restic"
  export RESTIC_PASSWORD=bench RESTIC_CACHE_DIR="$work/restic-cache"
  rm -rf "$repo" "$RESTIC_CACHE_DIR"
  restic init -q --repo "$repo" >/dev/null
  local op src
  for op in full again changed; do
    src="$image/base.raw"
    [ "$op" != changed ] || src="$image/changed.raw"
    measure restic "$op" sh -c 'restic backup -q --repo "$1" --stdin --stdin-filename disk.raw < "$2"' _ "$repo" "$src"
    record restic "$op" "{\"stored\": $(size_of "$repo")}"
  done
  local first
  first=$(restic snapshots -q --repo "$repo" --json | jq -r '.[0].id')
  measure restic restore sh -c 'restic dump -q --repo "$1" "$2" /disk.raw > "$3"' _ "$repo" "$first" "$work/restic.raw"
  record restic restore
  rm -rf "$repo" "$RESTIC_CACHE_DIR" "$work/restic.raw"
}

offline_borg() {
  local repo="$work/borg"
  export BORG_PASSPHRASE="" BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_BASE_DIR="$work/borg-base"
  rm -rf "$repo" "$BORG_BASE_DIR"
  borg init --encryption none "$repo" >/dev/null
  local op src
  for op in full again changed; do
    src="$image/base.raw"
    [ "$op" != changed ] || src="$image/changed.raw"
    measure borg "$op" sh -c 'borg create --chunker-params fixed,4194304 "$1::$2" - < "$3"' _ "$repo" "$op" "$src"
    record borg "$op" "{\"stored\": $(size_of "$repo")}"
  done
  measure borg restore sh -c 'borg extract --stdout "$1::full" > "$2"' _ "$repo" "$work/borg.raw"
  record borg restore
  rm -rf "$repo" "$BORG_BASE_DIR" "$work/borg.raw"
}

offline_stillpoint() {
  local home="$work/off-home" op
  rm -rf "$home"
  cp --sparse=always "$image/base.qcow2" "$work/off.qcow2"
  STILLPOINT_HOME="$home" "$spbin" vm define off --nic none \
    --volume "name=bench,path=$work/off.qcow2,boot" >/dev/null
  local full_id
  for op in full again changed; do
    [ "$op" != changed ] || cp --sparse=always "$image/changed.qcow2" "$work/off.qcow2"
    measure stillpoint "off_$op" env STILLPOINT_HOME="$home" "$spbin" snapshot create off --json
    record stillpoint "off_$op" "$(snapshot_fields | jq -c --argjson s "$(size_of "$home/repo")" '. + {stored: $s}')"
    [ "$op" != full ] || full_id=$(jq -r .id "$m_base.out")
  done
  local format
  for format in qcow2 raw; do
    rm -rf "$work/export"
    measure stillpoint "restore_$format" env STILLPOINT_HOME="$home" "$spbin" snapshot export \
      "$full_id" "$work/export" --format "$format" --json
    record stillpoint "restore_$format"
    if [ "$round" -eq 1 ]; then  # once: the restored volume holds the image's bytes
      qemu-img compare -q -f qcow2 -F "$format" "$image/base.qcow2" "$work/export/bench.$format" ||
        { log "the $format restore differs from the image"; return 1; }
    fi
  done
  rm -rf "$work/export"
  measure stillpoint create_from_snapshot env STILLPOINT_HOME="$home" "$spbin" \
    vm create-from-snapshot "$full_id" --name restored --dir "$work/cfs" --json
  record stillpoint create_from_snapshot
  rm -rf "$work/cfs"
  measure stillpoint verify env STILLPOINT_HOME="$home" "$spbin" repo verify --json
  record stillpoint verify "$(jq -c '{bytes_checked, chunks_checked, ok}' "$m_base.out")"
  rm -rf "$home" "$work/off.qcow2"
}

# ---------------------------------------------------------------------------------------------
# Live: stillpoint on a VM it runs

guest_dir="$("$top/tests/guest/build-guest.sh" | tail -1)"
# shellcheck source=/dev/null
source "$guest_dir/guest.env"
live_home="$work/live-home"
sp() { STILLPOINT_HOME="$live_home" "$spbin" "$@"; }
running_vms=()

# live_snapshot OP VM [ARGS...]: one measured `snapshot create --volume root --volume bench`.
live_snapshot() {
  local op="$1" vm="$2"
  shift 2
  local before
  before=$(size_of "$live_home/repo" 2>/dev/null || echo 0)
  measure stillpoint "$op" env STILLPOINT_HOME="$live_home" "$spbin" snapshot create "$vm" \
    --volume root --volume bench --json "$@"
  record stillpoint "$op" "$(snapshot_fields | jq -c --argjson a "$(size_of "$live_home/repo")" \
    --argjson b "$before" '. + {stored: $a, growth: ($a - $b)}')"
}

# apply_writes TOOL PLAN SENDER...: carries out a write plan on a running VM, noted in the samples.
apply_writes() {
  local tool="$1" plan="$2"
  shift 2
  note "$(/usr/bin/python3 "$sock_helper" "$@" "$plan" | jq -c --arg t "$tool" --arg p "$(basename "$plan")" \
    '{tool: $t, op: "writes", plan: $p} + .')"
}

live_stillpoint() {
  rm -rf "$live_home"
  cp --sparse=always "$image/base.qcow2" "$work/lv-bench.qcow2"
  guest_vm_start lv "name=bench,path=$work/lv-bench.qcow2,serial=sp-bench"
  live_snapshot live_full lv
  live_snapshot live_inc_same lv
  apply_writes stillpoint "$work/change.plan" qmp-write "$(qmp_socket lv)" bench
  live_snapshot live_inc_changed lv
  apply_writes stillpoint "$work/scatter.plan" qmp-write "$(qmp_socket lv)" bench
  live_snapshot live_inc_scatter lv
  guest_vm_kill lv
  sp vm remove lv >/dev/null
  rm -rf "$live_home" "$work"/lv-*.qcow2
}

# ---------------------------------------------------------------------------------------------
# Live: virtnbdbackup through libvirt

libvirt_started=()
virsh_() { virsh -q -c qemu:///system "$@"; }
start_libvirtd() {
  if [ "$(ps -p 1 -o comm=)" = systemd ]; then
    systemctl start virtlogd.service libvirtd.service
    return 0
  fi
  local daemon
  for daemon in virtlogd libvirtd; do
    if [ -s "/run/$daemon.pid" ] && kill -0 "$(cat "/run/$daemon.pid")" 2>/dev/null; then
      log "$daemon runs already (pid $(cat "/run/$daemon.pid")): using it, leaving it running"
      continue
    fi
    "$daemon" -d
    for _ in $(seq 1 50); do [ -s "/run/$daemon.pid" ] && break; sleep 0.1; done
    libvirt_started+=("$(cat "/run/$daemon.pid")")
  done
  for _ in $(seq 1 100); do virsh_ version >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "libvirtd does not answer on qemu:///system"
  return 1
}
stop_libvirtd() {
  local pid
  for pid in "${libvirt_started[@]}"; do kill "$pid" 2>/dev/null || true; done
  libvirt_started=()
}

vnb_domain=spbench
vnb_domain_xml() {
  cat <<XML
<domain type='qemu'>
  <name>$vnb_domain</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$work/vnb-vmlinuz</kernel>
    <initrd>$work/vnb-initrd.img</initrd>
    <cmdline>$GUEST_APPEND</cmdline>
  </os>
  <cpu mode='maximum' migratable='off'/>
  <on_poweroff>destroy</on_poweroff>
  <devices>
    <emulator>$(command -v qemu-system-x86_64)</emulator>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='$work/vnb-root.qcow2'/>
      <target dev='vda' bus='virtio'/><serial>$GUEST_ROOT_SERIAL</serial><alias name='ua-root'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='$work/vnb-data.qcow2'/>
      <target dev='vdb' bus='virtio'/><serial>$GUEST_DATA_SERIAL</serial><alias name='ua-data'/>
    </disk>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/><source file='$work/vnb-bench.qcow2'/>
      <target dev='vdc' bus='virtio'/><serial>sp-bench</serial><alias name='ua-bench'/>
    </disk>
    <serial type='file'><source path='$work/vnb-console.log'/><target port='0'/></serial>
    <channel type='unix'><target type='virtio' name='$GUEST_QGA_PORT'/></channel>
    <memballoon model='none'/>
  </devices>
</domain>
XML
}

vnb_start() {
  cp "$GUEST_KERNEL" "$work/vnb-vmlinuz"
  cp "$GUEST_INITRD" "$work/vnb-initrd.img"
  cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/vnb-root.qcow2"
  cp --sparse=always "$GUEST_DATA_IMAGE" "$work/vnb-data.qcow2"
  cp --sparse=always "$image/base.qcow2" "$work/vnb-bench.qcow2"
  vnb_domain_xml > "$work/vnb.xml"
  virsh_ define "$work/vnb.xml" >/dev/null
  virsh_ start "$vnb_domain" >/dev/null
  local started
  started=$(now_ms)
  for _ in $(seq 1 300); do
    if virsh_ qemu-agent-command "$vnb_domain" '{"execute":"guest-ping"}' --timeout 1 >/dev/null 2>&1; then
      log "domain $vnb_domain: agent answered $(( $(now_ms) - started )) ms after start"
      return 0
    fi
    sleep 0.5
  done
  log "domain $vnb_domain: the guest agent never answered"
  return 1
}
vnb_stop() {
  virsh_ destroy "$vnb_domain" >/dev/null 2>&1 || true
  virsh_ undefine "$vnb_domain" --checkpoints-metadata >/dev/null 2>&1 || true
  rm -f "$work"/vnb-*.qcow2
}

# vnb_size: bytes in virtnbdbackup's output directory, without its copies of the guest's kernel
# and initrd (taken with every backup of a domain booted from a kernel file).
vnb_size() {
  [ -d "$work/vnb-out" ] || { echo 0; return; }
  find "$work/vnb-out" -type f ! -name 'vnb-vmlinuz.*' ! -name 'vnb-initrd.img.*' -printf '%s\n' 2>/dev/null |
    awk '{ s += $1 } END { print s + 0 }'
}

# vnb_backup OP LEVEL: one measured virtnbdbackup of the image's disk (vdc) into $work/vnb-out.
vnb_backup() {
  local before after
  before=$(vnb_size)
  mkdir -p "$work/vnb-sock"
  chmod 1777 "$work/vnb-sock"  # libvirt's QEMU (user libvirt-qemu) makes the socket and the scratch file
  measure virtnbdbackup "$1" virtnbdbackup -d "$vnb_domain" -l "$2" -i vdc -o "$work/vnb-out" -n \
    -S "$work/vnb-sock" -f "$work/vnb-sock/nbd.sock"
  after=$(vnb_size)
  record virtnbdbackup "$1" "{\"stored\": $after, \"growth\": $((after - before))}"
}

live_virtnbdbackup() {
  rm -rf "$work/vnb-out" "$work/vnb-restore"
  vnb_start
  vnb_backup live_full full
  vnb_backup live_inc_same inc
  apply_writes virtnbdbackup "$work/change.plan" libvirt-write "$vnb_domain" ua-bench
  vnb_backup live_inc_changed inc
  apply_writes virtnbdbackup "$work/scatter.plan" libvirt-write "$vnb_domain" ua-bench
  vnb_backup live_inc_scatter inc
  vnb_stop
  measure virtnbdbackup restore virtnbdrestore -i "$work/vnb-out" -o "$work/vnb-restore" \
    -u virtnbdbackup.0 -n -f "$work/vnbr.sock" -L "$work/vnbr.log"
  record virtnbdbackup restore
  rm -rf "$work/vnb-out" "$work/vnb-restore"
}

# ---------------------------------------------------------------------------------------------
# Once: the chain, the frozen window, the limits

# chain: CHAIN incrementals of 1 % scattered writes each (different offsets every time), then
# ROUNDS × restore of the last point to qcow2 and raw against qemu-img convert of the same disk.
chain() {
  rm -rf "$live_home"
  cp --sparse=always "$image/base.qcow2" "$work/lc-bench.qcow2"
  guest_vm_start lc "name=bench,path=$work/lc-bench.qcow2,serial=sp-bench"
  sp snapshot create lc --volume root --volume bench --json > "$runs/chain.full.json"
  local i last
  for i in $(seq 1 "$CHAIN"); do
    scatter_plan "$((SEED * 1000 + i))" "$work/chain.plan"
    apply_writes chain "$work/chain.plan" qmp-write "$(qmp_socket lc)" bench
    live_snapshot chain_inc lc
    log "chain: incremental $i/$CHAIN"
  done
  last=$(jq -r .id "$m_base.out")
  guest_vm_stop lc
  local r format
  for r in $(seq 1 "$ROUNDS"); do
    round=$r
    for format in qcow2 raw; do
      measure qemu-img "chain_convert_$format" qemu-img convert -f qcow2 -O "$format" \
        "$work/lc-bench.qcow2" "$work/chain-conv.$format"
      record qemu-img "chain_convert_$format"
      rm -f "$work/chain-conv.$format"
      rm -rf "$work/export"
      measure stillpoint "chain_restore_$format" env STILLPOINT_HOME="$live_home" "$spbin" \
        snapshot export "$last" "$work/export" --volume bench --format "$format" --json
      record stillpoint "chain_restore_$format"
      if [ "$r" -eq 1 ]; then
        qemu-img compare -q -f qcow2 -F "$format" "$work/lc-bench.qcow2" "$work/export/bench.$format" ||
          { log "the $format restore after the chain differs from the disk"; return 1; }
      fi
    done
  done
  rm -rf "$work/export" "$live_home" "$work"/lc-*.qcow2
}

# window_series NAME N: N × (bare agent freeze+thaw, snapshot create) on the running VM NAME,
# after one warm-up of each (the warm-up snapshot is the full).
window_series() {
  local vm="$1" n="$2" socket i
  socket=$(qga_socket "$vm")
  /usr/bin/python3 "$sock_helper" qga-freeze-thaw "$socket" >/dev/null
  sp snapshot create "$vm" --json >/dev/null
  for i in $(seq 1 "$n"); do
    note "$(/usr/bin/python3 "$sock_helper" qga-freeze-thaw "$socket" | jq -c --arg v "$vm" '{tool: "window", op: "bare", vm: $v} + .')"
    note "$(sp snapshot create "$vm" --json | jq -c --arg v "$vm" '{tool: "window", op: "snapshot", vm: $v, t: .timings_ms}')"
  done
  log "window: $n samples of $vm"
}

window() {
  rm -rf "$live_home"
  guest_vm_start w2
  window_series w2 "$WINDOW_SAMPLES"
  guest_vm_kill w2
  local extra=() i
  for i in 1 2 3 4 5 6; do
    qemu-img create -q -f qcow2 "$work/w8-x$i.qcow2" 64M
    extra+=("name=x$i,path=$work/w8-x$i.qcow2,serial=sp-x$i")
  done
  guest_vm_start w8 "${extra[@]}"
  window_series w8 "$WINDOW_SAMPLES"
  guest_vm_kill w8
  rm -rf "$live_home" "$work"/w2-*.qcow2 "$work"/w8-*.qcow2
}

# limits: SHA-256 and zstd decompression speed of one core, on a 256 MiB sample of the image's
# data (every n-th allocated 4 MiB piece).
limits() {
  python3 - "$image/base.raw" "$work/sample.bin" <<'PY'
import json, subprocess, sys
extents = json.loads(subprocess.check_output(["qemu-img", "map", "--output=json", "-f", "raw", sys.argv[1]]))
pieces = [(o, min(4 << 20, e["start"] + e["length"] - o)) for e in extents if e["data"]
          for o in range(e["start"], e["start"] + e["length"], 4 << 20)]
step = max(1, len(pieces) // 64)
with open(sys.argv[1], "rb") as src, open(sys.argv[2], "wb") as dst:
    for offset, length in pieces[::step][:64]:
        src.seek(offset)
        dst.write(src.read(length))
PY
  local sha zstd_line
  sha=$(openssl speed -seconds 3 -bytes 4194304 -evp sha256 2>/dev/null | awk '$1 == "sha256" { sub(/k$/, "", $2); print $2 * 1000 }')
  zstd_line=$(zstd -b3 -e3 -i3 -B4M "$work/sample.bin" 2>&1 | tr '\r' '\n' | grep 'MB/s' | tail -1)
  note "$(jq -cn --argjson sha "$sha" --arg z "$zstd_line" --argjson n "$(nproc)" '{tool: "limits", op: "speed",
    sha256_bps: $sha, nproc: $n, zstd_line: $z,
    zstd_decompress_bps: ($z | [scan("([0-9.]+) MB/s")] | last | .[0] | tonumber * 1e6),
    zstd_compress_bps: ($z | [scan("([0-9.]+) MB/s")] | first | .[0] | tonumber * 1e6)}')"
  rm -f "$work/sample.bin"
}

# ---------------------------------------------------------------------------------------------
# The run

cleanup() {
  local rc=$?
  set +e
  local vm
  for vm in "${running_vms[@]}"; do [ -z "$vm" ] || sp vm kill "$vm" >/dev/null 2>&1; done
  vnb_stop
  stop_libvirtd
  if [ "${KEEP_WORK:-0}" = 1 ]; then log "work directory kept: $work"; else rm -rf "$work"; fi
  [ "$rc" -eq 0 ] || log "failed (exit $rc)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
skip virtnbdbackup || start_libvirtd
note "$(jq -cn --arg load "$load_start" '{tool: "meta", op: "load_start", load: $load}')"
skip limits || limits
for r in $(seq 1 "$ROUNDS"); do
  round=$r
  offline=(qemu_img stillpoint)
  skip restic || offline+=(restic)
  skip borg || offline+=(borg)
  live=()
  skip live || live+=(stillpoint)
  skip virtnbdbackup || live+=(virtnbdbackup)
  # Interleaved: each round runs every tool once, starting one further along the list.
  for i in $(seq 0 $((${#offline[@]} - 1))); do
    "offline_${offline[$(((i + r - 1) % ${#offline[@]}))]}"
  done
  for i in $(seq 0 $((${#live[@]} - 1))); do
    "live_${live[$(((i + r - 1) % ${#live[@]}))]}"
  done
done
skip chain || [ "$CHAIN" -eq 0 ] || chain
skip window || [ "$WINDOW_SAMPLES" -eq 0 ] || window

jq -n --arg date "$(date -u '+%Y-%m-%d %H:%M UTC')" --arg cpu "$(grep -m1 "model name" /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')" \
  --argjson nproc "$(nproc)" --arg ram "$(free -g | awk '/^Mem:/ { print $2 }')" --arg kernel "$(uname -r)" \
  --arg qemu "$(qemu-img --version | head -1 | awk '{print $3}')" \
  --arg restic "$(restic version 2>/dev/null | awk '{print $2}')" \
  --arg borg "$(borg --version 2>/dev/null | awk '{print $2}')" \
  --arg vnb "$(virtnbdbackup -V 2>/dev/null | tail -1)" \
  --arg commit "$(git -C "$top" rev-parse --short HEAD)" \
  --arg built "$(date -u -r "${STILLPOINT_BIN:-$top/build/release/src/cli/stillpoint}" '+%Y-%m-%d %H:%M UTC')" \
  --arg load_start "$load_start" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
  --argjson image_gib "$IMAGE_GIB" --argjson image_bytes "$image_bytes" --argjson allocated "$allocated" \
  --argjson rounds "$ROUNDS" --argjson chain "$CHAIN" --argjson window_samples "$WINDOW_SAMPLES" \
  --argjson scatter_bytes "$scatter_bytes" --argjson scatter_zstd "$scatter_zstd" \
  --argjson change_bytes "$(awk '{ s += $2 } END { print s }' "$work/change.plan")" \
  --arg image "$image" --arg skip "$SKIP_PEERS" \
  '$ARGS.named' > "$meta"
python3 "$top/bench/peers_report.py" "$samples" "$meta" | tee "$out"
log "report in $out, raw runs in $samples, run facts in $meta"
