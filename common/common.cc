#include <sys/prctl.h>

#include <cerrno>
#include <csignal>

#include <spdlog/sinks/stdout_sinks.h>

#include "common/error.h"
#include "common/log.h"
#include "common/mapping.h"

namespace bulkhead {

void throw_errno(const std::string& what) { throw SystemError(errno, what); }

Mapping Mapping::map(int fd, size_t size, int prot, int flags, off_t offset) {
  // A fresh mapping chosen by the kernel; ownership moves into the returned Mapping.
  void* addr = ::mmap(nullptr, size, prot, flags, fd, offset);
  if (addr == MAP_FAILED) throw_errno("mmap of " + std::to_string(size) + " bytes");
  return Mapping(addr, size);
}

void init_process(const std::string& role_name) {
  // A reader that goes away (a closed pipe, a disconnected console) must show up as EPIPE
  // on that one write, not kill the process.
  ::signal(SIGPIPE, SIG_IGN);
  // Likewise, a write past RLIMIT_FSIZE (a guest filling its console log) fails with EFBIG.
  ::signal(SIGXFSZ, SIG_IGN);
  // PR_SET_NAME copies at most 16 bytes from a valid C string.
  ::prctl(PR_SET_NAME, role_name.c_str(), 0, 0, 0);
  auto logger = spdlog::stderr_logger_st(role_name);
  logger->set_pattern("%n: %v");
  spdlog::set_default_logger(logger);
  spdlog::set_level(spdlog::level::info);
}

}  // namespace bulkhead
