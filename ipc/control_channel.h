// Protobuf messages with attached descriptors over a SOCK_SEQPACKET socket.
#pragma once

#include <google/protobuf/message_lite.h>

#include <optional>
#include <span>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::ipc {

// Role processes find their control socket here.
inline constexpr int kControlFd = 3;

class ControlChannel {
 public:
  explicit ControlChannel(UniqueFd sock) : sock_(std::move(sock)) {}

  int fd() const { return sock_.get(); }

  void send(const google::protobuf::MessageLite& message, std::span<const int> fds = {});

  // Returns false on hang-up. Throws on malformed messages.
  bool receive(google::protobuf::MessageLite& message, std::vector<UniqueFd>& fds);

 private:
  UniqueFd sock_;
};

// Takes the descriptor a message refers to by index; throws when the index is out of range
// or the descriptor was already taken. Index -1 gives an invalid UniqueFd.
UniqueFd take_fd(std::vector<UniqueFd>& fds, int index, const char* what);

}  // namespace bulkhead::ipc
