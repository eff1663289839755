// Test helper: a fresh, short temporary directory removed when the test ends.
// Short because unix socket paths inside it must stay under 108 bytes.
#pragma once

#include <stdlib.h>

#include <filesystem>
#include <string>

namespace sp::testing {

class TempDir {
 public:
  TempDir() {
    std::string pattern = "/tmp/sp-XXXXXX";
    char* made = ::mkdtemp(pattern.data());
    if (made != nullptr) path_ = made;
  }
  ~TempDir() {
    if (!path_.empty() && ::getenv("STILLPOINT_KEEP_TEST_DIRS") == nullptr) {
      std::error_code ignored;
      std::filesystem::remove_all(path_, ignored);
    }
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace sp::testing
