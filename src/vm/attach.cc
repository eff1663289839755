#include "vm/attach.h"

#include "absl/strings/str_split.h"
#include "platform/json_guard.h"

namespace sp::vm {
namespace {

// "/machine/peripheral/root/virtio-backend" → "root"; "" when not a named peripheral.
std::string DeviceId(const std::string& qdev) {
  std::vector<std::string> parts = absl::StrSplit(qdev, '/', absl::SkipEmpty());
  if (parts.size() >= 3 && parts[0] == "machine" && parts[1] == "peripheral") return parts[2];
  if (parts.size() == 1) return parts[0];
  return "";
}

std::string SerialOf(qmp::Client* qmp, const std::string& id) {
  auto serial = qmp->Execute(
      "qom-get", {{"path", absl::StrCat("/machine/peripheral/", id)}, {"property", "serial"}});
  return serial.ok() && serial->is_string() ? serial->get<std::string>() : "";
}

StatusOr<std::vector<catalog::VolumeRecord>> VolumesFromQueryBlock(qmp::Client* qmp,
                                                                   const nlohmann::json& blocks);
StatusOr<std::vector<catalog::VolumeRecord>> ChooseBoot(const std::string& label,
                                                        std::vector<catalog::VolumeRecord> volumes,
                                                        const std::string& boot_volume);

}  // namespace

StatusOr<std::vector<catalog::VolumeRecord>> DiscoverVolumes(qmp::Client* qmp,
                                                             const std::string& boot_volume) {
  SP_ASSIGN_OR_RETURN(nlohmann::json blocks, qmp->Execute("query-block"));
  SP_ASSIGN_OR_RETURN(std::vector<catalog::VolumeRecord> volumes,
                      GuardJson(absl::StrCat(qmp->label(), ": query-block"),
                                [&]() -> StatusOr<std::vector<catalog::VolumeRecord>> {
                                  return VolumesFromQueryBlock(qmp, blocks);
                                }));
  return ChooseBoot(qmp->label(), std::move(volumes), boot_volume);
}

namespace {

StatusOr<std::vector<catalog::VolumeRecord>> VolumesFromQueryBlock(qmp::Client* qmp,
                                                                   const nlohmann::json& blocks) {
  std::vector<catalog::VolumeRecord> volumes;
  for (const nlohmann::json& block : blocks) {
    if (!block.contains("inserted")) continue;
    const nlohmann::json& inserted = block["inserted"];
    catalog::VolumeRecord volume;
    std::string id = DeviceId(block.value("qdev", ""));
    volume.name = !block.value("device", "").empty() ? block.value("device", "") : id;
    volume.node_name = inserted.value("node-name", "");
    volume.format = inserted.value("drv", "");
    const nlohmann::json& image = inserted.value("image", nlohmann::json::object());
    volume.path = image.value("filename", inserted.value("file", ""));
    if (!id.empty()) volume.serial = SerialOf(qmp, id);
    if (volume.name.empty() || volume.node_name.empty()) continue;
    volumes.push_back(std::move(volume));
  }
  return volumes;
}

StatusOr<std::vector<catalog::VolumeRecord>> ChooseBoot(const std::string& label,
                                                        std::vector<catalog::VolumeRecord> volumes,
                                                        const std::string& boot_volume) {
  if (volumes.empty()) return absl::NotFoundError(absl::StrCat(label, ": QEMU reports no disks"));
  if (boot_volume.empty()) {
    volumes.front().boot = true;
    return volumes;
  }
  for (catalog::VolumeRecord& volume : volumes) volume.boot = volume.name == boot_volume;
  for (const catalog::VolumeRecord& volume : volumes) {
    if (volume.boot) return volumes;
  }
  std::string names;
  for (const auto& volume : volumes)
    absl::StrAppend(&names, names.empty() ? "" : ", ", volume.name);
  return absl::NotFoundError(
      absl::StrCat(label, ": no disk named '", boot_volume, "' (it has: ", names, ")"));
}

}  // namespace
}  // namespace sp::vm
