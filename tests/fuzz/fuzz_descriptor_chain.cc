// libFuzzer: a hostile guest's split virtqueue. The input becomes guest memory (descriptor
// table, avail ring, indirect tables); the device pops and completes until the ring is empty
// or broken. Every buffer handed out must lie inside guest memory.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "common/mapping.h"
#include "vhost-user/memory_map.h"
#include "vhost-user/virtqueue.h"

using namespace bulkhead;
using namespace bulkhead::vhost_user;

namespace {
constexpr uint64_t kRam = 1 << 20;
constexpr uint16_t kQueueSize = 64;
constexpr uint64_t kDesc = 0x1000, kAvail = 0x2000, kUsed = 0x3000;
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static int fd = [] {
    int f = ::memfd_create("fuzz-ram", MFD_CLOEXEC);
    if (f < 0 || ::ftruncate(f, kRam) != 0) __builtin_trap();
    return f;
  }();
  static Mapping ram = Mapping::map(fd, kRam, PROT_READ | PROT_WRITE);
  static MemoryMap memory = [] {
    MemoryMap m;
    m.add({0, kRam, 0x100000000, 0}, UniqueFd(::dup(fd)));
    return m;
  }();
  if (size < 4) return 0;
  std::memset(ram.data(), 0, 0x10000);
  // The first bytes choose features and the avail index; the rest is guest memory from 0x1000.
  uint64_t features = (data[0] & 1 ? feature::kIndirectDesc : 0) | (data[0] & 2 ? feature::kEventIdx : 0);
  uint16_t avail_idx;
  std::memcpy(&avail_idx, data + 1, 2);
  std::memcpy(ram.data() + kDesc, data + 3, std::min<size_t>(size - 3, 0xf000));
  std::memcpy(ram.data() + kAvail + 2, &avail_idx, 2);

  SplitQueue queue;
  uint8_t* base = memory.gpa_to_host(0, kRam);
  queue.start(kQueueSize, {base + kDesc, base + kAvail, base + kUsed}, 0, features, nullptr);
  try {
    for (int i = 0; i < 2 * kQueueSize; ++i) {
      auto chain = queue.pop(memory);
      if (!chain) break;
      for (const auto* list : {&chain->readable, &chain->writable})
        for (const HostRange& r : *list)
          if (r.data < base || r.data + r.size > base + kRam || r.size == 0) __builtin_trap();
      queue.push(chain->head, static_cast<uint32_t>(chain->writable_bytes));
      queue.should_notify();
    }
  } catch (const QueueBroken&) {
    // The expected outcome for most inputs: the queue stops, the process does not.
  }
  return 0;
}
