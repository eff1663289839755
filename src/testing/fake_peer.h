// Test helper: a scripted peer on a unix socket, served by a thread. It accepts one client,
// optionally sends a greeting, then answers each newline-terminated request with what the
// handler returns — or nothing (a hung peer), or closes the connection (a peer that went away).
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "platform/unix_socket.h"

namespace sp::testing {

struct PeerAction {
  std::string reply;   // raw bytes to send back (may hold several lines, or 0xFF bytes)
  bool close = false;  // close the connection after sending `reply`
};

class FakePeer {
 public:
  using Handler = std::function<PeerAction(const std::string& request)>;

  FakePeer(std::string path, std::string greeting, Handler handler)
      : path_(std::move(path)), greeting_(std::move(greeting)), handler_(std::move(handler)) {
    auto listener = UnixListener::Listen(path_);
    if (listener.ok()) listener_ = std::move(listener).value();
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakePeer() {
    stop_ = true;
    thread_.join();
  }

  const std::string& path() const { return path_; }
  // Requests received so far (read only after the client is done).
  const std::vector<std::string>& requests() const { return requests_; }

 private:
  void Serve() {
    if (!listener_) return;
    std::unique_ptr<UnixConnection> connection;
    while (!stop_ && !connection) {
      auto accepted = listener_->Accept(Deadline::In(Millis(50)));
      if (accepted.ok()) connection = std::move(accepted).value();
    }
    if (!connection) return;
    if (!greeting_.empty()) (void)connection->WriteAll(greeting_, Deadline::In(Millis(1000)));
    LineReader reader(connection.get());
    while (!stop_) {
      auto line = reader.ReadLine(Deadline::In(Millis(50)));
      if (line.status().code() == absl::StatusCode::kDeadlineExceeded) continue;
      if (!line.ok()) return;
      requests_.push_back(*line);
      PeerAction action = handler_(*line);
      if (!action.reply.empty())
        (void)connection->WriteAll(action.reply, Deadline::In(Millis(1000)));
      if (action.close) return;
    }
  }

  std::string path_;
  std::string greeting_;
  Handler handler_;
  std::unique_ptr<UnixListener> listener_;
  std::vector<std::string> requests_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace sp::testing
