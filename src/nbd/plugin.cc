// nbdkit-stillpoint-plugin.so: an nbdkit plugin serving one volume of a recovery point read-only,
// straight from the repository (VolumeExport does the work; this file is nbdkit's C API).
//
//   nbdkit -r nbdkit-stillpoint-plugin.so repo=DIR point=ID volume=NAME
//          [key-file=PATH] [cache=SIZE] [workers=N] [readahead=N] [timeout=SECONDS]
//
// Thread model: parallel (many requests in flight per connection and across connections). The
// repository and the volume are opened in .get_ready, so that an unknown point or volume stops
// nbdkit before it listens; the worker threads start in .after_fork (after nbdkit forked, if it
// does). Only plugin_init is exported (a version script
// hides the repository's and the libraries' symbols).
#define NBDKIT_API_VERSION 2
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL
#include <errno.h>
#include <nbdkit-plugin.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "nbd/volume_export.h"

namespace sp::nbd {
namespace {

struct PluginConfig {
  std::string repo;
  std::string point;
  std::string volume;
  std::string key_file;
  ExportOptions options;
};

// nbdkit calls config* and after_fork on one thread before any request, and unload after all.
PluginConfig* config = nullptr;
VolumeExport* exported = nullptr;

PluginConfig& Config() {
  if (config == nullptr) config = new PluginConfig();
  return *config;
}

// An absolute path (nbdkit may change directory); empty after an error nbdkit has been told of.
std::string RealPath(const char* value) {
  char* resolved = nbdkit_realpath(value);
  if (resolved == nullptr) return "";
  std::string path = resolved;
  ::free(resolved);
  return path;
}

int ConfigKey(const char* key, const char* value) {
  PluginConfig& c = Config();
  std::string name = key;
  if (name == "repo") {
    c.repo = RealPath(value);
    return c.repo.empty() ? -1 : 0;
  }
  if (name == "key-file") {
    c.key_file = RealPath(value);
    return c.key_file.empty() ? -1 : 0;
  }
  if (name == "point") {
    c.point = value;
    return 0;
  }
  if (name == "volume") {
    c.volume = value;
    return 0;
  }
  if (name == "cache") {
    int64_t bytes = nbdkit_parse_size(value);
    if (bytes < 0) return -1;
    c.options.cache_bytes = static_cast<uint64_t>(bytes);
    return 0;
  }
  if (name == "workers") return nbdkit_parse_int("workers", value, &c.options.workers);
  if (name == "readahead") return nbdkit_parse_int("readahead", value, &c.options.readahead);
  if (name == "timeout") {
    unsigned seconds = 0;
    if (nbdkit_parse_unsigned("timeout", value, &seconds) == -1) return -1;
    c.options.read_timeout = Millis(int64_t{seconds} * 1000);
    return 0;
  }
  nbdkit_error("unknown parameter '%s' (see nbdkit-stillpoint-plugin --help)", key);
  return -1;
}

int ConfigComplete() {
  PluginConfig& c = Config();
  if (c.repo.empty() || c.point.empty() || c.volume.empty()) {
    nbdkit_error("repo=DIR, point=ID and volume=NAME are required");
    return -1;
  }
  if (c.options.workers < 1 || c.options.readahead < 0 || c.options.read_timeout <= Millis(0)) {
    nbdkit_error("workers must be at least 1, readahead at least 0, timeout at least 1 second");
    return -1;
  }
  return 0;
}

std::shared_ptr<repo::Repository>* repository = nullptr;

// Before nbdkit listens: an unknown point or volume, a damaged index or a wrong key stop nbdkit
// with the reason, before it writes its pid file.
int GetReady() {
  PluginConfig& c = Config();
  repo::OpenOptions options;
  options.key_file = c.key_file;
  auto opened = repo::Repository::Open(c.repo, options);
  if (!opened.ok()) {
    nbdkit_error("repository %s: %s", c.repo.c_str(),
                 std::string(opened.status().message()).c_str());
    return -1;
  }
  auto volume = (*opened)->OpenVolume(c.point, c.volume);
  if (!volume.ok()) {
    nbdkit_error("%s", std::string(volume.status().message()).c_str());
    return -1;
  }
  repository = new std::shared_ptr<repo::Repository>(*std::move(opened));
  return 0;
}

// The workers start after nbdkit forked into the background (when it does).
int AfterFork() {
  PluginConfig& c = Config();
  auto opened = VolumeExport::Open(*repository, c.point, c.volume, c.options);
  if (!opened.ok()) {
    nbdkit_error("%s", std::string(opened.status().message()).c_str());
    return -1;
  }
  exported = opened->release();
  nbdkit_debug("serving volume '%s' of recovery point %s (%llu bytes)", c.volume.c_str(),
               exported->point_id().c_str(), static_cast<unsigned long long>(exported->size()));
  return 0;
}

void Unload() {
  if (exported != nullptr) {
    ExportStats stats = exported->stats();
    nbdkit_debug("chunk cache: %llu hits, %llu misses, %llu read ahead, %llu failed, %llu timeouts",
                 static_cast<unsigned long long>(stats.hits),
                 static_cast<unsigned long long>(stats.misses),
                 static_cast<unsigned long long>(stats.readahead),
                 static_cast<unsigned long long>(stats.failed),
                 static_cast<unsigned long long>(stats.timeouts));
  }
  delete exported;
  exported = nullptr;
  delete repository;
  repository = nullptr;
  delete config;
  config = nullptr;
}

// The export is named after the volume; the default export ("") is the same volume.
void* Open(int /*readonly*/) {
  const char* name = nbdkit_export_name();
  if (name != nullptr && *name != '\0' && Config().volume != name) {
    nbdkit_error("no export '%s' here: this server serves volume '%s'", name,
                 Config().volume.c_str());
    return nullptr;
  }
  return NBDKIT_HANDLE_NOT_NEEDED;
}

int ListExports(int /*readonly*/, int /*is_tls*/, nbdkit_exports* exports) {
  return nbdkit_add_export(exports, Config().volume.c_str(), nullptr);
}

const char* DefaultExport(int /*readonly*/, int /*is_tls*/) {
  return nbdkit_strdup_intern(Config().volume.c_str());
}

const char* ExportDescription(void* /*handle*/) {
  return nbdkit_printf_intern("volume '%s' of stillpoint recovery point %s",
                              exported->volume().c_str(), exported->point_id().c_str());
}

int64_t GetSize(void* /*handle*/) { return static_cast<int64_t>(exported->size()); }
int No(void* /*handle*/) { return 0; }
int Yes(void* /*handle*/) { return 1; }

int BlockSize(void* /*handle*/, uint32_t* minimum, uint32_t* preferred, uint32_t* maximum) {
  *minimum = 1;
  *preferred = exported->chunk_size();  // whole chunks: one decode per request
  *maximum = 0xffffffff;
  return 0;
}

// A failed read is an NBD error (EIO) with the reason in nbdkit's log, never wrong data.
int Pread(void* /*handle*/, void* buffer, uint32_t count, uint64_t offset, uint32_t /*flags*/) {
  Status read = exported->Read(offset, count, static_cast<char*>(buffer));
  if (read.ok()) return 0;
  nbdkit_error("%s", std::string(read.message()).c_str());
  nbdkit_set_error(absl::IsOutOfRange(read) ? EINVAL : EIO);
  return -1;
}

int Extents(void* /*handle*/, uint32_t count, uint64_t offset, uint32_t flags,
            nbdkit_extents* extents) {
  for (const ExportExtent& extent : exported->Extents(offset, count)) {
    uint32_t type = extent.zero ? (NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO) : 0;
    if (nbdkit_add_extent(extents, extent.offset, extent.length, type) == -1) return -1;
    if ((flags & NBDKIT_FLAG_REQ_ONE) != 0) break;
  }
  return 0;
}

nbdkit_plugin MakePlugin() {
  nbdkit_plugin plugin{};
  plugin.name = "stillpoint";
  plugin.longname = "stillpoint recovery point";
  plugin.description = "Serves a volume of a stillpoint recovery point read-only";
  plugin.config = ConfigKey;
  plugin.config_complete = ConfigComplete;
  plugin.config_help =
      "repo=<DIR>            (required) the repository\n"
      "point=<ID>            (required) the recovery point (id or unique prefix)\n"
      "volume=<NAME>         (required) the volume to serve; also the export's name\n"
      "key-file=<PATH>       the master key of an encrypted repository\n"
      "cache=<SIZE>          decoded chunks kept in memory (default 64M)\n"
      "workers=<N>           threads decoding chunks (default 4)\n"
      "readahead=<N>         chunks decoded ahead of a sequential reader (default 2)\n"
      "timeout=<SECONDS>     the longest a request waits for the repository (default 30)";
  plugin.get_ready = GetReady;
  plugin.after_fork = AfterFork;
  plugin.unload = Unload;
  plugin.open = Open;
  plugin.list_exports = ListExports;
  plugin.default_export = DefaultExport;
  plugin.export_description = ExportDescription;
  plugin.get_size = GetSize;
  plugin.block_size = BlockSize;
  plugin.can_write = No;
  plugin.can_trim = No;
  plugin.can_zero = No;
  plugin.can_flush = No;
  plugin.is_rotational = No;
  plugin.can_multi_conn = Yes;  // read-only: every connection sees the same bytes
  plugin.can_extents = Yes;
  plugin.pread = Pread;
  plugin.extents = Extents;
  return plugin;
}

}  // namespace
}  // namespace sp::nbd

// nbdkit looks the plugin up by this symbol (the one the version script exports).
static nbdkit_plugin plugin = sp::nbd::MakePlugin();
NBDKIT_REGISTER_PLUGIN(plugin)
