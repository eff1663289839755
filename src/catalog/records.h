// The catalog's records: what stillpoint knows about VMs, their volumes and NICs, and events.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace sp::catalog {

struct VolumeRecord {
  std::string name;       // unique within the VM, e.g. "root", "data"
  std::string path;       // absolute path of the image file
  std::string format;     // "qcow2" | "raw"
  bool boot = false;      // exactly one volume per VM is the boot volume
  std::string serial;     // the disk's serial= as the guest sees it
  std::string node_name;  // QEMU format node; ours are "<name>-fmt", discovered for attached VMs
  int pci_slot = -1;      // virtio-blk PCI slot for VMs stillpoint launches
};

struct NicRecord {
  std::string mac;      // "52:54:00:12:34:56", unique across the catalog, locally administered
  std::string network;  // "none" | "user"
};

// How the VM was last seen. kStopped* are only ever recorded with a reason.
// kStopped: QEMU ended while nothing of stillpoint's watched it (an attached VM), so whether the
// guest shut down cleanly is not known.
enum class PowerState { kDefined, kRunning, kStoppedClean, kStoppedDirty, kStopped };
const char* PowerStateName(PowerState state);  // "defined", "running", "stopped-clean", ...
std::optional<PowerState> ParsePowerState(const std::string& name);

struct VmRecord {
  int64_t id = 0;  // catalog row id; 0 before it is added
  std::string uuid;
  std::string name;
  int vcpus = 1;
  int64_t memory_mib = 512;
  std::string firmware = "bios";       // "bios" | "uefi"
  std::string kernel, initrd, append;  // direct kernel boot, all optional
  bool agent = true;                   // the VM has a guest-agent channel
  std::string policy = "prefer-app";   // require-app | prefer-app | crash-only
  // "managed": stillpoint launches QEMU; "attached": QEMU started elsewhere (libvirt, Proxmox).
  std::string origin = "managed";
  std::string qmp_socket;  // attached: given; managed: in the VM's run directory
  std::string qga_socket;
  std::optional<int64_t> space_limit_bytes;
  std::vector<VolumeRecord> volumes;
  std::vector<NicRecord> nics;

  PowerState state = PowerState::kDefined;
  std::string state_reason;  // e.g. "guest shut down (guest-shutdown)"
  int64_t state_changed_us = 0;
  int64_t created_us = 0;

  const VolumeRecord* BootVolume() const;
  const VolumeRecord* FindVolume(const std::string& volume_name) const;
};

struct EventRecord {
  int64_t id = 0;
  int64_t time_us = 0;
  std::optional<int64_t> vm_id;
  std::string vm_name;  // as it was when the event happened
  std::string kind;     // "vm.started", "vm.stopped", "agent.thawed-by-guard", ...
  std::string message;  // what happened and why, in words
  std::string actor;    // who asked: a user, "token:ID", "schedule:NAME"; empty: stillpoint
  std::string address;  // from where (the API caller's address); empty: this host
  std::string job_id;   // the job it belongs to, if any
};

struct EventFilter {
  std::optional<int64_t> vm_id;
  std::string kind_prefix;  // "vm.", "snapshot.", ...; empty: all
  std::optional<int64_t> since_us, until_us;
  std::optional<int64_t> after_id;  // only events with a larger id, oldest first
  int limit = 50;
  int offset = 0;
};

// Who caused an event and in which job, for events the service records.
struct EventOrigin {
  std::string actor;
  std::string address;
  std::string job_id;
};

}  // namespace sp::catalog
