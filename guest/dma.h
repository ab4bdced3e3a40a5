// Memory for device rings and buffers: a bump allocator over a static arena (identity
// mapped, so guest-virtual equals guest-physical).
#pragma once

#include <stddef.h>
#include <stdint.h>

namespace guest {

void* dma_alloc(size_t size, size_t align = 16);
inline uint64_t phys(const void* p) { return reinterpret_cast<uint64_t>(p); }

}  // namespace guest
