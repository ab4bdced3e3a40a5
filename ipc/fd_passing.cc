#include "ipc/fd_passing.h"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace bulkhead::ipc {

size_t send_with_fds(int sock, std::span<const uint8_t> data, std::span<const int> fds) {
  if (fds.size() > kMaxFdsPerMessage) throw InputError("too many descriptors for one message");
  // The iovec only reads from `data`; sendmsg takes a non-const pointer for historic reasons.
  iovec iov{const_cast<uint8_t*>(data.data()), data.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  if (!fds.empty()) {
    msg.msg_control = control;
    msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    std::memcpy(CMSG_DATA(cmsg), fds.data(), sizeof(int) * fds.size());
  }
  for (;;) {
    // sendmsg on a socket we hold, with buffers that outlive the call; MSG_NOSIGNAL turns a
    // vanished peer into EPIPE instead of killing us.
    ssize_t n = ::sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n >= 0) return static_cast<size_t>(n);
    if (errno != EINTR) throw_errno("sendmsg");
  }
}

size_t recv_with_fds(int sock, std::span<uint8_t> buffer, std::vector<UniqueFd>& fds, size_t max_fds,
                     int flags) {
  iovec iov{buffer.data(), buffer.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerMessage)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof(control);
  ssize_t n;
  do {
    // recvmsg into buffers we own; MSG_CMSG_CLOEXEC keeps received fds out of exec'd children.
    n = ::recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
  } while (n < 0 && errno == EINTR);
  if (n < 0) throw_errno("recvmsg");

  std::vector<UniqueFd> received;
  for (cmsghdr* cmsg = CMSG_FIRSTHDR(&msg); cmsg; cmsg = CMSG_NXTHDR(&msg, cmsg)) {
    if (cmsg->cmsg_level != SOL_SOCKET || cmsg->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (cmsg->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int fd;
      std::memcpy(&fd, CMSG_DATA(cmsg) + i * sizeof(int), sizeof(int));
      received.emplace_back(fd);
    }
  }
  if (msg.msg_flags & MSG_CTRUNC) throw InputError("peer sent more descriptors than fit in one message");
  if (received.size() > max_fds) throw InputError("peer sent " + std::to_string(received.size()) +
                                                  " descriptors, at most " + std::to_string(max_fds) + " allowed");
  for (auto& fd : received) fds.push_back(std::move(fd));
  return static_cast<size_t>(n);
}

}  // namespace bulkhead::ipc
