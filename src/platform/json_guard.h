// Reading JSON that comes from outside (QEMU, the guest agent, a file) without letting
// nlohmann::json's exceptions out: GuardJson turns any that escape a block of code into an error
// status; JsonReader reads typed fields with their type (and range) checked first, so that a
// wrong one is an error naming the field, never an exception.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "platform/status.h"

namespace sp {

// Runs `interpret` (returning Status or StatusOr<T>); a json exception becomes
// Internal("<context>: unexpected JSON: <what>").
template <typename F>
auto GuardJson(absl::string_view context, F&& interpret) -> decltype(interpret()) {
  try {
    return interpret();
  } catch (const nlohmann::json::exception& error) {
    return absl::InternalError(absl::StrCat(context, ": unexpected JSON: ", error.what()));
  }
}

// How a JsonReader reports and what it asks of absent fields; shared by the readers of one
// document and outliving them.
struct JsonReadRules {
  std::string where;  // what the document is, first in every error ("recovery point 2026…")
  absl::StatusCode code = absl::StatusCode::kDataLoss;  // DataLoss: stored; InvalidArgument: given
  // False: a field read with Read… must be present. True (an older, looser layout): an absent
  // field keeps the value its output had.
  bool absent_keeps_default = false;
};

// Typed reads of the fields of one JSON object. Errors read
// "<where>: field '<path>' must be an integer, got string", the path naming the field from the
// document's root ("vm.nics[0].mac"). A null field counts as absent. Never throws.
class JsonReader {
 public:
  // `value` is the object at `path` ("" for the document itself); `rules` is not owned.
  JsonReader(const nlohmann::json& value, std::string path, const JsonReadRules* rules)
      : value_(value), path_(std::move(path)), rules_(rules) {}

  // The error for this value itself when it is not an object.
  Status ExpectObject() const;
  // True when `key` is present and not null.
  bool Has(const char* key) const;

  Status Read(const char* key, std::string* out) const;
  Status Read(const char* key, bool* out) const;
  Status Read(const char* key, uint64_t* out) const;  // a non-negative integer
  Status Read(const char* key, int64_t* out, int64_t min, int64_t max) const;
  Status Read(const char* key, int* out, int min, int max) const;
  Status Read(const char* key, double* out) const;  // a finite number, not negative
  Status Read(const char* key, std::vector<std::string>* out) const;  // an array of strings
  // A string that must be one of `allowed`.
  Status ReadOneOf(const char* key, std::initializer_list<absl::string_view> allowed,
                   std::string* out) const;
  // Object `key`: `read(JsonReader, T*)` reads its fields into *out.
  template <typename T, typename F>
  Status ReadObject(const char* key, T* out, F&& read) const;
  // Array `key` of objects: `read(JsonReader, T*)` reads each entry into a new element of *out.
  template <typename T, typename F>
  Status ReadArray(const char* key, std::vector<T>* out, F&& read) const;
  // As ReadObject, into a value that exists only when `key` is present (absent: nullopt).
  template <typename T, typename F>
  Status ReadOptional(const char* key, std::optional<T>* out, F&& read) const;

  // "<where>: field '<path>.<key>' <what>", with the rules' code.
  Status Error(absl::string_view key, absl::string_view what) const;
  std::string PathOf(absl::string_view key) const;

 private:
  // The field's value, or nullptr when absent; an absent required field is an error then.
  StatusOr<const nlohmann::json*> Find(const char* key) const;
  Status WrongType(const char* key, const nlohmann::json& found, absl::string_view wanted) const;

  const nlohmann::json& value_;
  std::string path_;
  const JsonReadRules* rules_;
};

template <typename T, typename F>
Status JsonReader::ReadObject(const char* key, T* out, F&& read) const {
  SP_ASSIGN_OR_RETURN(const nlohmann::json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  JsonReader fields(*found, PathOf(key), rules_);
  SP_RETURN_IF_ERROR(fields.ExpectObject());
  return read(fields, out);
}

template <typename T, typename F>
Status JsonReader::ReadArray(const char* key, std::vector<T>* out, F&& read) const {
  SP_ASSIGN_OR_RETURN(const nlohmann::json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_array()) return WrongType(key, *found, "an array");
  std::vector<T> entries;
  std::string path = PathOf(key);
  for (size_t i = 0; i < found->size(); ++i) {
    JsonReader entry((*found)[i], absl::StrCat(path, "[", i, "]"), rules_);
    SP_RETURN_IF_ERROR(entry.ExpectObject());
    SP_RETURN_IF_ERROR(read(entry, &entries.emplace_back()));
  }
  *out = std::move(entries);
  return absl::OkStatus();
}

template <typename T, typename F>
Status JsonReader::ReadOptional(const char* key, std::optional<T>* out, F&& read) const {
  if (!Has(key)) {
    out->reset();
    return absl::OkStatus();
  }
  T value;
  SP_RETURN_IF_ERROR(ReadObject(key, &value, read));
  *out = std::move(value);
  return absl::OkStatus();
}

}  // namespace sp
