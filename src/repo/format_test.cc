#include "repo/internal/format.h"

#include <fstream>
#include <functional>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "repo/internal/chunk_codec.h"
#include "repo/manifest.h"
#include "repo/repository.h"
#include "repo/units.h"

namespace sp::repo {
namespace {

using internal::VolumeIndex;

using internal::SubChunkOverride;

// 3 MiB + 5 bytes in 1 MiB chunks: chunk 1 is a composite of a zero base, chunk 3 (5 bytes) of
// a stored base with its only sub-chunk (5 bytes) overridden.
VolumeIndex SampleIndex(uint32_t version) {
  VolumeIndex index{1u << 20,
                    (3u << 20) + 5,
                    {Sha256("a"), kZeroDigest, Sha256("b"), Sha256("c")},
                    version,
                    version == 1 ? 0 : internal::kSubChunkSize,
                    {}};
  if (version == 2) {
    index.overrides = {{1, 0, Sha256("x")}, {1, 15, kZeroDigest}, {3, 0, Sha256("y")}};
  }
  return index;
}

TEST(IndexFormatTest, RoundTripsAndDetectsEveryFlippedByte) {
  for (uint32_t version : {1u, 2u}) {
    VolumeIndex index = SampleIndex(version);
    std::string bytes = internal::EncodeIndex(index);
    auto decoded = internal::DecodeIndex(bytes);
    ASSERT_TRUE(decoded.ok()) << decoded.status();
    EXPECT_EQ(decoded->version, version);
    EXPECT_EQ(decoded->chunks, index.chunks);
    EXPECT_EQ(decoded->volume_size, index.volume_size);
    EXPECT_EQ(decoded->sub_chunk_size, index.sub_chunk_size);
    EXPECT_EQ(decoded->overrides, index.overrides);
    EXPECT_EQ(internal::EncodeIndex(*decoded), bytes);
    for (size_t i = 0; i < bytes.size(); i += 7) {
      std::string damaged = bytes;
      damaged[i] = static_cast<char>(damaged[i] ^ 1);
      EXPECT_TRUE(absl::IsDataLoss(internal::DecodeIndex(damaged).status())) << i;
    }
    EXPECT_FALSE(internal::DecodeIndex(bytes.substr(0, bytes.size() - 1)).ok());
  }
}

TEST(IndexFormatTest, CompositesAreNeverZeroAndKnowTheirSubChunks) {
  VolumeIndex index = SampleIndex(2);
  EXPECT_FALSE(index.IsZero(0));
  EXPECT_FALSE(index.IsZero(1));  // zero base, overrides
  EXPECT_FALSE(index.IsZero(2));
  EXPECT_EQ(index.OverridesOf(1), std::make_pair(size_t{0}, size_t{2}));
  EXPECT_EQ(index.OverridesOf(2), std::make_pair(size_t{2}, size_t{2}));
  EXPECT_EQ(index.SubChunkCount(0), 16u);
  EXPECT_EQ(index.SubChunkCount(3), 1u);
  EXPECT_EQ(index.SubChunkLength(3, 0), 5u);
  VolumeIndex plain = SampleIndex(1);
  EXPECT_TRUE(plain.IsZero(1));
}

// `edit` applied to the encoded sample index, with its checksum made right again.
std::string EditedIndex(const std::function<void(std::string&)>& edit) {
  std::string bytes = internal::EncodeIndex(SampleIndex(2));
  bytes.resize(bytes.size() - sizeof(Digest));
  edit(bytes);
  Digest checksum = Sha256(bytes);
  return bytes + std::string(reinterpret_cast<const char*>(checksum.data()), checksum.size());
}

TEST(IndexFormatTest, RefusesOverridesThatAreOutOfPlaceEvenWithAGoodChecksum) {
  // Overrides start at 40 + 4 × 32 = 168, 48 bytes each: chunk (8), sub-chunk (4), reserved (4).
  const size_t first = internal::kIndexHeaderSizeV2 + 4 * sizeof(Digest);
  auto put32 = [](std::string& bytes, size_t at, uint32_t value) {
    std::string encoded;
    internal::PutLittle32(&encoded, value);
    bytes.replace(at, 4, encoded);
  };
  const std::vector<std::pair<std::string, std::function<void(std::string&)>>> cases = {
      {"past the chunks", [&](std::string& b) { b[first] = 9; }},
      {"past the chunk's sub-chunks", [&](std::string& b) { put32(b, first + 8, 16); }},
      {"past a short chunk's end", [&](std::string& b) { put32(b, first + 2 * 48 + 8, 1); }},
      {"out of order", [&](std::string& b) { put32(b, first + 48 + 8, 0); }},
      {"reserved bits", [&](std::string& b) { b[first + 12] = 1; }},
      {"sub-chunk size not a power of two", [&](std::string& b) { put32(b, 12, 65537); }},
      {"sub-chunk size too small", [&](std::string& b) { put32(b, 12, 2048); }},
      {"sub-chunk size above the chunk size", [&](std::string& b) { put32(b, 12, 2u << 20); }},
      {"override count", [&](std::string& b) { b[32] = 4; }},
      {"unknown version", [&](std::string& b) { put32(b, 4, 3); }},
  };
  ASSERT_TRUE(internal::DecodeIndex(EditedIndex([](std::string&) {})).ok());
  for (const auto& [what, edit] : cases) {
    auto decoded = internal::DecodeIndex(EditedIndex(edit));
    EXPECT_TRUE(absl::IsDataLoss(decoded.status())) << what << ": " << decoded.status();
  }
}

Manifest SampleManifest() {
  Manifest manifest;
  manifest.id = "20261122T000000Z-00000001";
  manifest.vm_id = "uuid";
  manifest.vm_name = "web01";
  manifest.name = "web01";
  manifest.chunk_size = 1u << 20;
  manifest.point_description.consistency = PointConsistency::kApplication;
  manifest.point_description.timings.freeze_ms = 12.5;
  manifest.point_description.vm = PointVm{};
  manifest.volumes.push_back(ManifestVolume{"vda", 5u << 20, "0.idx", Sha256("x"), 5, 1, 2, 99});
  return manifest;
}

TEST(ManifestFormatTest, RoundTripsAndRejectsTampering) {
  Manifest manifest = SampleManifest();
  std::string text = EncodeManifest(manifest);
  auto decoded = DecodeManifest(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->version, kManifestVersion);
  EXPECT_EQ(decoded->volumes[0].index_sha256, manifest.volumes[0].index_sha256);
  EXPECT_EQ(decoded->point_description, manifest.point_description);
  EXPECT_EQ(EncodeManifest(*decoded), text);
  std::string tampered = text;
  tampered.replace(tampered.find("web01"), 5, "web02");
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(tampered).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest("{").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest("[]").status()));
}

