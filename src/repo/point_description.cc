#include "repo/point_description.h"

#include "platform/json_guard.h"

namespace sp::repo {
namespace {

using nlohmann::json;

// Bounds of what a VM made from a point may ask for: generous, but never absurd.
constexpr int kMaxVcpus = 1024;
constexpr int64_t kMaxMemoryMib = int64_t{1} << 30;

json TimingsToJson(const PointTimings& t) {
  return {{"preflight", t.preflight_ms},
          {"prepare", t.prepare_ms},
          {"freeze", t.freeze_ms},
          {"qmp", t.qmp_ms},
          {"paused", t.paused_ms},
          {"thaw", t.thaw_ms},
          {"frozen_window", t.frozen_window_ms},
          {"stream", t.stream_ms}};
}

json VolumesToJson(const std::vector<PointVolume>& volumes) {
  json out = json::array();
  for (const PointVolume& v : volumes) {
    out.push_back({{"name", v.name},
                   {"size", v.size},
                   {"boot", v.boot},
                   {"format", v.format},
                   {"serial", v.serial},
                   {"incremental", v.incremental},
                   {"bitmap", v.bitmap}});
  }
  return out;
}

json FilesystemsToJson(const std::vector<PointFilesystem>& filesystems) {
  json out = json::array();
  for (const PointFilesystem& fs : filesystems) {
    out.push_back({{"mountpoint", fs.mountpoint}, {"type", fs.type}, {"volumes", fs.volumes}});
  }
  return out;
}

json Ext4ToJson(const std::vector<PointExt4>& found) {
  json out = json::array();
  for (const PointExt4& fs : found) {
    out.push_back({{"volume", fs.volume},
                   {"where", fs.where},
                   {"offset", fs.offset},
                   {"kind", fs.kind},
                   {"label", fs.label},
                   {"uuid", fs.uuid},
                   {"needs_recovery", fs.needs_recovery}});
  }
  return out;
}

// The same keys as the catalog's JSON form of a VM, which version 1 recorded as it was.
json VmToJson(const PointVm& vm) {
  json volumes = json::array();
  for (const PointVmVolume& v : vm.volumes) {
    volumes.push_back({{"name", v.name},
                       {"path", v.path},
                       {"format", v.format},
                       {"boot", v.boot},
                       {"serial", v.serial},
                       {"node_name", v.node_name}});
  }
  json nics = json::array();
  for (const PointNic& nic : vm.nics) nics.push_back({{"mac", nic.mac}, {"network", nic.network}});
  json out = {{"id", vm.catalog_id},
              {"uuid", vm.uuid},
              {"name", vm.name},
              {"origin", vm.origin},
              {"state", vm.state},
              {"state_reason", vm.state_reason},
              {"state_changed", vm.state_changed},
              {"vcpus", vm.vcpus},
              {"memory_mib", vm.memory_mib},
              {"firmware", vm.firmware},
              {"guest_agent", vm.guest_agent},
              {"consistency_policy", vm.consistency_policy},
              {"volumes", volumes},
              {"nics", nics},
              {"created", vm.created},
              {"space_limit_bytes", vm.space_limit_bytes ? json(*vm.space_limit_bytes) : json()}};
  if (vm.kernel) {
    out["kernel"] = {{"kernel", vm.kernel->kernel},
                     {"initrd", vm.kernel->initrd},
                     {"append", vm.kernel->append}};
  }
  if (vm.qmp_socket) out["qmp_socket"] = *vm.qmp_socket;
  if (vm.qga_socket) out["qga_socket"] = *vm.qga_socket;
  return out;
}

// --- decoding: one function per object of the layout ---------------------------------------

Status ReadTimings(const JsonReader& in, PointTimings* t) {
  SP_RETURN_IF_ERROR(in.Read("preflight", &t->preflight_ms));
  SP_RETURN_IF_ERROR(in.Read("prepare", &t->prepare_ms));
  SP_RETURN_IF_ERROR(in.Read("freeze", &t->freeze_ms));
  SP_RETURN_IF_ERROR(in.Read("qmp", &t->qmp_ms));
  SP_RETURN_IF_ERROR(in.Read("paused", &t->paused_ms));
  SP_RETURN_IF_ERROR(in.Read("thaw", &t->thaw_ms));
  SP_RETURN_IF_ERROR(in.Read("frozen_window", &t->frozen_window_ms));
  return in.Read("stream", &t->stream_ms);
}

Status ReadBytes(const JsonReader& in, PointBytes* bytes) {
  SP_RETURN_IF_ERROR(in.Read("logical", &bytes->logical));
  return in.Read("read", &bytes->read);
}

// A name that identifies an entry must be there and not be empty, whatever the layout.
Status ReadName(const JsonReader& in, const char* key, std::string* name) {
  if (!in.Has(key)) return in.Error(key, "is missing");
  SP_RETURN_IF_ERROR(in.Read(key, name));
  if (name->empty()) return in.Error(key, "must not be empty");
  return absl::OkStatus();
}

Status ReadVolume(const JsonReader& in, PointVolume* v) {
  SP_RETURN_IF_ERROR(ReadName(in, "name", &v->name));
  SP_RETURN_IF_ERROR(in.Read("size", &v->size));
  SP_RETURN_IF_ERROR(in.Read("boot", &v->boot));
  SP_RETURN_IF_ERROR(in.Read("format", &v->format));
  SP_RETURN_IF_ERROR(in.Read("serial", &v->serial));
  SP_RETURN_IF_ERROR(in.Read("incremental", &v->incremental));
  return in.Read("bitmap", &v->bitmap);
}

Status ReadFilesystem(const JsonReader& in, PointFilesystem* fs) {
  SP_RETURN_IF_ERROR(in.Read("mountpoint", &fs->mountpoint));
  SP_RETURN_IF_ERROR(in.Read("type", &fs->type));
  return in.Read("volumes", &fs->volumes);
}

Status ReadExt4(const JsonReader& in, PointExt4* fs) {
  SP_RETURN_IF_ERROR(in.Read("volume", &fs->volume));
  SP_RETURN_IF_ERROR(in.Read("where", &fs->where));
  SP_RETURN_IF_ERROR(in.Read("offset", &fs->offset));
  SP_RETURN_IF_ERROR(in.Read("kind", &fs->kind));
  SP_RETURN_IF_ERROR(in.Read("label", &fs->label));
  SP_RETURN_IF_ERROR(in.Read("uuid", &fs->uuid));
  return in.Read("needs_recovery", &fs->needs_recovery);
}

Status ReadVmVolume(const JsonReader& in, PointVmVolume* v) {
  SP_RETURN_IF_ERROR(ReadName(in, "name", &v->name));
  SP_RETURN_IF_ERROR(in.Read("path", &v->path));
  SP_RETURN_IF_ERROR(in.Read("format", &v->format));
  SP_RETURN_IF_ERROR(in.Read("boot", &v->boot));
  SP_RETURN_IF_ERROR(in.Read("serial", &v->serial));
  return in.Read("node_name", &v->node_name);
}

Status ReadNic(const JsonReader& in, PointNic* nic) {
  SP_RETURN_IF_ERROR(in.Read("mac", &nic->mac));
  return in.Read("network", &nic->network);
}

Status ReadKernelBoot(const JsonReader& in, PointKernelBoot* boot) {
  SP_RETURN_IF_ERROR(in.Read("kernel", &boot->kernel));
  SP_RETURN_IF_ERROR(in.Read("initrd", &boot->initrd));
  return in.Read("append", &boot->append);
}

// The fields an attached VM or a VM with a limit has; absent from the others in every layout.
Status ReadVmOptionals(const JsonReader& in, PointVm* vm) {
  SP_RETURN_IF_ERROR(in.ReadOptional("kernel", &vm->kernel, ReadKernelBoot));
  for (auto [key, socket] :
       {std::pair{"qmp_socket", &vm->qmp_socket}, std::pair{"qga_socket", &vm->qga_socket}}) {
    if (!in.Has(key)) continue;
    SP_RETURN_IF_ERROR(in.Read(key, &socket->emplace()));
  }
  if (in.Has("space_limit_bytes")) {
    int64_t limit = 0;
    SP_RETURN_IF_ERROR(in.Read("space_limit_bytes", &limit, 0, INT64_MAX));
    vm->space_limit_bytes = limit;
  }
  return absl::OkStatus();
}

Status ReadVm(const JsonReader& in, PointVm* vm) {
  SP_RETURN_IF_ERROR(in.Read("id", &vm->catalog_id, 0, INT64_MAX));
  SP_RETURN_IF_ERROR(in.Read("uuid", &vm->uuid));
  SP_RETURN_IF_ERROR(in.Read("name", &vm->name));
  SP_RETURN_IF_ERROR(in.Read("origin", &vm->origin));
  SP_RETURN_IF_ERROR(in.Read("state", &vm->state));
  SP_RETURN_IF_ERROR(in.Read("state_reason", &vm->state_reason));
  SP_RETURN_IF_ERROR(in.Read("state_changed", &vm->state_changed));
  SP_RETURN_IF_ERROR(in.Read("created", &vm->created));
  SP_RETURN_IF_ERROR(in.Read("vcpus", &vm->vcpus, 1, kMaxVcpus));
  SP_RETURN_IF_ERROR(in.Read("memory_mib", &vm->memory_mib, 1, kMaxMemoryMib));
  SP_RETURN_IF_ERROR(in.Read("firmware", &vm->firmware));
  SP_RETURN_IF_ERROR(in.Read("guest_agent", &vm->guest_agent));
  SP_RETURN_IF_ERROR(in.Read("consistency_policy", &vm->consistency_policy));
  SP_RETURN_IF_ERROR(in.ReadArray("volumes", &vm->volumes, ReadVmVolume));
  SP_RETURN_IF_ERROR(in.ReadArray("nics", &vm->nics, ReadNic));
  return ReadVmOptionals(in, vm);
}

Status ReadImport(const JsonReader& in, PointImport* imported) {
  SP_RETURN_IF_ERROR(in.Read("from", &imported->from));
  SP_RETURN_IF_ERROR(in.Read("original_point_id", &imported->original_point_id));
  SP_RETURN_IF_ERROR(in.Read("original_created", &imported->original_created));
  return in.Read("time", &imported->time);
}

Status ReadConsistency(const JsonReader& in, PointConsistency* consistency) {
  std::string name = PointConsistencyName(*consistency);
  SP_RETURN_IF_ERROR(in.ReadOneOf("consistency", {"application", "crash", "unknown"}, &name));
  *consistency = name == "application" ? PointConsistency::kApplication
                 : name == "crash"     ? PointConsistency::kCrash
                                       : PointConsistency::kUnknown;
  return absl::OkStatus();
}

// How the point was taken: consistency, power state, policy, timings, bytes, notes.
Status ReadHow(const JsonReader& in, PointDescription* d) {
  SP_RETURN_IF_ERROR(ReadConsistency(in, &d->consistency));
  SP_RETURN_IF_ERROR(in.Read("reason", &d->reason));
  SP_RETURN_IF_ERROR(in.ReadOneOf(
      "power_state", {"defined", "running", "stopped-clean", "stopped-dirty", "stopped", "unknown"},
      &d->power_state));
  SP_RETURN_IF_ERROR(
      in.ReadOneOf("policy", {"require-app", "prefer-app", "crash-only", "unknown"}, &d->policy));
  SP_RETURN_IF_ERROR(in.Read("incremental", &d->incremental));
  SP_RETURN_IF_ERROR(in.Read("notes", &d->notes));
  SP_RETURN_IF_ERROR(in.ReadObject("timings_ms", &d->timings, ReadTimings));
  return in.ReadObject("bytes", &d->bytes, ReadBytes);
}

}  // namespace

const char* PointConsistencyName(PointConsistency consistency) {
  switch (consistency) {
    case PointConsistency::kApplication:
      return "application";
    case PointConsistency::kCrash:
      return "crash";
    case PointConsistency::kUnknown:
      break;
  }
  return "unknown";
}

const PointVmVolume* PointVm::FindVolume(absl::string_view volume_name) const {
  for (const PointVmVolume& volume : volumes) {
    if (volume.name == volume_name) return &volume;
  }
  return nullptr;
}

const PointVolume* PointDescription::FindVolume(absl::string_view name) const {
  for (const PointVolume& volume : volumes) {
    if (volume.name == name) return &volume;
  }
  return nullptr;
}

json EncodePointDescription(const PointDescription& d) {
  json out = {{"consistency", PointConsistencyName(d.consistency)},
              {"reason", d.reason},
              {"power_state", d.power_state},
              {"policy", d.policy},
              {"agent_version", d.agent_version},
              {"incremental", d.incremental},
              {"notes", d.notes},
              {"timings_ms", TimingsToJson(d.timings)},
              {"bytes", {{"logical", d.bytes.logical}, {"read", d.bytes.read}}},
              {"volumes", VolumesToJson(d.volumes)},
              {"guest_filesystems", FilesystemsToJson(d.guest_filesystems)},
              {"ext4", Ext4ToJson(d.ext4)}};
  if (d.vm) out["vm"] = VmToJson(*d.vm);
  if (d.imported) {
    out["imported"] = {{"from", d.imported->from},
                       {"original_point_id", d.imported->original_point_id},
                       {"original_created", d.imported->original_created},
                       {"time", d.imported->time}};
  }
  return out;
}

StatusOr<PointDescription> DecodePointDescription(const json& value, absl::string_view where,
                                                  DescriptionLayout layout) {
  JsonReadRules rules;
  rules.where = std::string(where);
  rules.absent_keeps_default = layout == DescriptionLayout::kVersion1Extras;
  JsonReader in(value, "", &rules);
  SP_RETURN_IF_ERROR(in.ExpectObject());
  PointDescription d;
  SP_RETURN_IF_ERROR(ReadHow(in, &d));
  SP_RETURN_IF_ERROR(in.Read("agent_version", &d.agent_version));
  SP_RETURN_IF_ERROR(in.ReadArray("volumes", &d.volumes, ReadVolume));
  SP_RETURN_IF_ERROR(in.ReadArray("guest_filesystems", &d.guest_filesystems, ReadFilesystem));
  SP_RETURN_IF_ERROR(in.ReadArray("ext4", &d.ext4, ReadExt4));
  SP_RETURN_IF_ERROR(in.ReadOptional("vm", &d.vm, ReadVm));
  SP_RETURN_IF_ERROR(in.ReadOptional("imported", &d.imported, ReadImport));
  return d;
}

}  // namespace sp::repo
