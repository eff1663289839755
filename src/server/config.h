// The service's configuration: one TOML file (default /etc/stillpoint/stillpointd.toml when it
// exists), every key optional. A file that does not parse, a key the service does not know or a
// value of the wrong kind is refused with the file, line and column and what was expected, so the
// service never starts on a configuration it misread.
//
//   [server]
//   listen = "127.0.0.1:8443"      # HOST:PORT; nothing beyond loopback unless configured
//   tls_certificate = "/path/cert.pem"   # both or neither; neither: a self-signed pair is
//   tls_key = "/path/key.pem"            # generated in <state>/server/ at first start
//   state_dir = "/var/lib/stillpoint"    # as STILLPOINT_HOME
//   max_body_bytes = 1048576
//
//   [jobs]
//   concurrent = 4                 # jobs running at once on this host
//   concurrent_captures = 2        # of which captures
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "platform/status.h"

namespace sp::server {

inline constexpr const char* kDefaultConfigPath = "/etc/stillpoint/stillpointd.toml";

struct ListenAddress {
  std::string host = "127.0.0.1";
  int port = 8443;
};

struct ServerConfig {
  ListenAddress listen;
  std::string tls_certificate;  // empty: generated
  std::string tls_key;
  std::string state_dir;  // empty: the CLI's default state directory
  uint64_t max_body_bytes = 1 << 20;
  int concurrent_jobs = 4;
  int concurrent_captures = 2;
  std::string source;  // where it was read from, for messages; empty: defaults
};

// "HOST:PORT" or "[V6]:PORT". InvalidArgument naming what is wrong.
StatusOr<ListenAddress> ParseListenAddress(const std::string& text);

// Parses configuration text; `source` names it in errors ("FILE:LINE:COLUMN: ..."). Errors are
// InvalidArgument.
StatusOr<ServerConfig> ParseServerConfig(const std::string& text, const std::string& source);

// Reads `path`; an empty path reads kDefaultConfigPath when it exists, else gives the defaults.
// NotFound for a named file that is missing.
StatusOr<ServerConfig> LoadServerConfig(const std::string& path);

}  // namespace sp::server
