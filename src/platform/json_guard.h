// nlohmann::json throws on type mismatches (e.g. a string where a number was expected). Input from
// QEMU, the guest agent or a file is outside data: interpret it inside GuardJson, which turns such
// an exception into an error status instead of letting it cross a module boundary.
#pragma once

#include <nlohmann/json.hpp>

#include "platform/status.h"

namespace sp {

// Runs `interpret` (returning Status or StatusOr<T>); a json exception becomes
// Internal("<context>: unexpected JSON: <what>").
template <typename F>
auto GuardJson(absl::string_view context, F&& interpret) -> decltype(interpret()) {
  try {
    return interpret();
  } catch (const nlohmann::json::exception& error) {
    return absl::InternalError(absl::StrCat(context, ": unexpected JSON: ", error.what()));
  }
}

}  // namespace sp