// `edit` applied to the JSON of a good manifest, with its checksum made right again.
std::string Edited(const std::function<void(nlohmann::json&)>& edit) {
  nlohmann::json body = nlohmann::json::parse(EncodeManifest(SampleManifest()));
  body.erase("checksum");
  edit(body);
  body["checksum"] = DigestHex(Sha256(body.dump()));
  return body.dump();
}

TEST(ManifestFormatTest, NamesTheFieldThatIsWrong) {
  struct Case {
    std::function<void(nlohmann::json&)> edit;
    std::string message;
  };
  const std::vector<Case> cases = {
      {[](nlohmann::json& m) { m["point_description"]["vm"]["vcpus"] = "4"; },
       "point description: field 'vm.vcpus' must be an integer, got string '4'"},
      {[](nlohmann::json& m) { m["point_description"].erase("consistency"); },
       "point description: field 'consistency' is missing"},
      {[](nlohmann::json& m) { m.erase("point_description"); },
       "manifest: field 'point_description' is missing"},
      {[](nlohmann::json& m) { m["volumes"][0]["size"] = -1; },
       "manifest: field 'volumes[0].size' must be a non-negative integer, got -1"},
      {[](nlohmann::json& m) { m["vm"]["name"] = 3; },
       "manifest: field 'vm.name' must be a string, got 3"},
      {[](nlohmann::json& m) { m["chunk_size"] = "big"; },
       "manifest: field 'chunk_size' must be an integer, got string 'big'"},
      {[](nlohmann::json& m) { m["version"] = 3; }, "manifest version 3 is not known"},
      {[](nlohmann::json& m) { m["version"] = "2"; },
       "manifest: field 'version' must be an integer"},
      // Version 1 kept the description as "extras": read with the same checks.
      {[](nlohmann::json& m) {
         m["version"] = 1;
         m["extras"] = m["point_description"];
         m.erase("point_description");
         m["extras"]["vm"]["vcpus"] = "4";
       },
       "extras: field 'vm.vcpus' must be an integer, got string '4'"},
  };
  for (const Case& c : cases) {
    auto decoded = DecodeManifest(Edited(c.edit));
    ASSERT_FALSE(decoded.ok()) << c.message;
    EXPECT_TRUE(absl::IsDataLoss(decoded.status())) << decoded.status();
    EXPECT_THAT(std::string(decoded.status().message()), ::testing::StartsWith(c.message));
  }
}

