// JSON forms of the catalog's records: --json output, the REST API, and the VM configuration
// recorded in every recovery point's manifest.
#pragma once

#include <nlohmann/json.hpp>

#include "catalog/records.h"

namespace sp::catalog {

nlohmann::json VmToJson(const VmRecord& vm);
nlohmann::json EventToJson(const EventRecord& event);

}  // namespace sp::catalog
