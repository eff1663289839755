#include "repo/internal/format.h"

#include <openssl/sha.h>

#include <algorithm>
#include <cstring>
#include <tuple>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "platform/check.h"

namespace sp::repo {

std::string DigestHex(const Digest& digest) {
  return absl::BytesToHexString(
      absl::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

StatusOr<Digest> ParseDigestHex(absl::string_view hex) {
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdef") != absl::string_view::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", hex, "' is not a chunk id (64 hex digits)"));
  }
  std::string bytes = absl::HexStringToBytes(hex);
  Digest digest;
  std::memcpy(digest.data(), bytes.data(), digest.size());
  return digest;
}

Digest Sha256(absl::string_view data) {
  Digest digest;
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), digest.data());
  return digest;
}

bool IsAllZero(absl::string_view data) {
  // Compare word-wise against the first word, then the tail.
  const char* bytes = data.data();
  size_t size = data.size();
  size_t i = 0;
  for (; i + sizeof(uint64_t) <= size; i += sizeof(uint64_t)) {
    uint64_t word;
    std::memcpy(&word, bytes + i, sizeof(word));
    if (word != 0) return false;
  }
  for (; i < size; ++i) {
    if (bytes[i] != 0) return false;
  }
  return true;
}

}  // namespace sp::repo

namespace sp::repo::internal {

void PutLittle32(std::string* out, uint32_t value) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
void PutLittle64(std::string* out, uint64_t value) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((value >> (8 * i)) & 0xff));
}
uint32_t GetLittle32(const char* in) {
  uint32_t value = 0;
  for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}
uint64_t GetLittle64(const char* in) {
  uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(in[i]);
  return value;
}

std::string EncodeChunkHeader(const ChunkHeader& header) {
  std::string out(kChunkMagic, sizeof(kChunkMagic));
  out.push_back(static_cast<char>(kChunkVersion));
  out.push_back(static_cast<char>(header.codec));
  out.push_back(static_cast<char>(header.cipher));
  out.push_back('\0');
  PutLittle32(&out, header.plain_size);
  PutLittle32(&out, header.payload_size);
  out.append(reinterpret_cast<const char*>(header.id.data()), header.id.size());
  return out;
}

StatusOr<ChunkHeader> DecodeChunkHeader(absl::string_view object) {
  if (object.size() < kChunkHeaderSize || std::memcmp(object.data(), kChunkMagic, 4) != 0) {
    return absl::DataLossError("not a chunk object (bad magic or truncated header)");
  }
  if (static_cast<uint8_t>(object[4]) != kChunkVersion) {
    return absl::DataLossError(absl::StrCat("chunk object version ",
                                            static_cast<int>(static_cast<uint8_t>(object[4])),
                                            " is not known"));
  }
  ChunkHeader header;
  auto codec = static_cast<uint8_t>(object[5]);
  auto cipher = static_cast<uint8_t>(object[6]);
  if (codec > 1 || cipher > 1) return absl::DataLossError("chunk object: unknown codec or cipher");
  header.codec = static_cast<Codec>(codec);
  header.cipher = static_cast<Cipher>(cipher);
  header.plain_size = GetLittle32(object.data() + 8);
  header.payload_size = GetLittle32(object.data() + 12);
  std::memcpy(header.id.data(), object.data() + 16, header.id.size());
  if (object.size() - kChunkHeaderSize != header.payload_size) {
    return absl::DataLossError(absl::StrCat("chunk object: payload is ",
                                            object.size() - kChunkHeaderSize,
                                            " bytes, header says ", header.payload_size));
  }
  return header;
}

