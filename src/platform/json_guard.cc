#include "platform/json_guard.h"

#include <cmath>

#include "absl/strings/str_join.h"

namespace sp {

using nlohmann::json;

namespace {

// What was found, for an error: a number itself, a string with its text when short, else the
// type ("object").
std::string Describe(const json& found) {
  if (found.is_number()) return found.dump();
  if (found.is_string()) {
    const auto& text = found.get_ref<const std::string&>();
    return text.size() <= 40 ? absl::StrCat("string '", text, "'") : "string";
  }
  return found.type_name();
}

}  // namespace

std::string JsonReader::PathOf(absl::string_view key) const {
  return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
}

Status JsonReader::Error(absl::string_view key, absl::string_view what) const {
  std::string path = key.empty() ? path_ : PathOf(key);
  return Status(rules_->code, path.empty()
                                  ? absl::StrCat(rules_->where, ": ", what)
                                  : absl::StrCat(rules_->where, ": field '", path, "' ", what));
}

Status JsonReader::WrongType(const char* key, const json& found, absl::string_view wanted) const {
  return Error(key, absl::StrCat("must be ", wanted, ", got ", Describe(found)));
}

Status JsonReader::ExpectObject() const {
  if (value_.is_object()) return absl::OkStatus();
  return Error("", absl::StrCat("must be an object, got ", Describe(value_)));
}

bool JsonReader::Has(const char* key) const {
  auto it = value_.find(key);
  return it != value_.end() && !it->is_null();
}

StatusOr<const json*> JsonReader::Find(const char* key) const {
  auto it = value_.find(key);
  if (it != value_.end() && !it->is_null()) return &*it;
  if (rules_->absent_keeps_default) return nullptr;
  return Error(key, "is missing");
}

Status JsonReader::Read(const char* key, std::string* out) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_string()) return WrongType(key, *found, "a string");
  *out = found->get_ref<const std::string&>();
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, bool* out) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_boolean()) return WrongType(key, *found, "true or false");
  *out = found->get<bool>();
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, uint64_t* out) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  // nlohmann keeps a non-negative integer as unsigned, a negative one as signed.
  if (!found->is_number_unsigned()) return WrongType(key, *found, "a non-negative integer");
  *out = found->get<uint64_t>();
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, int64_t* out, int64_t min, int64_t max) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_number_integer()) return WrongType(key, *found, "an integer");
  // A non-negative integer is kept unsigned and may not fit in int64_t.
  bool fits =
      !found->is_number_unsigned() || found->get<uint64_t>() <= static_cast<uint64_t>(INT64_MAX);
  if (!fits || found->get<int64_t>() < min || found->get<int64_t>() > max) {
    return Error(key, absl::StrCat("must be from ", min, " to ", max, ", got ", found->dump()));
  }
  *out = found->get<int64_t>();
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, int* out, int min, int max) const {
  int64_t value = *out;
  SP_RETURN_IF_ERROR(Read(key, &value, min, max));
  *out = static_cast<int>(value);
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, double* out) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_number()) return WrongType(key, *found, "a number");
  double value = found->get<double>();
  if (!std::isfinite(value) || value < 0) {
    return Error(key, absl::StrCat("must not be negative, got ", found->dump()));
  }
  *out = value;
  return absl::OkStatus();
}

Status JsonReader::Read(const char* key, std::vector<std::string>* out) const {
  SP_ASSIGN_OR_RETURN(const json* found, Find(key));
  if (found == nullptr) return absl::OkStatus();
  if (!found->is_array()) return WrongType(key, *found, "an array of strings");
  std::vector<std::string> texts;
  for (size_t i = 0; i < found->size(); ++i) {
    const json& entry = (*found)[i];
    if (!entry.is_string()) {
      return Error(absl::StrCat(key, "[", i, "]"),
                   absl::StrCat("must be a string, got ", Describe(entry)));
    }
    texts.push_back(entry.get_ref<const std::string&>());
  }
  *out = std::move(texts);
  return absl::OkStatus();
}

Status JsonReader::ReadOneOf(const char* key, std::initializer_list<absl::string_view> allowed,
                             std::string* out) const {
  std::string value = *out;
  SP_RETURN_IF_ERROR(Read(key, &value));
  for (absl::string_view candidate : allowed) {
    if (candidate == value) {
      *out = std::move(value);
      return absl::OkStatus();
    }
  }
  return Error(
      key, absl::StrCat("must be one of ", absl::StrJoin(allowed, ", "), ", got '", value, "'"));
}

}  // namespace sp
