#include "vm/command_line.h"

#include "absl/strings/str_format.h"
#include "platform/environment.h"

namespace sp::vm {
namespace {

// Direct kernel boot claims boot index 0 itself, so the boot disk gets one only without it.
void AddDisk(const catalog::VolumeRecord& volume, bool boot_index, std::vector<std::string>* args) {
  std::string file_node = absl::StrCat(volume.name, "-file");
  args->insert(args->end(),
               {"-blockdev",
                absl::StrCat("driver=file,filename=", volume.path, ",node-name=", file_node,
                             ",cache.direct=off,discard=unmap"),
                "-blockdev",
                absl::StrCat("driver=", volume.format, ",file=", file_node,
                             ",node-name=", volume.node_name, ",discard=unmap"),
                "-device",
                absl::StrFormat("virtio-blk-pci,drive=%s,id=%s,serial=%s,addr=0x%x%s",
                                volume.node_name, volume.name, volume.serial, volume.pci_slot,
                                volume.boot && boot_index ? ",bootindex=0" : "")});
}

}  // namespace

QemuOptions QemuOptions::FromEnvironment() {
  QemuOptions options;
  if (auto qemu = GetEnv("STILLPOINT_QEMU")) options.binary = *qemu;
  if (auto accel = GetEnv("STILLPOINT_QEMU_ACCEL")) options.accel = *accel;
  if (auto cpu = GetEnv("STILLPOINT_QEMU_CPU")) options.cpu = *cpu;
  return options;
}

std::vector<std::string> BuildQemuCommandLine(const catalog::VmRecord& vm, const RunPaths& paths,
                                              const QemuOptions& options) {
  std::vector<std::string> args = {
      options.binary,
      "-name",
      absl::StrCat(vm.name, ",debug-threads=on"),
      "-uuid",
      vm.uuid,
      "-nodefaults",
      "-no-user-config",
      "-display",
      "none",
      "-machine",
      absl::StrCat("pc,accel=", options.accel),
      "-cpu",
      options.cpu,
      "-smp",
      absl::StrCat(vm.vcpus),
      "-m",
      absl::StrCat(vm.memory_mib),
      "-qmp",
      absl::StrCat("unix:", paths.monitor_socket, ",server=on,wait=off"),
      "-qmp",
      absl::StrCat("unix:", paths.qmp_socket, ",server=on,wait=off"),
      "-pidfile",
      paths.pid_file,
      "-serial",
      absl::StrCat("file:", paths.console_log)};
  if (vm.firmware == "uefi") {
    args.insert(args.end(), {"-drive", absl::StrCat("if=pflash,format=raw,readonly=on,file=",
                                                    options.ovmf_code)});
  }
  if (!vm.kernel.empty()) args.insert(args.end(), {"-kernel", vm.kernel});
  if (!vm.initrd.empty()) args.insert(args.end(), {"-initrd", vm.initrd});
  if (!vm.append.empty()) args.insert(args.end(), {"-append", vm.append});
  for (const catalog::VolumeRecord& volume : vm.volumes) AddDisk(volume, vm.kernel.empty(), &args);
  if (vm.agent) {
    args.insert(
        args.end(),
        {"-device", "virtio-serial-pci,id=vserial0,addr=0x3", "-chardev",
         absl::StrCat("socket,id=qga0,path=", paths.qga_socket, ",server=on,wait=off"), "-device",
         "virtserialport,bus=vserial0.0,chardev=qga0,name=org.qemu.guest_agent.0"});
  }
  int slot = 0x10;
  for (size_t i = 0; i < vm.nics.size(); ++i) {
    const catalog::NicRecord& nic = vm.nics[i];
    std::string id = absl::StrCat("net", i);
    std::string backend;  // network "none": a NIC with no cable plugged in
    if (nic.network == "user") {
      args.insert(args.end(), {"-netdev", absl::StrCat("user,id=", id)});
      backend = absl::StrCat("netdev=", id, ",");
    }
    args.insert(args.end(), {"-device", absl::StrFormat("virtio-net-pci,%smac=%s,addr=0x%x",
                                                        backend, nic.mac, slot++)});
  }
  return args;
}

}  // namespace sp::vm
