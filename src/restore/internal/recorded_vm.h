// What a capture recorded about its VM in a recovery point's extras ("vm": the VM's configuration,
// "volumes": the captured volumes), read as outside data: a manifest may come from an import or a
// damaged repository, so every field is checked for its type and a wrong one is an error naming
// the field, never an exception.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"
#include "platform/status.h"

namespace sp::restore::internal {

struct RecordedVolume {
  std::string name;
  bool boot = false;
  std::string serial;
};

struct RecordedNic {
  std::string mac;
  std::string network = "none";
};

struct RecordedVm {
  std::string name;
  int vcpus = 1;
  int64_t memory_mib = 512;
  std::string firmware = "bios";
  bool agent = true;
  std::string policy = "prefer-app";
  std::string kernel, initrd, append;
  std::vector<RecordedNic> nics;
  std::vector<RecordedVolume> volumes;  // every volume the VM had, captured or not
};

// The VM configuration in `extras` (absent fields take the defaults above). InvalidArgument when
// there is none; DataLoss naming the field when one has the wrong type or an impossible value.
StatusOr<RecordedVm> ReadRecordedVm(const nlohmann::json& extras, absl::string_view point_id);

// The point's record of volume `name` ("volumes", else the VM configuration's), or nullopt.
// DataLoss naming the field when an entry has the wrong type.
StatusOr<std::optional<RecordedVolume>> FindRecordedVolume(const nlohmann::json& extras,
                                                           absl::string_view point_id,
                                                           absl::string_view name);

}  // namespace sp::restore::internal
