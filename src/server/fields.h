// Reading a request's JSON body and query at the edge: each field checked for its type and range,
// unknown fields refused, every error an InvalidArgument that names the field (the router puts
// the name in the error body's "field").
#pragma once

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "platform/status.h"

namespace sp::server {

// InvalidArgument "FIELD: WHAT" carrying the field's name (see FieldOf).
Status FieldError(const std::string& field, const std::string& what);
// The field a FieldError names; empty for other errors.
std::string FieldOf(const Status& status);

class BodyFields {
 public:
  explicit BodyFields(const nlohmann::json& body) : body_(body) {}

  // A string of 0..max_size bytes without NUL or control characters (tabs and newlines allowed
  // only where `multiline`); nullopt when absent and not required.
  StatusOr<std::optional<std::string>> String(const std::string& key, bool required,
                                              size_t max_size = 256, bool multiline = false);
  StatusOr<std::optional<bool>> Bool(const std::string& key);
  StatusOr<std::optional<int64_t>> Int(const std::string& key, int64_t low, int64_t high);
  // One of `allowed`.
  StatusOr<std::optional<std::string>> Choice(const std::string& key,
                                              const std::vector<std::string>& allowed);
  // An array of up to max_items strings, each as String().
  StatusOr<std::optional<std::vector<std::string>>> Strings(const std::string& key,
                                                            size_t max_items = 64);
  // InvalidArgument naming the first field of the body no call above asked for.
  Status NoOthers() const;

 private:
  const nlohmann::json* Find(const std::string& key);
  const nlohmann::json& body_;
  std::set<std::string> seen_;
};

// A query parameter as an integer in [low, high]; `fallback` when absent.
StatusOr<int64_t> QueryInt(const std::map<std::string, std::string>& query, const std::string& key,
                           int64_t fallback, int64_t low, int64_t high);
// A query parameter as an ISO-8601 UTC time ("2026-12-03T10:00:00Z") in microseconds.
StatusOr<std::optional<int64_t>> QueryTime(const std::map<std::string, std::string>& query,
                                           const std::string& key);

}  // namespace sp::server
