#include "capture/live_cut.h"

#include <unistd.h>

#include "platform/files.h"
#include "platform/process.h"

namespace sp::capture {
namespace {

using nlohmann::json;

constexpr Millis kQmpTimeout{30'000};

StatusOr<json> FindNode(qmp::Client* qmp, const std::string& node) {
  SP_ASSIGN_OR_RETURN(json nodes, qmp->Execute("query-named-block-nodes", {{"flat", true}}));
  for (const json& entry : nodes) {
    if (entry.is_object() && entry.value("node-name", "") == node) return entry;
  }
  return absl::NotFoundError(absl::StrCat(qmp->label(), ": no block node '", node, "'"));
}

}  // namespace

StatusOr<std::string> CheckBitmap(qmp::Client* qmp, const std::string& node,
                                  const std::string& name) {
  SP_ASSIGN_OR_RETURN(json entry, FindNode(qmp, node));
  for (const json& bitmap : entry.value("dirty-bitmaps", json::array())) {
    if (!bitmap.is_object() || bitmap.value("name", "") != name) continue;
    if (bitmap.value("inconsistent", false)) {
      return std::string("its dirty bitmap is inconsistent (QEMU was not shut down cleanly)");
    }
    if (!bitmap.value("persistent", false)) return std::string("its dirty bitmap is not persistent");
    if (bitmap.value("busy", false)) return std::string("its dirty bitmap is busy");
    if (!bitmap.value("recording", false)) {
      return std::string("its dirty bitmap stopped recording (an earlier capture was interrupted)");
    }
    return std::string();
  }
  return std::string("the dirty bitmap of the previous point is gone (QEMU restarted?)");
}

StatusOr<bool> CleanLeftovers(qmp::Client* qmp, const std::vector<VolumeCut>& volumes) {
  bool found = false;
  SP_ASSIGN_OR_RETURN(json exports, qmp->Execute("query-block-exports", nullptr, kQmpTimeout));
  for (const json& entry : exports) {
    std::string id = entry.is_object() ? entry.value("id", "") : "";
    if (id.rfind("sp-", 0) != 0) continue;
    found = true;
    SP_RETURN_IF_ERROR(qmp->Execute("block-export-del", {{"id", id}}, kQmpTimeout).status());
    SP_RETURN_IF_ERROR(qmp->WaitForEvent("BLOCK_EXPORT_DELETED", Deadline::In(kQmpTimeout),
                                         [&](const qmp::Event& event) {
                                           return event.data.value("id", "") == id;
                                         })
                           .status());
  }
  if (found) (void)qmp->Execute("nbd-server-stop", nullptr, kQmpTimeout);
  SP_ASSIGN_OR_RETURN(json blocks, qmp->Execute("query-block", nullptr, kQmpTimeout));
  for (const VolumeCut& volume : volumes) {
    for (const json& block : blocks) {
      if (block.value("qdev", "") != volume.drive_path) continue;
      std::string node = block.value("inserted", json::object()).value("node-name", "");
      if (node.rfind("sp-", 0) != 0) continue;
      found = true;
      SP_RETURN_IF_ERROR(qmp->Execute("qom-set",
                                      {{"path", volume.drive_path},
                                       {"property", "drive"},
                                       {"value", volume.format_node}},
                                      kQmpTimeout)
                             .status());
    }
  }
  SP_ASSIGN_OR_RETURN(json nodes, qmp->Execute("query-named-block-nodes", {{"flat", true}},
                                               kQmpTimeout));
  for (const char* kind : {"sp-s", "sp-c", "sp-t"}) {
    for (const json& entry : nodes) {
      std::string name = entry.is_object() ? entry.value("node-name", "") : "";
      if (name.rfind(kind, 0) != 0) continue;
      found = true;
      SP_RETURN_IF_ERROR(qmp->Execute("blockdev-del", {{"node-name", name}}, kQmpTimeout).status());
    }
  }
  return found;
}

StatusOr<std::vector<std::string>> OwnBitmaps(qmp::Client* qmp, const std::string& node) {
  SP_ASSIGN_OR_RETURN(json entry, FindNode(qmp, node));
  std::vector<std::string> names;
  for (const json& bitmap : entry.value("dirty-bitmaps", json::array())) {
    std::string name = bitmap.is_object() ? bitmap.value("name", "") : "";
    if (name.rfind(kBitmapPrefix, 0) == 0) names.push_back(name);
  }
  return names;
}

LiveCut::LiveCut(qmp::Client* qmp, std::string scratch_dir, std::string nbd_socket)
    : qmp_(qmp), scratch_dir_(std::move(scratch_dir)), nbd_socket_(std::move(nbd_socket)) {}

LiveCut::~LiveCut() { (void)Teardown(false); }

std::string LiveCut::Node(const char* kind, size_t index) const {
  return absl::StrCat("sp-", kind, index);
}

Status LiveCut::Prepare(std::vector<VolumeCut> volumes) {
  volumes_ = std::move(volumes);
  stages_.assign(volumes_.size(), Stage{});
  SP_RETURN_IF_ERROR(MakeDirs(scratch_dir_, 0700));
  for (size_t i = 0; i < volumes_.size(); ++i) {
    const VolumeCut& volume = volumes_[i];
    std::string scratch = absl::StrCat(scratch_dir_, "/", i, ".qcow2");
    SP_RETURN_IF_ERROR(RunCommandOk({"qemu-img", "create", "-q", "-f", "qcow2", scratch,
                                     absl::StrCat(volume.size)},
                                    Deadline::In(kQmpTimeout))
                           .status());
    stages_[i].scratch_file = true;
    SP_RETURN_IF_ERROR(qmp_->Execute("blockdev-add",
                                     {{"driver", "qcow2"},
                                      {"node-name", Node("t", i)},
                                      {"file", {{"driver", "file"}, {"filename", scratch}}}},
                                     kQmpTimeout)
                           .status());
    stages_[i].scratch_node = true;
    SP_RETURN_IF_ERROR(qmp_->Execute("blockdev-add",
                                     {{"driver", "copy-before-write"},
                                      {"node-name", Node("c", i)},
                                      {"file", volume.format_node},
                                      {"target", Node("t", i)},
                                      {"on-cbw-error", "break-snapshot"}},
                                     kQmpTimeout)
                           .status());
    stages_[i].filter = true;
  }
  return absl::OkStatus();
}

StatusOr<CutTimings> LiveCut::Cut(bool pause_vcpus) {
  CutTimings timings;
  auto start = std::chrono::steady_clock::now();
  bool was_running = false;
  if (pause_vcpus) {
    SP_ASSIGN_OR_RETURN(json status, qmp_->Execute("query-status", nullptr, kQmpTimeout));
    was_running = status.value("running", false);
  }
  json actions = json::array();
  for (const VolumeCut& volume : volumes_) {
    if (!volume.prev_bitmap.empty()) {
      actions.push_back({{"type", "block-dirty-bitmap-disable"},
                         {"data", {{"node", volume.format_node}, {"name", volume.prev_bitmap}}}});
    }
    if (!volume.new_bitmap.empty()) {
      actions.push_back({{"type", "block-dirty-bitmap-add"},
                         {"data", {{"node", volume.format_node},
                                   {"name", volume.new_bitmap},
                                   {"persistent", true}}}});
    }
  }
  if (was_running) SP_RETURN_IF_ERROR(qmp_->Execute("stop", nullptr, kQmpTimeout).status());
  auto paused = std::chrono::steady_clock::now();
  // Resume the guest on every path out of here.
  auto resume = absl::MakeCleanup([&] {
    if (was_running) (void)qmp_->Execute("cont", nullptr, kQmpTimeout);
  });
  if (!actions.empty()) {
    SP_RETURN_IF_ERROR(qmp_->Execute("transaction", {{"actions", actions}}, kQmpTimeout).status());
  }
  for (size_t i = 0; i < volumes_.size(); ++i) {
    stages_[i].new_bitmap = !volumes_[i].new_bitmap.empty();
    stages_[i].prev_disabled = !volumes_[i].prev_bitmap.empty();
  }
  for (size_t i = 0; i < volumes_.size(); ++i) {
    SP_RETURN_IF_ERROR(qmp_->Execute("qom-set",
                                     {{"path", volumes_[i].drive_path},
                                      {"property", "drive"},
                                      {"value", Node("c", i)}},
                                     kQmpTimeout)
                           .status());
    stages_[i].switched = true;
  }
  std::move(resume).Cancel();
  if (was_running) SP_RETURN_IF_ERROR(qmp_->Execute("cont", nullptr, kQmpTimeout).status());
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
    stages_[i].access = true;
  }
  ::unlink(nbd_socket_.c_str());
  SP_RETURN_IF_ERROR(
      qmp_->Execute("nbd-server-start",
                    {{"addr", {{"type", "unix"}, {"data", {{"path", nbd_socket_}}}}}}, kQmpTimeout)
          .status());
  server_started_ = true;
  for (size_t i = 0; i < volumes_.size(); ++i) {
    json arguments = {{"type", "nbd"},       {"id", Node("e", i)},
                      {"node-name", Node("s", i)}, {"name", volumes_[i].volume},
                      {"writable", false}};
    if (!volumes_[i].prev_bitmap.empty()) {
      arguments["bitmaps"] = {
          {{"node", volumes_[i].format_node}, {"name", volumes_[i].prev_bitmap}}};
    }
    SP_RETURN_IF_ERROR(qmp_->Execute("block-export-add", arguments, kQmpTimeout).status());
    stages_[i].exported = true;
  }
  return absl::OkStatus();
}

Status LiveCut::TeardownVolume(size_t i) {
  Stage& stage = stages_[i];
  Status first = absl::OkStatus();
  auto note = [&](const Status& status) {
    if (first.ok() && !status.ok()) first = status;
  };
  if (stage.access) {
    note(qmp_->Execute("blockdev-del", {{"node-name", Node("s", i)}}, kQmpTimeout).status());
    stage.access = false;
  }
  if (stage.switched) {
    note(qmp_->Execute("qom-set",
                       {{"path", volumes_[i].drive_path},
                        {"property", "drive"},
                        {"value", volumes_[i].format_node}},
                       kQmpTimeout)
             .status());
    stage.switched = false;
  }
  if (stage.filter) {
    note(qmp_->Execute("blockdev-del", {{"node-name", Node("c", i)}}, kQmpTimeout).status());
    stage.filter = false;
  }
  if (stage.scratch_node) {
    note(qmp_->Execute("blockdev-del", {{"node-name", Node("t", i)}}, kQmpTimeout).status());
    stage.scratch_node = false;
  }
  if (stage.scratch_file) {
    ::unlink(absl::StrCat(scratch_dir_, "/", i, ".qcow2").c_str());
    stage.scratch_file = false;
  }
  return first;
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
                         {"data", {{"node", node},
                                   {"target", volume.prev_bitmap},
                                   {"bitmaps", json::array({volume.new_bitmap})}}}});
      actions.push_back({{"type", "block-dirty-bitmap-enable"},
                         {"data", {{"node", node}, {"name", volume.prev_bitmap}}}});
    }
    actions.push_back({{"type", "block-dirty-bitmap-remove"},
                       {"data", {{"node", node}, {"name", volume.new_bitmap}}}});
    result = qmp_->Execute("transaction", {{"actions", actions}}, kQmpTimeout).status();
  } else if (stage.prev_disabled) {
    result = qmp_->Execute("block-dirty-bitmap-enable", {{"node", node}, {"name", volume.prev_bitmap}},
                           kQmpTimeout)
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
  for (size_t i = 0; i < volumes_.size(); ++i) {
    if (!stages_[i].exported) continue;
    note(qmp_->Execute("block-export-del", {{"id", Node("e", i)}}, kQmpTimeout).status());
    auto deleted = qmp_->WaitForEvent(
        "BLOCK_EXPORT_DELETED", Deadline::In(kQmpTimeout),
        [&](const qmp::Event& event) { return event.data.value("id", "") == Node("e", i); });
    note(deleted.status());
    stages_[i].exported = false;
  }
  if (server_started_) {
    note(qmp_->Execute("nbd-server-stop", nullptr, kQmpTimeout).status());
    server_started_ = false;
    ::unlink(nbd_socket_.c_str());
  }
  for (size_t i = 0; i < volumes_.size(); ++i) note(TeardownVolume(i));
  for (size_t i = 0; i < volumes_.size(); ++i) note(SettleBitmaps(i, success));
  ::rmdir(scratch_dir_.c_str());
  return Annotate(first, "tearing down the capture in QEMU");
}

}  // namespace sp::capture