// The whole file at `path` ("" when it cannot be read).
std::string FileText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

std::string DataFile(const std::string& name) {
  return FileText(std::string(SP_TEST_DATA_DIR) + "/" + name);
}

// Manifests written by the stillpoint before version 2, as they are (tests/data/v1/README.md):
// read with every field of their extras, and written again as version 2 without losing any.
TEST(ManifestFormatTest, ReadsVersionOneManifestsWithEverythingTheyRecorded) {
  for (const char* name : {"v1/guest/20261203T161655Z-d2908c2f.manifest.json",
                           "v1/guest/20261203T161658Z-c6691309.manifest.json",
                           "v1/repository/points/20261203T161629Z-9b03e381/manifest.json"}) {
    std::string text = DataFile(name);
    ASSERT_FALSE(text.empty()) << name;
    auto decoded = DecodeManifest(text);
    ASSERT_TRUE(decoded.ok()) << name << ": " << decoded.status();
    EXPECT_EQ(decoded->version, 1);
    EXPECT_EQ(EncodePointDescription(decoded->point_description),
              nlohmann::json::parse(text)["extras"])
        << name;
    auto again = DecodeManifest(EncodeManifest(*decoded));
    ASSERT_TRUE(again.ok()) << again.status();
    EXPECT_EQ(again->version, 2);
    EXPECT_EQ(again->point_description, decoded->point_description);
  }
  auto incremental = DecodeManifest(DataFile("v1/guest/20261203T161658Z-c6691309.manifest.json"));
  ASSERT_TRUE(incremental.ok());
  const PointDescription& d = incremental->point_description;
  EXPECT_EQ(incremental->parent_id, "20261203T161655Z-d2908c2f");
  EXPECT_EQ(d.consistency, PointConsistency::kApplication);
  EXPECT_EQ(d.reason, "2 filesystem(s) frozen by guest agent 7.2.22");
  EXPECT_EQ(d.power_state, "running");
  EXPECT_TRUE(d.incremental);
  EXPECT_EQ(d.timings.freeze_ms, 292.734584);
  EXPECT_EQ(d.bytes.read, 33554432u);
  ASSERT_NE(d.FindVolume("root"), nullptr);
  EXPECT_EQ(d.FindVolume("root")->bitmap, "stillpoint-20261203T161658Z-c6691309");
  EXPECT_EQ(d.guest_filesystems.size(), 2u);
  EXPECT_EQ(d.ext4.size(), 2u);
  ASSERT_TRUE(d.vm.has_value());
  EXPECT_EQ(d.vm->memory_mib, 256);
  ASSERT_TRUE(d.vm->kernel.has_value());
  EXPECT_EQ(d.vm->nics.size(), 1u);
  EXPECT_FALSE(d.imported.has_value());
}

TEST(ChunkCodecTest, CompressesOnlyWhenItHelpsAndChecksOnDecode) {
  internal::ChunkCodec codec(3, std::nullopt);
  std::string text(1 << 20, 'a');
  Digest id = codec.Id(text);
  EXPECT_EQ(id, Sha256(text));
  std::string object = *codec.Encode(id, text);
  EXPECT_LT(object.size(), 1000u);
  EXPECT_EQ(*codec.Decode(object, id), text);
  EXPECT_TRUE(absl::IsDataLoss(codec.Decode(object, Sha256("other")).status()));
  std::string random(4096, '\0');
  for (size_t i = 0; i < random.size(); ++i) random[i] = static_cast<char>((i * 2654435761u) >> 13);
  std::string raw = *codec.Encode(codec.Id(random), random);
  EXPECT_LE(raw.size(), random.size() + internal::kChunkHeaderSize);
}

TEST(ChunkCodecTest, EncryptedChunksUseKeyedIdsAndAuthenticate) {
  internal::ChunkKeys keys;
  keys.id_key.fill(1);
  keys.data_key.fill(2);
  internal::ChunkCodec codec(3, keys);
  std::string text = "secret volume contents";
  Digest id = codec.Id(text);
  EXPECT_NE(id, Sha256(text));
  std::string object = *codec.Encode(id, text);
  EXPECT_EQ(object.find("secret"), std::string::npos);
  EXPECT_EQ(*codec.Decode(object, id), text);
  std::string damaged = object;
  damaged[damaged.size() - 20] ^= 1;
  EXPECT_TRUE(absl::IsDataLoss(codec.Decode(damaged, id).status()));
  internal::ChunkKeys other = keys;
  other.data_key.fill(3);
  EXPECT_FALSE(internal::ChunkCodec(3, other).Decode(object, id).ok());
  EXPECT_FALSE(internal::ChunkCodec(3, std::nullopt).Decode(object, id).ok());
}

