// libFuzzer: a hostile guest's e1000. Each input is a sequence of register writes and reads
// (through the memory BAR and IOADDR/IODATA), guest memory contents (descriptor rings and
// buffers, wherever the registers point) and frames arriving from the host end; the device
// starts from a global reset each time. Nothing it sends may exceed what a packet may be.
//   input: records of [op][offset le32][value le32]; op 4 writes the next `value % 4096`
//          input bytes to guest memory at `offset`, op 5 sends them as a frame from the host.
#include <sys/socket.h>

#include <cstring>

#include "device-procs/e1000/e1000_device.h"
#include "device-procs/e1000/e1000_regs.h"
#include "tests/unit/fake_driver.h"

using namespace bulkhead;
using bulkhead::device::E1000Device;

namespace {

struct Rig {
  Rig() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv) != 0) __builtin_trap();
    host.reset(sv[0]);
    std::vector<UniqueFd> fds;
    fds.emplace_back(sv[1]);
    ipc::NetBackend config;
    config.set_packet_fd(0);
    device = std::make_unique<E1000Device>(loop, device::make_net_backend(config, fds),
                                           std::array<uint8_t, 6>{0x52, 0x54, 0, 1, 2, 3});
    memory.add(ram.region(), ram.dup_fd());
    device->attach_memory(memory);
  }
  EventLoop loop;
  test::GuestRam ram;
  vhost_user::MemoryMap memory;
  UniqueFd host;
  std::unique_ptr<E1000Device> device;
};

uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  E1000Device& d = *rig.device;
  d.write(E1000Device::kConfig, legacy::kPciConfigCommand, 2, 0x7);
  d.write(E1000Device::kRegisters, device::e1000::kCtrl, 4, device::e1000::kCtrlRst);
  for (size_t at = 0; at + 9 <= size;) {
    uint8_t op = data[at] % 6;
    uint32_t offset = le32(data + at + 1), value = le32(data + at + 5);
    at += 9;
    switch (op) {
      case 0: d.write(E1000Device::kRegisters, offset % device::e1000::kRegisterSpace, 4, value); break;
      case 1: (void)d.read(E1000Device::kRegisters, offset % device::e1000::kRegisterSpace, 4); break;
      case 2: d.write(E1000Device::kIoPorts, (offset & 1) * 4, 4, value); break;
      case 3: (void)d.read(E1000Device::kIoPorts, (offset & 1) * 4, 4); break;
      case 4:
      case 5: {
        size_t n = std::min<size_t>(value % 4096, size - at);
        if (op == 4) {
          uint64_t gpa = offset % test::GuestRam::kSize;
          n = std::min<size_t>(n, test::GuestRam::kSize - gpa);
          std::memcpy(rig.ram.at(gpa), data + at, n);
        } else if (n) {
          ::send(rig.host.get(), data + at, n, MSG_DONTWAIT);
        }
        at += n;
        break;
      }
    }
    while (rig.loop.run_once(0) > 0) {
    }
  }
  for (char frame[70000];;) {
    ssize_t n = ::recv(rig.host.get(), frame, sizeof frame, MSG_DONTWAIT);
    if (n <= 0) break;
    if (static_cast<size_t>(n) > E1000Device::kMaxTxPacket + 4) __builtin_trap();
  }
  return 0;
}
