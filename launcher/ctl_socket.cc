#include "launcher/ctl_socket.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::launcher {

namespace {
sockaddr_un address_of(const std::string& path) {
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  if (path.size() >= sizeof a.sun_path) throw InputError("control socket path " + path + " is too long");
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  return a;
}
}  // namespace

CtlListener CtlListener::create(const std::string& state_dir, uid_t owner) {
  std::string path = state_dir + "/" + kControlSocketName;
  sockaddr_un a = address_of(path);
  CtlListener l;
  l.owner_ = owner;
  // A listening socket of our own; non-blocking so a client that vanishes cannot stall us.
  l.fd_.reset(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!l.fd_) throw_errno("socket");
  ::unlink(path.c_str());  // a stale one from a VM that is gone (the state dir is ours)
  mode_t old = ::umask(0177);  // the socket file is created 0600
  // bind/listen on the address built above.
  int bound = ::bind(l.fd_.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a);
  ::umask(old);
  if (bound != 0) throw_errno("binding " + path);
  if (::listen(l.fd_.get(), 8) != 0) throw_errno("listen on " + path);
  return l;
}

std::optional<ipc::ControlChannel> CtlListener::accept() {
  // accept4 on our listening socket; the client's socket is non-blocking like ours.
  UniqueFd client(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
  if (!client) return std::nullopt;
  ucred peer{};
  socklen_t size = sizeof peer;
  // The client's credentials, as the kernel recorded them at connect().
  if (::getsockopt(client.get(), SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0) return std::nullopt;
  if (peer.uid != 0 && peer.uid != owner_) {
    spdlog::warn("control socket: refused a client running as uid {}", peer.uid);
    return std::nullopt;
  }
  return ipc::ControlChannel(std::move(client));
}

std::string control_socket_path(const std::string& state_root, const std::string& name) {
  return state_root + "/" + name + "/" + kControlSocketName;
}

ipc::ControlChannel connect_control_socket(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw InputError("no VM control socket at " + path + " (is the VM running?)");
    throw InputError("cannot reach " + path + ": " + std::strerror(errno));
  }
  if (!S_ISSOCK(st.st_mode)) throw InputError(path + " is not a socket");
  if (st.st_uid != 0 && st.st_uid != ::getuid())
    throw InputError(path + " belongs to uid " + std::to_string(st.st_uid) + ", neither you nor root");
  sockaddr_un a = address_of(path);
  UniqueFd fd(::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  // connect to the address built above.
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    if (errno == ECONNREFUSED) throw InputError("the VM of " + path + " is not running any more");
    throw InputError("cannot connect to " + path + ": " + std::strerror(errno));
  }
  return ipc::ControlChannel(std::move(fd));
}

}  // namespace bulkhead::launcher
