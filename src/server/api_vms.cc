// /api/v1/vms: list, show, define, start, stop (a job: the guest may take a while), kill,
// remove, space limit.
#include "app/app.h"
#include "server/api.h"
#include "server/fields.h"

namespace sp::server {
namespace {

using catalog::VmRecord;

StatusOr<catalog::VolumeRecord> ReadVolume(const nlohmann::json& item, size_t index) {
  std::string where = absl::StrCat("volumes[", index, "]");
  if (!item.is_object()) return FieldError(where, "must be an object");
  BodyFields fields(item);
  catalog::VolumeRecord volume;
  SP_ASSIGN_OR_RETURN(auto name, fields.String("name", true, 64));
  SP_ASSIGN_OR_RETURN(auto path, fields.String("path", true, 4096));
  SP_ASSIGN_OR_RETURN(auto format, fields.Choice("format", {"qcow2", "raw"}));
  SP_ASSIGN_OR_RETURN(auto serial, fields.String("serial", false, 20));
  SP_ASSIGN_OR_RETURN(auto boot, fields.Bool("boot"));
  Status others = fields.NoOthers();
  if (!others.ok()) return FieldError(absl::StrCat(where, ".", FieldOf(others)), "unknown field");
  volume.name = *name;
  volume.path = *path;
  volume.format = format.value_or("qcow2");
  volume.serial = serial.value_or("");
  volume.boot = boot.value_or(false);
  return volume;
}

StatusOr<VmRecord> ReadDefinition(const nlohmann::json& body) {
  BodyFields fields(body);
  VmRecord draft;
  SP_ASSIGN_OR_RETURN(auto name, fields.String("name", true, 64));
  SP_ASSIGN_OR_RETURN(auto vcpus, fields.Int("vcpus", 1, 256));
  SP_ASSIGN_OR_RETURN(auto memory, fields.Int("memory_mib", 16, 4 << 20));
  SP_ASSIGN_OR_RETURN(auto firmware, fields.Choice("firmware", {"bios", "uefi"}));
  SP_ASSIGN_OR_RETURN(auto kernel, fields.String("kernel", false, 4096));
  SP_ASSIGN_OR_RETURN(auto initrd, fields.String("initrd", false, 4096));
  SP_ASSIGN_OR_RETURN(auto append, fields.String("append", false, 4096));
  SP_ASSIGN_OR_RETURN(auto agent, fields.Bool("agent"));
  SP_ASSIGN_OR_RETURN(auto policy,
                      fields.Choice("policy", {"require-app", "prefer-app", "crash-only"}));
  SP_ASSIGN_OR_RETURN(auto networks, fields.Strings("networks", 8));
  auto volumes = body.find("volumes");
  fields.String("volumes", false).IgnoreError();  // marks it seen; checked below
  SP_RETURN_IF_ERROR(fields.NoOthers());
  if (volumes == body.end() || !volumes->is_array() || volumes->empty() || volumes->size() > 16) {
    return FieldError("volumes", "must be an array of 1 to 16 volumes");
  }
  for (size_t i = 0; i < volumes->size(); ++i) {
    SP_ASSIGN_OR_RETURN(catalog::VolumeRecord volume, ReadVolume((*volumes)[i], i));
    draft.volumes.push_back(std::move(volume));
  }
  draft.name = *name;
  draft.vcpus = static_cast<int>(vcpus.value_or(1));
  draft.memory_mib = memory.value_or(512);
  draft.firmware = firmware.value_or("bios");
  draft.kernel = kernel.value_or("");
  draft.initrd = initrd.value_or("");
  draft.append = append.value_or("");
  draft.agent = agent.value_or(true);
  draft.policy = policy.value_or("prefer-app");
  for (const std::string& network : networks.value_or(std::vector<std::string>{"user"})) {
    if (network != "user" && network != "none") {
      return FieldError("networks", "each must be 'user' or 'none'");
    }
    if (network == "user") draft.nics.push_back({"", "user"});
  }
  return draft;
}

StatusOr<nlohmann::json> ShowVm(AppPool* apps, const std::string& name) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps->Acquire());
  SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(name));
  SP_ASSIGN_OR_RETURN(auto events, app->ListEvents(vm, 10));
  return app::VmDetailsJson(vm, app->SpaceUsage(vm), events);
}

StatusOr<nlohmann::json> ListVms(AppPool* apps) {
  SP_ASSIGN_OR_RETURN(AppPool::Lease app, apps->Acquire());
  SP_ASSIGN_OR_RETURN(auto vms, app->ListVms());
  nlohmann::json out = nlohmann::json::array();
  for (const VmRecord& vm : vms) out.push_back(catalog::VmToJson(vm));
  return nlohmann::json{{"vms", out}};
}

