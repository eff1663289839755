#!/usr/bin/env bash
# The main job, end to end on this machine: set up, build the test guest, define and start a VM
# with two disks, show that its real guest agent answers (version, filesystems mapped to volumes,
# a freeze and thaw with the guest's hook markers), then shut the guest down cleanly.
#
#   scripts/demo.sh            (as root on a fresh Debian 12 machine, or after scripts/setup.sh)
set -euo pipefail
top="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
preset="${STILLPOINT_PRESET:-release}"

"$top/scripts/setup.sh" "$preset"
guest_dir="$("$top/tests/guest/build-guest.sh")"
# shellcheck source=/dev/null
source "$guest_dir/guest.env"

work="$(mktemp -d /tmp/stillpoint-demo.XXXXXX)"
export STILLPOINT_HOME="$work/home" STILLPOINT_RUN_DIR="$work/run"
sp() { "$top/build/$preset/src/cli/stillpoint" "$@"; }
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
cleanup() { sp vm kill demo >/dev/null 2>&1 || true; }
trap cleanup EXIT

cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/root.qcow2"
cp --sparse=always "$GUEST_DATA_IMAGE" "$work/data.qcow2"

step "define a VM with a boot volume and a data volume"
sp vm define demo --memory 256M \
  --volume "name=root,path=$work/root.qcow2,boot,serial=$GUEST_ROOT_SERIAL" \
  --volume "name=data,path=$work/data.qcow2,serial=$GUEST_DATA_SERIAL" \
  --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --append "$GUEST_APPEND" --nic none

step "start it (QEMU under TCG; a monitor process keeps its power state)"
started=$(date +%s%N)
sp vm start demo
for _ in $(seq 1 120); do
  sp vm agent ping demo --timeout 1 2>/dev/null && break
done
echo "guest agent answered $(( ($(date +%s%N) - started) / 1000000 )) ms after start"

step "the guest agent"
sp vm agent info demo | head -3
step "guest filesystems and the volumes they live on"
sp vm agent fsinfo demo
step "freeze and thaw the guest's filesystems (the fsfreeze hook leaves markers)"
sp vm agent freeze demo
sp vm agent status demo
sp vm agent thaw demo

step "clean shutdown through the guest agent"
sp vm stop demo
sp vm show demo | head -6
trap - EXIT
echo
echo "state kept in $work (remove it when done)"
