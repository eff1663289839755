#include "repo/internal/chunk_codec.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <zstd.h>

#include <cstring>
#include <memory>

namespace sp::repo::internal {
namespace {

constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;

absl::string_view AsView(const std::array<uint8_t, 32>& key) {
  return absl::string_view(reinterpret_cast<const char*>(key.data()), key.size());
}

struct CipherContextDeleter {
  void operator()(EVP_CIPHER_CTX* context) const { EVP_CIPHER_CTX_free(context); }
};
using CipherContext = std::unique_ptr<EVP_CIPHER_CTX, CipherContextDeleter>;

unsigned char* Bytes(std::string& text) { return reinterpret_cast<unsigned char*>(text.data()); }
const unsigned char* Bytes(absl::string_view text) {
  return reinterpret_cast<const unsigned char*>(text.data());
}

// Encrypts `plain`; returns nonce || ciphertext || tag. `aad` is authenticated, not encrypted.
StatusOr<std::string> Seal(const ChunkKeys& keys, absl::string_view aad, absl::string_view plain) {
  std::string out(kNonceSize + plain.size() + kTagSize, '\0');
  if (RAND_bytes(Bytes(out), kNonceSize) != 1) return absl::InternalError("RAND_bytes failed");
  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  bool ok = context != nullptr &&
            EVP_EncryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, keys.data_key.data(),
                               Bytes(out)) == 1 &&
            EVP_EncryptUpdate(context.get(), nullptr, &length, Bytes(aad),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_EncryptUpdate(context.get(), Bytes(out) + kNonceSize, &length, Bytes(plain),
                              static_cast<int>(plain.size())) == 1 &&
            EVP_EncryptFinal_ex(context.get(), Bytes(out) + kNonceSize + length, &length) == 1 &&
            EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_GET_TAG, kTagSize,
                                Bytes(out) + kNonceSize + plain.size()) == 1;
  if (!ok) return absl::InternalError("AES-256-GCM encryption failed");
  return out;
}

StatusOr<std::string> Open(const ChunkKeys& keys, absl::string_view aad, absl::string_view sealed) {
  if (sealed.size() < kNonceSize + kTagSize) return absl::DataLossError("sealed chunk too short");
  size_t cipher_size = sealed.size() - kNonceSize - kTagSize;
  std::string plain(cipher_size, '\0');
  std::string tag(sealed.substr(kNonceSize + cipher_size));
  CipherContext context(EVP_CIPHER_CTX_new());
  int length = 0;
  bool ok = context != nullptr &&
            EVP_DecryptInit_ex(context.get(), EVP_aes_256_gcm(), nullptr, keys.data_key.data(),
                               Bytes(sealed)) == 1 &&
            EVP_DecryptUpdate(context.get(), nullptr, &length, Bytes(aad),
                              static_cast<int>(aad.size())) == 1 &&
            EVP_DecryptUpdate(context.get(), Bytes(plain), &length, Bytes(sealed) + kNonceSize,
                              static_cast<int>(cipher_size)) == 1 &&
            EVP_CIPHER_CTX_ctrl(context.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(context.get(), Bytes(plain) + length, &length) == 1;
  if (!ok) return absl::DataLossError("chunk failed authentication (wrong key or corrupted)");
  return plain;
}

struct CompressContextDeleter {
  void operator()(ZSTD_CCtx* context) const { ZSTD_freeCCtx(context); }
};
struct DecompressContextDeleter {
  void operator()(ZSTD_DCtx* context) const { ZSTD_freeDCtx(context); }
};

ZSTD_CCtx* ThreadCompressContext() {
  thread_local std::unique_ptr<ZSTD_CCtx, CompressContextDeleter> context(ZSTD_createCCtx());
  return context.get();
}
ZSTD_DCtx* ThreadDecompressContext() {
  thread_local std::unique_ptr<ZSTD_DCtx, DecompressContextDeleter> context(ZSTD_createDCtx());
  return context.get();
}

// A buffer of this thread's, at least `size` bytes, kept for its next use: compressing into it
// costs no allocation and no zero-filling of megabytes per chunk.
char* ThreadBuffer(size_t size) {
  thread_local std::unique_ptr<char[]> buffer;
  thread_local size_t capacity = 0;
  if (capacity < size) {
    buffer = std::make_unique_for_overwrite<char[]>(size);
    capacity = size;
  }
  return buffer.get();
}

// Whether `plain` (a chunk of at least kProbeMinimum bytes) looks incompressible: a sample of
// kProbeSlices slices spread over it does not shrink by 3 %. Random or already compressed data
// (media, archives, encrypted files) then costs a sample's compression instead of the whole
// chunk's; a chunk whose sample misses its compressible parts is stored raw, as it reads.
constexpr size_t kProbeMinimum = 1u << 20;
constexpr size_t kProbeSlices = 4;
constexpr size_t kProbeSlice = 16u << 10;

bool LooksIncompressible(absl::string_view plain, int level) {
  if (plain.size() < kProbeMinimum) return false;
  char* sample =
      ThreadBuffer(kProbeSlices * kProbeSlice + ZSTD_compressBound(kProbeSlices * kProbeSlice));
  for (size_t i = 0; i < kProbeSlices; ++i) {
    size_t at = (plain.size() / kProbeSlices) * i;
    std::memcpy(sample + i * kProbeSlice, plain.data() + at, kProbeSlice);
  }
  const size_t sample_size = kProbeSlices * kProbeSlice;
  char* out = sample + sample_size;
  size_t size = ZSTD_compressCCtx(ThreadCompressContext(), out, ZSTD_compressBound(sample_size),
                                  sample, sample_size, level);
  return !ZSTD_isError(size) && size * 100 > sample_size * 97;
}

// The compressed form of `plain`, or nullopt when it would not be smaller (or looks so).
std::optional<std::string> Compress(absl::string_view plain, int level) {
  if (LooksIncompressible(plain, level)) return std::nullopt;
  size_t bound = ZSTD_compressBound(plain.size());
  char* out = ThreadBuffer(bound);
  size_t size =
      ZSTD_compressCCtx(ThreadCompressContext(), out, bound, plain.data(), plain.size(), level);
  if (ZSTD_isError(size) || size >= plain.size()) return std::nullopt;
  return std::string(out, size);
}

}  // namespace

Digest HmacSha256(absl::string_view key, absl::string_view data) {
  Digest digest;
  unsigned int length = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), Bytes(data), data.size(),
       digest.data(), &length);
  return digest;
}

