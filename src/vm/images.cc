#include "vm/images.h"

#include <nlohmann/json.hpp>

#include "platform/files.h"
#include "platform/process.h"

namespace sp::vm {

StatusOr<ImageInfo> InspectImage(const std::string& path) {
  if (!PathExists(path)) {
    return absl::NotFoundError(absl::StrCat("image ", path, " does not exist"));
  }
  if (!IsRegularFile(path)) {
    return absl::InvalidArgumentError(absl::StrCat("image ", path, " is not a regular file"));
  }
  SP_ASSIGN_OR_RETURN(CommandResult result, RunCommand({"qemu-img", "info", "--output=json", path},
                                                       Deadline::In(Millis(30'000))));
  if (!result.status.success()) {
    if (result.output.find("lock") != std::string::npos) {
      return absl::FailedPreconditionError(absl::StrCat(
          "image ", path, " is in use by another process (it holds the image's write lock, ",
          "e.g. a running QEMU); stop that VM first"));
    }
    return absl::InvalidArgumentError(
        absl::StrCat("cannot read image ", path, ": ", result.output));
  }
  nlohmann::json info = nlohmann::json::parse(result.output, nullptr, false);
  if (info.is_discarded() || !info.contains("format")) {
    return absl::InternalError(absl::StrCat("qemu-img info gave no format for ", path));
  }
  return ImageInfo{info["format"].get<std::string>(), info.value("virtual-size", uint64_t{0})};
}

}  // namespace sp::vm
