#include "restore/export.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_join.h"
#include "block/block_source.h"
#include "block/stream.h"
#include "platform/clock.h"
#include "platform/file_system.h"
#include "platform/files.h"
#include "platform/process.h"
#include "platform/unix_socket.h"

namespace sp::restore {
namespace {

using nlohmann::json;

Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("export manifest: ", what));
}

// Names of volumes and image files: a plain name, nothing that could leave the directory.
bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 128 || name[0] == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_' && c != '.') {
      return false;
    }
  }
  return true;
}

bool IsHex64(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c)) ||
        absl::ascii_isupper(static_cast<unsigned char>(c))) {
      return false;
    }
  }
  return true;
}

StatusOr<std::string> StringField(const json& object, const char* key, bool required) {
  auto it = object.find(key);
  if (it == object.end()) {
    if (required) return Bad(absl::StrCat("'", key, "' is missing"));
    return std::string();
  }
  if (!it->is_string()) return Bad(absl::StrCat("'", key, "' must be a string"));
  return it->get<std::string>();
}

StatusOr<uint64_t> UnsignedField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return Bad(absl::StrCat("'", key, "' is missing"));
  if (!it->is_number_unsigned()) {
    return Bad(absl::StrCat("'", key, "' must be a non-negative integer"));
  }
  return it->get<uint64_t>();
}

StatusOr<int64_t> IntegerField(const json& object, const char* key) {
  auto it = object.find(key);
  if (it == object.end()) return int64_t{0};
  if (!it->is_number_integer()) return Bad(absl::StrCat("'", key, "' must be an integer"));
  return it->get<int64_t>();
}

StatusOr<ExportVolume> ParseVolume(const json& entry) {
  if (!entry.is_object()) return Bad("every entry of 'volumes' must be an object");
  ExportVolume volume;
  SP_ASSIGN_OR_RETURN(volume.name, StringField(entry, "name", true));
  SP_ASSIGN_OR_RETURN(volume.file, StringField(entry, "file", true));
  SP_ASSIGN_OR_RETURN(std::string format, StringField(entry, "format", true));
  SP_ASSIGN_OR_RETURN(volume.size, UnsignedField(entry, "size"));
  SP_ASSIGN_OR_RETURN(volume.file_bytes, UnsignedField(entry, "file_bytes"));
  SP_ASSIGN_OR_RETURN(volume.sha256, StringField(entry, "sha256", true));
  if (!PlainName(volume.name)) return Bad(absl::StrCat("bad volume name '", volume.name, "'"));
  if (!PlainName(volume.file) || volume.file == kExportManifestFile) {
    return Bad(absl::StrCat("volume '", volume.name, "': file '", volume.file,
                            "' is not a plain file name inside the export directory"));
  }
  auto parsed = ParseImageFormat(format);
  if (!parsed.ok())
    return Bad(absl::StrCat("volume '", volume.name, "': ", parsed.status().message()));
  volume.format = *parsed;
  if (volume.size == 0) return Bad(absl::StrCat("volume '", volume.name, "': size 0"));
  if (!IsHex64(volume.sha256)) {
    return Bad(absl::StrCat("volume '", volume.name, "': sha256 must be 64 lower-case hex digits"));
  }
  auto boot = entry.find("boot");
  if (boot != entry.end()) {
    if (!boot->is_boolean())
      return Bad(absl::StrCat("volume '", volume.name, "': 'boot' must be true or false"));
    volume.boot = boot->get<bool>();
  }
  return volume;
}

// The point's description: "point_description" (required) in version 2, the free-form "extras"
// (which may be absent or lack any field) in version 1. Anyone may have written it: a field that
// is wrong is InvalidArgument, like the rest of the manifest.
StatusOr<repo::PointDescription> ParseDescription(const json& root, int version) {
  bool v1 = version == 1;
  const char* key = v1 ? "extras" : "point_description";
  auto found = root.find(key);
  if (found == root.end()) {
    if (!v1) return Bad("'point_description' is missing");
    return repo::PointDescription{};
  }
  auto description = repo::DecodePointDescription(
      *found, v1 ? "export manifest: extras" : "export manifest: point description",
      v1 ? repo::DescriptionLayout::kVersion1Extras : repo::DescriptionLayout::kCurrent);
  if (!description.ok()) return absl::InvalidArgumentError(description.status().message());
  return description;
}

