# shellcheck shell=bash disable=SC2154
# Shell helpers the benchmark scripts share. Sourced, not run:
#
#   source "$top/bench/lib.sh"
#
# Each function says which variables of the caller it uses.

# now_ms: wall clock in milliseconds.
now_ms() { echo $(( $(date +%s%N) / 1000000 )); }

# drop_caches: writes dirty pages back and empties the page cache, so the next run reads from
# the disk (root only).
drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# ratio A B: A / B with two decimals ("nan" when B is 0).
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "nan"; else printf "%.2f", a / b }'; }

# mib BYTES: whole MiB.
mib() { awk -v b="$1" 'BEGIN { printf "%.0f", b / 1048576 }'; }

# ensure_packages PACKAGE...: installs the Debian packages that are missing (root only). The
# benchmarks' tools stay out of scripts/setup.sh: CI does not pay for them.
ensure_packages() {
  local missing=() package
  for package in "$@"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" ||
      missing+=("$package")
  done
  [ "${#missing[@]}" -gt 0 ] || return 0
  echo "bench: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >&2
  apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends "${missing[@]}" >&2
}

# copy_stillpoint TOP DEST: copies the release build of the tree at TOP (building it first if
# missing; STILLPOINT_BIN names another binary) to DEST, so a rebuild during a run cannot change
# the binary under the benchmark.
copy_stillpoint() {
  local built="${STILLPOINT_BIN:-$1/build/release/src/cli/stillpoint}"
  [ -x "$built" ] || [ -n "${STILLPOINT_BIN:-}" ] || "$1/scripts/setup.sh" release >&2
  mkdir -p "$(dirname "$2")"
  cp "$built" "$2"
}

# percentile P: nearest-rank P-th percentile of the numbers on stdin, one a line ("nan" if none).
percentile() {
  sort -g | awk -v p="$1" '{ v[NR] = $1 } END {
    if (NR == 0) { print "nan"; exit }
    r = int((p / 100) * NR + 0.999999); if (r < 1) r = 1; if (r > NR) r = NR; printf "%.1f", v[r] }'
}

# --- VMs of the test guest (tests/guest/build-guest.sh), run by stillpoint ----------------------
# These use the caller's: sp (a function running the stillpoint binary with the caller's
# STILLPOINT_HOME), work (a directory for image copies), STILLPOINT_RUN_DIR, the GUEST_* variables
# of the guest's guest.env, and the array running_vms (the VMs to kill on the way out).

# guest_vm_start NAME [EXTRA_VOLUME_SPEC...]: defines and starts a VM with copies of the guest's
# root and data disks plus the given volumes, and waits until its guest agent answers.
guest_vm_start() {
  local name="$1"
  shift
  cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/$name-root.qcow2"
  cp --sparse=always "$GUEST_DATA_IMAGE" "$work/$name-data.qcow2"
  local volumes=(--volume "name=root,path=$work/$name-root.qcow2,boot,serial=$GUEST_ROOT_SERIAL"
                 --volume "name=data,path=$work/$name-data.qcow2,serial=$GUEST_DATA_SERIAL")
  local extra
  for extra in "$@"; do volumes+=(--volume "$extra"); done
  sp vm define "$name" --memory 256M --nic none --kernel "$GUEST_KERNEL" \
    --initrd "$GUEST_INITRD" --append "$GUEST_APPEND" "${volumes[@]}" >/dev/null
  running_vms+=("$name")
  local started
  started=$(now_ms)
  sp vm start "$name" >/dev/null
  for _ in $(seq 1 300); do
    if sp vm agent ping "$name" --timeout 1 >/dev/null 2>&1; then
      echo "bench: VM $name: agent answered $(( $(now_ms) - started )) ms after start" >&2
      return 0
    fi
    sleep 0.5
  done
  echo "bench: VM $name: the guest agent never answered" >&2
  return 1
}

# guest_vm_kill NAME: forces the VM off. guest_vm_stop NAME: a clean guest shutdown (kill if
# that fails), so the disk images are closed cleanly.
guest_vm_kill() {
  sp vm kill "$1" >/dev/null
  running_vms=("${running_vms[@]/$1/}")
}
guest_vm_stop() {
  sp vm stop "$1" --timeout 60 >/dev/null || sp vm kill "$1" >/dev/null
  running_vms=("${running_vms[@]/$1/}")
}

# qga_socket NAME / qmp_socket NAME: the unix sockets of a running VM's agent and QMP monitor.
qga_socket() {
  local uuid
  uuid=$(sp vm show "$1" --json | jq -r '.uuid')
  echo "$STILLPOINT_RUN_DIR/${uuid:0:8}/qga.sock"
}
qmp_socket() { local q; q=$(qga_socket "$1"); echo "${q%/qga.sock}/qmp.sock"; }
