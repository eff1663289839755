#include "server/tls.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "platform/files.h"

namespace sp::server {
namespace {

struct BioFree {
  void operator()(BIO* bio) const { BIO_free(bio); }
};
struct X509Free {
  void operator()(X509* x509) const { X509_free(x509); }
};
struct KeyFree {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using Bio = std::unique_ptr<BIO, BioFree>;
using Certificate = std::unique_ptr<X509, X509Free>;
using Key = std::unique_ptr<EVP_PKEY, KeyFree>;

// OpenSSL's reason for the last failure, with `what` in front.
Status OpenSslError(absl::string_view what) {
  unsigned long code = ERR_get_error();
  char text[256] = "unknown error";
  if (code != 0) ERR_error_string_n(code, text, sizeof text);
  ERR_clear_error();
  return absl::InternalError(absl::StrCat(what, ": ", text));
}

std::string CertificatePem(X509* certificate) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), certificate);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

std::string KeyPem(EVP_PKEY* key) {
  Bio bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(size));
}

Status AddExtension(X509* certificate, int nid, const std::string& value) {
  X509V3_CTX context;
  X509V3_set_ctx_nodb(&context);
  X509V3_set_ctx(&context, certificate, certificate, nullptr, nullptr, 0);
  X509_EXTENSION* extension = X509V3_EXT_conf_nid(nullptr, &context, nid, value.c_str());
  if (extension == nullptr) return OpenSslError("certificate extension " + value);
  X509_add_ext(certificate, extension, -1);
  X509_EXTENSION_free(extension);
  return absl::OkStatus();
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0 || name[0] == '\0') return "localhost";
  return name;
}

StatusOr<Certificate> SelfSigned(EVP_PKEY* key) {
  Certificate certificate(X509_new());
  X509_set_version(certificate.get(), 2);
  unsigned char serial[16];
  RAND_bytes(serial, sizeof serial);
  serial[0] &= 0x7f;  // a positive serial number
  BIGNUM* number = BN_bin2bn(serial, sizeof serial, nullptr);
  BN_to_ASN1_INTEGER(number, X509_get_serialNumber(certificate.get()));
  BN_free(number);
  X509_gmtime_adj(X509_getm_notBefore(certificate.get()), -3600);
  X509_gmtime_adj(X509_getm_notAfter(certificate.get()), 10L * 365 * 24 * 3600);
  X509_set_pubkey(certificate.get(), key);
  std::string host = HostName();
  X509_NAME* name = X509_get_subject_name(certificate.get());
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("stillpoint"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(host.c_str()), -1, -1, 0);
  X509_set_issuer_name(certificate.get(), name);
  SP_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_subject_alt_name,
                                  absl::StrCat("DNS:localhost,IP:127.0.0.1,IP:::1,DNS:", host)));
  SP_RETURN_IF_ERROR(AddExtension(certificate.get(), NID_basic_constraints, "critical,CA:FALSE"));
  if (X509_sign(certificate.get(), key, EVP_sha256()) == 0) {
    return OpenSslError("sign the certificate");
  }
  return certificate;
}

Status CreatePair(const std::string& certificate_path, const std::string& key_path) {
  Key key(EVP_EC_gen("P-256"));
  if (key == nullptr) return OpenSslError("generate a P-256 key");
  SP_ASSIGN_OR_RETURN(Certificate certificate, SelfSigned(key.get()));
  SP_RETURN_IF_ERROR(WriteFileAtomic(key_path, KeyPem(key.get()), 0600));
  return WriteFileAtomic(certificate_path, CertificatePem(certificate.get()), 0644);
}

StatusOr<Certificate> ParseCertificate(const std::string& pem) {
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Certificate certificate(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (certificate == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return certificate;
}

Status CheckKey(const std::string& key_path, const Certificate& certificate) {
  struct stat info {};
  if (::stat(key_path.c_str(), &info) != 0) return ErrnoStatus(errno, "TLS key " + key_path);
  if ((info.st_mode & 0077u) != 0) {
    return absl::FailedPreconditionError(
        absl::StrFormat("TLS key %s is readable by others (mode %04o); run `chmod 600 %s`",
                        key_path, info.st_mode & 07777u, key_path));
  }
  SP_ASSIGN_OR_RETURN(std::string pem, ReadFile(key_path));
  Bio bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Key key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (key == nullptr) {
    ERR_clear_error();
    return absl::InvalidArgumentError("TLS key " + key_path + " is not a PEM private key");
  }
  if (X509_check_private_key(certificate.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("TLS key " + key_path + " does not match the certificate");
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<std::string> CertificateFingerprint(const std::string& pem) {
  SP_ASSIGN_OR_RETURN(Certificate certificate, ParseCertificate(pem));
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int size = 0;
  if (X509_digest(certificate.get(), EVP_sha256(), digest, &size) != 1) {
    return OpenSslError("certificate digest");
  }
  std::string text;
  for (unsigned int i = 0; i < size; ++i) {
    absl::StrAppend(&text, i == 0 ? "" : ":", absl::StrFormat("%02X", digest[i]));
  }
  return text;
}

StatusOr<TlsIdentity> LoadOrCreateTlsIdentity(const std::string& certificate_path,
                                              const std::string& key_path, const std::string& dir) {
  TlsIdentity identity;
  identity.certificate_path = certificate_path;
  identity.key_path = key_path;
  if (certificate_path.empty()) {
    SP_RETURN_IF_ERROR(MakeDirs(dir, 0700));
    identity.certificate_path = dir + "/cert.pem";
    identity.key_path = dir + "/key.pem";
    if (!PathExists(identity.certificate_path) || !PathExists(identity.key_path)) {
      SP_RETURN_IF_ERROR(CreatePair(identity.certificate_path, identity.key_path));
      identity.generated = true;
    }
  }
  auto pem = ReadFile(identity.certificate_path);
  if (!pem.ok()) return Annotate(pem.status(), "TLS certificate " + identity.certificate_path);
  auto certificate = ParseCertificate(*pem);
  if (!certificate.ok()) {
    return Annotate(certificate.status(), "TLS certificate " + identity.certificate_path);
  }
  SP_RETURN_IF_ERROR(CheckKey(identity.key_path, *certificate));
  SP_ASSIGN_OR_RETURN(identity.fingerprint, CertificateFingerprint(*pem));
  return identity;
}

}  // namespace sp::server
