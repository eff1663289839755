// Test helper: a model of QEMU 7.2's block layer behind qmp::Session, for the capture's tests.
// It keeps QEMU's rules — a qom-set of a drive to the node it already has aborts QEMU, a drive
// cannot move off a copy-before-write filter while a snapshot-access node sits on it, a node in
// use cannot be deleted, a transaction is all or nothing — and can fail any command, or stop
// answering after any number of commands (the capture process killed there). Leftovers() and
// violations() tell whether what a capture did (and undid) left the graph as it was.
#pragma once

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "qmp/qmp_client.h"

namespace sp::testing {

using nlohmann::json;

class FakeQemu final : public qmp::Session {
 public:
  struct Bitmap {
    bool recording = true;
  };

  struct Node {
    std::string driver;
    std::string file;    // child node, "" for a protocol node
    std::string target;  // copy-before-write only
    std::map<std::string, Bitmap> bitmaps;
  };

  // Two disks, "root" and "data", of `disk_size` bytes each, on the format nodes "root-fmt" and
  // "data-fmt" (as stillpoint names the disks of the VMs it launches).
  explicit FakeQemu(uint64_t disk_size = 1 << 20) : disk_size_(disk_size) {
    for (const char* disk : {"root", "data"}) {
      nodes_[absl::StrCat(disk, "-file")] = {"file", "", "", {}};
      nodes_[absl::StrCat(disk, "-fmt")] = {"qcow2", absl::StrCat(disk, "-file"), "", {}};
      drives_[DrivePath(disk)] = absl::StrCat(disk, "-fmt");
    }
  }

  static std::string DrivePath(const std::string& disk) {
    return absl::StrCat("/machine/peripheral/", disk, "/virtio-backend");
  }

  // Commands after the `n`th fail: with an error (`fail`), or as a QEMU that stops answering
  // the capture because the capture is gone (`!fail`). -1: none fails.
  void FailAfter(int n, bool fail) {
    fail_after_ = n;
    fail_is_error_ = fail;
    count_ = 0;
  }
  // The first `command` whose arguments (as JSON text) contain `arguments_part` fails with an
  // error; the commands after it succeed again.
  void FailWhen(std::string command, std::string arguments_part) {
    fail_command_ = std::move(command);
    fail_arguments_ = std::move(arguments_part);
  }
  int commands() const { return count_; }
  // Every command asked, by name, in order.
  const std::vector<std::string>& log() const { return log_; }

  // A new QMP connection to this QEMU, as qmp::Client::Connect makes; the state is QEMU's.
  std::unique_ptr<qmp::Session> Connect() { return std::make_unique<Connection>(this); }

  StatusOr<json> Execute(const std::string& command, const json& arguments,
                         Millis /*timeout*/) override {
    ++count_;
    log_.push_back(command);
    if (!fail_command_.empty() && command == fail_command_ &&
        arguments.dump().find(fail_arguments_) != std::string::npos) {
      fail_command_.clear();
      return absl::InternalError(absl::StrCat("injected failure of '", command, "'"));
    }
    if (fail_after_ >= 0 && count_ > fail_after_) {
      if (fail_is_error_ && count_ == fail_after_ + 1) {
        return absl::InternalError(absl::StrCat("injected failure of '", command, "'"));
      }
      if (!fail_is_error_) return absl::UnavailableError("the capture process is gone");
    }
    return Run(command, arguments);
  }

  StatusOr<qmp::Event> WaitForEvent(const std::string& name, Deadline /*deadline*/,
                                    const std::function<bool(const qmp::Event&)>& filter) override {
    for (auto it = events_.begin(); it != events_.end(); ++it) {
      if (it->name == name && (!filter || filter(*it))) {
        qmp::Event found = *it;
        events_.erase(it);
        return found;
      }
    }
    return absl::DeadlineExceededError(absl::StrCat("no event ", name));
  }

  const std::string& label() const override { return label_; }

  // QEMU would have aborted (or refused) something it should never have been asked.
  const std::vector<std::string>& violations() const { return violations_; }

  // The graph is as before the capture: no node, export or server of ours, drives on their
  // format nodes, the vCPUs running.
  std::string Leftovers() const {
    std::string left;
    for (const auto& [name, node] : nodes_) {
      if (name.rfind("sp-", 0) == 0) absl::StrAppend(&left, "node ", name, "; ");
    }
    for (const auto& [id, node] : exports_) absl::StrAppend(&left, "export ", id, "; ");
    if (server_) absl::StrAppend(&left, "NBD server; ");
    for (const auto& [path, node] : drives_) {
      if (node.find("-fmt") == std::string::npos) absl::StrAppend(&left, path, " on ", node, "; ");
    }
    if (paused_) absl::StrAppend(&left, "vCPUs paused; ");
    return left;
  }

