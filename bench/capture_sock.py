#!/usr/bin/env python3
"""Socket helpers for bench/capture_bench.sh and bench/peers.sh: talk to a VM's guest agent or QMP
socket directly, or write to its disks through QEMU's block layer.

  capture_sock.py qga-freeze-thaw QGA_SOCKET
      One bare guest-fsfreeze-freeze + guest-fsfreeze-thaw on a fresh connection (after the
      guest-sync-delimited handshake, which is not timed). Prints one JSON line:
      {"freeze_ms": F, "thaw_ms": T, "round_trip_ms": F+T, "frozen": N}

  capture_sock.py qmp-scatter QMP_SOCKET DEVICE SIZE_BYTES TOTAL_BYTES WRITE_BYTES SEED [DIR]
      Writes TOTAL_BYTES to the running VM's disk DEVICE (qdev id) as TOTAL/WRITE writes of
      WRITE_BYTES at distinct random WRITE_BYTES-aligned offsets, through QEMU's block layer
      (HMP `qemu-io -d DEVICE "write -P ..."`), so the VM's dirty bitmaps see them as guest
      writes. With DIR, each write carries its own random (incompressible) bytes from a file
      made there (`write -s FILE`) instead of a one-byte pattern.
      Prints {"writes": n, "bytes": b, "chunks_4m": distinct 4 MiB chunks touched, "ms": t}.

  capture_sock.py plan-scatter SIZE_BYTES TOTAL_BYTES WRITE_BYTES SEED PATTERN_FILE...
      Prints a write plan, one "OFFSET LENGTH PATTERN_FILE" line per write: TOTAL/WRITE writes at
      distinct random WRITE_BYTES-aligned offsets (the same ones qmp-scatter picks for the same
      seed), the data of each taken from the pattern files in turn.

  capture_sock.py qmp-write QMP_SOCKET DEVICE PLAN_FILE
  capture_sock.py libvirt-write DOMAIN DEVICE PLAN_FILE
      Carries out a write plan on the running VM's disk DEVICE (qdev id) through QEMU's block
      layer (HMP `qemu-io -d DEVICE "write -s PATTERN_FILE OFFSET LENGTH"`; QEMU itself reads the
      pattern file), over the VM's QMP socket or through libvirt (qemu:///system, python3-libvirt)
      for a libvirt domain. Prints {"writes", "bytes", "chunks_4m", "clusters_64k", "ms"}.

Each connection is closed before returning: QEMU and the agent serve one client at a time.
"""
import json
import os
import random
import socket
import sys
import time


def connect(path, timeout=30.0):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.connect(path)
    return sock


class Lines:
    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def read_json(self):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1:]
                line = line.replace(b"\xff", b"").strip()
                if line:
                    return json.loads(line)
                continue
            data = self.sock.recv(65536)
            if not data:
                raise RuntimeError("peer closed the connection")
            self.buf += data


def command(sock, lines, execute, arguments=None):
    msg = {"execute": execute}
    if arguments is not None:
        msg["arguments"] = arguments
    sock.sendall(json.dumps(msg).encode() + b"\n")
    while True:
        reply = lines.read_json()
        if "return" in reply:
            return reply["return"]
        if "error" in reply:
            raise RuntimeError(f"{execute}: {reply['error']}")
        # QMP events: skip


def qga_freeze_thaw(path):
    sock = connect(path)
    lines = Lines(sock)
    token = random.randrange(1, 2**31)
    sock.sendall(b"\xff" + json.dumps(
        {"execute": "guest-sync-delimited", "arguments": {"id": token}}).encode() + b"\n")
    while True:  # drop stale replies a previous client left in the channel
        reply = lines.read_json()
        if reply.get("return") == token:
            break
    start = time.perf_counter()
    frozen = command(sock, lines, "guest-fsfreeze-freeze")
    mid = time.perf_counter()
    command(sock, lines, "guest-fsfreeze-thaw")
    end = time.perf_counter()
    sock.close()
    freeze_ms, thaw_ms = (mid - start) * 1e3, (end - mid) * 1e3
    print(json.dumps({"freeze_ms": freeze_ms, "thaw_ms": thaw_ms,
                      "round_trip_ms": freeze_ms + thaw_ms, "frozen": frozen}))


