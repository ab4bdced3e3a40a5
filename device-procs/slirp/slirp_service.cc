#include "device-procs/slirp/slirp_service.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <time.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

namespace {

constexpr size_t kMaxFrame = 65535 + 18;
constexpr int kBatch = 32;

in_addr address(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a;
}

int64_t clock_ns(void*) {
  timespec ts;
  // CLOCK_MONOTONIC into a local: slirp's timers only need a steady clock.
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

void guest_error(const char* message, void*) { spdlog::warn("user-mode networking: {}", message); }
// IPv6 is off, so slirp arms no timer (its only one is the router advertisement's).
void* timer_new(SlirpTimerCb, void*, void*) { return nullptr; }
void timer_free(void*, void*) {}
void timer_mod(void*, int64_t, void*) {}
void register_poll_fd(int, void*) {}
void unregister_poll_fd(int, void*) {}
void notify(void*) {}

const SlirpCb kCallbacks = {
    .send_packet = nullptr,  // set per instance below (it needs the service)
    .guest_error = guest_error,
    .clock_get_ns = clock_ns,
    .timer_new = timer_new,
    .timer_free = timer_free,
    .timer_mod = timer_mod,
    .register_poll_fd = register_poll_fd,
    .unregister_poll_fd = unregister_poll_fd,
    .notify = notify,
    .init_completed = nullptr,
    .timer_new_opaque = nullptr,
};

short to_poll(int slirp_events) {
  short e = 0;
  if (slirp_events & SLIRP_POLL_IN) e |= POLLIN;
  if (slirp_events & SLIRP_POLL_OUT) e |= POLLOUT;
  if (slirp_events & SLIRP_POLL_PRI) e |= POLLPRI;
  return e;
}

}  // namespace

SlirpService::SlirpService(const ipc::SlirpConfig& config, UniqueFd frames) : frames_(std::move(frames)) {
  SlirpConfig c{};
  c.version = 4;
  c.restricted = config.restrict();
  c.in_enabled = true;
  c.vnetwork = address("10.0.2.0");
  c.vnetmask = address("255.255.255.0");
  c.vhost = address("10.0.2.2");
  c.vdhcp_start = address("10.0.2.15");
  c.vnameserver = address("10.0.2.3");
  c.vhostname = "bulkhead";
  c.if_mtu = c.if_mru = config.mtu() ? config.mtu() : 1500;
  static SlirpCb callbacks = kCallbacks;
  callbacks.send_packet = send_packet;
  slirp_ = slirp_new(&c, &callbacks, this);
  if (!slirp_) throw InputError("libslirp refused its configuration");
  for (const auto& f : config.forwards()) {
    in_addr host = address(f.host_address().c_str());
    if (slirp_add_hostfwd(slirp_, f.udp(), host, static_cast<int>(f.host_port()), address("10.0.2.15"),
                          static_cast<int>(f.guest_port())) != 0)
      throw InputError("cannot forward host port " + f.host_address() + ":" + std::to_string(f.host_port()) +
                       ": " + std::strerror(errno));
  }
}

SlirpService::~SlirpService() {
  if (slirp_) slirp_cleanup(slirp_);
}

ssize_t SlirpService::send_packet(const void* buf, size_t len, void* opaque) {
  auto* self = static_cast<SlirpService*>(opaque);
  // One frame as one message to the NIC's process; a full socket drops it (TCP resends).
  ssize_t n = ::send(self->frames_.get(), buf, len, MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n > 0) ++self->frames_out_;
  return n < 0 ? static_cast<ssize_t>(len) : n;
}

int SlirpService::add_poll(int fd, int events, void* opaque) {
  auto* self = static_cast<SlirpService*>(opaque);
  self->fds_.push_back({fd, to_poll(events), 0});
  return static_cast<int>(self->fds_.size() - 1);
}

int SlirpService::get_revents(int idx, void* opaque) {
  auto* self = static_cast<SlirpService*>(opaque);
  if (idx < 0 || static_cast<size_t>(idx) >= self->fds_.size()) return 0;
  short r = self->fds_[idx].revents;
  int e = 0;
  if (r & POLLIN) e |= SLIRP_POLL_IN;
  if (r & POLLOUT) e |= SLIRP_POLL_OUT;
  if (r & POLLPRI) e |= SLIRP_POLL_PRI;
  if (r & POLLERR) e |= SLIRP_POLL_ERR;
  if (r & POLLHUP) e |= SLIRP_POLL_HUP;
  return e;
}

void SlirpService::receive_frames() {
  static std::vector<uint8_t> buffers(kBatch * kMaxFrame);
  mmsghdr messages[kBatch] = {};
  iovec iov[kBatch];
  for (int i = 0; i < kBatch; ++i) {
    iov[i] = {buffers.data() + i * kMaxFrame, kMaxFrame};
    messages[i].msg_hdr.msg_iov = &iov[i];
    messages[i].msg_hdr.msg_iovlen = 1;
  }
  // A batch of frames (one per message) from the NIC's process, without blocking.
  int n = ::recvmmsg(frames_.get(), messages, kBatch, MSG_DONTWAIT, nullptr);
  if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) hung_up_ = true;
  for (int i = 0; i < n; ++i) {
    if (messages[i].msg_len == 0 || (messages[i].msg_hdr.msg_flags & MSG_TRUNC)) continue;
    slirp_input(slirp_, buffers.data() + i * kMaxFrame, static_cast<int>(messages[i].msg_len));
    ++frames_in_;
  }
}

void SlirpService::run(EventLoop& loop) {
  while (!hung_up_ && !loop.stopped()) {
    fds_.clear();
    fds_.push_back({frames_.get(), POLLIN, 0});
    fds_.push_back({loop.fd(), POLLIN, 0});
    uint32_t timeout = 1000;
    slirp_pollfds_fill(slirp_, &timeout, add_poll, this);
    // poll() over our frame socket, the loop's epoll and slirp's own sockets.
    int n = ::poll(fds_.data(), fds_.size(), static_cast<int>(timeout));
    if (n < 0 && errno != EINTR) throw_errno("poll");
    slirp_pollfds_poll(slirp_, n < 0, get_revents, this);
    if (fds_[0].revents & POLLIN) receive_frames();
    if (fds_[0].revents & (POLLHUP | POLLERR)) hung_up_ = true;
    if (fds_[1].revents & POLLIN) loop.run_once(0);
  }
}

}  // namespace bulkhead::device
