// Fuzz target for everything stillpoint parses from QEMU's QMP socket and the guest agent's
// channel: the first input byte picks the peer, the rest is what that peer sends.
#include <cstddef>
#include <cstdint>
#include <string>

#include "qga/qga_client.h"
#include "qmp/qmp_client.h"

namespace {

// Hands out the fuzz input in small pieces, then reports EOF; swallows writes.
class ScriptedStream final : public sp::ByteStream {
 public:
  explicit ScriptedStream(std::string data) : data_(std::move(data)) {}
  sp::StatusOr<size_t> ReadSome(char* buffer, size_t size, sp::Deadline) override {
    size_t count = std::min({size, data_.size() - offset_, size_t{61}});
    std::copy_n(data_.data() + offset_, count, buffer);
    offset_ += count;
    return count;
  }
  sp::Status WriteAll(absl::string_view, sp::Deadline) override { return absl::OkStatus(); }
  void Close() override {}

 private:
  std::string data_;
  size_t offset_ = 0;
};

void FuzzQmp(std::string input) {
  auto client = sp::qmp::Client::Handshake(std::make_unique<ScriptedStream>(std::move(input)),
                                           "VM 'fuzz'", sp::Deadline::In(sp::Millis(1000)));
  if (!client.ok()) return;
  (void)(*client)->Execute("query-block");
  while ((*client)->NextEvent(sp::Deadline::In(sp::Millis(0))).ok()) {
  }
}

void FuzzQga(std::string input) {
  sp::qga::Client client(std::make_unique<ScriptedStream>(std::move(input)), "VM 'fuzz'", 7);
  (void)client.Info();
  (void)client.GetFsinfo();
  (void)client.FreezeStatus();
  (void)client.ExecStatus(1);
  (void)client.Freeze();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string input(reinterpret_cast<const char*>(data) + 1, size - 1);
  if (data[0] % 2 == 0) {
    FuzzQmp(std::move(input));
  } else {
    FuzzQga(std::move(input));
  }
  return 0;
}