  std::map<std::string, Node> nodes_;
  std::map<std::string, std::string> drives_;   // QOM path → node
  std::map<std::string, std::string> exports_;  // id → node

 private:
  class Connection final : public qmp::Session {
   public:
    explicit Connection(FakeQemu* qemu) : qemu_(qemu) {}
    StatusOr<json> Execute(const std::string& command, const json& arguments,
                           Millis timeout) override {
      return qemu_->Execute(command, arguments, timeout);
    }
    StatusOr<qmp::Event> WaitForEvent(
        const std::string& name, Deadline deadline,
        const std::function<bool(const qmp::Event&)>& filter) override {
      return qemu_->WaitForEvent(name, deadline, filter);
    }
    const std::string& label() const override { return qemu_->label(); }

   private:
    FakeQemu* qemu_;
  };

  StatusOr<json> Error(const std::string& message) { return absl::InternalError(message); }

  bool InUse(const std::string& name) const {
    for (const auto& [path, node] : drives_) {
      if (node == name) return true;
    }
    for (const auto& [id, node] : exports_) {
      if (node == name) return true;
    }
    for (const auto& [other, node] : nodes_) {
      if (node.file == name || node.target == name) return true;
    }
    return false;
  }

  StatusOr<json> QomSet(const json& arguments) {
    std::string path = arguments.value("path", "");
    std::string value = arguments.value("value", "");
    if (drives_.count(path) == 0) return Error("Device not found");
    if (nodes_.count(value) == 0) return Error("Cannot find device=... nor node-name=" + value);
    std::string& current = drives_[path];
    if (current == value) {
      violations_.push_back("qom-set of " + path + " to the node it already has (QEMU aborts)");
      return absl::UnavailableError("QEMU went away");
    }
    const Node& old = nodes_[current];
    if (old.driver == "copy-before-write") {
      for (const auto& [name, node] : nodes_) {
        if (node.driver == "snapshot-access" && node.file == current) {
          violations_.push_back("drive moved off " + current + " while " + name + " sits on it");
          return Error("Permission conflict on node '" + value + "'");
        }
      }
    }
    current = value;
    return json::object();
  }

  StatusOr<json> BlockdevAdd(const json& arguments) {
    std::string name = arguments.value("node-name", "");
    if (nodes_.count(name) != 0) return Error("Duplicate nodes with node-name='" + name + "'");
    Node node;
    node.driver = arguments.value("driver", "");
    const json& file = arguments.value("file", json());
    if (file.is_string()) {
      if (nodes_.count(file.get<std::string>()) == 0) return Error("no node " + file.dump());
      node.file = file.get<std::string>();
    }
    node.target = arguments.value("target", "");
    if (!node.target.empty() && nodes_.count(node.target) == 0) return Error("no target");
    nodes_[name] = node;
    return json::object();
  }

  StatusOr<json> BlockdevDel(const json& arguments) {
    std::string name = arguments.value("node-name", "");
    if (nodes_.count(name) == 0) return Error("Failed to find node with node-name='" + name + "'");
    if (InUse(name)) return Error("Node '" + name + "' is busy");
    nodes_.erase(name);
    return json::object();
  }

  StatusOr<json> QueryNodes() {
    json list = json::array();
    for (const auto& [name, node] : nodes_) {
      json bitmaps = json::array();
      for (const auto& [bitmap, state] : node.bitmaps) {
        bitmaps.push_back({{"name", bitmap},
                           {"recording", state.recording},
                           {"persistent", true},
                           {"busy", false},
                           {"count", 0}});
      }
      list.push_back({{"node-name", name}, {"drv", node.driver}, {"dirty-bitmaps", bitmaps}});
    }
    return list;
  }

