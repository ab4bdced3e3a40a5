// The legacy device protocol's shared pages (the access ring, a device's state page): zeroed
// memfds that the device can neither shrink under the other side (SIGBUS) nor grow.
#pragma once

#include <cstddef>
#include <string>

#include "common/unique_fd.h"

namespace bulkhead::legacy {

// A memfd of `size` zero bytes, sealed against shrinking, growing and further seals; `what`
// names it in errors.
UniqueFd make_sealed_memfd(const char* name, size_t size, const std::string& what);

}  // namespace bulkhead::legacy
