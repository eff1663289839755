#include "block/fs_probe.h"

#include <set>

#include "absl/strings/str_format.h"

namespace sp::block {
namespace {

constexpr uint64_t kMbrSector = 512;
constexpr size_t kSuperblockSize = 1024;
constexpr int kMaxLogicalPartitions = 128;
constexpr uint32_t kMaxGptEntries = 1024;

uint64_t Le(const std::string& bytes, size_t at, int width) {
  uint64_t value = 0;
  for (int i = width - 1; i >= 0; --i) {
    value = (value << 8) | static_cast<unsigned char>(bytes[at + static_cast<size_t>(i)]);
  }
  return value;
}
uint16_t Le16(const std::string& bytes, size_t at) {
  return static_cast<uint16_t>(Le(bytes, at, 2));
}
uint32_t Le32(const std::string& bytes, size_t at) {
  return static_cast<uint32_t>(Le(bytes, at, 4));
}
uint64_t Le64(const std::string& bytes, size_t at) { return Le(bytes, at, 8); }

struct Candidate {
  uint64_t offset;
  std::string where;
};

class Prober {
 public:
  Prober(uint64_t size, const VolumeReadFn& read) : size_(size), read_(read) {}

  StatusOr<std::vector<Ext4Info>> Run() {
    SP_ASSIGN_OR_RETURN(bool bare, TryFilesystem({0, "whole volume"}));
    if (bare) return found_;
    SP_ASSIGN_OR_RETURN(std::vector<Candidate> candidates, GptCandidates());
    if (candidates.empty()) {
      SP_ASSIGN_OR_RETURN(candidates, MbrCandidates());
    }
    for (const Candidate& candidate : candidates) {
      SP_RETURN_IF_ERROR(TryFilesystem(candidate).status());
    }
    return found_;
  }

 private:
  bool Fits(uint64_t offset, uint64_t length) const {
    return offset <= size_ && length <= size_ - offset;
  }

  // The bytes at [offset, offset+length), or an empty string when they are past the end.
  StatusOr<std::string> Read(uint64_t offset, uint64_t length) {
    if (!Fits(offset, length)) return std::string();
    std::string bytes(length, '\0');
    SP_RETURN_IF_ERROR(read_(offset, length, bytes.data()));
    return bytes;
  }

  StatusOr<bool> TryFilesystem(const Candidate& candidate) {
    if (candidate.offset > UINT64_MAX - 2 * kSuperblockSize) return false;
    SP_ASSIGN_OR_RETURN(std::string super,
                        Read(candidate.offset + kExt4SuperblockOffset, kSuperblockSize));
    if (super.empty() || Le16(super, 0x38) != 0xEF53) return false;
    found_.push_back(Describe(super, candidate));
    return true;
  }

  static Ext4Info Describe(const std::string& super, const Candidate& candidate) {
    Ext4Info info;
    info.offset = candidate.offset;
    info.where = candidate.where;
    uint32_t compat = Le32(super, 0x5C);
    uint32_t incompat = Le32(super, 0x60);
    uint32_t ro_compat = Le32(super, 0x64);
    info.needs_recovery = (incompat & kExt4IncompatRecover) != 0;
    bool ext4 = (incompat & (0x40 | 0x80 | 0x200)) != 0 ||
                (ro_compat & (0x8 | 0x10 | 0x20 | 0x40 | 0x400)) != 0;
    info.kind = ext4 ? "ext4" : (compat & 0x4) != 0 ? "ext3" : "ext2";
    uint64_t blocks = Le32(super, 0x04);
    if ((incompat & 0x80) != 0) blocks |= static_cast<uint64_t>(Le32(super, 0x150)) << 32;
    uint32_t log_block = Le32(super, 0x18);
    if (log_block <= 6) {
      uint32_t shift = 10 + log_block;
      info.size_bytes = blocks > (UINT64_MAX >> shift) ? UINT64_MAX : blocks << shift;
    }
    const std::string uuid = super.substr(0x68, 16);
    for (size_t i = 0; i < uuid.size(); ++i) {
      if (i == 4 || i == 6 || i == 8 || i == 10) info.uuid += '-';
      info.uuid += absl::StrFormat("%02x", static_cast<unsigned char>(uuid[i]));
    }
    std::string label = super.substr(0x78, 16);
    info.label = label.substr(0, label.find('\0'));
    return info;
  }