StatusOr<ChunkHeader> DecodeChunkHeader(absl::string_view header, uint64_t payload_size) {
  if (header.size() != kChunkHeaderSize) return absl::DataLossError("chunk header truncated");
  ChunkHeader decoded;
  absl::string_view probe = header;
  if (std::memcmp(probe.data(), kChunkMagic, 4) != 0 ||
      static_cast<uint8_t>(probe[4]) != kChunkVersion || static_cast<uint8_t>(probe[5]) > 1 ||
      static_cast<uint8_t>(probe[6]) > 1) {
    return absl::DataLossError("not a chunk object of a known version (bad header)");
  }
  decoded.codec = static_cast<Codec>(probe[5]);
  decoded.cipher = static_cast<Cipher>(probe[6]);
  decoded.plain_size = GetLittle32(probe.data() + 8);
  decoded.payload_size = GetLittle32(probe.data() + 12);
  std::memcpy(decoded.id.data(), probe.data() + 16, decoded.id.size());
  if (decoded.payload_size != payload_size) {
    return absl::DataLossError(absl::StrCat("chunk object: payload is ", payload_size,
                                            " bytes, header says ", decoded.payload_size));
  }
  return decoded;
}

uint64_t ChunkCount(uint64_t size, uint32_t chunk_size) {
  if (chunk_size == 0) return 0;
  return size / chunk_size + (size % chunk_size != 0 ? 1 : 0);  // no overflow near 2^64
}

std::pair<size_t, size_t> VolumeIndex::OverridesOf(uint64_t index) const {
  auto before = [](const SubChunkOverride& entry, uint64_t chunk) { return entry.chunk < chunk; };
  auto first = std::lower_bound(overrides.begin(), overrides.end(), index, before);
  auto last = std::lower_bound(first, overrides.end(), index + 1, before);
  return {static_cast<size_t>(first - overrides.begin()),
          static_cast<size_t>(last - overrides.begin())};
}

bool VolumeIndex::IsZero(uint64_t index) const {
  if (index >= chunks.size() || chunks[index] != kZeroDigest) return false;
  auto [first, last] = OverridesOf(index);
  return first == last;
}

uint64_t VolumeIndex::ChunkLength(uint64_t index) const {
  return std::min<uint64_t>(chunk_size, volume_size - index * chunk_size);
}

uint64_t VolumeIndex::SubChunkLength(uint64_t index, uint32_t sub) const {
  uint64_t begin = static_cast<uint64_t>(sub) * sub_chunk_size;
  return std::min<uint64_t>(sub_chunk_size, ChunkLength(index) - begin);
}

uint32_t VolumeIndex::SubChunkCount(uint64_t index) const {
  if (sub_chunk_size == 0) return 0;
  uint64_t length = ChunkLength(index);
  return static_cast<uint32_t>(length / sub_chunk_size + (length % sub_chunk_size != 0 ? 1 : 0));
}

namespace {

void AppendDigest(std::string* out, const Digest& id) {
  out->append(reinterpret_cast<const char*>(id.data()), id.size());
}

Digest DigestAt(const char* in) {
  Digest id;
  std::memcpy(id.data(), in, id.size());
  return id;
}

// A version-2 sub-chunk size: a power of two from 4 KiB up to the chunk size, at most 256 of
// them to a chunk.
bool GoodSubChunkSize(uint32_t sub_chunk_size, uint32_t chunk_size) {
  return sub_chunk_size >= kMinSubChunkSize && (sub_chunk_size & (sub_chunk_size - 1)) == 0 &&
         sub_chunk_size <= chunk_size && chunk_size % sub_chunk_size == 0 &&
         chunk_size / sub_chunk_size <= kMaxSubChunksPerChunk;
}

// Reads the overrides of a version-2 index (`count` records at `next`) into `index`, checking
// that each names a sub-chunk of the volume and that they are in order.
Status DecodeOverrides(const char* next, uint64_t count, VolumeIndex& index) {
  index.overrides.reserve(count);
  for (uint64_t i = 0; i < count; ++i, next += kIndexOverrideSize) {
    SubChunkOverride entry;
    entry.chunk = GetLittle64(next);
    entry.sub = GetLittle32(next + 8);
    entry.id = DigestAt(next + 16);
    if (entry.chunk >= index.chunks.size() || entry.sub >= index.SubChunkCount(entry.chunk) ||
        GetLittle32(next + 12) != 0) {
      return absl::DataLossError(
          absl::StrCat("volume index: override ", i, " names no sub-chunk of the volume"));
    }
    if (!index.overrides.empty()) {
      const SubChunkOverride& last = index.overrides.back();
      if (std::tie(last.chunk, last.sub) >= std::tie(entry.chunk, entry.sub)) {
        return absl::DataLossError(
            absl::StrCat("volume index: override ", i, " is out of order or repeated"));
      }
    }
    index.overrides.push_back(entry);
  }
  return absl::OkStatus();
}

}  // namespace

