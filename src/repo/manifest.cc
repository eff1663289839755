#include "repo/manifest.h"

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
              {"extras", manifest.extras}};
}

std::string Checksum(const json& body) { return DigestHex(Sha256(body.dump())); }

// Throws nlohmann::json exceptions on missing or mistyped fields; the caller converts them.
Manifest ManifestFromJson(const json& body) {
  Manifest manifest;
  manifest.id = body.at("id").get<std::string>();
  manifest.vm_id = body.at("vm").at("id").get<std::string>();
  manifest.vm_name = body.at("vm").at("name").get<std::string>();
  manifest.name = body.at("name").get<std::string>();
  manifest.description = body.at("description").get<std::string>();
  manifest.parent_id = body.at("parent").get<std::string>();
  manifest.created_micros = body.at("created_us").get<int64_t>();
  manifest.committed_micros = body.at("committed_us").get<int64_t>();
  manifest.chunk_size = body.at("chunk_size").get<uint32_t>();
  manifest.extras = body.at("extras");
  for (const json& entry : body.at("volumes")) {
    ManifestVolume volume;
    volume.name = entry.at("name").get<std::string>();
    volume.size = entry.at("size").get<uint64_t>();
    volume.index_file = entry.at("index_file").get<std::string>();
    auto digest = ParseDigestHex(entry.at("index_sha256").get<std::string>());
    if (!digest.ok()) throw std::invalid_argument("bad index_sha256");
    volume.index_sha256 = *digest;
    volume.chunks = entry.at("chunks").get<uint64_t>();
    volume.zero_chunks = entry.at("zero_chunks").get<uint64_t>();
    volume.new_chunks = entry.at("new_chunks").get<uint64_t>();
    volume.new_stored_bytes = entry.at("new_stored_bytes").get<uint64_t>();
    manifest.volumes.push_back(std::move(volume));
  }
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
  try {
    if (body.at("format").get<std::string>() != "stillpoint-manifest") {
      return absl::DataLossError("not a stillpoint manifest");
    }
    int version = body.at("version").get<int>();
    if (version != kManifestVersion) {
      return absl::DataLossError(absl::StrCat("manifest version ", version,
                                              " is not known to this stillpoint"));
    }
    std::string stored = body.at("checksum").get<std::string>();
    body.erase("checksum");
    if (Checksum(body) != stored) return absl::DataLossError("manifest checksum mismatch");
    Manifest manifest = ManifestFromJson(body);
    SP_RETURN_IF_ERROR(CheckShape(manifest));
    return manifest;
  } catch (const std::exception& error) {
    return absl::DataLossError(absl::StrCat("malformed manifest: ", error.what()));
  }
}

}  // namespace sp::repo
