#include "cli/usage.h"

#include "absl/strings/match.h"
#include "absl/strings/str_join.h"

namespace sp::cli {
namespace {

// The deepest subcommand the command line selected, and its full name ("stillpoint vm define").
std::pair<CLI::App*, std::string> SelectedCommand(CLI::App& root) {
  CLI::App* app = &root;
  std::vector<std::string> names = {root.get_name()};
  while (!app->get_subcommands().empty()) {
    app = app->get_subcommands().front();
    names.push_back(app->get_name());
  }
  return {app, absl::StrJoin(names, " ")};
}

// What an option of CLI11 type `type` ("INT", "UINT", "FLOAT", ...) takes, in words.
std::string Expected(const std::string& type) {
  if (type == "INT") return "a whole number";
  if (type == "UINT") return "a whole number, 0 or more";
  if (type == "FLOAT") return "a number";
  return absl::StrCat("a value of type ", type);
}

// "Could not convert: --vcpus = two" → "--vcpus: 'two' is not a whole number".
std::string DescribeConversion(CLI::App& app, const std::string& message) {
  constexpr absl::string_view kPrefix = "Could not convert: ";
  size_t separator = message.rfind(" = ");
  if (!absl::StartsWith(message, kPrefix) || separator == std::string::npos) return message;
  std::string name = message.substr(kPrefix.size(), separator - kPrefix.size());
  std::string value = message.substr(separator + 3);
  const CLI::Option* option = app.get_option_no_throw(name);
  std::string expected = option != nullptr ? Expected(option->get_type_name()) : "valid";
  return absl::StrCat(name, ": '", value, "' is not ", expected);
}

}  // namespace

Status UsageError(CLI::App& root, const CLI::ParseError& error) {
  auto [app, command] = SelectedCommand(root);
  std::string what = error.what();
  if (dynamic_cast<const CLI::ConversionError*>(&error) != nullptr) {
    what = DescribeConversion(*app, what);
  }
  return absl::InvalidArgumentError(absl::StrCat(what, " (see `", command, " --help`)"));
}

StatusOr<std::vector<std::pair<std::string, std::string>>> SplitSpec(const std::string& option,
                                                                     const std::string& spec) {
  std::vector<std::pair<std::string, std::string>> parts(1);
  bool in_value = false;
  char quote = 0;
  for (char c : spec) {
    std::string& field = in_value ? parts.back().second : parts.back().first;
    if (quote != 0) {
      if (c == quote)
        quote = 0;
      else
        field.push_back(c);
    } else if (in_value && field.empty() && (c == '"' || c == '\'')) {  // only a whole value
      quote = c;
    } else if (c == ',') {
      parts.emplace_back();
      in_value = false;
    } else if (c == '=' && !in_value) {
      in_value = true;
    } else {
      field.push_back(c);
    }
  }
  if (quote != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(option, " '", spec, "': a quote (", std::string(1, quote), ") is not closed"));
  }
  std::erase_if(parts, [](const auto& part) { return part.first.empty() && part.second.empty(); });
  return parts;
}

}  // namespace sp::cli
