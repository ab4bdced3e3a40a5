// One stderr logger per process, named after its role (bh-core, bh-serial, ...).
#pragma once

#include <spdlog/spdlog.h>

#include <string>

namespace bulkhead {

// Names this process (/proc/self/comm and the log prefix), installs the stderr logger and
// ignores SIGPIPE and SIGXFSZ.
void init_process(const std::string& role_name);

}  // namespace bulkhead
