#include "capture/live_cut.h"

#include <unistd.h>

#include <set>
#include <thread>

#include "platform/fault.h"
#include "platform/files.h"
#include "platform/process.h"

namespace sp::capture {
namespace {

using nlohmann::json;

constexpr Millis kQmpTimeout{30'000};

// The string `key` of an object from QEMU, or "" when it is absent or not a string.
std::string StringField(const json& object, const char* key) {
  if (!object.is_object()) return "";
  auto found = object.find(key);
  return found != object.end() && found->is_string() ? found->get<std::string>() : "";
}

StatusOr<json> FindNode(qmp::Session* qmp, const std::string& node) {
  SP_ASSIGN_OR_RETURN(json nodes, qmp->Execute("query-named-block-nodes", {{"flat", true}}));
  for (const json& entry : nodes) {
    if (entry.is_object() && entry.value("node-name", "") == node) return entry;
  }
  return absl::NotFoundError(absl::StrCat(qmp->label(), ": no block node '", node, "'"));
}

}  // namespace

StatusOr<std::string> CheckBitmap(qmp::Session* qmp, const std::string& node,
                                  const std::string& name) {
  SP_ASSIGN_OR_RETURN(json entry, FindNode(qmp, node));
  for (const json& bitmap : entry.value("dirty-bitmaps", json::array())) {
    if (!bitmap.is_object() || bitmap.value("name", "") != name) continue;
    if (bitmap.value("inconsistent", false)) {
      return std::string("its dirty bitmap is inconsistent (QEMU was not shut down cleanly)");
    }
    if (!bitmap.value("persistent", false))
      return std::string("its dirty bitmap is not persistent");
    if (bitmap.value("busy", false)) return std::string("its dirty bitmap is busy");
    if (!bitmap.value("recording", false)) {
      return std::string("its dirty bitmap stopped recording (an earlier capture was interrupted)");
    }
    return std::string();
  }
  return std::string("the dirty bitmap of the previous point is gone (QEMU restarted?)");
}

StatusOr<std::string> CurrentDrive(qmp::Session* qmp, const std::string& drive_path) {
  SP_ASSIGN_OR_RETURN(
      json drive,
      qmp->Execute("qom-get", {{"path", drive_path}, {"property", "drive"}}, kQmpTimeout));
  if (!drive.is_string()) {
    return absl::InternalError(
        absl::StrCat(qmp->label(), ": qom-get of ", drive_path, " drive returned ", drive.dump()));
  }
  return drive.get<std::string>();
}

namespace {

bool IsOurs(const std::string& name, const char* kind) { return name.rfind(kind, 0) == 0; }

StatusOr<std::vector<std::string>> NamesWith(qmp::Session* qmp, const std::string& query,
                                             const char* field, const char* prefix) {
  json arguments = query == "query-named-block-nodes" ? json{{"flat", true}} : json(nullptr);
  SP_ASSIGN_OR_RETURN(json entries, qmp->Execute(query, arguments, kQmpTimeout));
  std::vector<std::string> names;
  for (const json& entry : entries) {
    std::string name = entry.is_object() ? StringField(entry, field) : "";
    if (IsOurs(name, prefix)) names.push_back(name);
  }
  return names;
}

// Block jobs are not part of a capture today; one left by an older or foreign stillpoint run on
// our nodes would pin them.
StatusOr<bool> CancelJobs(qmp::Session* qmp) {
  SP_ASSIGN_OR_RETURN(std::vector<std::string> jobs,
                      NamesWith(qmp, "query-block-jobs", "device", "sp-"));
  for (const std::string& job : jobs) {
    SP_RETURN_IF_ERROR(
        qmp->Execute("block-job-cancel", {{"device", job}, {"force", true}}, kQmpTimeout).status());
  }
  Deadline deadline = Deadline::In(kQmpTimeout);
  while (!jobs.empty()) {
    SP_ASSIGN_OR_RETURN(std::vector<std::string> left,
                        NamesWith(qmp, "query-block-jobs", "device", "sp-"));
    if (left.empty()) break;
    if (deadline.Expired()) {
      return absl::DeadlineExceededError(absl::StrCat(qmp->label(), ": block job ", left[0],
                                                      " did not end after block-job-cancel"));
    }
    std::this_thread::sleep_for(Millis(20));
  }
  return !jobs.empty();
}

StatusOr<bool> DeleteExports(qmp::Session* qmp) {
  SP_ASSIGN_OR_RETURN(std::vector<std::string> exports,
                      NamesWith(qmp, "query-block-exports", "id", "sp-"));
  for (const std::string& id : exports) {
    // hard: a killed capture's NBD connection may not be closed on QEMU's side yet.
    SP_RETURN_IF_ERROR(
        qmp->Execute("block-export-del", {{"id", id}, {"mode", "hard"}}, kQmpTimeout).status());
    SP_RETURN_IF_ERROR(qmp->WaitForEvent("BLOCK_EXPORT_DELETED", Deadline::In(kQmpTimeout),
                                         [&](const qmp::Event& event) {
                                           return StringField(event.data, "id") == id;
                                         })
                           .status());
  }
  return !exports.empty();
}

Status StopNbdServer(qmp::Session* qmp) {
  auto stopped = qmp->Execute("nbd-server-stop", nullptr, kQmpTimeout);
  // Not running is the state we want; QEMU 7.2 has no query for it.
  if (!stopped.ok() && stopped.status().message().find("not running") == absl::string_view::npos) {
    return stopped.status();
  }
  return absl::OkStatus();
}

StatusOr<bool> DeleteNodes(qmp::Session* qmp, const char* prefix) {
  SP_ASSIGN_OR_RETURN(std::vector<std::string> nodes,
                      NamesWith(qmp, "query-named-block-nodes", "node-name", prefix));
  for (const std::string& node : nodes) {
    SP_RETURN_IF_ERROR(qmp->Execute("blockdev-del", {{"node-name", node}}, kQmpTimeout).status());
  }
  return !nodes.empty();
}

// Moves every device whose drive is one of our filters back to its format node, reading each
// drive first: the move is made only when QEMU's graph says it is a real change.
StatusOr<bool> SwitchBack(qmp::Session* qmp, const std::vector<DeviceDrive>& devices) {
  bool found = false;
  std::set<std::string> done;
  for (const DeviceDrive& device : devices) {
    if (!done.insert(device.drive_path).second) continue;
    SP_ASSIGN_OR_RETURN(std::string current, CurrentDrive(qmp, device.drive_path));
    if (!IsOurs(current, "sp-c") || current == device.format_node) continue;
    found = true;
    SP_RETURN_IF_ERROR(
        qmp->Execute(
               "qom-set",
               {{"path", device.drive_path}, {"property", "drive"}, {"value", device.format_node}},
               kQmpTimeout)
            .status());
  }
  return found;
}

}  // namespace

StatusOr<bool> RemoveCaptureNodes(qmp::Session* qmp, const std::vector<DeviceDrive>& devices,
                                  bool stop_server, absl::string_view stage) {
  bool found = false;
  auto step = [&](StatusOr<bool> result, const char* what, const char* fault) -> Status {
    if (!result.ok()) return Annotate(result.status(), what);
    found = found || *result;
    FaultPoint(absl::StrCat(stage, fault));
    return absl::OkStatus();
  };
  SP_RETURN_IF_ERROR(step(CancelJobs(qmp), "cancelling block jobs", ".jobs-cancelled"));
  SP_ASSIGN_OR_RETURN(bool exports, DeleteExports(qmp));
  found = found || exports;
  FaultPoint(absl::StrCat(stage, ".exports-deleted"));
  if (stop_server || exports) {
    SP_RETURN_IF_ERROR(Annotate(StopNbdServer(qmp), "stopping the NBD server"));
    FaultPoint(absl::StrCat(stage, ".server-stopped"));
  }
  SP_RETURN_IF_ERROR(
      step(DeleteNodes(qmp, "sp-s"), "removing snapshot-access nodes", ".access-deleted"));
  SP_RETURN_IF_ERROR(
      step(SwitchBack(qmp, devices), "moving drives back to their disks", ".switched-back"));
  SP_RETURN_IF_ERROR(
      step(DeleteNodes(qmp, "sp-c"), "removing copy-before-write filters", ".filters-deleted"));
  SP_RETURN_IF_ERROR(step(DeleteNodes(qmp, "sp-t"), "removing scratch nodes", ".nodes-deleted"));
  return found;
}

std::vector<DeviceDrive> ReadDevicesNote(const std::string& scratch_dir) {
  std::vector<DeviceDrive> devices;
  auto text = ReadFile(absl::StrCat(scratch_dir, "/", kDevicesNote));
  if (!text.ok()) return devices;
  json note = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (!note.is_array()) return devices;
  for (const json& entry : note) {
    DeviceDrive device{StringField(entry, "drive_path"), StringField(entry, "format_node")};
    if (!device.drive_path.empty() && !device.format_node.empty()) devices.push_back(device);
  }
  return devices;
}

StatusOr<std::vector<std::string>> OwnBitmaps(qmp::Session* qmp, const std::string& node) {
  SP_ASSIGN_OR_RETURN(json entry, FindNode(qmp, node));
  std::vector<std::string> names;
  for (const json& bitmap : entry.value("dirty-bitmaps", json::array())) {
    std::string name = bitmap.is_object() ? bitmap.value("name", "") : "";
    if (name.rfind(kBitmapPrefix, 0) == 0) names.push_back(name);
  }
  return names;
}

LiveCut::LiveCut(qmp::Session* qmp, std::string scratch_dir, std::string nbd_socket)
    : qmp_(qmp), scratch_dir_(std::move(scratch_dir)), nbd_socket_(std::move(nbd_socket)) {}

LiveCut::~LiveCut() { (void)Teardown(false); }

std::string LiveCut::Node(const char* kind, size_t index) const {
  return absl::StrCat("sp-", kind, index);
}

Status LiveCut::PrepareVolume(size_t i) {
  const VolumeCut& volume = volumes_[i];
  // The cut switches the drive from the format node to the filter: anything else there now
  // (a filter left by another tool, a reconfigured VM) would make that switch wrong.
  SP_ASSIGN_OR_RETURN(std::string current, CurrentDrive(qmp_, volume.drive_path));
  if (current != volume.format_node) {
    return absl::FailedPreconditionError(absl::StrCat(
        qmp_->label(), ": the drive of volume '", volume.volume, "' is on node '", current,
        "', not on its disk's format node '", volume.format_node, "'; not touching it"));
  }
  std::string scratch = absl::StrCat(scratch_dir_, "/", i, ".qcow2");
  SP_RETURN_IF_ERROR(
      RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", scratch, absl::StrCat(volume.size)},
                   Deadline::In(kQmpTimeout))
          .status());
  stages_[i].scratch_file = true;
  touched_qemu_ = true;
  SP_RETURN_IF_ERROR(qmp_->Execute("blockdev-add",
                                   {{"driver", "qcow2"},
                                    {"node-name", Node("t", i)},
                                    {"file", {{"driver", "file"}, {"filename", scratch}}}},
                                   kQmpTimeout)
                         .status());
  FaultPoint("prepare.scratch-added");
  return qmp_
      ->Execute("blockdev-add",
                {{"driver", "copy-before-write"},
                 {"node-name", Node("c", i)},
                 {"file", volume.format_node},
                 {"target", Node("t", i)},
                 {"on-cbw-error", "break-snapshot"}},
                kQmpTimeout)
      .status();
}

Status LiveCut::Prepare(std::vector<VolumeCut> volumes) {
  volumes_ = std::move(volumes);
  stages_.assign(volumes_.size(), Stage{});
  SP_RETURN_IF_ERROR(MakeDirs(scratch_dir_, 0700));
  json note = json::array();
  for (const VolumeCut& volume : volumes_) {
    note.push_back({{"drive_path", volume.drive_path}, {"format_node", volume.format_node}});
  }
  SP_RETURN_IF_ERROR(WriteFileAtomic(absl::StrCat(scratch_dir_, "/", kDevicesNote), note.dump()));
  for (size_t i = 0; i < volumes_.size(); ++i) SP_RETURN_IF_ERROR(PrepareVolume(i));
  FaultPoint("prepare.filters-added");
  return absl::OkStatus();
}

// The transaction (bitmaps) and the drive switches: the point in time.
Status LiveCut::Switch() {
  json actions = json::array();
  for (const VolumeCut& volume : volumes_) {
    if (!volume.prev_bitmap.empty()) {
      actions.push_back({{"type", "block-dirty-bitmap-disable"},
                         {"data", {{"node", volume.format_node}, {"name", volume.prev_bitmap}}}});
    }
    if (!volume.new_bitmap.empty()) {
      actions.push_back(
          {{"type", "block-dirty-bitmap-add"},
           {"data",
            {{"node", volume.format_node}, {"name", volume.new_bitmap}, {"persistent", true}}}});
    }
  }
  if (!actions.empty()) {
    SP_RETURN_IF_ERROR(qmp_->Execute("transaction", {{"actions", actions}}, kQmpTimeout).status());
  }
  for (size_t i = 0; i < volumes_.size(); ++i) {
    stages_[i].new_bitmap = !volumes_[i].new_bitmap.empty();
    stages_[i].prev_disabled = !volumes_[i].prev_bitmap.empty();
  }
  FaultPoint("cut.transaction");
  for (size_t i = 0; i < volumes_.size(); ++i) {
    SP_RETURN_IF_ERROR(
        qmp_->Execute(
                "qom-set",
                {{"path", volumes_[i].drive_path}, {"property", "drive"}, {"value", Node("c", i)}},
                kQmpTimeout)
            .status());
    if (i == 0) FaultPoint("cut.switched-first");
  }
  FaultPoint("cut.switched");
  return absl::OkStatus();
}

StatusOr<CutTimings> LiveCut::Cut(bool pause_vcpus) {
  CutTimings timings;
  auto start = std::chrono::steady_clock::now();
  bool was_running = false;
  if (pause_vcpus) {
    SP_ASSIGN_OR_RETURN(json status, qmp_->Execute("query-status", nullptr, kQmpTimeout));
    was_running = status.is_object() && status.value("running", false);
  }
  std::string marker = absl::StrCat(scratch_dir_, "/", vm::kPausedMarker);
  if (was_running) {
    SP_RETURN_IF_ERROR(WriteFileAtomic(marker, "vCPUs paused by a capture\n"));
    SP_RETURN_IF_ERROR(qmp_->Execute("stop", nullptr, kQmpTimeout).status());
    FaultPoint("cut.paused");
  }
  auto paused = std::chrono::steady_clock::now();
  // Resume the guest on every path out of here.
  auto resume = absl::MakeCleanup([&] {
    if (was_running && qmp_->Execute("cont", nullptr, kQmpTimeout).ok()) ::unlink(marker.c_str());
  });
  SP_RETURN_IF_ERROR(Switch());
  std::move(resume).Cancel();
  if (was_running) {
    SP_RETURN_IF_ERROR(qmp_->Execute("cont", nullptr, kQmpTimeout).status());
    ::unlink(marker.c_str());
  }
  timings.paused_ms = was_running ? MillisSince(paused) : 0;
  timings.qmp_ms = MillisSince(start);
  return timings;
}

Status LiveCut::Export() {
  for (size_t i = 0; i < volumes_.size(); ++i) {
    SP_RETURN_IF_ERROR(qmp_->Execute("blockdev-add",
                                     {{"driver", "snapshot-access"},
                                      {"node-name", Node("s", i)},
                                      {"file", Node("c", i)}},
                                     kQmpTimeout)
                           .status());
  }
  FaultPoint("export.access-added");
  ::unlink(nbd_socket_.c_str());
  server_started_ = true;  // from here on the teardown stops it, even when starting failed
  SP_RETURN_IF_ERROR(
      qmp_->Execute("nbd-server-start",
                    {{"addr", {{"type", "unix"}, {"data", {{"path", nbd_socket_}}}}}}, kQmpTimeout)
          .status());
  FaultPoint("export.server-started");
  for (size_t i = 0; i < volumes_.size(); ++i) {
    json arguments = {{"type", "nbd"},
                      {"id", Node("e", i)},
                      {"node-name", Node("s", i)},
                      {"name", volumes_[i].volume},
                      {"writable", false}};
    if (!volumes_[i].prev_bitmap.empty()) {
      arguments["bitmaps"] = {
          {{"node", volumes_[i].format_node}, {"name", volumes_[i].prev_bitmap}}};
    }
    SP_RETURN_IF_ERROR(qmp_->Execute("block-export-add", arguments, kQmpTimeout).status());
  }
  FaultPoint("export.exported");
  return absl::OkStatus();
}

Status LiveCut::SettleBitmaps(size_t i, bool success) {
  Stage& stage = stages_[i];
  const VolumeCut& volume = volumes_[i];
  const std::string& node = volume.format_node;
  Status result = absl::OkStatus();
  if (success) {
    if (stage.prev_disabled) {
      result = qmp_->Execute("block-dirty-bitmap-remove",
                             {{"node", node}, {"name", volume.prev_bitmap}}, kQmpTimeout)
                   .status();
    }
  } else if (stage.new_bitmap) {
    json actions = json::array();
    if (stage.prev_disabled) {
      // Writes since the cut are in the new bitmap: fold them back into the previous one.
      actions.push_back({{"type", "block-dirty-bitmap-merge"},
                         {"data",
                          {{"node", node},
                           {"target", volume.prev_bitmap},
                           {"bitmaps", json::array({volume.new_bitmap})}}}});
      actions.push_back({{"type", "block-dirty-bitmap-enable"},
                         {"data", {{"node", node}, {"name", volume.prev_bitmap}}}});
    }
    actions.push_back({{"type", "block-dirty-bitmap-remove"},
                       {"data", {{"node", node}, {"name", volume.new_bitmap}}}});
    result = qmp_->Execute("transaction", {{"actions", actions}}, kQmpTimeout).status();
  } else if (stage.prev_disabled) {
    result = qmp_->Execute("block-dirty-bitmap-enable",
                           {{"node", node}, {"name", volume.prev_bitmap}}, kQmpTimeout)
                 .status();
  }
  stage.new_bitmap = false;
  stage.prev_disabled = false;
  return result;
}

Status LiveCut::Teardown(bool success) {
  if (torn_down_) return absl::OkStatus();
  torn_down_ = true;
  Status first = absl::OkStatus();
  auto note = [&](const Status& status) {
    if (first.ok() && !status.ok()) first = status;
  };
  // A guest left paused (the cut's `cont` failed) is the first thing to put right.
  note(vm::ResumeIfPausedByCapture(qmp_, scratch_dir_).status());
  if (touched_qemu_) {
    std::vector<DeviceDrive> devices;
    for (const VolumeCut& volume : volumes_) {
      devices.push_back({volume.drive_path, volume.format_node});
    }
    note(RemoveCaptureNodes(qmp_, devices, server_started_, "teardown").status());
  }
  if (server_started_) ::unlink(nbd_socket_.c_str());
  for (size_t i = 0; i < volumes_.size(); ++i) {
    if (stages_[i].scratch_file) ::unlink(absl::StrCat(scratch_dir_, "/", i, ".qcow2").c_str());
  }
  // Bitmaps only once the nodes are gone (an export may hold the previous one busy).
  if (first.ok()) {
    for (size_t i = 0; i < volumes_.size(); ++i) note(SettleBitmaps(i, success));
  }
  if (first.ok()) ::unlink(absl::StrCat(scratch_dir_, "/", kDevicesNote).c_str());
  ::rmdir(scratch_dir_.c_str());
  return Annotate(first, "tearing down the capture in QEMU");
}

}  // namespace sp::capture
