#include "repo/internal/format.h"

#include <fstream>
#include <sstream>

#include "gtest/gtest.h"
#include "repo/internal/chunk_codec.h"
#include "repo/manifest.h"
#include "repo/repository.h"
#include "repo/units.h"

namespace sp::repo {
namespace {

using internal::VolumeIndex;

TEST(IndexFormatTest, RoundTripsAndDetectsEveryFlippedByte) {
  VolumeIndex index{1u << 20, (3u << 20) + 5, {Sha256("a"), kZeroDigest, Sha256("b"), Sha256("c")}};
  std::string bytes = internal::EncodeIndex(index);
  auto decoded = internal::DecodeIndex(bytes);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->chunks, index.chunks);
  EXPECT_EQ(decoded->volume_size, index.volume_size);
  for (size_t i = 0; i < bytes.size(); i += 7) {
    std::string damaged = bytes;
    damaged[i] = static_cast<char>(damaged[i] ^ 1);
    EXPECT_TRUE(absl::IsDataLoss(internal::DecodeIndex(damaged).status())) << i;
  }
  EXPECT_FALSE(internal::DecodeIndex(bytes.substr(0, bytes.size() - 1)).ok());
}

TEST(ManifestFormatTest, RoundTripsAndRejectsTampering) {
  Manifest manifest;
  manifest.id = "20261122T000000Z-00000001";
  manifest.vm_id = "uuid";
  manifest.vm_name = "web01";
  manifest.name = "web01";
  manifest.chunk_size = 1u << 20;
  manifest.extras = {{"consistency", "application"}, {"freeze_ms", 12.5}};
  manifest.volumes.push_back(ManifestVolume{"vda", 5u << 20, "0.idx", Sha256("x"), 5, 1, 2, 99});
  std::string text = EncodeManifest(manifest);
  auto decoded = DecodeManifest(text);
  ASSERT_TRUE(decoded.ok()) << decoded.status();
  EXPECT_EQ(decoded->volumes[0].index_sha256, manifest.volumes[0].index_sha256);
  EXPECT_EQ(decoded->extras, manifest.extras);
  std::string tampered = text;
  tampered.replace(tampered.find("web01"), 5, "web02");
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(tampered).status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest("{").status()));
  EXPECT_TRUE(absl::IsDataLoss(DecodeManifest("[]").status()));
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
  std::ifstream in(std::string(SP_FUZZ_CORPUS_ROOT) + "/" + name, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  return bytes.str();
}

// The seeds of the fuzz corpora mean what their names say.
TEST(FuzzSeedTest, ValidSeedsDecodeAndBrokenOnesDoNot) {
  EXPECT_TRUE(DecodeManifest(CorpusFile("repo_manifest/valid")).ok());
  EXPECT_TRUE(internal::DecodeIndex(CorpusFile("repo_index/valid-3-chunks")).ok());
  for (const char* name : {"repo_manifest/tampered", "repo_manifest/path-escape",
                           "repo_manifest/future-version", "repo_manifest/wrong-type"}) {
    EXPECT_TRUE(absl::IsDataLoss(DecodeManifest(CorpusFile(name)).status())) << name;
  }
  for (const char* name : {"repo_index/bad-checksum", "repo_index/count-overflow",
                           "repo_index/zero-chunk-size", "repo_index/truncated"}) {
    EXPECT_TRUE(absl::IsDataLoss(internal::DecodeIndex(CorpusFile(name)).status())) << name;
  }
}

}  // namespace
}  // namespace sp::repo
