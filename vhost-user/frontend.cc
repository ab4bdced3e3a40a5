#include "vhost-user/frontend.h"

#include <cstring>

#include "common/error.h"

namespace bulkhead::vhost_user {

Frontend::Frontend(UniqueFd socket, std::chrono::milliseconds reply_timeout) : connection_(std::move(socket)) {
  connection_.set_reply_timeout(reply_timeout);
  uint64_t offered = query(Request::kGetFeatures);
  features_ = offered & ~feature::kProtocolFeatures;
  protocol_negotiated_ = offered & feature::kProtocolFeatures;
  if (protocol_negotiated_) {
    protocol_features_ = query(Request::kGetProtocolFeatures) & kWantedProtocolFeatures;
    connection_.send(Message::make(static_cast<uint32_t>(Request::kSetProtocolFeatures), protocol_features_));
    if (protocol_features_ & protocol_feature::kMq) queue_num_ = static_cast<uint32_t>(query(Request::kGetQueueNum));
  }
  command(Message::make_empty(static_cast<uint32_t>(Request::kSetOwner)), {}, "SET_OWNER");
}

uint64_t Frontend::query(Request r) {
  Message reply = connection_.call(Message::make_empty(static_cast<uint32_t>(r)));
  return reply.payload_as<uint64_t>();
}

void Frontend::command(Message m, std::span<const int> fds, const char* what) {
  if (protocol_features_ & protocol_feature::kReplyAck) return connection_.send_with_ack(std::move(m), fds, what);
  connection_.send(m, fds);
}

std::vector<uint8_t> Frontend::get_config(uint32_t size) {
  if (!(protocol_features_ & protocol_feature::kConfig)) throw InputError("the vhost-user back-end has no config space");
  Message m;
  m.header = {static_cast<uint32_t>(Request::kGetConfig), kVersion, 0};
  m.payload.resize(sizeof(ConfigHeader) + size);
  ConfigHeader h{0, size, 0};
  std::memcpy(m.payload.data(), &h, sizeof h);
  Message reply = connection_.call(m);
  if (reply.payload.size() != sizeof h + size) throw InputError("the vhost-user back-end refused GET_CONFIG");
  return {reply.payload.begin() + sizeof h, reply.payload.end()};
}

void Frontend::set_config(uint32_t offset, std::span<const uint8_t> bytes) {
  Message m;
  m.header = {static_cast<uint32_t>(Request::kSetConfig), kVersion, 0};
  m.payload.resize(sizeof(ConfigHeader) + bytes.size());
  ConfigHeader h{offset, static_cast<uint32_t>(bytes.size()), 0};
  std::memcpy(m.payload.data(), &h, sizeof h);
  std::memcpy(m.payload.data() + sizeof h, bytes.data(), bytes.size());
  command(std::move(m), {}, "SET_CONFIG");
}

void Frontend::set_features(uint64_t features) {
  if (protocol_negotiated_) features |= feature::kProtocolFeatures;
  command(Request::kSetFeatures, features, {}, "SET_FEATURES");
}

void Frontend::set_memory(const std::vector<Region>& regions) {
  if (memory_sent_) return;  // guest RAM never changes for the life of a connection
  if (protocol_features_ & protocol_feature::kConfigureMemSlots) {
    for (const Region& r : regions) {
      int fd = r.fd;
      command(Request::kAddMemReg, SingleMemoryRegion{0, r.region}, {&fd, 1}, "ADD_MEM_REG");
    }
  } else {
    std::vector<int> fds;
    Message table = memory_table(regions, fds);  // fills fds: before they are passed on
    command(std::move(table), fds, "SET_MEM_TABLE");
  }
  memory_sent_ = true;
}

Message Frontend::memory_table(const std::vector<Region>& regions, std::vector<int>& fds) {
  if (regions.size() > kMaxMemoryRegions) throw InputError("too many memory regions for SET_MEM_TABLE");
  MemoryTable table{};
  table.nregions = static_cast<uint32_t>(regions.size());
  for (size_t i = 0; i < regions.size(); ++i) {
    table.regions[i] = regions[i].region;
    fds.push_back(regions[i].fd);
  }
  Message m;
  m.header = {static_cast<uint32_t>(Request::kSetMemTable), kVersion, 0};
  m.payload.resize(8 + regions.size() * sizeof(MemoryRegion));
  std::memcpy(m.payload.data(), &table, m.payload.size());
  return m;
}

void Frontend::setup_inflight(uint16_t queues, uint16_t queue_size) {
  if (!(protocol_features_ & protocol_feature::kInflightShmfd)) return;
  if (!inflight_fd_) {
    Message reply = connection_.call(
        Message::make(static_cast<uint32_t>(Request::kGetInflightFd), InflightDescription{0, 0, queues, queue_size, 0}));
    inflight_ = reply.payload_as<InflightDescription>();
    if (inflight_.mmap_size == 0 || reply.fds.size() != 1) return;  // the back-end keeps no inflight state
    inflight_fd_ = std::move(reply.fds[0]);
  }
  int fd = inflight_fd_.get();
  command(Request::kSetInflightFd, inflight_, {&fd, 1}, "SET_INFLIGHT_FD");
}

void Frontend::drop_inflight() { inflight_fd_.reset(); }

void Frontend::start_queue(const QueueStart& q) {
  command(Request::kSetVringNum, VringState{q.index, q.size}, {}, "SET_VRING_NUM");
  command(Request::kSetVringBase, VringState{q.index, q.base}, {}, "SET_VRING_BASE");
  command(Request::kSetVringAddr, VringAddr{q.index, 0, q.desc, q.used, q.avail, 0}, {}, "SET_VRING_ADDR");
  if (q.err >= 0) command(Request::kSetVringErr, uint64_t{q.index}, {&q.err, 1}, "SET_VRING_ERR");
  command(Request::kSetVringCall, uint64_t{q.index}, {&q.call, 1}, "SET_VRING_CALL");
  command(Request::kSetVringKick, uint64_t{q.index}, {&q.kick, 1}, "SET_VRING_KICK");
  // With protocol features negotiated, rings start disabled until enabled.
  if (protocol_negotiated_)
    command(Request::kSetVringEnable, VringState{q.index, 1}, {}, "SET_VRING_ENABLE");
}

uint16_t Frontend::stop_queue(uint32_t index) {
  Message reply = connection_.call(Message::make(static_cast<uint32_t>(Request::kGetVringBase), VringState{index, 0}));
  return static_cast<uint16_t>(reply.payload_as<VringState>().num);
}

void Frontend::reset_device() {
  if (protocol_features_ & protocol_feature::kResetDevice)
    command(Message::make_empty(static_cast<uint32_t>(Request::kResetDevice)), {}, "RESET_DEVICE");
}

}  // namespace bulkhead::vhost_user
