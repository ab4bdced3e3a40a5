#include "vhost-user/connection.h"

#include <poll.h>

#include "ipc/fd_passing.h"

namespace bulkhead::vhost_user {

void Connection::read_exact(uint8_t* data, size_t size, std::vector<UniqueFd>& fds, bool at_boundary, bool& eof) {
  size_t done = 0;
  while (done < size) {
    size_t n = ipc::recv_with_fds(sock_.get(), {data + done, size - done}, fds, kMaxFds - fds.size());
    if (n == 0) {
      if (at_boundary && done == 0) {
        eof = true;
        return;
      }
      throw InputError("vhost-user peer hung up in the middle of a message");
    }
    done += n;
  }
}

bool Connection::receive(Message& message) {
  message = Message{};
  bool eof = false;
  read_exact(reinterpret_cast<uint8_t*>(&message.header), sizeof(Header), message.fds, true, eof);
  if (eof) return false;
  if ((message.header.flags & kVersionMask) != kVersion)
    throw InputError("vhost-user message with unsupported version flags " + std::to_string(message.header.flags));
  if (message.header.size > kMaxPayload)
    throw InputError("vhost-user message of " + std::to_string(message.header.size) + " bytes exceeds the limit");
  message.payload.resize(message.header.size);
  if (message.header.size) read_exact(message.payload.data(), message.header.size, message.fds, false, eof);
  return true;
}

void Connection::send(const Message& message, std::span<const int> fds) {
  std::vector<uint8_t> bytes(sizeof(Header) + message.payload.size());
  Header header = message.header;
  header.size = static_cast<uint32_t>(message.payload.size());
  std::memcpy(bytes.data(), &header, sizeof(Header));
  if (!message.payload.empty()) std::memcpy(bytes.data() + sizeof(Header), message.payload.data(), message.payload.size());
  size_t sent = ipc::send_with_fds(sock_.get(), bytes, fds);
  // A stream socket may take less; the descriptors went with the first chunk.
  while (sent < bytes.size()) sent += ipc::send_with_fds(sock_.get(), std::span(bytes).subspan(sent), {});
}

Message Connection::call(const Message& message, std::span<const int> fds) {
  send(message, fds);
  if (reply_timeout_.count() > 0) {
    pollfd p{sock_.get(), POLLIN, 0};
    int n;
    // Waits on our own socket for the reply (or a hang-up, which receive() reports).
    do n = ::poll(&p, 1, static_cast<int>(reply_timeout_.count()));
    while (n < 0 && errno == EINTR);
    if (n == 0)
      throw PeerTimeout("no answer to request " + std::to_string(message.header.request) + " within " +
                        std::to_string(reply_timeout_.count() / 1000) + " s");
  }
  Message reply;
  if (!receive(reply)) throw InputError("vhost-user peer hung up before replying");
  if (reply.header.request != message.header.request || !(reply.header.flags & kFlagReply))
    throw InputError("vhost-user peer answered request " + std::to_string(message.header.request) +
                     " with request " + std::to_string(reply.header.request));
  return reply;
}

void Connection::send_with_ack(Message message, std::span<const int> fds, const char* what) {
  message.header.flags |= kFlagNeedReply;
  Message reply = call(message, fds);
  uint64_t status = reply.payload_as<uint64_t>();
  if (status != 0) throw InputError(std::string("vhost-user peer refused ") + what);
}

void Connection::reply_u64(const Message& request, uint64_t value) {
  send(Message::make(request.header.request, value, kFlagReply));
}

}  // namespace bulkhead::vhost_user
