#include "capture/point_record.h"

#include "platform/clock.h"

namespace sp::capture {

catalog::RecoveryPointRecord RecordFromManifest(const repo::Manifest& manifest) {
  const repo::PointDescription& described = manifest.point_description;
  catalog::RecoveryPointRecord record;
  record.id = manifest.id;
  record.vm_uuid = manifest.vm_id;
  record.vm_name = manifest.vm_name;
  record.name = manifest.name;
  record.description = manifest.description;
  record.parent_id = manifest.parent_id;
  record.state = "complete";
  if (described.consistency != repo::PointConsistency::kUnknown) {
    record.consistency = repo::PointConsistencyName(described.consistency);
  }
  record.reason = described.reason;
  record.created_us = manifest.created_micros;
  record.logical_bytes = static_cast<int64_t>(manifest.LogicalBytes());
  for (const auto& volume : manifest.volumes) {
    record.new_stored_bytes += static_cast<int64_t>(volume.new_stored_bytes);
    record.volumes.push_back(volume.name);
  }
  return record;
}

repo::PointVm PointVmFromRecord(const catalog::VmRecord& vm) {
  repo::PointVm point;
  point.catalog_id = vm.id;
  point.uuid = vm.uuid;
  point.name = vm.name;
  point.origin = vm.origin;
  point.state = catalog::PowerStateName(vm.state);
  point.state_reason = vm.state_reason;
  point.state_changed = FormatUnixMicros(vm.state_changed_us);
  point.created = FormatUnixMicros(vm.created_us);
  point.vcpus = vm.vcpus;
  point.memory_mib = vm.memory_mib;
  point.firmware = vm.firmware;
  point.guest_agent = vm.agent;
  point.consistency_policy = vm.policy;
  if (!vm.kernel.empty()) point.kernel = repo::PointKernelBoot{vm.kernel, vm.initrd, vm.append};
  if (vm.origin == "attached") {
    point.qmp_socket = vm.qmp_socket;
    point.qga_socket = vm.qga_socket;
  }
  point.space_limit_bytes = vm.space_limit_bytes;
  for (const catalog::VolumeRecord& volume : vm.volumes) {
    point.volumes.push_back(
        {volume.name, volume.path, volume.format, volume.boot, volume.serial, volume.node_name});
  }
  for (const catalog::NicRecord& nic : vm.nics) point.nics.push_back({nic.mac, nic.network});
  return point;
}

}  // namespace sp::capture
