#include "dma.h"

#include "console.h"
#include "spinlock.h"

namespace guest {

namespace {
constexpr size_t kArenaSize = 24 << 20;
alignas(4096) uint8_t arena[kArenaSize];
size_t used;
SpinLock lock;
}  // namespace

void* dma_alloc(size_t size, size_t align) {
  lock.lock();
  size_t at = (used + align - 1) & ~(align - 1);
  if (at + size > kArenaSize) {
    lock.unlock();
    print("BH-FAIL dma arena exhausted\n");
    exit_guest(3);
  }
  used = at + size;
  lock.unlock();
  return arena + at;
}

}  // namespace guest
