// Secrets of users and scripts: Argon2id password hashes (memory-hard; libargon2) and 256-bit
// random tokens of which only SHA-256 digests are stored, so the catalog never holds a usable
// secret.
#pragma once

#include <string>

#include "platform/status.h"

namespace sp::app {

// Argon2id hash of `password` in the PHC string form ($argon2id$v=19$m=...,t=...,p=...$salt$hash).
StatusOr<std::string> HashPassword(const std::string& password);
// Whether `password` matches `encoded`; false for a malformed hash.
bool VerifyPassword(const std::string& password, const std::string& encoded);
// A new secret: 32 random bytes as 64 hex digits, with `prefix` in front ("spt_" for tokens).
std::string NewSecret(const std::string& prefix);
// Hex SHA-256 of `secret`: what the catalog keeps of tokens and sessions.
std::string SecretDigest(const std::string& secret);
// InvalidArgument unless `password` is 12 to 1024 bytes.
Status CheckPasswordStrength(const std::string& password);

}  // namespace sp::app
