#!/bin/bash
# Boots the cached test guest in the background, for manual poking.
#
# Usage: tests/guest/run-guest.sh RUN_DIR
# Builds the guest if needed (build-guest.sh), copies its images into RUN_DIR
# and starts QEMU daemonized. RUN_DIR then holds qga.sock (guest agent),
# qmp.sock (QMP), qemu.pid and console.log. Keep RUN_DIR short: unix socket
# paths must fit in 108 bytes. Stop the guest with guest-shutdown, QMP quit,
# or kill "$(cat RUN_DIR/qemu.pid)".
#
# Environment:
#   STILLPOINT_QEMU_ACCEL  QEMU accelerator (default tcg; /dev/kvm here is
#                          not usable for these guests)
set -euo pipefail

(($# == 1)) || {
    echo "usage: $0 RUN_DIR" >&2
    exit 2
}
mkdir -p "$1"
run=$(cd "$1" && pwd)
((${#run} + 10 <= 107)) || {
    echo "run-guest: $run is too long for unix socket paths" >&2
    exit 2
}

guest=$("$(dirname "${BASH_SOURCE[0]}")/build-guest.sh" | tail -n 1)
# shellcheck source=/dev/null
. "$guest/guest.env"

cp "$GUEST_ROOT_IMAGE" "$run/root.qcow2"
cp "$GUEST_DATA_IMAGE" "$run/data.qcow2"
rm -f "$run"/{qga.sock,qmp.sock,qemu.pid,console.log}

disks=()
add_disk() { # name serial pci-address
    disks+=(-blockdev "driver=file,filename=$run/$1.qcow2,node-name=$1-file"
        -blockdev "driver=qcow2,file=$1-file,node-name=$1-fmt"
        -device "virtio-blk-pci,drive=$1-fmt,id=$1,serial=$2,addr=$3")
}
add_disk root "$GUEST_ROOT_SERIAL" 0x4
add_disk data "$GUEST_DATA_SERIAL" 0x5

qemu-system-x86_64 \
    -nodefaults -no-user-config -display none \
    -accel "${STILLPOINT_QEMU_ACCEL:-tcg}" -cpu max -m 256 \
    -kernel "$GUEST_KERNEL" -initrd "$GUEST_INITRD" -append "$GUEST_APPEND" \
    "${disks[@]}" \
    -device virtio-serial-pci \
    -chardev "socket,id=qga0,path=$run/qga.sock,server=on,wait=off" \
    -device "virtserialport,chardev=qga0,name=$GUEST_QGA_PORT" \
    -qmp "unix:$run/qmp.sock,server=on,wait=off" \
    -pidfile "$run/qemu.pid" \
    -serial "file:$run/console.log" \
    -daemonize

echo "run-guest: QEMU pid $(cat "$run/qemu.pid"), agent $run/qga.sock," \
    "QMP $run/qmp.sock, console $run/console.log" >&2
echo "$run"
