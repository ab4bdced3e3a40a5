// libFuzzer: a hostile front-end. The input is a stream of vhost-user messages (header and
// payload as on the wire; the low bits of the flags choose how many descriptors come along)
// handed to a real Backend with a device that pops its rings. Protocol violations must end
// in InputError (the connection closes), never a crash.
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "vhost-user/backend.h"

using namespace bulkhead;
using namespace bulkhead::vhost_user;

namespace {

class PoppingDevice : public BackendDevice {
 public:
  uint64_t features() const override { return feature::kVersion1 | feature::kIndirectDesc | feature::kEventIdx; }
  uint32_t queue_count() const override { return 2; }
  std::vector<uint8_t> config() const override { return std::vector<uint8_t>(36, 1); }
  bool write_config(uint32_t offset, std::span<const uint8_t> bytes) override { return offset + bytes.size() <= 36; }
  void process(Queue& q) override {
    for (int i = 0; i < 256; ++i) {
      auto chain = q.ring().pop(q.memory());
      if (!chain) break;
      q.complete(chain->head, 0);
    }
    q.flush_notifications();
  }
  void resubmit(Queue& q, std::vector<Chain> chains) override {
    for (auto& c : chains) q.complete(c.head, 0);
  }
  void drain(Queue&) override {}
};

UniqueFd descriptor_for(uint32_t request, int n) {
  // Memory-table messages want memory; everything else gets eventfds.
  if (request == 5 || request == 37 || request == 32) {
    UniqueFd fd(::memfd_create("fuzz", MFD_CLOEXEC));
    if (!fd || ::ftruncate(fd.get(), (n + 1) << 20) != 0) __builtin_trap();
    return fd;
  }
  return UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return 0;
  UniqueFd peer(sv[0]);
  EventLoop loop;
  PoppingDevice device;
  Backend backend(device, loop, UniqueFd(sv[1]));
  size_t at = 0;
  for (int count = 0; at + sizeof(Header) <= size && count < 64; ++count) {
    Header h;
    std::memcpy(&h, data + at, sizeof h);
    at += sizeof h;
    Message m;
    m.header = h;
    size_t len = std::min<size_t>(h.size, size - at);
    m.payload.assign(data + at, data + at + len);
    at += len;
    int fds = (h.flags >> 4) & 0x7;  // the fuzzer chooses how many descriptors travel along
    for (int i = 0; i < fds; ++i) m.fds.push_back(descriptor_for(h.request, i));
    try {
      backend.handle(m);
    } catch (const InputError&) {
      break;  // the back-end closes the connection
    } catch (const SystemError&) {
      break;
    }
    // Replies go to the peer; drain so the socket never fills.
    char sink[4096];
    while (::recv(peer.get(), sink, sizeof sink, MSG_DONTWAIT) > 0) {
    }
  }
  return 0;
}
