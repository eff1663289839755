#include "repo/manifest.h"

#include "platform/json_guard.h"

namespace sp::repo {
namespace {

using nlohmann::json;

json VolumeToJson(const ManifestVolume& volume) {
  return json{{"name", volume.name},
              {"size", volume.size},
              {"index_file", volume.index_file},
              {"index_sha256", DigestHex(volume.index_sha256)},
              {"chunks", volume.chunks},
              {"zero_chunks", volume.zero_chunks},
              {"new_chunks", volume.new_chunks},
              {"new_stored_bytes", volume.new_stored_bytes}};
}

json ManifestBody(const Manifest& manifest) {
  json volumes = json::array();
  for (const auto& volume : manifest.volumes) volumes.push_back(VolumeToJson(volume));
  return json{{"format", "stillpoint-manifest"},
              {"version", kManifestVersion},
              {"id", manifest.id},
              {"vm", {{"id", manifest.vm_id}, {"name", manifest.vm_name}}},
              {"name", manifest.name},
              {"description", manifest.description},
              {"parent", manifest.parent_id},
              {"created_us", manifest.created_micros},
              {"committed_us", manifest.committed_micros},
              {"chunk_size", manifest.chunk_size},
              {"volumes", volumes},
              {"point_description", EncodePointDescription(manifest.point_description)}};
}

std::string Checksum(const json& body) { return DigestHex(Sha256(body.dump())); }

Status ReadVolume(const JsonReader& in, ManifestVolume* volume) {
  SP_RETURN_IF_ERROR(in.Read("name", &volume->name));
  SP_RETURN_IF_ERROR(in.Read("size", &volume->size));
  SP_RETURN_IF_ERROR(in.Read("index_file", &volume->index_file));
  std::string digest;
  SP_RETURN_IF_ERROR(in.Read("index_sha256", &digest));
  auto parsed = ParseDigestHex(digest);
  if (!parsed.ok()) return in.Error("index_sha256", "is not 64 hex digits");
  volume->index_sha256 = *parsed;
  SP_RETURN_IF_ERROR(in.Read("chunks", &volume->chunks));
  SP_RETURN_IF_ERROR(in.Read("zero_chunks", &volume->zero_chunks));
  SP_RETURN_IF_ERROR(in.Read("new_chunks", &volume->new_chunks));
  return in.Read("new_stored_bytes", &volume->new_stored_bytes);
}

Status ReadVm(const JsonReader& in, Manifest* manifest) {
  SP_RETURN_IF_ERROR(in.Read("id", &manifest->vm_id));
  return in.Read("name", &manifest->vm_name);
}

Status ReadIdentity(const JsonReader& in, Manifest* manifest) {
  SP_RETURN_IF_ERROR(in.ReadObject("vm", manifest, ReadVm));
  SP_RETURN_IF_ERROR(in.Read("name", &manifest->name));
  SP_RETURN_IF_ERROR(in.Read("description", &manifest->description));
  SP_RETURN_IF_ERROR(in.Read("parent", &manifest->parent_id));
  SP_RETURN_IF_ERROR(in.Read("created_us", &manifest->created_micros, INT64_MIN, INT64_MAX));
  SP_RETURN_IF_ERROR(in.Read("committed_us", &manifest->committed_micros, INT64_MIN, INT64_MAX));
  int64_t chunk_size = 0;
  SP_RETURN_IF_ERROR(in.Read("chunk_size", &chunk_size, 0, UINT32_MAX));
  manifest->chunk_size = static_cast<uint32_t>(chunk_size);
  return absl::OkStatus();
}

// Version 1 recorded the description as free-form "extras", read with the looser layout. Errors
// name the object ("point description: field 'vm.vcpus' ..."); the caller names the point.
Status ReadDescription(const json& body, int version, PointDescription* description) {
  bool v1 = version == 1;
  const char* key = v1 ? "extras" : "point_description";
  auto it = body.find(key);
  if (it == body.end()) {
    return absl::DataLossError(absl::StrCat("manifest: field '", key, "' is missing"));
  }
  SP_ASSIGN_OR_RETURN(*description, DecodePointDescription(*it, v1 ? "extras" : "point description",
                                                           v1 ? DescriptionLayout::kVersion1Extras
                                                              : DescriptionLayout::kCurrent));
  return absl::OkStatus();
}

StatusOr<Manifest> ManifestFromJson(const json& body, int version) {
  JsonReadRules rules;
  rules.where = "manifest";
  JsonReader in(body, "", &rules);
  Manifest manifest;
  manifest.version = version;
  SP_RETURN_IF_ERROR(in.Read("id", &manifest.id));
  SP_RETURN_IF_ERROR(ReadIdentity(in, &manifest));
  SP_RETURN_IF_ERROR(in.ReadArray("volumes", &manifest.volumes, ReadVolume));
  SP_RETURN_IF_ERROR(ReadDescription(body, version, &manifest.point_description));
  return manifest;
}

Status CheckShape(const Manifest& manifest) {
  if (manifest.chunk_size == 0) return absl::DataLossError("manifest: chunk size 0");
  for (const auto& volume : manifest.volumes) {
    if (volume.index_file.empty() || volume.index_file.find('/') != std::string::npos ||
        volume.index_file[0] == '.') {
      return absl::DataLossError("manifest: bad index file name");
    }
    if (volume.chunks != internal::ChunkCount(volume.size, manifest.chunk_size)) {
      return absl::DataLossError("manifest: chunk count does not match volume size");
    }
  }
  return absl::OkStatus();
}

// The version of a manifest that says it is one, and its checksum checked.
StatusOr<int> CheckHeader(json& body) {
  auto format = body.find("format");
  if (format == body.end() || *format != "stillpoint-manifest") {
    return absl::DataLossError("not a stillpoint manifest");
  }
  auto version = body.find("version");
  if (version == body.end() || !version->is_number_integer()) {
    return absl::DataLossError("manifest: field 'version' must be an integer");
  }
  if (*version < kOldestManifestVersion || *version > kManifestVersion) {
    return absl::DataLossError(
        absl::StrCat("manifest version ", version->dump(), " is not known to this stillpoint"));
  }
  auto stored = body.find("checksum");
  if (stored == body.end() || !stored->is_string()) {
    return absl::DataLossError("manifest: field 'checksum' must be a string");
  }
  std::string checksum = stored->get<std::string>();
  body.erase("checksum");
  if (Checksum(body) != checksum) return absl::DataLossError("manifest checksum mismatch");
  return version->get<int>();
}

}  // namespace

uint64_t Manifest::LogicalBytes() const {
  uint64_t total = 0;
  for (const auto& volume : volumes) total += volume.size;
  return total;
}

const ManifestVolume* Manifest::FindVolume(absl::string_view volume_name) const {
  for (const auto& volume : volumes) {
    if (volume.name == volume_name) return &volume;
  }
  return nullptr;
}

std::string EncodeManifest(const Manifest& manifest) {
  json body = ManifestBody(manifest);
  body["checksum"] = Checksum(body);
  return body.dump(2) + "\n";
}

StatusOr<Manifest> DecodeManifest(absl::string_view text) {
  json body = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded() || !body.is_object()) {
    return absl::DataLossError("manifest is not a JSON object");
  }
  SP_ASSIGN_OR_RETURN(int version, CheckHeader(body));
  SP_ASSIGN_OR_RETURN(Manifest manifest, ManifestFromJson(body, version));
  SP_RETURN_IF_ERROR(CheckShape(manifest));
  return manifest;
}

}  // namespace sp::repo
