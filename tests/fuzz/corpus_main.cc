// Runs a fuzz target over its checked-in corpus as an ordinary regression test (used when the
// build has no libFuzzer): every file under the given directories is one input.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "platform/files.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

int main(int argc, char** argv) {
  int inputs = 0;
  for (int i = 1; i < argc; ++i) {
    for (const auto& entry : std::filesystem::recursive_directory_iterator(argv[i])) {
      if (!entry.is_regular_file()) continue;
      auto data = sp::ReadFile(entry.path().string());
      if (!data.ok()) {
        std::fprintf(stderr, "%s\n", std::string(data.status().message()).c_str());
        return 1;
      }
      LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(data->data()), data->size());
      ++inputs;
    }
  }
  std::printf("ran %d corpus inputs\n", inputs);
  return inputs > 0 ? 0 : 1;
}