TEST(UnitsTest, ParsesAndFormatsSizes) {
  EXPECT_EQ(*ParseBytes("4M"), 4u << 20);
  EXPECT_EQ(*ParseBytes("20G"), 20ull << 30);
  EXPECT_EQ(*ParseBytes("1TiB"), 1ull << 40);
  EXPECT_EQ(*ParseBytes("512MB"), 512u << 20);
  EXPECT_EQ(*ParseBytes("1048576"), 1u << 20);
  EXPECT_FALSE(ParseBytes("lots").ok());
  EXPECT_FALSE(ParseBytes("99999999999P").ok());
  EXPECT_EQ(FormatBytes(512), "512 B");
  EXPECT_EQ(FormatBytes(4u << 20), "4.00 MiB");
  EXPECT_EQ(FormatBytes(20ull << 30), "20.0 GiB");
}

TEST(CompressionTest, ParsesLevels) {
  EXPECT_EQ(*ParseCompression("none"), 0);
  EXPECT_EQ(*ParseCompression("zstd"), 3);
  EXPECT_EQ(*ParseCompression("zstd:9"), 9);
  EXPECT_FALSE(ParseCompression("zstd:0").ok());
  EXPECT_FALSE(ParseCompression("lz4").ok());
}

}  // namespace
}  // namespace sp::repo

namespace sp::repo {
namespace {

std::string CorpusFile(const std::string& name) {
  return FileText(std::string(SP_FUZZ_CORPUS_ROOT) + "/" + name);
}

// The seeds of the fuzz corpora mean what their names say.
TEST(FuzzSeedTest, ValidSeedsDecodeAndBrokenOnesDoNot) {
  for (const char* name :
       {"repo_manifest/valid", "repo_manifest/valid-v1-capture", "repo_manifest/valid-v2"}) {
    auto decoded = DecodeManifest(CorpusFile(name));
    EXPECT_TRUE(decoded.ok()) << name << ": " << decoded.status();
  }
  EXPECT_EQ(DecodeManifest(CorpusFile("repo_manifest/valid-v2"))->point_description,
            DecodeManifest(CorpusFile("repo_manifest/valid-v1-capture"))->point_description);
  EXPECT_TRUE(
      absl::IsDataLoss(DecodeManifest(CorpusFile("repo_manifest/v2-vcpus-string")).status()));
  auto description = [](const std::string& name, DescriptionLayout layout) {
    return DecodePointDescription(nlohmann::json::parse(CorpusFile("repo_description/" + name)),
                                  "seed", layout);
  };
  for (const char* name : {"v1-extras-running", "v1-extras-stopped", "imported"}) {
    EXPECT_TRUE(description(name, DescriptionLayout::kCurrent).ok()) << name;
  }
  EXPECT_TRUE(description("v1-extras-partial", DescriptionLayout::kVersion1Extras).ok());
  EXPECT_FALSE(description("v1-extras-partial", DescriptionLayout::kCurrent).ok());
  for (const char* name : {"vm-vcpus-string", "vm-vcpus-zero", "vm-memory-float", "vm-nics-object",
                           "volume-negative-size", "volume-boot-string", "unknown-consistency",
                           "filesystem-volume-number", "not-object"}) {
    EXPECT_TRUE(absl::IsDataLoss(description(name, DescriptionLayout::kVersion1Extras).status()))
        << name;
  }
  EXPECT_TRUE(description("missing-timing", DescriptionLayout::kVersion1Extras).ok());
  EXPECT_FALSE(description("missing-timing", DescriptionLayout::kCurrent).ok());
  EXPECT_TRUE(internal::DecodeIndex(CorpusFile("repo_index/valid-3-chunks")).ok());
  EXPECT_TRUE(internal::DecodeIndex(CorpusFile("repo_index/v2-composites")).ok());
  for (const char* name : {"repo_manifest/tampered", "repo_manifest/path-escape",
                           "repo_manifest/future-version", "repo_manifest/wrong-type"}) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(CorpusFile(name)).status())) << name;
  }
  for (const char* name :
       {"repo_index/bad-checksum", "repo_index/count-overflow", "repo_index/zero-chunk-size",
        "repo_index/truncated", "repo_index/v2-override-order", "repo_index/v2-override-past-end",
        "repo_index/v2-override-count-overflow", "repo_index/v2-sub-chunk-size"}) {
    EXPECT_TRUE(absl::IsDataLoss(internal::DecodeIndex(CorpusFile(name)).status())) << name;
  }
}

}  // namespace
}  // namespace sp::repo
