// Where a capture reaches outside its process: QEMU's QMP socket, the guest agent, the disks'
// bytes and the thaw guard process. CaptureVm uses the real ones (RealSeams); unit tests call
// CaptureVmWith with fakes (a model of QEMU, of the agent, in-memory volumes, a watch that is no
// process). Everything else a capture touches is real in both: the catalog, the repository, the
// run directory with the VM's capture lock, the freeze record and the scratch files.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "block/block_source.h"
#include "capture/capture.h"
#include "capture/internal/freeze.h"
#include "capture/internal/preflight.h"
#include "qmp/qmp_client.h"
#include "vm/runtime.h"

namespace sp::capture::internal {

struct Seams {
  std::function<StatusOr<std::unique_ptr<qmp::Session>>(const catalog::VmRecord&)> connect_qmp;
  AgentConnector connect_agent;
  // An export of QEMU's NBD server: a running VM's volume at the cut (see block::ConnectNbdUnix).
  std::function<StatusOr<std::unique_ptr<block::BlockSource>>(
      const std::string& socket, const std::string& export_name, const block::ConnectOptions&)>
      connect_nbd;
  // A stopped VM's image (see block::OpenImage).
  std::function<StatusOr<std::unique_ptr<block::BlockSource>>(
      const std::string& path, const std::string& format, const block::ConnectOptions&)>
      open_image;
  WatchStarter start_watch;
};

// The real ones: QMP and the agent through `runtime` (not owned; it outlives the seams), NBD
// through libnbd, the thaw guard process.
Seams RealSeams(vm::Runtime* runtime);

// CaptureVm through `seams`.
StatusOr<CaptureResult> CaptureVmWith(const CaptureContext& context, const CaptureRequest& request,
                                      const ProgressFn& progress, const Seams& seams);

}  // namespace sp::capture::internal
