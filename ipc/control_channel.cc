#include "ipc/control_channel.h"

#include <string>

#include "common/error.h"
#include "ipc/fd_passing.h"

namespace bulkhead::ipc {

namespace {
constexpr size_t kMaxControlMessage = 64 * 1024;
}

void ControlChannel::send(const google::protobuf::MessageLite& message, std::span<const int> fds) {
  std::string bytes;
  if (!message.SerializeToString(&bytes)) throw InputError("cannot serialize control message");
  if (bytes.size() > kMaxControlMessage) throw InputError("control message too large");
  // recvmsg() returns 0 both for an empty SEQPACKET record and for hang-up, so an empty
  // message travels as a single zero byte (never valid protobuf: field number 0).
  if (bytes.empty()) bytes.push_back('\0');
  send_with_fds(sock_.get(), {reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()}, fds);
}

bool ControlChannel::receive(google::protobuf::MessageLite& message, std::vector<UniqueFd>& fds) {
  std::vector<uint8_t> buffer(kMaxControlMessage + 1);
  size_t n = recv_with_fds(sock_.get(), buffer, fds);
  if (n == 0) return false;
  if (n > kMaxControlMessage) throw InputError("control message too large");
  if (n == 1 && buffer[0] == 0) n = 0;
  if (!message.ParseFromArray(buffer.data(), static_cast<int>(n))) throw InputError("malformed control message");
  return true;
}

UniqueFd take_fd(std::vector<UniqueFd>& fds, int index, const char* what) {
  if (index == -1) return {};
  if (index < 0 || static_cast<size_t>(index) >= fds.size() || !fds[index].valid())
    throw InputError(std::string("control message names no descriptor for ") + what);
  return std::move(fds[index]);
}

}  // namespace bulkhead::ipc
