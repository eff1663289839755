#include "vm/machine.h"

#include <algorithm>
#include <random>
#include <set>

#include "absl/strings/str_format.h"
#include "platform/files.h"
#include "platform/unix_socket.h"
#include "vm/images.h"

namespace sp::vm {
namespace {

bool ValidName(const std::string& name) {
  if (name.empty() || name.size() > 64) return false;
  if (!std::isalnum(static_cast<unsigned char>(name[0]))) return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

Status InvalidVm(const VmRecord& vm, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("VM '", vm.name, "': ", what));
}

Status ValidateVolumes(VmRecord* vm) {
  if (vm->volumes.empty()) return InvalidVm(*vm, "needs at least one volume (--volume)");
  int boot_count = static_cast<int>(
      std::count_if(vm->volumes.begin(), vm->volumes.end(), [](const auto& v) { return v.boot; }));
  if (boot_count != 1) {
    return InvalidVm(*vm, absl::StrCat("exactly one volume must be the boot volume (", boot_count,
                                       " are marked boot); add `boot` to one --volume"));
  }
  std::set<std::string> names, serials;
  int slot = 4;  // slots 1-3 hold the VGA-less machine's own devices and the serial controller
  for (catalog::VolumeRecord& volume : vm->volumes) {
    if (!ValidName(volume.name)) {
      return InvalidVm(*vm, absl::StrCat("volume name '", volume.name,
                                         "' must be letters, digits, '-', '_' or '.'"));
    }
    if (!names.insert(volume.name).second) {
      return InvalidVm(*vm, absl::StrCat("two volumes are named '", volume.name, "'"));
    }
    volume.path = AbsolutePath(volume.path);
    auto info = InspectImage(volume.path);
    if (!info.ok()) return Annotate(info.status(), absl::StrCat("VM '", vm->name, "'"));
    if (volume.format.empty()) volume.format = info->format;
    if (volume.format != "qcow2" && volume.format != "raw") {
      return InvalidVm(*vm,
                       absl::StrCat("volume '", volume.name, "': format must be qcow2 or raw"));
    }
    if (volume.format != info->format) {
      return InvalidVm(*vm, absl::StrCat("volume '", volume.name, "' was given as ", volume.format,
                                         " but ", volume.path, " is ", info->format));
    }
    if (volume.serial.empty()) volume.serial = absl::StrCat("sp-", volume.name).substr(0, 20);
    if (volume.serial.size() > 20) {
      return InvalidVm(*vm, absl::StrCat("serial '", volume.serial, "' is longer than 20 bytes"));
    }
    if (!serials.insert(volume.serial).second) {
      return InvalidVm(*vm, absl::StrCat("two volumes have serial '", volume.serial, "'"));
    }
    volume.node_name = absl::StrCat(volume.name, "-fmt");
    volume.pci_slot = slot++;
  }
  return absl::OkStatus();
}

}  // namespace

Status ValidateDefinition(VmRecord* vm) {
  if (!ValidName(vm->name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "VM name '", vm->name, "' must start with a letter or digit and contain only letters, ",
        "digits, '-', '_' or '.' (at most 64)"));
  }
  if (vm->vcpus < 1 || vm->vcpus > 64) return InvalidVm(*vm, "--vcpus must be 1..64");
  if (vm->memory_mib < 32 || vm->memory_mib > int64_t{1024} * 1024) {
    return InvalidVm(*vm, "--memory must be 32 MiB..1 TiB");
  }
  if (vm->firmware != "bios" && vm->firmware != "uefi") {
    return InvalidVm(*vm, "--firmware must be bios or uefi");
  }
  if (vm->policy != "require-app" && vm->policy != "prefer-app" && vm->policy != "crash-only") {
    return InvalidVm(*vm, "--policy must be require-app, prefer-app or crash-only");
  }
  for (const std::string* file : {&vm->kernel, &vm->initrd}) {
    if (!file->empty() && !IsRegularFile(*file)) {
      return absl::NotFoundError(absl::StrCat("VM '", vm->name, "': ", *file, " does not exist"));
    }
  }
  if (!vm->initrd.empty() && vm->kernel.empty()) return InvalidVm(*vm, "--initrd needs --kernel");
  if (!vm->kernel.empty()) vm->kernel = AbsolutePath(vm->kernel);
  if (!vm->initrd.empty()) vm->initrd = AbsolutePath(vm->initrd);
  SP_RETURN_IF_ERROR(ValidateVolumes(vm));
  std::set<std::string> macs;
  for (catalog::NicRecord& nic : vm->nics) {
    if (nic.network != "none" && nic.network != "user") {
      return InvalidVm(*vm, "NIC network must be none or user");
    }
    if (!nic.mac.empty()) {
      std::transform(nic.mac.begin(), nic.mac.end(), nic.mac.begin(),
                     [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
      if (!IsValidLocalMac(nic.mac)) {
        return InvalidVm(*vm, absl::StrCat("MAC ", nic.mac, " must look like 52:54:00:12:34:56 ",
                                           "and be unicast and locally administered"));
      }
      if (!macs.insert(nic.mac).second) {
        return InvalidVm(*vm, absl::StrCat("MAC ", nic.mac, " is given twice"));
      }
    }
  }
  return absl::OkStatus();
}

bool IsValidLocalMac(const std::string& mac) {
  unsigned int bytes[6];
  char tail = 0;
  if (mac.size() != 17 ||
      std::sscanf(mac.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &bytes[0], &bytes[1], &bytes[2],
                  &bytes[3], &bytes[4], &bytes[5], &tail) != 6) {
    return false;
  }
  return (bytes[0] & 0x02) != 0 && (bytes[0] & 0x01) == 0;
}

StatusOr<std::string> GenerateMac(const std::function<StatusOr<bool>(const std::string&)>& in_use) {
  std::random_device seed;
  std::mt19937 generator(seed());
  for (int attempt = 0; attempt < 100; ++attempt) {
    std::string mac = absl::StrFormat("52:54:00:%02x:%02x:%02x", generator() & 0xff,
                                      generator() & 0xff, generator() & 0xff);
    SP_ASSIGN_OR_RETURN(bool taken, in_use(mac));
    if (!taken) return mac;
  }
  return absl::ResourceExhaustedError("could not find an unused MAC address");
}

std::string NewUuid() {
  std::random_device seed;
  std::mt19937_64 generator(seed());
  uint64_t high = generator(), low = generator();
  high = (high & 0xffffffffffff0fffULL) | 0x0000000000004000ULL;  // version 4
  low = (low & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;    // RFC 4122 variant
  return absl::StrFormat("%08x-%04x-%04x-%04x-%012x", high >> 32, (high >> 16) & 0xffff,
                         high & 0xffff, low >> 48, low & 0xffffffffffffULL);
}

StatusOr<RunPaths> RunPathsFor(const VmRecord& vm, const std::string& run_root) {
  RunPaths paths;
  paths.dir = absl::StrCat(run_root, "/", vm.uuid.substr(0, 8));
  paths.qmp_socket = paths.dir + "/qmp.sock";
  paths.monitor_socket = paths.dir + "/mon.sock";
  paths.qga_socket = paths.dir + "/qga.sock";
  paths.pid_file = paths.dir + "/qemu.pid";
  paths.console_log = paths.dir + "/console.log";
  paths.qemu_log = paths.dir + "/qemu.log";
  paths.monitor_log = paths.dir + "/monitor.log";
  paths.freeze_record = paths.dir + "/frozen.json";
  for (const std::string* socket : {&paths.qmp_socket, &paths.monitor_socket, &paths.qga_socket}) {
    Status fits = CheckUnixSocketPath(*socket);
    if (!fits.ok()) return Annotate(fits, absl::StrCat("VM '", vm.name, "'"));
  }
  return paths;
}

StatusOr<std::unique_ptr<FileLock>> LockVmDisks(const VmRecord& vm, const std::string& run_root) {
  std::string dir = absl::StrCat(run_root, "/", vm.uuid.substr(0, 8));
  SP_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  auto lock = FileSystem::Posix()->TryLock(dir + "/disks.lock");
  if (absl::IsFailedPrecondition(lock.status())) {
    return absl::FailedPreconditionError(
        absl::StrCat("VM '", vm.name,
                     "' is being started or restored by another stillpoint command; try "
                     "again when it has finished"));
  }
  return lock;
}

CaptureFiles CaptureFilesFor(const VmRecord& vm, const std::string& run_root) {
  CaptureFiles files;
  files.dir = run_root + "/capture";
  std::string short_id = vm.uuid.substr(0, 8);
  files.lock = absl::StrCat(files.dir, "/", short_id, ".lock");
  files.prefix = short_id + "-";
  return files;
}

}  // namespace sp::vm
