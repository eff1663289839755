// The service's TLS identity: the configured certificate and key, or a self-signed pair generated
// once (EC P-256, SHA-256, ten years, for localhost and 127.0.0.1 and this host's name) and kept
// in the state directory, the key 0600. Clients pin it by its SHA-256 fingerprint, which the
// service prints and logs at start.
#pragma once

#include <string>

#include "platform/status.h"

namespace sp::server {

struct TlsIdentity {
  std::string certificate_path;
  std::string key_path;
  std::string fingerprint;  // SHA-256 of the DER certificate, "AB:CD:..." (95 characters)
  bool generated = false;   // made by this call
};

// Uses `certificate_path` / `key_path` when given (both must be readable PEM files and the key
// must match the certificate: InvalidArgument otherwise). Otherwise uses, or creates, the pair
// cert.pem / key.pem in `dir`. The key file must not be readable by group or others
// (FailedPrecondition naming the file).
StatusOr<TlsIdentity> LoadOrCreateTlsIdentity(const std::string& certificate_path,
                                              const std::string& key_path, const std::string& dir);

// The SHA-256 fingerprint of the PEM certificate in `pem`, "AB:CD:...". InvalidArgument when it
// is not a certificate.
StatusOr<std::string> CertificateFingerprint(const std::string& pem);

}  // namespace sp::server
