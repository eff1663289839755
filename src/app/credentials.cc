#include "app/credentials.h"

#include <argon2.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace sp::app {
namespace {

// Argon2id at the strength OWASP recommends for interactive sign-in (19 MiB, 2 passes).
constexpr uint32_t kArgonPasses = 2;
constexpr uint32_t kArgonMemoryKiB = 19 * 1024;
constexpr uint32_t kArgonLanes = 1;
constexpr size_t kSaltBytes = 16;
constexpr size_t kHashBytes = 32;

}  // namespace

StatusOr<std::string> HashPassword(const std::string& password) {
  unsigned char salt[kSaltBytes];
  if (RAND_bytes(salt, sizeof salt) != 1) return absl::InternalError("no random bytes for a salt");
  size_t length = argon2_encodedlen(kArgonPasses, kArgonMemoryKiB, kArgonLanes, kSaltBytes,
                                    kHashBytes, Argon2_id);
  std::string encoded(length, '\0');
  int result = argon2id_hash_encoded(kArgonPasses, kArgonMemoryKiB, kArgonLanes, password.data(),
                                     password.size(), salt, sizeof salt, kHashBytes, encoded.data(),
                                     encoded.size());
  if (result != ARGON2_OK) {
    return absl::InternalError(absl::StrCat("argon2id: ", argon2_error_message(result)));
  }
  encoded.resize(encoded.find('\0'));
  return encoded;
}

bool VerifyPassword(const std::string& password, const std::string& encoded) {
  if (!absl::StartsWith(encoded, "$argon2id$")) return false;
  return argon2id_verify(encoded.c_str(), password.data(), password.size()) == ARGON2_OK;
}

std::string NewSecret(const std::string& prefix) {
  unsigned char bytes[32];
  if (RAND_bytes(bytes, sizeof bytes) != 1) std::abort();  // no randomness: nothing is safe
  return prefix + absl::BytesToHexString(
                      absl::string_view(reinterpret_cast<const char*>(bytes), sizeof bytes));
}

std::string SecretDigest(const std::string& secret) {
  unsigned char digest[32];
  unsigned int size = 0;
  EVP_Digest(secret.data(), secret.size(), digest, &size, EVP_sha256(), nullptr);
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(digest), size));
}

Status CheckPasswordStrength(const std::string& password) {
  if (password.size() < 12 || password.size() > 1024) {
    return absl::InvalidArgumentError("a password must be 12 to 1024 characters long");
  }
  return absl::OkStatus();
}

}  // namespace sp::app
