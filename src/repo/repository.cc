#include "repo/repository.h"

#include <fcntl.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "platform/clock.h"
#include "platform/files.h"
#include "repo/internal/chunk_codec.h"
#include "repo/internal/layout.h"

namespace sp::repo {

using nlohmann::json;

namespace internal {

std::string VmLockName(absl::string_view vm_id) {
  Digest digest = Sha256(vm_id);
  return absl::StrCat("vm-", DigestHex(digest).substr(0, 16), ".lock");
}

bool IsTempName(absl::string_view name) { return name.find(".tmp.") != absl::string_view::npos; }

std::string NewPointId(int64_t unix_micros) {
  time_t seconds = static_cast<time_t>(unix_micros / 1000000);
  struct tm parts {};
  gmtime_r(&seconds, &parts);
  char stamp[32];
  strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &parts);
  uint32_t random = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof(random));
  return absl::StrFormat("%s-%08x", stamp, random);
}

bool IsPointId(absl::string_view id) {
  return !id.empty() && id.size() <= 64 && id[0] != '.' &&
         id.find_first_not_of("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-_") ==
             absl::string_view::npos;
}

}  // namespace internal

namespace {

constexpr char kKeyCheckText[] = "stillpoint key check";

std::string ConfigChecksum(const json& body) { return DigestHex(Sha256(body.dump())); }

std::string EncodeConfig(const RepositoryConfig& config) {
  json body = {{"format", "stillpoint-repository"},
               {"version", config.version},
               {"id", config.id},
               {"chunk_size", config.chunk_size},
               {"compression", config.CompressionText()},
               {"encryption", config.EncryptionText()},
               {"key_check", config.key_check},
               {"created_us", config.created_micros}};
  body["checksum"] = ConfigChecksum(body);
  return body.dump(2) + "\n";
}

StatusOr<RepositoryConfig> DecodeConfig(const std::string& path, absl::string_view text) {
  json body = json::parse(text.begin(), text.end(), nullptr, false);
  if (body.is_discarded() || !body.is_object() || !body.contains("format") ||
      body["format"] != "stillpoint-repository") {
    return absl::FailedPreconditionError(absl::StrCat(path, " is not a stillpoint repository"));
  }
  try {
    RepositoryConfig config;
    config.version = body.at("version").get<int>();
    if (config.version < kOldestFormatVersion || config.version > kFormatVersion) {
      return absl::FailedPreconditionError(absl::StrCat(
          "repository ", path, " has format version ", config.version,
          "; this stillpoint reads versions ", kOldestFormatVersion, " to ", kFormatVersion,
          config.version > kFormatVersion ? ". It was written by a newer stillpoint: use that"
                                          : ". Use a matching stillpoint"));
    }
    std::string stored = body.at("checksum").get<std::string>();
    body.erase("checksum");
    if (ConfigChecksum(body) != stored) {
      return absl::DataLossError(absl::StrCat("repository config ", path, ": checksum mismatch"));
    }
    config.id = body.at("id").get<std::string>();
    config.chunk_size = body.at("chunk_size").get<uint32_t>();
    SP_ASSIGN_OR_RETURN(config.compression_level,
                        ParseCompression(body.at("compression").get<std::string>()));
    std::string encryption = body.at("encryption").get<std::string>();
    if (encryption != "none" && encryption != "aes-256-gcm") {
      return absl::FailedPreconditionError(
          absl::StrCat("repository ", path, " uses unknown encryption '", encryption, "'"));
    }
    config.encrypted = encryption == "aes-256-gcm";
    config.key_check = body.at("key_check").get<std::string>();
    config.created_micros = body.at("created_us").get<int64_t>();
    if (config.chunk_size < kMinChunkSize || config.chunk_size > kMaxChunkSize) {
      return absl::DataLossError(absl::StrCat("repository config ", path, ": bad chunk size"));
    }
    return config;
  } catch (const std::exception& error) {
    return absl::DataLossError(absl::StrCat("repository config ", path, ": ", error.what()));
  }
}

// Reads the master key (64 hex digits) from `key_file` on `fs`, creating the file with a new
// random key (owner-only) when `create` and it does not exist. The key is written beside the file
// and renamed into place, never over an existing one: a half-written key file is never there to
// be read, and a key another process created at the same moment is used, not replaced.
StatusOr<std::string> LoadMasterKey(FileSystem* fs, const std::string& key_file, bool create) {
  if (key_file.empty()) {
    return absl::FailedPreconditionError(
        "the repository is encrypted: give its key file with --key-file FILE or "
        "$STILLPOINT_KEY_FILE");
  }
  if (create && !fs->Exists(key_file)) {
    unsigned char key[32];
    if (RAND_bytes(key, sizeof(key)) != 1) return absl::InternalError("RAND_bytes failed");
    std::string hex =
        absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(key), sizeof(key)));
    Status created = fs->CreateFileDurably(key_file, hex + "\n");
    if (!created.ok() && !absl::IsAlreadyExists(created)) {
      return Annotate(created, absl::StrCat("create key file ", key_file));
    }
  }
  if (auto info = fs->Stat(key_file); info.ok()) {
    SP_RETURN_IF_ERROR(RefuseWritableByOthers(key_file, info->mode, "key file"));
    // Whoever can read the key can read every recovery point (as ssh refuses an open key).
    if ((info->mode & 0044u) != 0) {
      return absl::FailedPreconditionError(absl::StrFormat(
          "key file %s is readable by others than its owner (mode %04o): whoever can read it can "
          "read every recovery point; run `chmod 600 %s`",
          key_file, info->mode & 07777u, key_file));
    }
  }
  auto text = fs->ReadWholeFile(key_file);
  if (!text.ok()) return Annotate(text.status(), "read key file");
  absl::string_view hex = absl::StripAsciiWhitespace(*text);
  if (hex.size() != 64 || hex.find_first_not_of("0123456789abcdefABCDEF") != hex.npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("key file ", key_file, " must hold 64 hex digits (a 256-bit key)"));
  }
  return absl::HexStringToBytes(hex);
}