StatusOr<ExportManifest> ParseObject(const json& root) {
  if (!root.is_object()) return Bad("not a JSON object");
  SP_ASSIGN_OR_RETURN(std::string format, StringField(root, "format", true));
  if (format != kExportFormatName) {
    return Bad(absl::StrCat("format is '", format, "', not '", kExportFormatName, "'"));
  }
  auto version = root.find("version");
  if (version == root.end() || !version->is_number_integer()) {
    return Bad("'version' must be an integer");
  }
  ExportManifest manifest;
  int64_t number = version->get<int64_t>();
  if (number < kOldestExportFormatVersion || number > kExportFormatVersion) {
    return absl::FailedPreconditionError(absl::StrCat(
        "export manifest: format version ", number, " is not one this stillpoint reads (",
        kOldestExportFormatVersion, " to ", kExportFormatVersion, ")",
        number > kExportFormatVersion
            ? "; it was written by a newer stillpoint: upgrade to import it"
            : ""));
  }
  manifest.version = static_cast<int>(number);
  SP_ASSIGN_OR_RETURN(manifest.point_id, StringField(root, "point_id", true));
  SP_ASSIGN_OR_RETURN(manifest.vm_id, StringField(root, "vm_id", true));
  SP_ASSIGN_OR_RETURN(manifest.vm_name, StringField(root, "vm_name", true));
  SP_ASSIGN_OR_RETURN(manifest.name, StringField(root, "name", false));
  SP_ASSIGN_OR_RETURN(manifest.description, StringField(root, "description", false));
  SP_ASSIGN_OR_RETURN(manifest.created_micros, IntegerField(root, "created_micros"));
  SP_ASSIGN_OR_RETURN(manifest.exported_micros, IntegerField(root, "exported_micros"));
  if (manifest.vm_id.empty()) return Bad("'vm_id' is empty");
  SP_ASSIGN_OR_RETURN(manifest.point_description, ParseDescription(root, manifest.version));
  auto volumes = root.find("volumes");
  if (volumes == root.end() || !volumes->is_array() || volumes->empty()) {
    return Bad("'volumes' must be a non-empty array");
  }
  std::set<std::string> names, files;
  for (const json& entry : *volumes) {
    SP_ASSIGN_OR_RETURN(ExportVolume volume, ParseVolume(entry));
    if (!names.insert(volume.name).second)
      return Bad(absl::StrCat("volume '", volume.name, "' twice"));
    if (!files.insert(volume.file).second)
      return Bad(absl::StrCat("file '", volume.file, "' twice"));
    manifest.volumes.push_back(std::move(volume));
  }
  return manifest;
}

// The filesystems ("/data (ext4)") the guest had mounted on each volume, as recorded at capture.
std::map<std::string, std::vector<std::string>> MountsByVolume(
    const repo::PointDescription& recorded) {
  std::map<std::string, std::vector<std::string>> mounts;
  for (const repo::PointFilesystem& fs : recorded.guest_filesystems) {
    std::string label = absl::StrCat(fs.mountpoint, " (", fs.type, ")");
    for (const std::string& volume : fs.volumes) mounts[volume].push_back(label);
  }
  return mounts;
}

// `qemu-img info` of an image about to be imported: its format and virtual size must be the
// manifest's, and it must stand alone (a backing or external data file could point anywhere).
Status CheckImage(const std::string& path, const ExportVolume& volume) {
  SP_ASSIGN_OR_RETURN(std::string text, RunCommandOk({"qemu-img", "info", "--output=json", "-f",
                                                      ImageFormatName(volume.format), path},
                                                     Deadline::In(Millis(60'000))));
  json info = json::parse(text, nullptr, false);
  std::string what = absl::StrCat("volume '", volume.name, "' (", volume.file, ")");
  if (!info.is_object() || !info.contains("virtual-size") ||
      !info["virtual-size"].is_number_unsigned()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": qemu-img cannot read it"));
  }
  if (info.contains("backing-filename") || info.contains("full-backing-filename")) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": has a backing file; an export's images must stand alone"));
  }
  const json specific = info.value("format-specific", json::object());
  if (specific.is_object() && specific.value("data", json::object()).is_object() &&
      specific.value("data", json::object()).contains("data-file")) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": has an external data file"));
  }
  uint64_t virtual_size = info["virtual-size"].get<uint64_t>();
  if (virtual_size != volume.size) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": virtual size ", virtual_size,
                                                   " bytes, the manifest says ", volume.size));
  }
  return absl::OkStatus();
}

