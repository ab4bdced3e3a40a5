// Host resources the launcher opens on behalf of role processes, which open nothing.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <string>
#include <utility>

#include "common/unique_fd.h"

namespace bulkhead::launcher {

// open() with a one-line error naming `what` and the path.
UniqueFd open_file(const std::string& path, int flags, const char* what, mode_t mode = 0);
// A second descriptor (new number, same open file) so ownership can move to a child.
UniqueFd duplicate(int fd, const char* what);
// A socket file we created, removed when this is destroyed: through a descriptor of its
// directory, which also works after the launcher confined itself to an empty root.
class SocketFile {
 public:
  SocketFile() = default;
  explicit SocketFile(const std::string& path);
  ~SocketFile();
  SocketFile(SocketFile&&) noexcept = default;
  SocketFile& operator=(SocketFile&&) noexcept = default;
  int dir_fd() const { return dir_.get(); }

 private:
  UniqueFd dir_;
  std::string name_;
};

struct UnixListener {
  UniqueFd fd;
  SocketFile file;
};
// A listening unix stream socket at `path`. A stale socket file left by a killed
// predecessor is replaced; one that somebody still serves, or a non-socket, is an error.
UnixListener listen_unix(const std::string& path);
// A new pty master in raw mode; its slave's path goes to *name.
UniqueFd open_pty(std::string* name);
// Blocks SIGINT, SIGTERM and SIGHUP and returns a signalfd for them.
UniqueFd block_termination_signals(sigset_t* old_mask);

}  // namespace bulkhead::launcher