internal::ChunkKeys DeriveKeys(absl::string_view master) {
  internal::ChunkKeys keys;
  keys.id_key = internal::HmacSha256(master, "stillpoint chunk id");
  keys.data_key = internal::HmacSha256(master, "stillpoint chunk data");
  return keys;
}

std::string KeyCheck(absl::string_view master) {
  return DigestHex(internal::HmacSha256(master, kKeyCheckText));
}

// A repository that group or others can write is not the owner's alone to trust.
Status CheckRepositoryModes(FileSystem* fs, const std::string& path) {
  SP_ASSIGN_OR_RETURN(FileInfo dir, fs->Stat(path));
  SP_RETURN_IF_ERROR(RefuseWritableByOthers(path, dir.mode, "repository directory"));
  std::string config_path = JoinPath(path, internal::kConfigFile);
  SP_ASSIGN_OR_RETURN(FileInfo config, fs->Stat(config_path));
  return RefuseWritableByOthers(config_path, config.mode, "repository config");
}

Status CreateLayout(FileSystem* fs, const std::string& path) {
  for (const char* dir : {internal::kChunksDir, internal::kPointsDir, internal::kPendingDir,
                          internal::kLocksDir, internal::kGcDir, internal::kTrashDir}) {
    SP_RETURN_IF_ERROR(fs->CreateDir(JoinPath(path, dir)));
  }
  std::string chunks = JoinPath(path, internal::kChunksDir);
  for (int fan = 0; fan < 256; ++fan) {
    SP_RETURN_IF_ERROR(fs->CreateDir(JoinPath(chunks, absl::StrFormat("%02x", fan))));
  }
  SP_RETURN_IF_ERROR(fs->SyncDir(chunks));
  SP_RETURN_IF_ERROR(fs->SyncDir(JoinPath(path, internal::kGcDir)));
  return fs->SyncDir(path);
}

}  // namespace

StatusOr<int> ParseCompression(absl::string_view text) {
  if (text == "none") return 0;
  if (text == "zstd") return 3;
  int level = 0;
  if (absl::ConsumePrefix(&text, "zstd:") && absl::SimpleAtoi(text, &level) && level >= 1 &&
      level <= 19) {
    return level;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("compression '", text, "' is not one of: none, zstd, zstd:LEVEL (1..19)"));
}

std::string RepositoryConfig::CompressionText() const {
  return compression_level == 0 ? "none" : absl::StrCat("zstd:", compression_level);
}
std::string RepositoryConfig::EncryptionText() const { return encrypted ? "aes-256-gcm" : "none"; }

