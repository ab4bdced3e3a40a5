// Parsing and checking what a user typed, with messages that name the problem.
#pragma once

#include <cstdint>
#include <string>

namespace bulkhead::launcher {

// "256M", "1G", "512MiB", "1048576K", or a plain number of MiB (as QEMU's -m). Throws
// InputError for anything else.
uint64_t parse_memory_size(const std::string& text);

}  // namespace bulkhead::launcher
