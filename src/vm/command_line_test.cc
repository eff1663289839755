#include "vm/command_line.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace sp::vm {
namespace {

bool HasPair(const std::vector<std::string>& args, const std::string& flag,
             const std::string& value) {
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == flag && args[i + 1] == value) return true;
  }
  return false;
}

TEST(CommandLineTest, NamedNodesSerialsAgentChannelAndSockets) {
  catalog::VmRecord vm;
  vm.name = "web01";
  vm.uuid = "0b7c9a56-0000-4000-8000-000000000001";
  vm.vcpus = 2;
  vm.memory_mib = 768;
  vm.kernel = "/boot/vmlinuz";
  vm.append = "console=ttyS0";
  vm.volumes = {{"root", "/img/root.qcow2", "qcow2", true, "sp-root", "root-fmt", 4},
                {"data", "/img/data.raw", "raw", false, "sp-data", "data-fmt", 5}};
  vm.nics = {{"52:54:00:aa:bb:cc", "user"}};
  auto paths = RunPathsFor(vm, "/run/sp");
  ASSERT_TRUE(paths.ok());
  QemuOptions options;
  auto args = BuildQemuCommandLine(vm, *paths, options);
  EXPECT_TRUE(HasPair(args, "-machine", "pc,accel=tcg"));
  EXPECT_TRUE(HasPair(args, "-smp", "2"));
  EXPECT_TRUE(HasPair(args, "-m", "768"));
  EXPECT_TRUE(HasPair(args, "-blockdev",
                      "driver=file,filename=/img/root.qcow2,node-name=root-file,"
                      "cache.direct=off,discard=unmap"));
  EXPECT_TRUE(
      HasPair(args, "-blockdev", "driver=raw,file=data-file,node-name=data-fmt,discard=unmap"));
  EXPECT_TRUE(
      HasPair(args, "-device", "virtio-blk-pci,drive=root-fmt,id=root,serial=sp-root,addr=0x4"));
  EXPECT_TRUE(
      HasPair(args, "-device", "virtio-blk-pci,drive=data-fmt,id=data,serial=sp-data,addr=0x5"));
  EXPECT_TRUE(HasPair(args, "-chardev",
                      "socket,id=qga0,path=/run/sp/0b7c9a56/qga.sock,server=on,wait=off"));
  EXPECT_TRUE(HasPair(args, "-qmp", "unix:/run/sp/0b7c9a56/qmp.sock,server=on,wait=off"));
  EXPECT_TRUE(HasPair(args, "-qmp", "unix:/run/sp/0b7c9a56/mon.sock,server=on,wait=off"));
  EXPECT_TRUE(HasPair(args, "-pidfile", "/run/sp/0b7c9a56/qemu.pid"));
  EXPECT_TRUE(
      HasPair(args, "-device", "virtio-net-pci,netdev=net0,mac=52:54:00:aa:bb:cc,addr=0x10"));
  EXPECT_TRUE(HasPair(args, "-kernel", "/boot/vmlinuz"));
  EXPECT_EQ(std::count(args.begin(), args.end(), "-initrd"), 0);

  vm.agent = false;
  args = BuildQemuCommandLine(vm, *paths, options);
  EXPECT_EQ(std::count(args.begin(), args.end(), "-chardev"), 0);
}

}  // namespace
}  // namespace sp::vm
