#!/usr/bin/env bash
# The main job, end to end on this machine: set up, build the test guest, define and start a VM
# with two disks, show that its real guest agent answers, write data in the guest, take an
# application-consistent snapshot, make a new VM from it (new UUID and MAC), boot that VM and show
# by checksum that the data is there, print a short summary; then start the service on the same
# state with the VM protected on a schedule and print how to sign in (STILLPOINT_DEMO_SERVICE=0:
# stop both VMs instead).
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
cleanup() {
  sp vm kill demo >/dev/null 2>&1 || true
  sp vm kill demo-copy >/dev/null 2>&1 || true
}
trap cleanup EXIT

cp --sparse=always "$GUEST_ROOT_IMAGE" "$work/root.qcow2"
cp --sparse=always "$GUEST_DATA_IMAGE" "$work/data.qcow2"

step "define a VM with a boot volume and a data volume"
sp vm define demo --memory 256M \
  --volume "name=root,path=$work/root.qcow2,boot,serial=$GUEST_ROOT_SERIAL" \
  --volume "name=data,path=$work/data.qcow2,serial=$GUEST_DATA_SERIAL" \
  --kernel "$GUEST_KERNEL" --initrd "$GUEST_INITRD" --append "$GUEST_APPEND" --nic network=user

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

step "write data in the guest (8 MiB of random bytes on the data disk)"
sum=$(sp vm agent exec demo -- /bin/sh -c \
  'dd if=/dev/urandom of=/data/payload bs=1M count=8 2>/dev/null && sync && sha256sum /data/payload' \
  | cut -c1-64)
echo "sha256 in the original VM: $sum"

step "application-consistent snapshot (the agent freezes the filesystems for the cut)"
snap_started=$(date +%s%N)
sp snapshot create demo --consistency require-app --json > "$work/snapshot.json"
snap_ms=$(( ($(date +%s%N) - snap_started) / 1000000 ))
point=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["id"])' "$work/snapshot.json")
sp snapshot list demo

step "a new VM from the recovery point (new UUID, new MAC, images materialized as qcow2)"
copy_started=$(date +%s%N)
sp vm create-from-snapshot "$point" --name demo-copy --start
copy_ms=$(( ($(date +%s%N) - copy_started) / 1000000 ))
for _ in $(seq 1 120); do
  sp vm agent ping demo-copy --timeout 1 2>/dev/null && break
done
copy_sum=$(sp vm agent exec demo-copy -- sha256sum /data/payload | cut -c1-64)
echo "sha256 in the new VM:      $copy_sum"
if [[ "$copy_sum" != "$sum" ]]; then
  echo "MISMATCH: the new VM does not hold the snapshot's data" >&2
  exit 1
fi
echo "the data is there"
sp vm list

step "summary"
sp vm show demo --json > "$work/demo.json"
sp vm show demo-copy --json > "$work/copy.json"
python3 - "$work/snapshot.json" "$snap_ms" "$copy_ms" "$work/demo.json" "$work/copy.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
t = r.get("timings_ms", {})
b = r.get("bytes", {})
def mib(n): return f"{(n or 0) / 1048576:.1f} MiB"
print(f"recovery point   {r.get('id')}")
print(f"consistency      {r.get('consistency')}: {r.get('reason')}")
print(f"frozen window    {t.get('frozen_window', 0):.0f} ms (freeze {t.get('freeze', 0):.0f} ms, "
      f"cut {t.get('qmp', 0):.1f} ms, thaw {t.get('thaw', 0):.0f} ms)")
print(f"sizes            {mib(b.get('logical'))} of volumes, {mib(b.get('read'))} read, "
      f"{mib(b.get('new'))} new in the repository")
def ident(path):
    v = json.load(open(path))
    v = v.get("vm", v)
    return v.get("uuid"), ", ".join(n.get("mac", "") for n in v.get("nics", []))
for label, path in (("original VM", sys.argv[4]), ("new VM", sys.argv[5])):
    uuid, macs = ident(path)
    print(f"{label:<16} uuid {uuid}, mac {macs}")
print(f"times            snapshot {int(sys.argv[2]) / 1000:.1f} s, new VM materialized and "
      f"started {int(sys.argv[3]) / 1000:.1f} s")
PY

if [[ "${STILLPOINT_DEMO_SERVICE:-1}" == 0 ]]; then
  step "clean shutdown of both VMs through their guest agents"
  sp vm stop demo-copy
  sp vm stop demo
  trap - EXIT
  echo
  echo "state kept in $work (remove it when done)"
  exit 0
fi

step "the service: protect the VM every 15 minutes, keep the last 8 points"
sp vm stop demo-copy
sp schedule set demo --every 15m --keep-last 8
setsid "$top/build/$preset/src/cli/stillpoint" serve >"$work/service.log" 2>&1 </dev/null &
service_pid=$!
for _ in $(seq 1 100); do
  grep -q '^stillpointd: serving ' "$work/service.log" && break
  sleep 0.2
done
if ! grep -q '^stillpointd: serving ' "$work/service.log"; then
  cat "$work/service.log" >&2
  exit 1
fi
trap - EXIT
grep '^stillpointd: ' "$work/service.log"
url=$(sed -n 's|^stillpointd: serving \(https://[^ ]*\).*|\1|p' "$work/service.log")
url="${url%/}"
password=$(sed -n "s/^stillpointd: created user 'admin' with password //p" "$work/service.log")
cat <<EOF2

The service runs (pid $service_pid) on the demo's state, with VM 'demo' running and protected.
Try it:
  curl -sk -c $work/cookies -H 'Content-Type: application/json' \\
    -d '{"user": "admin", "password": "$password"}' $url/api/v1/session
  curl -sk -b $work/cookies $url/api/v1/vms/demo
  STILLPOINT_HOME=$STILLPOINT_HOME STILLPOINT_RUN_DIR=$STILLPOINT_RUN_DIR $top/build/$preset/src/cli/stillpoint snapshot list
When done:
  kill $service_pid; STILLPOINT_HOME=$STILLPOINT_HOME STILLPOINT_RUN_DIR=$STILLPOINT_RUN_DIR \\
    $top/build/$preset/src/cli/stillpoint vm stop demo; rm -rf $work
EOF2