Status Repository::Init(const std::string& path, const InitOptions& options) {
  FileSystem* fs = options.fs;
  if (options.chunk_size < kMinChunkSize || options.chunk_size > kMaxChunkSize ||
      (options.chunk_size & (options.chunk_size - 1)) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk size ", options.chunk_size, " must be a power of two from 1M to 16M"));
  }
  if (fs->Exists(JoinPath(path, internal::kConfigFile))) {
    return absl::AlreadyExistsError(absl::StrCat("a repository already exists in ", path));
  }
  SP_RETURN_IF_ERROR(fs->CreateDirs(path));
  SP_ASSIGN_OR_RETURN(auto entries, fs->ListDir(path));
  if (!entries.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(path, " is not empty: choose an empty or new directory for the repository"));
  }
  RepositoryConfig config;
  Digest random_id;
  RAND_bytes(random_id.data(), static_cast<int>(random_id.size()));
  config.id = DigestHex(random_id).substr(0, 32);
  config.chunk_size = options.chunk_size;
  config.compression_level = options.compression_level;
  config.encrypted = options.encrypted;
  config.created_micros = options.clock->UnixMicros();
  if (options.encrypted) {
    SP_ASSIGN_OR_RETURN(std::string master, LoadMasterKey(fs, options.key_file, /*create=*/true));
    config.key_check = KeyCheck(master);
  }
  SP_RETURN_IF_ERROR(CreateLayout(fs, path));
  // The config is written last: a directory without it is not a repository.
  return fs->WriteFileDurably(JoinPath(path, internal::kConfigFile), EncodeConfig(config));
}

StatusOr<bool> Repository::InitAtomically(const std::string& path, const InitOptions& options) {
  FileSystem* fs = options.fs;
  uint64_t random = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&random), sizeof(random));
  std::string staging = absl::StrFormat("%s.new-%d-%016x", path, ::getpid(), random);
  auto remove_staging = absl::MakeCleanup([&] { fs->DeleteTree(staging).IgnoreError(); });
  SP_RETURN_IF_ERROR(Init(staging, options));
  Status renamed = fs->Rename(staging, path);
  if (!renamed.ok()) {
    // Renaming a directory onto a non-empty one fails: the first one in place wins.
    if (fs->Exists(JoinPath(path, internal::kConfigFile))) return false;
    return Annotate(renamed, absl::StrCat("creating repository ", path));
  }
  std::move(remove_staging).Cancel();
  SP_RETURN_IF_ERROR(fs->SyncDir(DirName(path)));
  return true;
}

StatusOr<std::unique_ptr<Repository>> Repository::Open(const std::string& path,
                                                       const OpenOptions& options) {
  std::string config_path = JoinPath(path, internal::kConfigFile);
  auto text = options.fs->ReadWholeFile(config_path);
  if (absl::IsNotFound(text.status())) {
    return absl::NotFoundError(absl::StrCat("no repository in ", path,
                                            ": create one with `stillpoint repo init ", path, "`"));
  }
  if (!text.ok()) return text.status();
  SP_RETURN_IF_ERROR(CheckRepositoryModes(options.fs, path));
  SP_ASSIGN_OR_RETURN(RepositoryConfig config, DecodeConfig(config_path, *text));
  std::optional<internal::ChunkKeys> keys;
  if (config.encrypted) {
    SP_ASSIGN_OR_RETURN(std::string master,
                        LoadMasterKey(options.fs, options.key_file, /*create=*/false));
    if (KeyCheck(master) != config.key_check) {
      return absl::FailedPreconditionError(
          absl::StrCat("the key in ", options.key_file, " is not the key of repository ", path));
    }
    keys = DeriveKeys(master);
  }
  auto codec = std::make_unique<internal::ChunkCodec>(config.compression_level, keys);
  return std::unique_ptr<Repository>(
      new Repository(path, options, std::move(config), std::move(codec)));
}

Repository::Repository(std::string path, OpenOptions options, RepositoryConfig config,
                       std::unique_ptr<internal::ChunkCodec> codec)
    : path_(std::move(path)),
      options_(std::move(options)),
      config_(std::move(config)),
      codec_(std::move(codec)) {}

Repository::~Repository() = default;

std::string Repository::ChunkPath(const Digest& id) const {
  std::string hex = DigestHex(id);
  return absl::StrCat(path_, "/", internal::kChunksDir, "/", hex.substr(0, 2), "/", hex);
}

std::string Repository::PointDir(absl::string_view id) const {
  return absl::StrCat(path_, "/", internal::kPointsDir, "/", id);
}