// Every check of the directory's files against the manifest.
Status CheckFiles(const std::string& dir, const ExportManifest& manifest) {
  SP_ASSIGN_OR_RETURN(std::vector<std::string> entries, FileSystem::Posix()->ListDir(dir));
  std::set<std::string> expected = {kExportManifestFile};
  for (const ExportVolume& volume : manifest.volumes) expected.insert(volume.file);
  for (const std::string& entry : entries) {
    if (expected.count(entry) == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("export ", dir, ": file '", entry,
                       "' is not listed in the manifest; refusing an export "
                       "with extra files"));
    }
  }
  for (const ExportVolume& volume : manifest.volumes) {
    std::string path = dir + "/" + volume.file;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
      return absl::NotFoundError(absl::StrCat("export ", dir, ": image '", volume.file,
                                              "' of volume '", volume.name, "' is missing"));
    }
    if (!S_ISREG(st.st_mode)) {
      return absl::InvalidArgumentError(
          absl::StrCat("export ", dir, ": '", volume.file, "' is not a regular file"));
    }
    if (static_cast<uint64_t>(st.st_size) != volume.file_bytes) {
      return absl::DataLossError(absl::StrCat(
          "export ", dir, ": image '", volume.file, "' has ", st.st_size,
          " bytes, the manifest says ", volume.file_bytes,
          static_cast<uint64_t>(st.st_size) < volume.file_bytes ? " (truncated)" : ""));
    }
    SP_ASSIGN_OR_RETURN(FileDigest digest, HashFile(path));
    if (digest.sha256 != volume.sha256) {
      return absl::DataLossError(absl::StrCat(
          "export ", dir, ": image '", volume.file, "' does not match its checksum (sha256 ",
          digest.sha256, ", the manifest says ", volume.sha256, ")"));
    }
    SP_RETURN_IF_ERROR(CheckImage(path, volume));
  }
  return absl::OkStatus();
}

// The manifest of the export in `dir`, which must be a regular file there: a symlink could make
// import read (and add) whatever it points to, anywhere on this host.
StatusOr<std::string> ReadManifestFile(const std::string& dir) {
  std::string path = dir + "/" + kExportManifestFile;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  struct stat st {};
  if (!fd.valid() && errno == ELOOP)
    st.st_mode = S_IFLNK;
  else if (!fd.valid())
    return ErrnoStatus(errno, absl::StrCat("open ", path));
  else if (::fstat(fd.get(), &st) != 0)
    return ErrnoStatus(errno, absl::StrCat("stat ", path));
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(
        absl::StrCat("export ", dir, ": '", kExportManifestFile, "' is not a regular file (",
                     S_ISLNK(st.st_mode) ? "a symbolic link" : "a special file",
                     "); refusing it: copy the real manifest into the export directory"));
  }
  if (static_cast<uint64_t>(st.st_size) > kMaxExportManifestBytes) {
    return Bad("larger than 16 MiB");
  }
  std::string text(static_cast<size_t>(st.st_size), '\0');
  ssize_t got = ::pread(fd.get(), text.data(), text.size(), 0);
  if (got < 0) return ErrnoStatus(errno, absl::StrCat("read ", path));
  text.resize(static_cast<size_t>(got));
  return text;
}

