// Turns chunk plaintext into stored chunk objects and back: id (SHA-256, or HMAC-SHA-256 with
// the repository's id key when encrypted), zstd compression kept only when it shrinks the chunk,
// AES-256-GCM when encrypted. Decoding always re-derives the id from the plaintext, so a stored
// object can never yield wrong data silently.
#pragma once

#include <array>
#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "platform/file_system.h"
#include "platform/status.h"
#include "repo/internal/format.h"

namespace sp::repo::internal {

// Keys derived from the repository's master key (see docs/repository-format.md).
struct ChunkKeys {
  std::array<uint8_t, 32> id_key{};
  std::array<uint8_t, 32> data_key{};
};

class ChunkCodec {
 public:
  // `compression_level` 0 disables compression; `keys` present = encrypted repository.
  ChunkCodec(int compression_level, std::optional<ChunkKeys> keys)
      : level_(compression_level), keys_(keys) {}

  // The chunk id of `plaintext`.
  Digest Id(absl::string_view plaintext) const;
  // The stored object for `plaintext` whose id is `id`. Thread-safe.
  StatusOr<std::string> Encode(const Digest& id, absl::string_view plaintext) const;
  // The plaintext in `object`, checked against `expected_id`: DataLoss on any mismatch.
  // Thread-safe.
  StatusOr<std::string> Decode(absl::string_view object, const Digest& expected_id) const;
  // Like Decode, reading the object from `file`; a raw chunk is read straight into the result.
  StatusOr<std::string> ReadAndDecode(const RandomAccessFile& file,
                                      const Digest& expected_id) const;

  bool encrypted() const { return keys_.has_value(); }

 private:
  StatusOr<std::string> DecodeParts(absl::string_view header_bytes, std::string payload,
                                    const Digest& expected_id) const;

  int level_;
  std::optional<ChunkKeys> keys_;
};

// HMAC-SHA-256 of `data` under `key`.
Digest HmacSha256(absl::string_view key, absl::string_view data);

}  // namespace sp::repo::internal
