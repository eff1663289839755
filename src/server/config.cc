#include "server/config.h"

#include <toml++/toml.h>

#include <functional>
#include <map>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "platform/files.h"

namespace sp::server {
namespace {

std::string Where(const std::string& source, const toml::source_region& region) {
  return absl::StrCat(source, ":", region.begin.line, ":", region.begin.column);
}

Status Bad(const std::string& source, const toml::node& node, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(Where(source, node.source()), ": ", what));
}

// One known key: how to read its node into the config.
using KeyReader = std::function<Status(const toml::node&, ServerConfig*)>;

KeyReader Text(std::string ServerConfig::*field, const std::string& key,
               const std::string& source) {
  return [field, key, source](const toml::node& node, ServerConfig* config) -> Status {
    auto value = node.value<std::string>();
    if (!node.is_string() || !value) return Bad(source, node, key + " must be a string");
    if (value->find('\0') != std::string::npos) return Bad(source, node, key + " holds a NUL");
    config->*field = *value;
    return absl::OkStatus();
  };
}

template <typename Int>
KeyReader Count(Int ServerConfig::*field, const std::string& key, int64_t low, int64_t high,
                const std::string& source) {
  return [=](const toml::node& node, ServerConfig* config) -> Status {
    auto value = node.value<int64_t>();
    if (!node.is_integer() || !value || *value < low || *value > high) {
      return Bad(source, node, absl::StrCat(key, " must be an integer from ", low, " to ", high));
    }
    config->*field = static_cast<Int>(*value);
    return absl::OkStatus();
  };
}

KeyReader Listen(const std::string& source) {
  return [source](const toml::node& node, ServerConfig* config) -> Status {
    auto value = node.value<std::string>();
    if (!node.is_string() || !value) return Bad(source, node, "listen must be a string HOST:PORT");
    auto address = ParseListenAddress(*value);
    if (!address.ok()) return Bad(source, node, address.status().message());
    config->listen = *address;
    return absl::OkStatus();
  };
}

std::map<std::string, std::map<std::string, KeyReader>> KnownKeys(const std::string& source) {
  return {
      {"server",
       {{"listen", Listen(source)},
        {"tls_certificate", Text(&ServerConfig::tls_certificate, "tls_certificate", source)},
        {"tls_key", Text(&ServerConfig::tls_key, "tls_key", source)},
        {"state_dir", Text(&ServerConfig::state_dir, "state_dir", source)},
        {"max_body_bytes",
         Count(&ServerConfig::max_body_bytes, "max_body_bytes", 1024, 1 << 30, source)}}},
      {"jobs",
       {{"concurrent", Count(&ServerConfig::concurrent_jobs, "concurrent", 1, 64, source)},
        {"concurrent_captures",
         Count(&ServerConfig::concurrent_captures, "concurrent_captures", 1, 64, source)}}},
  };
}

Status ReadTable(const toml::table& root, const std::string& source, ServerConfig* config) {
  auto known = KnownKeys(source);
  for (const auto& [section_key, section_node] : root) {
    std::string section(section_key.str());
    auto readers = known.find(section);
    if (readers == known.end()) {
      return Bad(source, section_node,
                 absl::StrCat("unknown section '", section, "' (known: [server], [jobs])"));
    }
    const toml::table* table = section_node.as_table();
    if (table == nullptr) return Bad(source, section_node, section + " must be a table");
    for (const auto& [key_name, node] : *table) {
      std::string key(key_name.str());
      auto reader = readers->second.find(key);
      if (reader == readers->second.end()) {
        return Bad(source, node, absl::StrCat("unknown key '", key, "' in [", section, "]"));
      }
      SP_RETURN_IF_ERROR(reader->second(node, config));
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<ListenAddress> ParseListenAddress(const std::string& text) {
  size_t colon = text.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("listen address '", text, "' is not HOST:PORT (e.g. 127.0.0.1:8443)"));
  }
  ListenAddress address;
  address.host = text.substr(0, colon);
  if (address.host.size() > 2 && address.host.front() == '[' && address.host.back() == ']') {
    address.host = address.host.substr(1, address.host.size() - 2);
  }
  int port = 0;
  if (!absl::SimpleAtoi(text.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(
        "listen address '", text, "': the port must be a number from 0 (any free port) to 65535"));
  }
  address.port = port;
  return address;
}

StatusOr<ServerConfig> ParseServerConfig(const std::string& text, const std::string& source) {
  ServerConfig config;
  config.source = source;
  try {
    toml::table root = toml::parse(text, source);
    SP_RETURN_IF_ERROR(ReadTable(root, source, &config));
  } catch (const toml::parse_error& error) {
    return absl::InvalidArgumentError(
        absl::StrCat(Where(source, error.source()), ": ", std::string(error.description())));
  }
  if (config.tls_certificate.empty() != config.tls_key.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(source,
                     ": tls_certificate and tls_key go together: give both, or neither to use a "
                     "generated self-signed pair"));
  }
  return config;
}

StatusOr<ServerConfig> LoadServerConfig(const std::string& path) {
  std::string chosen = path.empty() ? kDefaultConfigPath : path;
  if (path.empty() && !PathExists(chosen)) return ServerConfig();
  auto text = ReadFile(chosen);
  if (!text.ok()) {
    return Annotate(text.status(), absl::StrCat("configuration file ", chosen));
  }
  return ParseServerConfig(*text, chosen);
}

}  // namespace sp::server