Status ImportVolume(repo::RecoveryPointWriter& writer, const std::string& path,
                    const ExportVolume& volume, uint32_t chunk_size) {
  block::ConnectOptions options;
  options.label = absl::StrCat("imported volume '", volume.name, "'");
  SP_ASSIGN_OR_RETURN(auto source, block::OpenImage(path, ImageFormatName(volume.format), options));
  if (source->size() != volume.size) {
    return absl::InvalidArgumentError(absl::StrCat(options.label, ": size ", source->size(),
                                                   ", the manifest says ", volume.size));
  }
  SP_ASSIGN_OR_RETURN(repo::VolumeWriter * target, writer.AddVolume(volume.name, volume.size));
  SP_RETURN_IF_ERROR(
      block::StreamVolume(*source, chunk_size, block::StreamOptions{},
                          [&](uint64_t index, block::ChunkKind kind, std::string data) -> Status {
                            if (kind == block::ChunkKind::kData) {
                              return target->PutChunk(index, std::move(data));
                            }
                            return target->PutZero(index);
                          })
          .status());
  return absl::OkStatus();
}

}  // namespace

std::string EncodeExportManifest(const ExportManifest& manifest) {
  json volumes = json::array();
  for (const ExportVolume& volume : manifest.volumes) {
    volumes.push_back({{"name", volume.name},
                       {"file", volume.file},
                       {"format", ImageFormatName(volume.format)},
                       {"size", volume.size},
                       {"file_bytes", volume.file_bytes},
                       {"sha256", volume.sha256},
                       {"boot", volume.boot}});
  }
  json root = {{"format", kExportFormatName},
               {"version", kExportFormatVersion},
               {"point_id", manifest.point_id},
               {"vm_id", manifest.vm_id},
               {"vm_name", manifest.vm_name},
               {"name", manifest.name},
               {"description", manifest.description},
               {"created_micros", manifest.created_micros},
               {"exported_micros", manifest.exported_micros},
               {"volumes", volumes},
               {"point_description", repo::EncodePointDescription(manifest.point_description)}};
  return root.dump(2) + "\n";
}

StatusOr<ExportManifest> ParseExportManifest(absl::string_view text) {
  if (text.size() > kMaxExportManifestBytes) return Bad("larger than 16 MiB");
  json root = json::parse(text.begin(), text.end(), nullptr, false);
  if (root.is_discarded()) return Bad("not valid JSON");
  try {
    return ParseObject(root);
  } catch (const json::exception& error) {
    return Bad(error.what());
  }
}

std::vector<std::string> LeftOutVolumes(const repo::PointDescription& recorded,
                                        const std::vector<std::string>& selected,
                                        absl::string_view target) {
  std::set<std::string> chosen(selected.begin(), selected.end());
  std::map<std::string, std::vector<std::string>> mounts = MountsByVolume(recorded);
  std::vector<std::string> names;  // the VM's volumes, then any other that held a filesystem
  if (recorded.vm) {
    for (const repo::PointVmVolume& volume : recorded.vm->volumes) names.push_back(volume.name);
  }
  for (const auto& [name, labels] : mounts) {
    if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
  }
  std::vector<std::string> warnings;
  for (const std::string& name : names) {
    if (chosen.count(name) > 0) continue;
    auto mounted = mounts.find(name);
    warnings.push_back(mounted == mounts.end()
                           ? absl::StrCat("volume '", name, "' of the VM is not in ", target,
                                          ": a VM made from it has no such disk")
                           : absl::StrCat("volume '", name, "' held ",
                                          absl::StrJoin(mounted->second, ", "),
                                          ", which the guest had mounted, and is not in ", target,
                                          ": a VM made from it may not boot cleanly"));
  }
  return warnings;
}

StatusOr<unsigned> ParseExportMode(absl::string_view text) {
  unsigned mode = 0;
  bool octal = !text.empty() && text.size() <= 4 &&
               text.find_first_not_of("01234567") == absl::string_view::npos;
  for (char digit : text) mode = mode * 8 + static_cast<unsigned>(digit - '0');
  if (!octal || mode > 0777) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--mode '", text, "' is not a file mode; write it in octal, e.g. 0600 or 0640"));
  }
  if ((mode & 0600) != 0600 || (mode & 0111) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("--mode '", text,
                     "': the owner must be able to read and write the files and nobody may "
                     "execute them; e.g. 0600 (owner only), 0640 (and the group may read)"));
  }
  return mode;
}

