// The QEMU command line for a managed VM: our own node names for every disk (so later QMP work
// can name them), a serial on every disk, the guest-agent channel, two QMP sockets (one for the
// VM's monitor process, one for commands), a pid file and the serial console in a log file.
#pragma once

#include <string>
#include <vector>

#include "catalog/records.h"
#include "vm/machine.h"

namespace sp::vm {

struct QemuOptions {
  std::string binary = "qemu-system-x86_64";
  // "tcg" unless STILLPOINT_QEMU_ACCEL says otherwise (e.g. "kvm" on hosts with working KVM).
  std::string accel = "tcg";
  std::string cpu = "max";
  std::string ovmf_code = "/usr/share/OVMF/OVMF_CODE.fd";

  // Defaults, overridden by STILLPOINT_QEMU, STILLPOINT_QEMU_ACCEL, STILLPOINT_QEMU_CPU.
  static QemuOptions FromEnvironment();
};

std::vector<std::string> BuildQemuCommandLine(const catalog::VmRecord& vm, const RunPaths& paths,
                                              const QemuOptions& options);

}  // namespace sp::vm