StatusOr<internal::VolumeIndex> Repository::LoadIndex(const Manifest& manifest,
                                                      const ManifestVolume& volume) {
  std::string index_path = JoinPath(PointDir(manifest.id), volume.index_file);
  auto bytes = fs()->ReadWholeFile(index_path);
  if (!bytes.ok()) {
    return absl::DataLossError(absl::StrCat("recovery point ", manifest.id, ", volume '",
                                            volume.name, "': index: ", bytes.status().message()));
  }
  if (Sha256(*bytes) != volume.index_sha256) {
    return absl::DataLossError(absl::StrCat("recovery point ", manifest.id, ", volume '",
                                            volume.name, "': index checksum mismatch"));
  }
  auto index = internal::DecodeIndex(*bytes);
  if (!index.ok()) {
    return Annotate(index.status(),
                    absl::StrCat("recovery point ", manifest.id, ", volume '", volume.name, "'"));
  }
  if (index->volume_size != volume.size || index->chunk_size != manifest.chunk_size) {
    return absl::DataLossError(absl::StrCat("recovery point ", manifest.id, ", volume '",
                                            volume.name, "': index does not match the manifest"));
  }
  return index;
}

StatusOr<std::vector<Manifest>> Repository::ListRecoveryPoints() {
  SP_ASSIGN_OR_RETURN(auto names, fs()->ListDir(JoinPath(path_, internal::kPointsDir)));
  std::vector<Manifest> points;
  for (const std::string& name : names) {
    auto text = fs()->ReadWholeFile(JoinPath(PointDir(name), internal::kManifestFile));
    if (!text.ok()) continue;  // in progress, interrupted, or being deleted
    auto manifest = DecodeManifest(*text);
    if (manifest.ok() && manifest->id == name) points.push_back(*std::move(manifest));
  }
  std::sort(points.begin(), points.end(), [](const Manifest& a, const Manifest& b) {
    return a.created_micros != b.created_micros ? a.created_micros < b.created_micros : a.id < b.id;
  });
  return points;
}

StatusOr<std::string> Repository::ResolveId(absl::string_view id_or_prefix) {
  if (!internal::IsPointId(id_or_prefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", id_or_prefix, "' is not a recovery point id"));
  }
  if (fs()->Exists(JoinPath(PointDir(id_or_prefix), internal::kManifestFile))) {
    return std::string(id_or_prefix);
  }
  SP_ASSIGN_OR_RETURN(auto names, fs()->ListDir(JoinPath(path_, internal::kPointsDir)));
  std::vector<std::string> matches;
  for (const std::string& name : names) {
    if (absl::StartsWith(name, id_or_prefix) &&
        fs()->Exists(JoinPath(PointDir(name), internal::kManifestFile))) {
      matches.push_back(name);
    }
  }
  if (matches.empty()) {
    return absl::NotFoundError(absl::StrCat("no recovery point ", id_or_prefix,
                                            " (list them with `stillpoint snapshot list`)"));
  }
  if (matches.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat("recovery point id prefix ", id_or_prefix,
                                                   " is ambiguous: give more of the id"));
  }
  return matches.front();
}

StatusOr<Manifest> Repository::GetRecoveryPoint(absl::string_view id) {
  SP_ASSIGN_OR_RETURN(std::string full_id, ResolveId(id));
  SP_ASSIGN_OR_RETURN(std::string text,
                      fs()->ReadWholeFile(JoinPath(PointDir(full_id), internal::kManifestFile)));
  auto manifest = DecodeManifest(text);
  if (!manifest.ok()) return Annotate(manifest.status(), absl::StrCat("recovery point ", full_id));
  return manifest;
}

Status Repository::UpgradeFormat() {
  std::lock_guard<std::mutex> lock(upgrade_mutex_);
  if (config_.version >= kFormatVersion) return absl::OkStatus();
  RepositoryConfig upgraded = config_;
  upgraded.version = kFormatVersion;
  // Another writer may do the same at once: both write the same bytes.
  SP_RETURN_IF_ERROR(
      fs()->WriteFileDurably(JoinPath(path_, internal::kConfigFile), EncodeConfig(upgraded)));
  config_.version = kFormatVersion;
  return absl::OkStatus();
}

Status Repository::DeleteRecoveryPoint(absl::string_view id) {
  SP_ASSIGN_OR_RETURN(std::string full_id, ResolveId(id));
  std::string dir = PointDir(full_id);
  // Removing the manifest first makes the point disappear at once and atomically.
  SP_RETURN_IF_ERROR(fs()->DeleteFile(JoinPath(dir, internal::kManifestFile)));
  SP_RETURN_IF_ERROR(fs()->SyncDir(dir));
  SP_ASSIGN_OR_RETURN(auto names, fs()->ListDir(dir));
  for (const std::string& name : names) SP_RETURN_IF_ERROR(fs()->DeleteFile(JoinPath(dir, name)));
  SP_RETURN_IF_ERROR(fs()->DeleteDir(dir));
  return fs()->SyncDir(JoinPath(path_, internal::kPointsDir));
}

}  // namespace sp::repo
