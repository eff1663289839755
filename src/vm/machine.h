// VM definitions: validation of what a user defines, MAC addresses, and where a VM's run-time
// files (sockets, pid file, logs) live.
#pragma once

#include <functional>
#include <string>

#include "catalog/records.h"
#include "platform/file_system.h"
#include "platform/status.h"

namespace sp::vm {

using catalog::VmRecord;

// Checks a definition before it is stored: name syntax, CPUs/memory, firmware, policy, volumes
// (at least one; exactly one boot volume; distinct names and serials; images exist and their
// format matches), NICs (unicast, locally administered MACs). Fills in what may be left empty:
// volume formats and serials, node names, PCI slots. InvalidArgument/NotFound say what to fix.
Status ValidateDefinition(VmRecord* vm);

// A random unicast, locally administered MAC ("52:54:00:xx:xx:xx") for which `in_use` is false.
StatusOr<std::string> GenerateMac(const std::function<StatusOr<bool>(const std::string&)>& in_use);

// True for "aa:bb:cc:dd:ee:ff" with the locally-administered bit set and the multicast bit clear.
bool IsValidLocalMac(const std::string& mac);

// A new random (version 4) UUID.
std::string NewUuid();

// Where a managed VM's run-time files live. Short on purpose: socket paths must fit 107 bytes.
struct RunPaths {
  std::string dir;
  std::string qmp_socket;      // for stillpoint commands (one client at a time)
  std::string monitor_socket;  // held by the VM's monitor process for events
  std::string qga_socket;
  std::string pid_file;
  std::string console_log;
  std::string qemu_log;
  std::string monitor_log;
  std::string freeze_record;  // exists while a capture may hold the guest frozen
};

// The run paths of `vm` under `run_root`; InvalidArgument when a socket path would be too long.
StatusOr<RunPaths> RunPathsFor(const VmRecord& vm, const std::string& run_root);

// Held while a VM's disks may change hands: by `vm start` until QEMU runs (and holds its image
// locks itself) and by a restore in place throughout, so neither can start inside the other.
// FailedPrecondition, saying what to do, when another command holds it.
StatusOr<std::unique_ptr<FileLock>> LockVmDisks(const VmRecord& vm, const std::string& run_root);

// Where the captures of a VM keep their lock, scratch directories and sockets (capture/ writes
// them; the VM's monitor reads them to resume a VM a killed capture left paused).
struct CaptureFiles {
  std::string dir;     // shared by all VMs: <run_root>/capture
  std::string lock;    // held by the one capture of the VM that may run
  std::string prefix;  // of every scratch directory and socket of the VM's captures in `dir`
};
CaptureFiles CaptureFilesFor(const VmRecord& vm, const std::string& run_root);

// In a capture's scratch directory while it holds the VM's vCPUs paused.
inline constexpr char kPausedMarker[] = "paused";

}  // namespace sp::vm
