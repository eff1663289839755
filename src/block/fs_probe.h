// Finding ext2/3/4 filesystems in a volume's bytes and reading their superblocks.
//
// Capture uses this as a truth check: in an application-consistent point every ext4 journal must
// be clean (the `needs_recovery` incompat flag clear); a set flag means the filesystem was not
// quiesced. Looks at a bare filesystem at offset 0, MBR primary partitions and the logical
// partitions of the first extended partition's chain, and GPT partitions (512- or 4096-byte
// sectors). CRCs of GPT headers are not checked: a damaged table at worst hides or invents a
// candidate, and each candidate is confirmed by its superblock magic.
// Written by hand: no Debian library reads partition tables without a block device (libblkid
// probes files too, but does not report per-partition superblock feature flags).
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "block/block_source.h"
#include "platform/status.h"

namespace sp::block {

struct Ext4Info {
  uint64_t offset = 0;          // of the filesystem in the volume
  std::string where;            // "whole volume", "MBR partition 1", "MBR logical partition 5",
                                // "GPT partition 2"
  std::string kind;             // "ext2", "ext3" or "ext4" (from the feature flags)
  std::string label;            // volume name, may be empty
  std::string uuid;             // "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  uint64_t size_bytes = 0;      // blocks × block size
  bool needs_recovery = false;  // journal holds unreplayed transactions: not quiesced
};

// Reads `length` bytes at `offset` of the volume into `buffer`.
using VolumeReadFn = std::function<Status(uint64_t offset, uint64_t length, char* buffer)>;

// The ext2/3/4 filesystems of a volume of `volume_size` bytes, in on-disk table order. Ranges
// past the end of the volume are skipped; errors of `read` are returned.
StatusOr<std::vector<Ext4Info>> ProbeExt4(uint64_t volume_size, const VolumeReadFn& read);

// The same over a BlockSource.
StatusOr<std::vector<Ext4Info>> ProbeExt4(BlockSource& source);

// The superblock offset (in the filesystem) and the needs_recovery flag, for tests and tools.
inline constexpr uint64_t kExt4SuperblockOffset = 1024;
inline constexpr uint32_t kExt4IncompatRecover = 0x4;

}  // namespace sp::block
