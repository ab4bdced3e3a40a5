// One end of a vhost-user socket: framing, descriptor passing and REPLY_ACK.
#pragma once

#include <chrono>
#include <cstring>
#include <stdexcept>
#include <span>
#include <type_traits>
#include <vector>

#include "common/error.h"
#include "common/unique_fd.h"
#include "vhost-user/protocol.h"

namespace bulkhead::vhost_user {

struct Message {
  Header header{};
  std::vector<uint8_t> payload;
  std::vector<UniqueFd> fds;

  uint32_t request() const { return header.request; }
  bool needs_reply() const { return header.flags & kFlagNeedReply; }

  // The payload as a plain struct; a size mismatch is the peer's error and is reported.
  template <typename T>
  T payload_as() const {
    static_assert(std::is_trivially_copyable_v<T>);
    if (payload.size() != sizeof(T))
      throw InputError("vhost-user request " + std::to_string(header.request) + ": payload is " +
                       std::to_string(payload.size()) + " bytes, expected " + std::to_string(sizeof(T)));
    T value;
    std::memcpy(&value, payload.data(), sizeof(T));
    return value;
  }

  template <typename T>
  static Message make(uint32_t request, const T& body, uint32_t flags = 0) {
    static_assert(std::is_trivially_copyable_v<T>);
    Message m;
    m.header = {request, kVersion | flags, static_cast<uint32_t>(sizeof(T))};
    m.payload.resize(sizeof(T));
    std::memcpy(m.payload.data(), &body, sizeof(T));
    return m;
  }
  static Message make_empty(uint32_t request, uint32_t flags = 0) {
    Message m;
    m.header = {request, kVersion | flags, 0};
    return m;
  }
};

// The peer did not answer a request within the connection's reply timeout: a hung process
// is treated like one that died.
class PeerTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Connection {
 public:
  explicit Connection(UniqueFd sock) : sock_(std::move(sock)) {}

  int fd() const { return sock_.get(); }
  // How long call() waits for the start of a reply before throwing PeerTimeout (0: forever).
  void set_reply_timeout(std::chrono::milliseconds timeout) { reply_timeout_ = timeout; }

  // Reads one whole message. Returns false on orderly hang-up at a message boundary.
  bool receive(Message& message);
  void send(const Message& message, std::span<const int> fds = {});

  // Front-end side: sends `message` with NEED_REPLY and waits for the u64 REPLY_ACK status;
  // a non-zero status throws with `what` in the message.
  void send_with_ack(Message message, std::span<const int> fds, const char* what);
  // Sends `message` and returns the reply's payload (the reply must carry the same request).
  Message call(const Message& message, std::span<const int> fds = {});

  // Back-end side: answers `request` with a u64 payload (REPLY_ACK status or a value).
  void reply_u64(const Message& request, uint64_t value);

 private:
  void read_exact(uint8_t* data, size_t size, std::vector<UniqueFd>& fds, bool at_boundary, bool& eof);
  UniqueFd sock_;
  std::chrono::milliseconds reply_timeout_{0};
};

}  // namespace bulkhead::vhost_user