Digest ChunkCodec::Id(absl::string_view plaintext) const {
  if (keys_) return HmacSha256(AsView(keys_->id_key), plaintext);
  return Sha256(plaintext);
}

StatusOr<std::string> ChunkCodec::Encode(const Digest& id, absl::string_view plaintext) const {
  ChunkHeader header;
  header.id = id;
  header.plain_size = static_cast<uint32_t>(plaintext.size());
  std::optional<std::string> compressed;
  if (level_ != 0) compressed = Compress(plaintext, level_);
  header.codec = compressed ? Codec::kZstd : Codec::kRaw;
  absl::string_view body = compressed ? absl::string_view(*compressed) : plaintext;
  std::string sealed;
  if (keys_) {
    header.cipher = Cipher::kAes256Gcm;
    header.payload_size = static_cast<uint32_t>(body.size() + kNonceSize + kTagSize);
    SP_ASSIGN_OR_RETURN(sealed, Seal(*keys_, EncodeChunkHeader(header), body));
    body = sealed;
  }
  header.payload_size = static_cast<uint32_t>(body.size());
  std::string object = EncodeChunkHeader(header);
  object.append(body.data(), body.size());
  return object;
}

StatusOr<std::string> ChunkCodec::Decode(absl::string_view object,
                                         const Digest& expected_id) const {
  if (object.size() < kChunkHeaderSize) return absl::DataLossError("chunk object truncated");
  return DecodeParts(object.substr(0, kChunkHeaderSize),
                     std::string(object.substr(kChunkHeaderSize)), expected_id);
}

StatusOr<std::string> ChunkCodec::ReadAndDecode(const RandomAccessFile& file,
                                                const Digest& expected_id) const {
  char header[kChunkHeaderSize];
  SP_ASSIGN_OR_RETURN(uint64_t size, file.Size());
  SP_ASSIGN_OR_RETURN(size_t got, file.Read(0, sizeof(header), header));
  if (got != sizeof(header) || size < kChunkHeaderSize) {
    return absl::DataLossError("chunk object truncated");
  }
  std::string payload(size - kChunkHeaderSize, '\0');
  SP_ASSIGN_OR_RETURN(got, file.Read(kChunkHeaderSize, payload.size(), payload.data()));
  if (got != payload.size()) return absl::DataLossError("chunk object truncated");
  return DecodeParts(absl::string_view(header, sizeof(header)), std::move(payload), expected_id);
}

StatusOr<std::string> ChunkCodec::DecodeParts(absl::string_view header_bytes, std::string payload,
                                              const Digest& expected_id) const {
  SP_ASSIGN_OR_RETURN(ChunkHeader header, DecodeChunkHeader(header_bytes, payload.size()));
  if (header.id != expected_id) return absl::DataLossError("chunk object holds another chunk id");
  if (header.cipher == Cipher::kAes256Gcm) {
    if (!keys_) return absl::DataLossError("chunk is encrypted but the repository is not");
    SP_ASSIGN_OR_RETURN(payload, Open(*keys_, header_bytes, payload));
  } else if (keys_) {
    return absl::DataLossError("chunk is not encrypted in an encrypted repository");
  }
  std::string plain;
  if (header.codec == Codec::kZstd) {
    plain.resize(header.plain_size);
    size_t size = ZSTD_decompressDCtx(ThreadDecompressContext(), plain.data(), plain.size(),
                                      payload.data(), payload.size());
    if (ZSTD_isError(size) || size != header.plain_size) {
      return absl::DataLossError("chunk does not decompress");
    }
  } else {
    if (payload.size() != header.plain_size) return absl::DataLossError("raw chunk has wrong size");
    plain = std::move(payload);
  }
  if (Id(plain) != expected_id) return absl::DataLossError("chunk checksum mismatch");
  return plain;
}

}  // namespace sp::repo::internal
