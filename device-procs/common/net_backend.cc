#include "device-procs/common/net_backend.h"

#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control_channel.h"

namespace bulkhead::device {

namespace {

class TapBackend : public NetBackend {
 public:
  explicit TapBackend(std::vector<UniqueFd> queues) : queues_(std::move(queues)) {}
  bool offloads() const override { return true; }
  size_t queues() const override { return queues_.size(); }
  int fd(size_t queue) const override { return queues_[queue].get(); }
  bool send(size_t queue, std::span<const iovec> frame) override {
    // writev of the guest's frame to our tap; the kernel checks the virtio-net header.
    ssize_t n = ::writev(queues_[queue].get(), frame.data(), static_cast<int>(frame.size()));
    return n > 0;
  }
  size_t receive(size_t queue, std::span<uint8_t> buffer) override {
    // One frame per read, header first; EAGAIN when none waits.
    ssize_t n = ::read(queues_[queue].get(), buffer.data(), buffer.size());
    return n > 0 ? static_cast<size_t>(n) : 0;
  }
  void set_guest_offloads(unsigned tun_flags) override {
    for (const UniqueFd& q : queues_)
      // TUNSETOFFLOAD takes the flags by value; a tap that refuses keeps sending full frames.
      if (::ioctl(q.get(), TUNSETOFFLOAD, tun_flags) != 0)
        spdlog::warn("the tap refused offloads {:#x}; frames arrive checksummed and segmented", tun_flags);
  }

 private:
  std::vector<UniqueFd> queues_;
};

// The user-mode networking helper's socket: one frame per SOCK_SEQPACKET message. When the
// helper falls behind, frames wait here (the device stops taking more from the guest), so
// that a burst slows the guest down instead of being dropped.
class PacketBackend : public NetBackend {
 public:
  explicit PacketBackend(UniqueFd socket) : socket_(std::move(socket)) {}
  bool offloads() const override { return false; }
  size_t queues() const override { return 1; }
  int fd(size_t) const override { return socket_.get(); }
  bool send(size_t, std::span<const iovec> frame) override {
    if (backlog_.empty()) {
      msghdr m{};
      m.msg_iov = const_cast<iovec*>(frame.data());  // sendmsg only reads the iovecs
      m.msg_iovlen = frame.size();
      // One frame as one message on our socket to the helper, without blocking.
      if (::sendmsg(socket_.get(), &m, MSG_DONTWAIT | MSG_NOSIGNAL) > 0) return true;
      if (errno != EAGAIN && errno != ENOBUFS) return false;
    }
    if (backlog_.size() >= kMaxBacklog) return false;
    std::vector<uint8_t>& kept = backlog_.emplace_back();
    for (const iovec& piece : frame) {
      auto* bytes = static_cast<const uint8_t*>(piece.iov_base);
      kept.insert(kept.end(), bytes, bytes + piece.iov_len);
    }
    return true;
  }
  bool congested(size_t) const override { return !backlog_.empty(); }
  bool flush(size_t) override {
    while (!backlog_.empty()) {
      const std::vector<uint8_t>& frame = backlog_.front();
      // The oldest waiting frame, without blocking.
      if (::send(socket_.get(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0 &&
          (errno == EAGAIN || errno == ENOBUFS))
        return false;
      backlog_.pop_front();  // sent, or refused for good
    }
    return true;
  }
  size_t receive(size_t, std::span<uint8_t> buffer) override {
    // One whole message (a frame) into the buffer; a longer one would be truncated, and is dropped.
    ssize_t n = ::recv(socket_.get(), buffer.data(), buffer.size(), MSG_DONTWAIT | MSG_TRUNC);
    if (n <= 0 || static_cast<size_t>(n) > buffer.size()) return 0;
    return static_cast<size_t>(n);
  }

 private:
  // A TSO packet's segments, at most, beyond what the socket holds.
  static constexpr size_t kMaxBacklog = 1024;
  UniqueFd socket_;
  std::deque<std::vector<uint8_t>> backlog_;
};

}  // namespace

std::unique_ptr<NetBackend> make_net_backend(const ipc::NetBackend& config, std::vector<UniqueFd>& fds) {
  if (config.packet_fd() >= 0 && config.tap_fds_size() == 0) {
    UniqueFd socket = ipc::take_fd(fds, config.packet_fd(), "the user-mode networking socket");
    if (!socket) throw InputError("no user-mode networking socket");
    return std::make_unique<PacketBackend>(std::move(socket));
  }
  std::vector<UniqueFd> queues;
  for (int index : config.tap_fds()) {
    queues.push_back(ipc::take_fd(fds, index, "a tap queue"));
    if (!queues.back()) throw InputError("a tap queue is missing");
  }
  if (queues.empty()) throw InputError("the network device has no host end");
  return std::make_unique<TapBackend>(std::move(queues));
}

}  // namespace bulkhead::device
