// Binary encodings of the repository's objects: chunk object headers and volume indexes, plus
// the digest type they share. docs/repository-format.md is the normative description; keep the
// two in step. Decoders take untrusted bytes (fuzzed) and return DataLoss for anything malformed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "platform/status.h"

namespace sp::repo {

// A chunk id or a content checksum: SHA-256 (or HMAC-SHA-256 when encrypted).
using Digest = std::array<uint8_t, 32>;

// All zero bytes: the id that stands for an all-zero chunk (never stored).
inline constexpr Digest kZeroDigest{};

std::string DigestHex(const Digest& digest);
// InvalidArgument unless `hex` is 64 hex digits.
StatusOr<Digest> ParseDigestHex(absl::string_view hex);
Digest Sha256(absl::string_view data);
bool IsAllZero(absl::string_view data);

}  // namespace sp::repo

namespace sp::repo::internal {

inline constexpr char kChunkMagic[4] = {'S', 'P', 'C', 'K'};
inline constexpr size_t kChunkHeaderSize = 48;
inline constexpr uint8_t kChunkVersion = 1;

enum class Codec : uint8_t { kRaw = 0, kZstd = 1 };
enum class Cipher : uint8_t { kNone = 0, kAes256Gcm = 1 };

struct ChunkHeader {
  Codec codec = Codec::kRaw;
  Cipher cipher = Cipher::kNone;
  uint32_t plain_size = 0;    // bytes of plaintext
  uint32_t payload_size = 0;  // bytes that follow the header
  Digest id{};                // the chunk id: digest of the plaintext
};

std::string EncodeChunkHeader(const ChunkHeader& header);
// Decodes the header at the start of `object` and checks that the payload size matches.
StatusOr<ChunkHeader> DecodeChunkHeader(absl::string_view object);
// Decodes a header alone (kChunkHeaderSize bytes) and checks it announces `payload_size` bytes.
StatusOr<ChunkHeader> DecodeChunkHeader(absl::string_view header, uint64_t payload_size);

inline constexpr char kIndexMagic[4] = {'S', 'P', 'I', 'X'};
// Version 1: chunk ids only. Version 2: a sub-chunk size and sub-chunk overrides (composites).
inline constexpr uint32_t kIndexVersion = 2;
inline constexpr uint32_t kOldestIndexVersion = 1;
inline constexpr size_t kIndexHeaderSize = 32;    // version 1
inline constexpr size_t kIndexHeaderSizeV2 = 40;  // version 2: + the override count
inline constexpr size_t kIndexOverrideSize = 48;
// The sub-chunk size this stillpoint writes, and the bounds a version-2 index must keep.
inline constexpr uint32_t kSubChunkSize = 64u << 10;
inline constexpr uint32_t kMinSubChunkSize = 4096;
inline constexpr uint32_t kMaxSubChunksPerChunk = 256;

// Bytes [sub × sub_chunk_size, (sub + 1) × sub_chunk_size) of chunk `chunk` (cut short at the
// chunk's end) are those of the sub-chunk object `id` (kZeroDigest: zeros), whatever the base
// chunk holds there.
struct SubChunkOverride {
  uint64_t chunk = 0;
  uint32_t sub = 0;
  Digest id{};
  bool operator==(const SubChunkOverride&) const = default;
};

// One volume's index: per chunk position a base id (kZeroDigest: all zeros) and, in version 2,
// overrides of some of its sub-chunks. A position with overrides is a *composite*: its bytes are
// the base's with every override applied.
struct VolumeIndex {
  uint32_t chunk_size = 0;
  uint64_t volume_size = 0;
  std::vector<Digest> chunks;  // base ids in position order
  uint32_t version = kIndexVersion;
  uint32_t sub_chunk_size = kSubChunkSize;  // version 2 only (0 in version 1)
  // Sorted by (chunk, sub), no two alike; empty in version 1.
  std::vector<SubChunkOverride> overrides;

  // The overrides of chunk `index`, as [first, last) into `overrides`.
  std::pair<size_t, size_t> OverridesOf(uint64_t index) const;
  // True when chunk `index` is all zeros: a zero base and no override.
  bool IsZero(uint64_t index) const;
  // Bytes of chunk `index` (the last may be short) and of its sub-chunk `sub` there.
  uint64_t ChunkLength(uint64_t index) const;
  uint64_t SubChunkLength(uint64_t index, uint32_t sub) const;
  // Number of sub-chunks of chunk `index`.
  uint32_t SubChunkCount(uint64_t index) const;
};

// Number of chunks of a volume of `size` bytes cut into `chunk_size` pieces.
uint64_t ChunkCount(uint64_t size, uint32_t chunk_size);

// Encodes `index` in its `version` (2: with the sub-chunk size and the overrides).
// REQUIRES: a version-1 index has no overrides.
std::string EncodeIndex(const VolumeIndex& index);
// DataLoss when `bytes` is not a well-formed index of a known version (bad magic, version, counts,
// sub-chunk size, override order or position, or checksum).
StatusOr<VolumeIndex> DecodeIndex(absl::string_view bytes);

void PutLittle32(std::string* out, uint32_t value);
void PutLittle64(std::string* out, uint64_t value);
uint32_t GetLittle32(const char* in);
uint64_t GetLittle64(const char* in);

}  // namespace sp::repo::internal