  // One bitmap action, checked (`apply` false) or applied.
  Status BitmapAction(const std::string& type, const json& data, bool apply) {
    std::string node = data.value("node", "");
    std::string name = data.value(type == "block-dirty-bitmap-merge" ? "target" : "name", "");
    if (nodes_.count(node) == 0) return absl::InternalError("no node " + node);
    auto& bitmaps = nodes_[node].bitmaps;
    bool exists = bitmaps.count(name) != 0;
    if (type == "block-dirty-bitmap-add") {
      if (exists) return absl::InternalError("Bitmap already exists: " + name);
      if (apply) bitmaps[name] = Bitmap{};
      return absl::OkStatus();
    }
    if (!exists) return absl::InternalError("Dirty bitmap '" + name + "' not found");
    if (!apply) return absl::OkStatus();
    if (type == "block-dirty-bitmap-remove") bitmaps.erase(name);
    if (type == "block-dirty-bitmap-disable") bitmaps[name].recording = false;
    if (type == "block-dirty-bitmap-enable") bitmaps[name].recording = true;
    return absl::OkStatus();
  }

  StatusOr<json> Transaction(const json& arguments) {
    const json& actions = arguments.value("actions", json::array());
    // All or nothing, like QEMU: check every action on a copy, then apply.
    auto saved = nodes_;
    for (const json& action : actions) {
      Status ok = BitmapAction(action.value("type", ""), action.value("data", json()), true);
      if (!ok.ok()) {
        nodes_ = saved;
        return ok;
      }
    }
    return json::object();
  }

  StatusOr<json> ExportAdd(const json& arguments) {
    if (!server_) return Error("NBD server not running");
    std::string id = arguments.value("id", "");
    std::string node = arguments.value("node-name", "");
    if (exports_.count(id) != 0 || nodes_.count(node) == 0) return Error("bad export " + id);
    exports_[id] = node;
    return json::object();
  }

  StatusOr<json> ExportDel(const json& arguments) {
    std::string id = arguments.value("id", "");
    if (exports_.erase(id) == 0) return Error("Export '" + id + "' is not found");
    events_.push_back({"BLOCK_EXPORT_DELETED", {{"id", id}}, 0});
    return json::object();
  }

  // The disks as query-block shows them: each device's QOM path and the node its drive is on.
  json QueryBlock() const {
    json list = json::array();
    for (const auto& [path, node] : drives_) {
      list.push_back({{"device", ""},
                      {"qdev", path},
                      {"inserted",
                       {{"node-name", node},
                        {"image", {{"virtual-size", disk_size_}, {"actual-size", disk_size_}}}}}});
    }
    return list;
  }

  StatusOr<json> Run(const std::string& command, const json& arguments) {
    if (command == "query-block") return QueryBlock();
    if (command == "query-named-block-nodes") return QueryNodes();
    if (command == "query-block-jobs") return json::array();
    if (command == "query-block-exports") {
      json list = json::array();
      for (const auto& [id, node] : exports_) list.push_back({{"id", id}, {"node-name", node}});
      return list;
    }
    if (command == "query-status") {
      return json{{"running", !paused_}, {"status", paused_ ? "paused" : "running"}};
    }
    if (command == "stop" || command == "cont") {
      paused_ = command == "stop";
      return json::object();
    }
    if (command == "qom-get") {
      auto found = drives_.find(arguments.value("path", ""));
      if (found == drives_.end()) return Error("Device not found");
      return json(found->second);
    }
    if (command == "qom-set") return QomSet(arguments);
    if (command == "blockdev-add") return BlockdevAdd(arguments);
    if (command == "blockdev-del") return BlockdevDel(arguments);
    if (command == "transaction") return Transaction(arguments);
    if (absl::StartsWith(command, "block-dirty-bitmap-")) {
      SP_RETURN_IF_ERROR(BitmapAction(command, arguments, true));
      return json::object();
    }
    if (command == "nbd-server-start") {
      if (server_) return Error("NBD server already running");
      server_ = true;
      return json::object();
    }
    if (command == "nbd-server-stop") {
      if (!server_) return Error("NBD server not running");
      server_ = false;
      return json::object();
    }
    if (command == "block-export-add") return ExportAdd(arguments);
    if (command == "block-export-del") return ExportDel(arguments);
    return Error("CommandNotFound: " + command);
  }

  std::string label_ = "VM 'fake'";
  std::vector<std::string> violations_;
  std::deque<qmp::Event> events_;
  bool server_ = false;
  bool paused_ = false;
  int fail_after_ = -1;
  bool fail_is_error_ = true;
  int count_ = 0;
  std::vector<std::string> log_;
  std::string fail_command_;
  std::string fail_arguments_;
  uint64_t disk_size_;
};

}  // namespace sp::testing
