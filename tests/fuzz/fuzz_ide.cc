// libFuzzer: a hostile guest's IDE controller. Each input is a sequence of register writes and
// reads on any of its windows (the task files, the control registers, the bus-master engine,
// configuration space), data-port strings in both directions, and guest memory contents (PRD
// tables and buffers, wherever the registers point). Images: a 1 MiB disk as primary master,
// a 128 KiB CD-ROM as secondary master. Both channels are reset at the start of each input.
//   input: records of [op][where le32][value le32]; op 2 writes the next `value % 4096` input
//          bytes to the data port, op 4 the next `value % 4096` bytes to guest memory at `where`.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "device-procs/ide/ide_controller.h"
#include "tests/unit/fake_driver.h"

using namespace bulkhead;
using bulkhead::device::IdeController;

namespace {

UniqueFd memory_file(uint64_t bytes) {
  UniqueFd fd(::memfd_create("image", MFD_CLOEXEC));
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0) __builtin_trap();
  return fd;
}

struct Rig {
  Rig() {
    std::array<device::IdeDrive, 4> drives;
    drives[0].kind = device::IdeDrive::Kind::kDisk;
    drives[0].backend = std::make_unique<device::BlockBackend>(memory_file(1 << 20), 1 << 20, 8);
    drives[0].disk = {(1 << 20) / 512, "FUZZ", "FUZZ DISK", {}, 0, true, {}};
    drives[2].kind = device::IdeDrive::Kind::kCdrom;
    drives[2].backend = std::make_unique<device::BlockBackend>(memory_file(64 * 2048), 64 * 2048, 8);
    drives[2].cdrom = std::make_unique<device::Cdrom>(64 * 2048);
    drives[2].read_only = true;
    controller = std::make_unique<IdeController>(loop, std::move(drives));
    memory.add(ram.region(), ram.dup_fd());
    controller->attach_memory(memory);
  }
  EventLoop loop;
  test::GuestRam ram;
  vhost_user::MemoryMap memory;
  std::unique_ptr<IdeController> controller;
};

uint32_t le32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static Rig rig;
  static std::vector<uint8_t> scratch(65536);
  IdeController& c = *rig.controller;
  c.write(IdeController::kConfig, legacy::kPciConfigCommand, 2, 0x5);
  for (uint8_t control : {IdeController::kPrimaryControl, IdeController::kSecondaryControl}) {
    c.write(control, 0, 1, 0x04);
    c.write(control, 0, 1, 0x00);
  }
  static constexpr uint64_t kRegionSize[] = {8, 1, 8, 1, 16, 256};
  static constexpr uint8_t kSizes[] = {1, 2, 4, 4};
  for (size_t at = 0; at + 9 <= size;) {
    const uint8_t op = data[at] % 5;
    const uint32_t where = le32(data + at + 1), value = le32(data + at + 5);
    at += 9;
    const uint8_t region = static_cast<uint8_t>((where >> 16) % 6);
    const uint64_t offset = (where & 0xff) % kRegionSize[region];
    const uint8_t access = kSizes[(where >> 8) & 3];
    const uint8_t data_port = (where & 0x100) ? IdeController::kSecondaryCommand : IdeController::kPrimaryCommand;
    switch (op) {
      case 0: c.write(region, offset, access, value); break;
      case 1: (void)c.read(region, offset, access); break;
      case 2:
      case 4: {
        size_t n = std::min<size_t>(value % 4096, size - at);
        if (op == 2) {
          c.write_string(data_port, 0, access == 4 ? 4 : 2, {data + at, n & ~size_t{1}});
        } else {
          uint64_t gpa = where % test::GuestRam::kSize;
          n = std::min<size_t>(n, test::GuestRam::kSize - gpa);
          std::memcpy(rig.ram.at(gpa), data + at, n);
        }
        at += n;
        break;
      }
      case 3:
        c.read_string(data_port, 0, access == 4 ? 4 : 2, {scratch.data(), (value % scratch.size()) & ~size_t{1}});
        break;
    }
    while (rig.loop.run_once(0) > 0) {
    }
  }
  return 0;
}
