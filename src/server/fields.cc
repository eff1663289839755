#include "server/fields.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"

namespace sp::server {
namespace {

constexpr char kFieldPayload[] = "type.stillpoint/field";

const char* TypeName(const nlohmann::json& value) { return value.type_name(); }

bool CleanText(const std::string& text, bool multiline) {
  for (char signed_c : text) {
    auto c = static_cast<unsigned char>(signed_c);
    if (c == 0x7f) return false;
    if (c < 0x20 && !(multiline && (c == '\n' || c == '\t' || c == '\r'))) return false;
  }
  return true;
}

}  // namespace

Status FieldError(const std::string& field, const std::string& what) {
  Status status = absl::InvalidArgumentError(absl::StrCat(field, ": ", what));
  status.SetPayload(kFieldPayload, absl::Cord(field));
  return status;
}

std::string FieldOf(const Status& status) {
  auto payload = status.GetPayload(kFieldPayload);
  return payload ? std::string(*payload) : "";
}

const nlohmann::json* BodyFields::Find(const std::string& key) {
  seen_.insert(key);
  if (!body_.is_object()) return nullptr;
  auto it = body_.find(key);
  return it == body_.end() || it->is_null() ? nullptr : &*it;
}

StatusOr<std::optional<std::string>> BodyFields::String(const std::string& key, bool required,
                                                        size_t max_size, bool multiline) {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) {
    if (required) return FieldError(key, "is required");
    return std::optional<std::string>();
  }
  if (!value->is_string()) {
    return FieldError(key, absl::StrCat("must be a string, not ", TypeName(*value)));
  }
  const std::string& text = value->get_ref<const std::string&>();
  if (text.size() > max_size) {
    return FieldError(key, absl::StrCat("must be at most ", max_size, " bytes"));
  }
  if (!CleanText(text, multiline)) return FieldError(key, "holds control characters");
  if (required && text.empty()) return FieldError(key, "must not be empty");
  return std::optional<std::string>(text);
}

StatusOr<std::optional<bool>> BodyFields::Bool(const std::string& key) {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return std::optional<bool>();
  if (!value->is_boolean()) {
    return FieldError(key, absl::StrCat("must be true or false, not ", TypeName(*value)));
  }
  return std::optional<bool>(value->get<bool>());
}

StatusOr<std::optional<int64_t>> BodyFields::Int(const std::string& key, int64_t low,
                                                 int64_t high) {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return std::optional<int64_t>();
  if (!value->is_number_integer()) {
    return FieldError(key, absl::StrCat("must be an integer, not ", TypeName(*value)));
  }
  if (value->is_number_unsigned() && value->get<uint64_t>() > static_cast<uint64_t>(high)) {
    return FieldError(key, absl::StrCat("must be from ", low, " to ", high));
  }
  int64_t number = value->get<int64_t>();
  if (number < low || number > high) {
    return FieldError(key, absl::StrCat("must be from ", low, " to ", high));
  }
  return std::optional<int64_t>(number);
}

StatusOr<std::optional<std::string>> BodyFields::Choice(const std::string& key,
                                                        const std::vector<std::string>& allowed) {
  SP_ASSIGN_OR_RETURN(std::optional<std::string> text, String(key, false));
  if (!text) return text;
  for (const std::string& one : allowed) {
    if (*text == one) return text;
  }
  return FieldError(key, absl::StrCat("must be one of: ", absl::StrJoin(allowed, ", ")));
}

StatusOr<std::optional<std::vector<std::string>>> BodyFields::Strings(const std::string& key,
                                                                      size_t max_items) {
  const nlohmann::json* value = Find(key);
  if (value == nullptr) return std::optional<std::vector<std::string>>();
  if (!value->is_array()) {
    return FieldError(key, absl::StrCat("must be an array of strings, not ", TypeName(*value)));
  }
  if (value->size() > max_items) {
    return FieldError(key, absl::StrCat("must have at most ", max_items, " items"));
  }
  std::vector<std::string> items;
  for (const nlohmann::json& item : *value) {
    if (!item.is_string() || item.get_ref<const std::string&>().size() > 256 ||
        !CleanText(item.get_ref<const std::string&>(), false)) {
      return FieldError(key, "must be an array of short strings without control characters");
    }
    items.push_back(item.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(items));
}

Status BodyFields::NoOthers() const {
  if (!body_.is_object()) return absl::OkStatus();
  for (const auto& [key, value] : body_.items()) {
    if (seen_.count(key) == 0) return FieldError(key, "is not a field of this request");
  }
  return absl::OkStatus();
}

StatusOr<int64_t> QueryInt(const std::map<std::string, std::string>& query, const std::string& key,
                           int64_t fallback, int64_t low, int64_t high) {
  auto it = query.find(key);
  if (it == query.end()) return fallback;
  int64_t value = 0;
  if (!absl::SimpleAtoi(it->second, &value) || value < low || value > high) {
    return FieldError(key, absl::StrCat("must be an integer from ", low, " to ", high));
  }
  return value;
}

StatusOr<std::optional<int64_t>> QueryTime(const std::map<std::string, std::string>& query,
                                           const std::string& key) {
  auto it = query.find(key);
  if (it == query.end()) return std::optional<int64_t>();
  absl::Time time;
  std::string error;
  if (!absl::ParseTime(absl::RFC3339_full, it->second, &time, &error)) {
    return FieldError(key, "must be a time like 2026-12-03T10:00:00Z");
  }
  return std::optional<int64_t>(absl::ToUnixMicros(time));
}

}  // namespace sp::server
