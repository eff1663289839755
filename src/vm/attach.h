// Attaching a VM whose QEMU was started by another tool (libvirt, Proxmox, a script): stillpoint
// talks to it through the QMP and guest-agent sockets that tool created, and discovers its disks.
#pragma once

#include <string>
#include <vector>

#include "catalog/records.h"
#include "platform/status.h"
#include "qmp/qmp_client.h"

namespace sp::vm {

// The disks of a running QEMU, from query-block (+ the serial property of each disk device):
// volume name = the disk device's id, node name = its top (format) node, path and format of the
// image. Empty drives (CD-ROMs without media) are skipped. The first disk becomes the boot
// volume unless `boot_volume` names another. NotFound when `boot_volume` is not among them.
StatusOr<std::vector<catalog::VolumeRecord>> DiscoverVolumes(qmp::Client* qmp,
                                                             const std::string& boot_volume);

}  // namespace sp::vm
