#include "launcher/resources.h"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::launcher {

UniqueFd open_file(const std::string& path, int flags, const char* what, mode_t mode) {
  // open() of a user-supplied path; the descriptor is handed to a role process later.
  UniqueFd fd(::open(path.c_str(), flags | O_CLOEXEC, mode));
  if (!fd) throw InputError(std::string("cannot open ") + what + " '" + path + "': " + std::strerror(errno));
  return fd;
}

UniqueFd duplicate(int fd, const char* what) {
  // A second descriptor for a stream we hold, so ownership can move to a child.
  UniqueFd copy(::fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!copy) throw InputError(std::string("cannot use ") + what + ": " + std::strerror(errno));
  return copy;
}

SocketFile::SocketFile(const std::string& path) {
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  name_ = path.substr(slash == std::string::npos ? 0 : slash + 1);
  dir_ = open_file(dir, O_RDONLY | O_DIRECTORY, "socket directory");
}

SocketFile::~SocketFile() {
  // unlinkat relative to the directory we hold: the path may be unreachable by now.
  if (dir_) ::unlinkat(dir_.get(), name_.c_str(), 0);
}

UnixListener listen_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw InputError("unix socket path '" + path + "' is too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A fresh socket owned by `fd`.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throw_errno("socket");
  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode)) throw InputError("'" + path + "' exists and is not a socket");
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    // connect() to learn whether someone still serves this socket; `addr` is fully set.
    if (probe && ::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0)
      throw InputError("socket '" + path + "' is in use by another process");
    ::unlink(path.c_str());  // a stale socket left by a killed predecessor
  }
  // bind/listen on the socket we own, at the address checked above.
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw InputError("cannot listen on '" + path + "': " + std::strerror(errno));
  UnixListener listener{std::move(fd), SocketFile(path)};
  if (::listen(listener.fd.get(), 1) != 0) throw_errno("listen");
  return listener;
}

UniqueFd open_pty(std::string* name) {
  // A new pseudo-terminal master; the slave's path is printed for the user.
  UniqueFd master(::posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK));
  if (!master || ::grantpt(master.get()) != 0 || ::unlockpt(master.get()) != 0) throw_errno("opening a pty");
  char buffer[128];
  if (::ptsname_r(master.get(), buffer, sizeof buffer) != 0) throw_errno("ptsname");
  *name = buffer;
  termios tio;
  // The slave side gets raw mode so the guest's bytes pass untouched.
  UniqueFd slave(::open(buffer, O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (slave && ::tcgetattr(slave.get(), &tio) == 0) {
    ::cfmakeraw(&tio);
    ::tcsetattr(slave.get(), TCSANOW, &tio);
  }
  return master;
}

UniqueFd block_termination_signals(sigset_t* old_mask) {
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&set, sig);
  ::sigprocmask(SIG_BLOCK, &set, old_mask);
  // A signalfd for the signals just blocked.
  UniqueFd fd(::signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!fd) throw_errno("signalfd");
  return fd;
}

}  // namespace bulkhead::launcher
