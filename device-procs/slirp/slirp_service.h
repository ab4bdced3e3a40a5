// User-mode networking for one NIC, the way QEMU's `-netdev user` does it: libslirp turns the
// guest's frames into the host's own sockets (guest 10.0.2.15 by DHCP, gateway 10.0.2.2, DNS
// 10.0.2.3, forwarded host ports). Frames come and go as SOCK_SEQPACKET messages to the NIC's
// device process; this process never sees guest memory, and the NIC's process never opens a
// socket (docs/confinement.md says why the two are apart).
#pragma once

#include <libslirp.h>
#include <poll.h>

#include <vector>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "ipc/control.pb.h"

namespace bulkhead::device {

class SlirpService {
 public:
  // Throws InputError if a forwarded port cannot be had.
  SlirpService(const ipc::SlirpConfig& config, UniqueFd frames);
  ~SlirpService();
  SlirpService(const SlirpService&) = delete;
  SlirpService& operator=(const SlirpService&) = delete;

  // Serves until the NIC's process hangs up or `loop` (the launcher's socket) stops.
  void run(EventLoop& loop);

  uint64_t frames_in() const { return frames_in_; }
  uint64_t frames_out() const { return frames_out_; }

 private:
  static ssize_t send_packet(const void* buf, size_t len, void* opaque);
  static int add_poll(int fd, int events, void* opaque);
  static int get_revents(int idx, void* opaque);
  void receive_frames();

  UniqueFd frames_;
  Slirp* slirp_ = nullptr;
  std::vector<pollfd> fds_;
  bool hung_up_ = false;
  uint64_t frames_in_ = 0, frames_out_ = 0;
};

}  // namespace bulkhead::device
