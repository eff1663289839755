// Which guest filesystem lives on which volume: the guest agent's fsinfo matched to the VM's
// disks by serial (reliable when the guest has udev data), else by virtio PCI slot.
#pragma once

#include <string>
#include <vector>

#include "catalog/records.h"
#include "qga/qga_client.h"

namespace sp::vm {

struct MountedFilesystem {
  std::string mountpoint;
  std::string type;
  std::string guest_device;
  std::vector<std::string> volumes;  // names of the VM's volumes it spans; empty if unknown
  std::string matched_by;            // "serial", "pci-slot" or "" (not matched)
};

std::vector<MountedFilesystem> MapFilesystems(const catalog::VmRecord& vm,
                                              const std::vector<qga::Filesystem>& filesystems);

}  // namespace sp::vm
