#include "vm/guest_filesystems.h"

#include <algorithm>

namespace sp::vm {
namespace {

// The volume a guest disk belongs to and how it was matched; nullptr when unknown.
const catalog::VolumeRecord* MatchDisk(const catalog::VmRecord& vm, const qga::FsDisk& disk,
                                       std::string* how) {
  if (!disk.serial.empty()) {
    for (const auto& volume : vm.volumes) {
      if (volume.serial == disk.serial) {
        *how = "serial";
        return &volume;
      }
    }
  }
  // Stillpoint puts every disk on bus 0 at its own slot; attached VMs have no known slots.
  if (disk.pci_slot >= 0 && disk.pci_bus == 0 && disk.bus_type == "virtio") {
    for (const auto& volume : vm.volumes) {
      if (volume.pci_slot == disk.pci_slot) {
        *how = "pci-slot";
        return &volume;
      }
    }
  }
  return nullptr;
}

}  // namespace

std::vector<MountedFilesystem> MapFilesystems(const catalog::VmRecord& vm,
                                              const std::vector<qga::Filesystem>& filesystems) {
  std::vector<MountedFilesystem> mapped;
  for (const qga::Filesystem& fs : filesystems) {
    MountedFilesystem entry{fs.mountpoint, fs.type, fs.name, {}, ""};
    for (const qga::FsDisk& disk : fs.disks) {
      std::string how;
      const catalog::VolumeRecord* volume = MatchDisk(vm, disk, &how);
      if (volume == nullptr) continue;
      if (std::find(entry.volumes.begin(), entry.volumes.end(), volume->name) ==
          entry.volumes.end()) {
        entry.volumes.push_back(volume->name);
      }
      if (entry.matched_by.empty() || how == "pci-slot") entry.matched_by = how;
    }
    mapped.push_back(std::move(entry));
  }
  return mapped;
}

}  // namespace sp::vm
