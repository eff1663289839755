#include "restore/internal/recorded_vm.h"

#include <limits>

namespace sp::restore::internal {
namespace {

using nlohmann::json;

// Reads fields of one JSON object of the recorded configuration; `where` names it in errors.
class FieldReader {
 public:
  FieldReader(const json& object, std::string where) : object_(object), where_(std::move(where)) {}

  Status Read(const char* key, std::string* out) const {
    return Typed(key, &json::is_string, "a string", out);
  }
  Status Read(const char* key, bool* out) const {
    return Typed(key, &json::is_boolean, "true or false", out);
  }
  Status Read(const char* key, int64_t* out, int64_t min, int64_t max) const {
    SP_RETURN_IF_ERROR(Typed(key, &json::is_number_integer, "an integer", out));
    if (*out < min || *out > max) return Bad(key, absl::StrCat("out of range (", *out, ")"));
    return absl::OkStatus();
  }
  // The entries of array `key` (empty when absent).
  StatusOr<std::vector<json>> Array(const char* key) const {
    std::vector<json> entries;
    SP_RETURN_IF_ERROR(Typed(key, &json::is_array, "an array", &entries));
    return entries;
  }
  // Object `key` (empty when absent).
  StatusOr<json> Object(const char* key) const {
    json object = json::object();
    SP_RETURN_IF_ERROR(Typed(key, &json::is_object, "an object", &object));
    return object;
  }
  Status Bad(const char* key, absl::string_view what) const {
    return absl::DataLossError(absl::StrCat(where_, ": '", key, "' ", what));
  }

 private:
  template <typename T>
  Status Typed(const char* key, bool (json::*is)() const noexcept, const char* type,
               T* out) const {
    auto it = object_.find(key);
    if (it == object_.end() || it->is_null()) return absl::OkStatus();  // keep the default
    if (!((*it).*is)()) return Bad(key, absl::StrCat("must be ", type, ", not ", it->type_name()));
    *out = it->get<T>();
    return absl::OkStatus();
  }

  const json& object_;
  std::string where_;
};

std::string Where(absl::string_view point_id, absl::string_view part) {
  return absl::StrCat("recovery point ", point_id, ": recorded ", part);
}

StatusOr<RecordedVolume> ReadVolume(const json& entry, const std::string& where) {
  if (!entry.is_object()) return absl::DataLossError(where + ": an entry is not an object");
  FieldReader fields(entry, where);
  RecordedVolume volume;
  SP_RETURN_IF_ERROR(fields.Read("name", &volume.name));
  SP_RETURN_IF_ERROR(fields.Read("boot", &volume.boot));
  SP_RETURN_IF_ERROR(fields.Read("serial", &volume.serial));
  return volume;
}

StatusOr<std::vector<RecordedVolume>> ReadVolumes(const FieldReader& parent,
                                                  const std::string& where) {
  SP_ASSIGN_OR_RETURN(std::vector<json> entries, parent.Array("volumes"));
  std::vector<RecordedVolume> volumes;
  for (const json& entry : entries) {
    SP_ASSIGN_OR_RETURN(RecordedVolume volume, ReadVolume(entry, where));
    volumes.push_back(std::move(volume));
  }
  return volumes;
}

StatusOr<std::vector<RecordedNic>> ReadNics(const FieldReader& config, const std::string& where) {
  SP_ASSIGN_OR_RETURN(std::vector<json> entries, config.Array("nics"));
  std::vector<RecordedNic> nics;
  for (const json& entry : entries) {
    if (!entry.is_object()) return absl::DataLossError(where + ": a NIC is not an object");
    FieldReader fields(entry, where);
    RecordedNic nic;
    SP_RETURN_IF_ERROR(fields.Read("mac", &nic.mac));
    SP_RETURN_IF_ERROR(fields.Read("network", &nic.network));
    nics.push_back(std::move(nic));
  }
  return nics;
}

Status ReadKernel(const FieldReader& config, const std::string& where, RecordedVm* vm) {
  SP_ASSIGN_OR_RETURN(json kernel, config.Object("kernel"));
  FieldReader fields(kernel, where + " kernel");
  SP_RETURN_IF_ERROR(fields.Read("kernel", &vm->kernel));
  SP_RETURN_IF_ERROR(fields.Read("initrd", &vm->initrd));
  return fields.Read("append", &vm->append);
}

}  // namespace

StatusOr<RecordedVm> ReadRecordedVm(const json& extras, absl::string_view point_id) {
  auto config = extras.is_object() ? extras.find("vm") : extras.end();
  if (!extras.is_object() || config == extras.end() || !config->is_object()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "recovery point ", point_id, " records no VM configuration; cannot make a VM of it"));
  }
  std::string where = Where(point_id, "VM configuration");
  FieldReader fields(*config, where);
  RecordedVm vm;
  int64_t vcpus = vm.vcpus;
  SP_RETURN_IF_ERROR(fields.Read("name", &vm.name));
  SP_RETURN_IF_ERROR(fields.Read("vcpus", &vcpus, 1, 1024));
  vm.vcpus = static_cast<int>(vcpus);
  SP_RETURN_IF_ERROR(fields.Read("memory_mib", &vm.memory_mib, 1, int64_t{1} << 30));
  SP_RETURN_IF_ERROR(fields.Read("firmware", &vm.firmware));
  SP_RETURN_IF_ERROR(fields.Read("guest_agent", &vm.agent));
  SP_RETURN_IF_ERROR(fields.Read("consistency_policy", &vm.policy));
  SP_RETURN_IF_ERROR(ReadKernel(fields, where, &vm));
  SP_ASSIGN_OR_RETURN(vm.nics, ReadNics(fields, where + " NIC"));
  SP_ASSIGN_OR_RETURN(vm.volumes, ReadVolumes(fields, where + " volume"));
  return vm;
}

StatusOr<std::optional<RecordedVolume>> FindRecordedVolume(const json& extras,
                                                           absl::string_view point_id,
                                                           absl::string_view name) {
  if (!extras.is_object()) return std::optional<RecordedVolume>();
  FieldReader fields(extras, Where(point_id, "volumes"));
  SP_ASSIGN_OR_RETURN(std::vector<RecordedVolume> captured,
                      ReadVolumes(fields, Where(point_id, "volume")));
  for (const RecordedVolume& volume : captured) {
    if (volume.name == name) return std::optional<RecordedVolume>(volume);
  }
  auto vm = ReadRecordedVm(extras, point_id);
  if (!vm.ok()) {
    if (absl::IsInvalidArgument(vm.status())) return std::optional<RecordedVolume>();
    return vm.status();
  }
  for (const RecordedVolume& volume : vm->volumes) {
    if (volume.name == name) return std::optional<RecordedVolume>(volume);
  }
  return std::optional<RecordedVolume>();
}

}  // namespace sp::restore::internal
