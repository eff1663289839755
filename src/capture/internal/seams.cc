#include "capture/internal/seams.h"

namespace sp::capture::internal {

Seams RealSeams(vm::Runtime* runtime) {
  Seams seams;
  seams.connect_qmp =
      [runtime](const catalog::VmRecord& vm) -> StatusOr<std::unique_ptr<qmp::Session>> {
    return runtime->ConnectQmp(vm);
  };
  seams.connect_agent = [runtime](const catalog::VmRecord& vm,
                                  Millis timeout) -> StatusOr<std::unique_ptr<qga::Agent>> {
    return runtime->ConnectAgent(vm, timeout);
  };
  seams.connect_nbd = block::ConnectNbdUnix;
  seams.open_image = block::OpenImage;
  seams.start_watch = StartThawGuard;
  return seams;
}

}  // namespace sp::capture::internal