// Runs `action` on the named VM, then answers with the VM as it is afterwards.
HttpResponse VmAction(ApiContext* api, RouteContext& context,
                      const std::function<Status(app::App*, const std::string&)>& action) {
  auto result = [&]() -> StatusOr<nlohmann::json> {
    SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
    const std::string& name = context.params.at("vm");
    SP_RETURN_IF_ERROR(action(app.get(), name));
    SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(name));
    return catalog::VmToJson(vm);
  }();
  return api::Reply(result);
}

}  // namespace

void AddVmRoutes(Router* router, ApiContext* api) {
  const std::string base = std::string(kApiPrefix) + "/vms";
  router->Add({"GET", base, Role::kViewer, "List VMs",
               [api](RouteContext&) { return api::Reply(ListVms(api->apps)); }});
  router->Add(
      {"GET", base + "/{vm}", Role::kViewer, "Show a VM with its usage and recent events",
       [api](RouteContext& c) { return api::Reply(ShowVm(api->apps, c.params.at("vm"))); }});
  router->Add(
      {"POST", base, Role::kAdmin, "Define a VM that stillpoint launches", [api](RouteContext& c) {
         auto result = [&]() -> StatusOr<nlohmann::json> {
           SP_ASSIGN_OR_RETURN(VmRecord draft, ReadDefinition(c.body));
           SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
           SP_ASSIGN_OR_RETURN(VmRecord vm, app->DefineVm(std::move(draft)));
           return catalog::VmToJson(vm);
         }();
         return api::Reply(result, 201);
       }});
  router->Add({"DELETE", base + "/{vm}", Role::kAdmin, "Forget a VM (its images stay)",
               [api](RouteContext& c) {
                 auto result = [&]() -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
                   SP_RETURN_IF_ERROR(app->RemoveVm(c.params.at("vm")));
                   return nlohmann::json{{"removed", c.params.at("vm")}};
                 }();
                 return api::Reply(result);
               }});
  router->Add({"POST", base + "/{vm}/start", Role::kOperator, "Start a VM", [api](RouteContext& c) {
                 return VmAction(api, c, [](app::App* app, const std::string& name) {
                   return app->StartVm(name);
                 });
               }});
  router->Add({"POST", base + "/{vm}/kill", Role::kOperator, "Kill a VM's QEMU at once",
               [api](RouteContext& c) {
                 return VmAction(api, c, [](app::App* app, const std::string& name) {
                   return app->KillVm(name);
                 });
               }});
  router->Add({"POST", base + "/{vm}/stop", Role::kOperator,
               "Shut a VM down through its guest (a job)", [api](RouteContext& c) {
                 BodyFields fields(c.body);
                 auto timeout = fields.Int("timeout_s", 1, 3600);
                 if (!timeout.ok()) return ErrorResponse(timeout.status());
                 Status others = fields.NoOthers();
                 if (!others.ok()) return ErrorResponse(others);
                 std::string name = c.params.at("vm");
                 // An unknown VM is a 404 now, not a job that fails later.
                 Status known = [&]() -> Status {
                   SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
                   return app->GetVm(name).status();
                 }();
                 if (!known.ok()) return ErrorResponse(known);
                 Millis wait(timeout->value_or(120) * 1000);
                 JobRequest request{"vm.stop",
                                    name,
                                    api::Actor(c.principal),
                                    {{"timeout_s", wait.count() / 1000}},
                                    false,
                                    [api, name, wait](JobContext&) -> StatusOr<nlohmann::json> {
                                      SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
                                      SP_RETURN_IF_ERROR(app->StopVm(name, wait));
                                      SP_ASSIGN_OR_RETURN(VmRecord vm, app->GetVm(name));
                                      return catalog::VmToJson(vm);
                                    }};
                 return api::Accepted(api->jobs->Submit(std::move(request)));
               }});
  router->Add({"PUT", base + "/{vm}/limit", Role::kOperator,
               "Set or lift the space the VM's recovery points may use", [api](RouteContext& c) {
                 BodyFields fields(c.body);
                 auto limit = fields.Int("limit_bytes", 0, INT64_MAX);
                 if (!limit.ok()) return ErrorResponse(limit.status());
                 Status others = fields.NoOthers();
                 if (!others.ok()) return ErrorResponse(others);
                 auto result = [&]() -> StatusOr<nlohmann::json> {
                   SP_ASSIGN_OR_RETURN(AppPool::Lease app, api->apps->Acquire());
                   SP_ASSIGN_OR_RETURN(app::SpaceLimitResult set,
                                       app->SetSpaceLimit({}, c.params.at("vm"), *limit));
                   return app::SpaceLimitJson(set.vm, set.limit_bytes, set.used_bytes);
                 }();
                 return api::Reply(result);
               }});
}

}  // namespace sp::server
