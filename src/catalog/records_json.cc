#include "catalog/records_json.h"

#include "platform/clock.h"

namespace sp::catalog {

nlohmann::json VmToJson(const VmRecord& vm) {
  nlohmann::json volumes = nlohmann::json::array();
  for (const auto& volume : vm.volumes) {
    volumes.push_back({{"name", volume.name},
                       {"path", volume.path},
                       {"format", volume.format},
                       {"boot", volume.boot},
                       {"serial", volume.serial},
                       {"node_name", volume.node_name}});
  }
  nlohmann::json nics = nlohmann::json::array();
  for (const auto& nic : vm.nics) nics.push_back({{"mac", nic.mac}, {"network", nic.network}});
  nlohmann::json result = {{"id", vm.id},
                           {"uuid", vm.uuid},
                           {"name", vm.name},
                           {"origin", vm.origin},
                           {"state", PowerStateName(vm.state)},
                           {"state_reason", vm.state_reason},
                           {"state_changed", FormatUnixMicros(vm.state_changed_us)},
                           {"vcpus", vm.vcpus},
                           {"memory_mib", vm.memory_mib},
                           {"firmware", vm.firmware},
                           {"guest_agent", vm.agent},
                           {"consistency_policy", vm.policy},
                           {"volumes", volumes},
                           {"nics", nics},
                           {"created", FormatUnixMicros(vm.created_us)}};
  if (!vm.kernel.empty()) {
    result["kernel"] = {{"kernel", vm.kernel}, {"initrd", vm.initrd}, {"append", vm.append}};
  }
  if (vm.origin == "attached") {
    result["qmp_socket"] = vm.qmp_socket;
    result["qga_socket"] = vm.qga_socket;
  }
  result["space_limit_bytes"] =
      vm.space_limit_bytes ? nlohmann::json(*vm.space_limit_bytes) : nlohmann::json(nullptr);
  return result;
}

nlohmann::json EventToJson(const EventRecord& event) {
  nlohmann::json out = {{"id", event.id},
                        {"time", FormatUnixMicros(event.time_us)},
                        {"vm", event.vm_name},
                        {"kind", event.kind},
                        {"message", event.message}};
  if (!event.actor.empty()) out["actor"] = event.actor;
  if (!event.address.empty()) out["address"] = event.address;
  if (!event.job_id.empty()) out["job"] = event.job_id;
  return out;
}

}  // namespace sp::catalog