std::string EncodeIndex(const VolumeIndex& index) {
  SP_CHECK(index.version == 2 || index.overrides.empty());  // version 1 has no overrides
  std::string out(kIndexMagic, sizeof(kIndexMagic));
  PutLittle32(&out, index.version);
  PutLittle32(&out, index.chunk_size);
  PutLittle32(&out, index.version == 1 ? 0 : index.sub_chunk_size);
  PutLittle64(&out, index.volume_size);
  PutLittle64(&out, index.chunks.size());
  if (index.version != 1) PutLittle64(&out, index.overrides.size());
  out.reserve(out.size() + index.chunks.size() * sizeof(Digest) +
              index.overrides.size() * kIndexOverrideSize + sizeof(Digest));
  for (const Digest& id : index.chunks) AppendDigest(&out, id);
  for (const SubChunkOverride& entry : index.overrides) {
    PutLittle64(&out, entry.chunk);
    PutLittle32(&out, entry.sub);
    PutLittle32(&out, 0);
    AppendDigest(&out, entry.id);
  }
  Digest checksum = Sha256(out);
  AppendDigest(&out, checksum);
  return out;
}

StatusOr<VolumeIndex> DecodeIndex(absl::string_view bytes) {
  if (bytes.size() < kIndexHeaderSize + sizeof(Digest) ||
      std::memcmp(bytes.data(), kIndexMagic, 4) != 0) {
    return absl::DataLossError("not a volume index (bad magic or truncated)");
  }
  VolumeIndex index;
  index.version = GetLittle32(bytes.data() + 4);
  if (index.version < kOldestIndexVersion || index.version > kIndexVersion) {
    return absl::DataLossError(absl::StrCat("volume index version ", index.version,
                                            " is not known (this stillpoint reads versions ",
                                            kOldestIndexVersion, " to ", kIndexVersion, ")"));
  }
  size_t header_size = index.version == 1 ? kIndexHeaderSize : kIndexHeaderSizeV2;
  if (bytes.size() < header_size + sizeof(Digest)) {
    return absl::DataLossError("volume index truncated");
  }
  absl::string_view body = bytes.substr(0, bytes.size() - sizeof(Digest));
  Digest checksum = Sha256(body);
  if (std::memcmp(checksum.data(), bytes.data() + body.size(), checksum.size()) != 0) {
    return absl::DataLossError("volume index checksum mismatch");
  }
  index.chunk_size = GetLittle32(bytes.data() + 8);
  index.sub_chunk_size = GetLittle32(bytes.data() + 12);
  index.volume_size = GetLittle64(bytes.data() + 16);
  uint64_t count = GetLittle64(bytes.data() + 24);
  uint64_t override_count = index.version == 1 ? 0 : GetLittle64(bytes.data() + 32);
  uint64_t space = body.size() - header_size;
  if (index.chunk_size == 0 || count != ChunkCount(index.volume_size, index.chunk_size) ||
      count > space / sizeof(Digest)) {
    return absl::DataLossError("volume index: chunk count does not match the volume size");
  }
  uint64_t rest = space - count * sizeof(Digest);
  if (rest % kIndexOverrideSize != 0 || rest / kIndexOverrideSize != override_count) {
    return absl::DataLossError("volume index: size does not match its chunk and override counts");
  }
  if (index.version == 1 ? index.sub_chunk_size != 0
                         : !GoodSubChunkSize(index.sub_chunk_size, index.chunk_size)) {
    return absl::DataLossError(
        absl::StrCat("volume index: bad sub-chunk size ", index.sub_chunk_size));
  }
  index.chunks.resize(count);
  const char* next = body.data() + header_size;
  for (Digest& id : index.chunks) {
    id = DigestAt(next);
    next += id.size();
  }
  SP_RETURN_IF_ERROR(DecodeOverrides(next, override_count, index));
  return index;
}

}  // namespace sp::repo::internal
