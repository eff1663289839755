// Binary encodings of the repository's objects: chunk object headers and volume indexes, plus
// the digest type they share. docs/repository-format.md is the normative description; keep the
// two in step. Decoders take untrusted bytes (fuzzed) and return DataLoss for anything malformed.
#pragma once

#include <array>
#include <cstdint>
#include <string>
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
inline constexpr uint32_t kIndexVersion = 1;
inline constexpr size_t kIndexHeaderSize = 32;

// The chunk ids of one volume in order; kZeroDigest marks an all-zero chunk.
struct VolumeIndex {
  uint32_t chunk_size = 0;
  uint64_t volume_size = 0;
  std::vector<Digest> chunks;
};

// Number of chunks of a volume of `size` bytes cut into `chunk_size` pieces.
uint64_t ChunkCount(uint64_t size, uint32_t chunk_size);

std::string EncodeIndex(const VolumeIndex& index);
// DataLoss when `bytes` is not a well-formed index (bad magic, version, counts or checksum).
StatusOr<VolumeIndex> DecodeIndex(absl::string_view bytes);

void PutLittle32(std::string* out, uint32_t value);
void PutLittle64(std::string* out, uint64_t value);
uint32_t GetLittle32(const char* in);
uint64_t GetLittle64(const char* in);

}  // namespace sp::repo::internal