def qmp_scatter(path, device, size, total, write, seed, source_dir=None):
    rng = random.Random(seed)
    count = total // write
    offsets = rng.sample(range(size // write), count)
    sources = []
    if source_dir is not None:
        for index in range(count):
            name = f"{source_dir}/scatter-{seed}-{index}.bin"
            with open(name, "wb") as out:
                out.write(rng.randbytes(write))
            sources.append(name)
    sock = connect(path, timeout=120.0)
    lines = Lines(sock)
    lines.read_json()  # greeting
    command(sock, lines, "qmp_capabilities")
    start = time.perf_counter()
    for index, slot in enumerate(offsets):
        pattern = 1 + (seed * 31 + index) % 254
        data = f"-s {sources[index]}" if sources else f"-P {pattern}"
        out = command(sock, lines, "human-monitor-command", {
            "command-line": f'qemu-io -d /machine/peripheral/{device}/virtio-backend "write {data} {slot * write} {write}"'})
        if "error" in out.lower() or "failed" in out.lower():
            raise RuntimeError(f"qemu-io: {out.strip()}")
    elapsed = (time.perf_counter() - start) * 1e3
    sock.close()
    for name in sources:
        os.remove(name)
    chunks = {slot * write // (4 << 20) for slot in offsets}
    if write > (4 << 20):
        chunks = {c for slot in offsets
                  for c in range(slot * write >> 22, (slot * write + write - 1 >> 22) + 1)}
    print(json.dumps({"writes": count, "bytes": count * write, "chunks_4m": len(chunks),
                      "ms": elapsed}))


def scatter_offsets(size, total, write, seed):
    rng = random.Random(seed)
    return [slot * write for slot in rng.sample(range(size // write), total // write)]


def plan_scatter(size, total, write, seed, patterns):
    for index, offset in enumerate(scatter_offsets(size, total, write, seed)):
        print(offset, write, patterns[index % len(patterns)])


def read_plan(path):
    with open(path) as plan:
        return [(int(o), int(n), f) for o, n, f in (line.split() for line in plan if line.strip())]


def touched(plan, unit):
    return len({u for offset, length, _ in plan
                for u in range(offset // unit, (offset + length - 1) // unit + 1)})


def carry_out(plan, device, hmp):
    start = time.perf_counter()
    for offset, length, pattern in plan:
        out = hmp(f'qemu-io -d /machine/peripheral/{device}/virtio-backend '
                  f'"write -s {pattern} {offset} {length}"')
        if "error" in out.lower() or "failed" in out.lower():
            raise RuntimeError(f"qemu-io: {out.strip()}")
    elapsed = (time.perf_counter() - start) * 1e3
    print(json.dumps({"writes": len(plan), "bytes": sum(n for _, n, _ in plan),
                      "chunks_4m": touched(plan, 4 << 20), "clusters_64k": touched(plan, 64 << 10),
                      "ms": elapsed}))


def qmp_write(path, device, plan_file):
    sock = connect(path, timeout=120.0)
    lines = Lines(sock)
    lines.read_json()  # greeting
    command(sock, lines, "qmp_capabilities")
    carry_out(read_plan(plan_file), device, lambda line: command(
        sock, lines, "human-monitor-command", {"command-line": line}))
    sock.close()


def libvirt_write(domain_name, device, plan_file):
    import libvirt  # python3-libvirt: only this mode needs it
    import libvirt_qemu
    conn = libvirt.open("qemu:///system")
    domain = conn.lookupByName(domain_name)
    carry_out(read_plan(plan_file), device, lambda line: libvirt_qemu.qemuMonitorCommand(
        domain, line, libvirt_qemu.VIR_DOMAIN_QEMU_MONITOR_COMMAND_HMP))
    conn.close()


def main(argv):
    if len(argv) == 3 and argv[1] == "qga-freeze-thaw":
        qga_freeze_thaw(argv[2])
    elif len(argv) in (8, 9) and argv[1] == "qmp-scatter":
        qmp_scatter(argv[2], argv[3], *(int(a) for a in argv[4:8]), *argv[8:])
    elif len(argv) >= 7 and argv[1] == "plan-scatter":
        plan_scatter(*(int(a) for a in argv[2:6]), argv[6:])
    elif len(argv) == 5 and argv[1] == "qmp-write":
        qmp_write(*argv[2:5])
    elif len(argv) == 5 and argv[1] == "libvirt-write":
        libvirt_write(*argv[2:5])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
