// Sending and receiving bytes with file descriptors attached (SCM_RIGHTS).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::ipc {

// The most descriptors one message may carry; more is a protocol error.
inline constexpr size_t kMaxFdsPerMessage = 16;

// Sends `data` with `fds` attached in one sendmsg(); retries on EINTR. Returns bytes sent.
size_t send_with_fds(int sock, std::span<const uint8_t> data, std::span<const int> fds);

// Receives into `buffer`; received descriptors are appended to `fds` (close-on-exec).
// Returns bytes received, 0 on orderly hang-up. Throws on error, on truncated control data
// and when more than `max_fds` descriptors arrive (all of them are closed then).
size_t recv_with_fds(int sock, std::span<uint8_t> buffer, std::vector<UniqueFd>& fds,
                     size_t max_fds = kMaxFdsPerMessage, int flags = 0);

}  // namespace bulkhead::ipc