StatusOr<ExportResult> ExportPoint(repo::Repository& repo, const ExportRequest& request) {
  SP_ASSIGN_OR_RETURN(repo::Manifest point, repo.GetRecoveryPoint(request.point_id));
  std::vector<std::string> selected = request.volumes;
  if (selected.empty()) {
    for (const repo::ManifestVolume& volume : point.volumes) selected.push_back(volume.name);
  }
  std::string dir = AbsolutePath(request.dir);
  std::string manifest_path = dir + "/" + kExportManifestFile;
  if (PathExists(manifest_path)) {
    return absl::AlreadyExistsError(absl::StrCat(dir, " already holds an export"));
  }
  SP_RETURN_IF_ERROR(MakeDirs(dir, DirModeFor(request.file_mode)));
  ExportResult result;
  result.warnings = LeftOutVolumes(point.point_description, selected, "the export");
  ExportManifest& manifest = result.manifest;
  manifest.point_id = point.id;
  manifest.vm_id = point.vm_id;
  manifest.vm_name = point.vm_name;
  manifest.name = point.name;
  manifest.description = point.description;
  manifest.created_micros = point.created_micros;
  manifest.exported_micros = Clock::Real()->UnixMicros();
  manifest.point_description = point.point_description;
  std::set<std::string> seen;
  for (const std::string& name : selected) {
    if (!seen.insert(name).second) continue;
    const repo::ManifestVolume* volume = point.FindVolume(name);
    if (volume == nullptr) {
      return absl::NotFoundError(
          absl::StrCat("recovery point ", point.id, " has no volume '", name, "'"));
    }
    ExportVolume entry;
    entry.name = name;
    entry.format = request.format;
    entry.file = absl::StrCat(name, ".", ImageFormatName(request.format));
    entry.size = volume->size;
    const repo::PointVolume* recorded = point.point_description.FindVolume(name);
    entry.boot = recorded != nullptr && recorded->boot;
    std::string path = dir + "/" + entry.file;
    SP_RETURN_IF_ERROR(
        MaterializeVolume(repo, point.id, name, path, request.format, nullptr, request.file_mode)
            .status());
    SP_ASSIGN_OR_RETURN(FileDigest digest, HashFile(path));
    entry.sha256 = digest.sha256;
    entry.file_bytes = digest.size;
    manifest.volumes.push_back(entry);
  }
  SP_RETURN_IF_ERROR(
      WriteFileAtomic(manifest_path, EncodeExportManifest(manifest), request.file_mode));
  return result;
}

StatusOr<ImportResult> ImportPoint(repo::Repository& repo, const std::string& dir_given) {
  std::string dir = AbsolutePath(dir_given);
  SP_ASSIGN_OR_RETURN(std::string text, ReadManifestFile(dir));
  ImportResult result;
  auto parsed = ParseExportManifest(text);
  if (!parsed.ok()) return Annotate(parsed.status(), absl::StrCat("export ", dir));
  result.manifest = *parsed;
  SP_RETURN_IF_ERROR(CheckFiles(dir, result.manifest));
  repo::RecoveryPointRequest request;
  request.vm = {result.manifest.vm_id, result.manifest.vm_name};
  request.name = result.manifest.name;
  request.description = result.manifest.description;
  for (const ExportVolume& volume : result.manifest.volumes) request.estimated_bytes += volume.size;
  SP_ASSIGN_OR_RETURN(auto writer, repo.BeginRecoveryPoint(request));
  for (const ExportVolume& volume : result.manifest.volumes) {
    Status imported =
        ImportVolume(*writer, dir + "/" + volume.file, volume, repo.config().chunk_size);
    if (!imported.ok()) {
      writer->Abort();
      return imported;
    }
  }
  repo::PointDescription description = result.manifest.point_description;
  description.imported = repo::PointImport{dir, result.manifest.point_id,
                                           FormatUnixMicros(result.manifest.created_micros),
                                           FormatUnixMicros(Clock::Real()->UnixMicros())};
  SP_ASSIGN_OR_RETURN(result.point, writer->Commit(description));
  result.point_id = result.point.id;
  return result;
}

}  // namespace sp::restore