  static bool IsExtended(unsigned type) { return type == 0x05 || type == 0x0F || type == 0x85; }

  StatusOr<std::vector<Candidate>> MbrCandidates() {
    std::vector<Candidate> out;
    SP_ASSIGN_OR_RETURN(std::string mbr, Read(0, kMbrSector));
    if (!HasBootSignature(mbr)) return out;
    bool extended_done = false;
    for (int i = 0; i < 4; ++i) {
      size_t entry = 446 + 16 * static_cast<size_t>(i);
      unsigned type = static_cast<unsigned char>(mbr[entry + 4]);
      uint64_t start = Le32(mbr, entry + 8);
      if (type == 0 || start == 0) continue;
      if (IsExtended(type)) {
        if (!extended_done) SP_RETURN_IF_ERROR(WalkExtended(start, out));
        extended_done = true;
        continue;
      }
      out.push_back({start * kMbrSector, absl::StrCat("MBR partition ", i + 1)});
    }
    return out;
  }

  static bool HasBootSignature(const std::string& sector) {
    return sector.size() == kMbrSector && static_cast<unsigned char>(sector[510]) == 0x55 &&
           static_cast<unsigned char>(sector[511]) == 0xAA;
  }

  // Follows the chain of extended boot records of the extended partition at `extended_start`.
  Status WalkExtended(uint64_t extended_start, std::vector<Candidate>& out) {
    std::set<uint64_t> seen;
    uint64_t ebr = extended_start;
    for (int number = 5; number < 5 + kMaxLogicalPartitions; ++number) {
      if (!seen.insert(ebr).second) break;
      SP_ASSIGN_OR_RETURN(std::string record, Read(ebr * kMbrSector, kMbrSector));
      if (!HasBootSignature(record)) break;
      uint64_t logical = Le32(record, 446 + 8);
      if (record[446 + 4] != 0 && logical != 0) {
        out.push_back(
            {(ebr + logical) * kMbrSector, absl::StrCat("MBR logical partition ", number)});
      }
      unsigned next_type = static_cast<unsigned char>(record[462 + 4]);
      uint64_t next = Le32(record, 462 + 8);
      if (!IsExtended(next_type) || next == 0) break;
      ebr = extended_start + next;
    }
    return absl::OkStatus();
  }

  StatusOr<std::vector<Candidate>> GptCandidates() {
    for (uint64_t sector : {uint64_t{512}, uint64_t{4096}}) {
      SP_ASSIGN_OR_RETURN(std::string header, Read(sector, 92));
      if (header.size() == 92 && header.compare(0, 8, "EFI PART") == 0) {
        return GptEntries(header, sector);
      }
    }
    return std::vector<Candidate>();
  }

  StatusOr<std::vector<Candidate>> GptEntries(const std::string& header, uint64_t sector) {
    std::vector<Candidate> out;
    uint64_t entries_lba = Le64(header, 0x48);
    uint32_t count = Le32(header, 0x50);
    uint32_t entry_size = Le32(header, 0x54);
    if (count > kMaxGptEntries || entry_size < 128 || entry_size > 4096) return out;
    if (entries_lba > UINT64_MAX / sector) return out;
    SP_ASSIGN_OR_RETURN(std::string table,
                        Read(entries_lba * sector, uint64_t{count} * entry_size));
    if (table.empty()) return out;
    for (uint32_t i = 0; i < count; ++i) {
      size_t entry = size_t{i} * entry_size;
      if (table.compare(entry, 16, std::string(16, '\0')) == 0) continue;  // unused
      uint64_t first_lba = Le64(table, entry + 0x20);
      if (first_lba == 0 || first_lba > UINT64_MAX / sector) continue;
      out.push_back({first_lba * sector, absl::StrCat("GPT partition ", i + 1)});
    }
    return out;
  }

  uint64_t size_;
  const VolumeReadFn& read_;
  std::vector<Ext4Info> found_;
};

}  // namespace

StatusOr<std::vector<Ext4Info>> ProbeExt4(uint64_t volume_size, const VolumeReadFn& read) {
  return Prober(volume_size, read).Run();
}

StatusOr<std::vector<Ext4Info>> ProbeExt4(BlockSource& source) {
  return ProbeExt4(source.size(), [&source](uint64_t offset, uint64_t length, char* buffer) {
    return source.ReadAt(offset, length, buffer);
  });
}

}  // namespace sp::block
