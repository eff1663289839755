// Serving one volume of a recovery point read-only over NBD, so that standard tools (qemu-img,
// qemu-nbd --connect, nbdfuse, guestmount) can read it.
//
// How: nbdkit with stillpoint's plugin (nbd/) reads the volume straight from the repository —
// nothing is written out first, so the export is ready as soon as the point's index is loaded,
// whatever the volume's size. Zero chunks are reported as holes (NBD block status), which
// qemu-img and nbdcopy use to skip them; a damaged chunk fails its read with EIO, never with
// wrong data. The export is read-only.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "nbd/server.h"
#include "platform/status.h"
#include "repo/repository.h"

namespace sp::restore {

struct ServeOptions {
  std::string socket_path;  // unix socket to listen on (used when port == 0)
  int port = 0;             // TCP port on 127.0.0.1 instead of a unix socket
  std::string work_dir;     // private directory for the server's log and pid file; removed on Stop
};

class VolumeServer {
 public:
  // Starts serving `volume` of `point_id` under the export name `volume`. Returns once the server
  // accepts connections. NotFound for an unknown point or volume, or when nbdkit or its plugin is
  // missing; Unavailable when nbdkit did not come up (its log is in the message). The server
  // ends with our process (however it ends), not with the calling thread: any thread may call.
  static StatusOr<std::unique_ptr<VolumeServer>> Start(repo::Repository& repo,
                                                       absl::string_view point_id,
                                                       absl::string_view volume,
                                                       const ServeOptions& options);
  ~VolumeServer();  // stops the server

  // "nbd+unix:///VOLUME?socket=PATH" or "nbd://127.0.0.1:PORT/VOLUME".
  const std::string& uri() const { return server_->uri(); }
  const std::string& export_name() const { return export_name_; }
  uint64_t size() const { return size_; }
  // True while the server process runs (reaps it once it has ended).
  bool Running();
  // Stops the server and removes the work directory. Idempotent.
  Status Stop();

 private:
  VolumeServer() = default;

  std::unique_ptr<nbd::Server> server_;
  std::string export_name_;
  uint64_t size_ = 0;
};

}  // namespace sp::restore
