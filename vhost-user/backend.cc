#include "vhost-user/backend.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::vhost_user {

namespace {

void require_fds(const Message& m, size_t count, const char* what) {
  if (m.fds.size() != count)
    throw InputError(std::string(what) + " carries " + std::to_string(m.fds.size()) + " descriptors, expected " +
                     std::to_string(count));
}

uint64_t u64_payload(const Message& m) { return m.payload_as<uint64_t>(); }

}  // namespace

const MemoryMap& Queue::memory() const { return backend_.memory_; }

void Queue::complete(uint16_t head, uint32_t written) {
  if (!ring_.running()) return;
  ring_.push(head, written);
  pending_notify_ = true;
}

void Queue::complete_all(std::span<const SplitQueue::Used> used) {
  if (!ring_.running()) return;
  ring_.push_all(used);
  pending_notify_ = true;
}

bool Queue::want_kicks() { return ring_.running() && ring_.enable_kicks(); }

void Queue::flush_notifications() {
  if (!pending_notify_ || !ring_.running()) return;
  pending_notify_ = false;
  if (ring_.should_notify()) backend_.signal(call_);
}

Backend::Backend(BackendDevice& device, EventLoop& loop, UniqueFd socket)
    : device_(device), loop_(loop), connection_(std::move(socket)) {
  for (uint32_t i = 0; i < device_.queue_count(); ++i) queues_.emplace_back(new Queue(*this, i));
  loop_.add(connection_.fd(), EPOLLIN | EPOLLRDHUP, [this](uint32_t) { on_socket(); });
}

Backend::~Backend() {
  for (auto& q : queues_)
    if (q->kick_) loop_.remove(q->kick_.get());
  if (connected_) loop_.remove(connection_.fd());
}

void Backend::disconnect(const std::string& why) {
  if (!connected_) return;
  if (!why.empty()) spdlog::warn("closing the vhost-user connection: {}", why);
  for (auto& q : queues_) stop(*q);
  loop_.remove(connection_.fd());
  connected_ = false;
}

void Backend::on_socket() {
  Message m;
  try {
    if (!connection_.receive(m)) return disconnect("");
    handle(m);
  } catch (const InputError& e) {
    disconnect(e.what());
  } catch (const SystemError& e) {
    disconnect(e.what());
  }
}

void Backend::signal(const UniqueFd& fd) {
  if (!fd) return;
  uint64_t one = 1;
  // 8-byte eventfd write from a local; the front-end's eventfd drains it.
  [[maybe_unused]] ssize_t n = ::write(fd.get(), &one, sizeof one);
}

void Backend::reply(const Message& request, bool ok) {
  if (request.needs_reply() && (protocol_features_ & protocol_feature::kReplyAck))
    connection_.reply_u64(request, ok ? 0 : 1);
}

Queue& Backend::queue_for(uint32_t index, const char* what) {
  if (index >= queues_.size())
    throw InputError(std::string(what) + " names queue " + std::to_string(index) + " of " + std::to_string(queues_.size()));
  return *queues_[index];
}

void Backend::set_queue_fd(Message& m, UniqueFd Queue::*member, const char* what) {
  uint64_t v = u64_payload(m);
  if (v & ~(kVringIndexMask | kVringNoFd)) throw InputError(std::string(what) + " with unknown flag bits");
  require_fds(m, (v & kVringNoFd) ? 0 : 1, what);
  Queue& q = queue_for(static_cast<uint32_t>(v & kVringIndexMask), what);
  if (member == &Queue::kick_ && q.kick_) loop_.remove(q.kick_.get());
  q.*member = (v & kVringNoFd) ? UniqueFd() : std::move(m.fds[0]);
  if (member == &Queue::kick_) {
    q.kick_set_ = true;
    if (q.kick_) loop_.add(q.kick_.get(), EPOLLIN, [this, &q](uint32_t) { on_kick(q, true); });
    try_start(q);
  }
  if (member == &Queue::call_) signal(q.call_);  // a notification lost across a reconnect is re-sent
}

uint8_t* Backend::inflight_slice(const Queue& q) {
  if (!inflight_.valid() || q.index_ >= inflight_queues_ || inflight_queue_size_ != q.num_) return nullptr;
  return inflight_.data() + q.index_ * inflight_queue_bytes(inflight_queue_size_);
}

void Backend::try_start(Queue& q) {
  // A ring starts with its kick (SET_VRING_KICK), once its size, addresses and guest memory
  // are known, whatever order they arrived in.
  if (q.ring_.running() || q.broken_ || !q.kick_set_ || !q.addr_set_ || q.num_ == 0 || memory_.size() == 0) return;
  SplitQueue::Rings rings{memory_.uva_to_host(q.addr_.desc_user_addr, SplitQueue::desc_bytes(q.num_)),
                          memory_.uva_to_host(q.addr_.avail_user_addr, SplitQueue::avail_bytes(q.num_)),
                          memory_.uva_to_host(q.addr_.used_user_addr, SplitQueue::used_bytes(q.num_))};
  try {
    if (!rings.desc || !rings.avail || !rings.used) throw QueueBroken("vring addresses outside guest memory");
    q.ring_.start(q.num_, rings, q.base_, acked_features_, inflight_slice(q));
  } catch (const QueueBroken& e) {
    spdlog::warn("queue {}: {}", q.index_, e.what());
    q.broken_ = true;
    signal(q.err_);
    return;
  }
  if (!(acked_features_ & feature::kProtocolFeatures)) q.enabled_ = true;
  std::vector<Chain> redo = q.ring_.take_resubmissions(memory_);
  if (!redo.empty()) {
    spdlog::info("queue {}: resubmitting {} request(s) left in flight", q.index_, redo.size());
    device_.resubmit(q, std::move(redo));
  }
  on_kick(q);
}

void Backend::stop(Queue& q) {
  if (!q.ring_.running()) return;
  device_.drain(q);
  q.flush_notifications();
  q.ring_.stop();
}

void Backend::on_kick(Queue& q, bool signalled) {
  // A kick that raced with disabling them is consumed too, or its eventfd would stay readable.
  if (q.kick_ && (signalled || q.ring_.kicks_enabled())) {
    uint64_t count;
    // Reset the kick eventfd; EAGAIN (no kick pending) is fine.
    [[maybe_unused]] ssize_t n = ::read(q.kick_.get(), &count, sizeof count);
  }
  if (!q.ready()) return;
  try {
    device_.process(q);
  } catch (const QueueBroken& e) {
    spdlog::warn("queue {} is broken: {}", q.index_, e.what());
    q.broken_ = true;
    q.ring_.stop();
    signal(q.err_);
  }
}

bool Backend::poll() {
  bool found = false;
  for (auto& q : queues_) {
    if (!q->ready()) continue;
    SplitQueue& ring = q->ring_;
    ring.disable_kicks();
    uint16_t before = ring.next_avail();
    on_kick(*q);
    found |= ring.next_avail() != before;
  }
  return found;
}

bool Backend::rearm() {
  bool pending = false;
  for (auto& q : queues_) {
    if (!q->ready()) continue;
    // Buffers that wait for the device (a NIC's receive buffers) need no kick while some are
    // there; the device asks for kicks itself once it has used them all (Queue::want_kicks).
    if (!device_.available_is_work(*q) && q->ring_.has_available()) continue;
    if (q->ring_.enable_kicks() && device_.available_is_work(*q)) pending = true;
  }
  return pending;
}

void Backend::relocate_rings() {
  // Guest memory moved under running rings: stop them (finishing in-flight I/O into the old
  // mappings) and start again at the same position.
  for (auto& q : queues_) {
    if (!q->ring_.running()) continue;
    stop(*q);
    q->base_ = q->ring_.next_avail();
  }
}

void Backend::get_config(const Message& m) {
  if (m.payload.size() < sizeof(ConfigHeader)) throw InputError("GET_CONFIG payload too short");
  ConfigHeader h;
  std::memcpy(&h, m.payload.data(), sizeof h);
  std::vector<uint8_t> config = device_.config();
  Message r;
  r.header = {m.request(), kVersion | kFlagReply, 0};
  if (h.size <= kMaxConfigSize && h.offset <= config.size() && h.size <= config.size() - h.offset &&
      m.payload.size() == sizeof h + h.size) {
    r.payload.resize(sizeof h + h.size);
    std::memcpy(r.payload.data(), &h, sizeof h);
    std::memcpy(r.payload.data() + sizeof h, config.data() + h.offset, h.size);
  }
  connection_.send(r);  // an empty payload tells the front-end the request was invalid
}

void Backend::get_inflight(const Message& m) {
  auto d = m.payload_as<InflightDescription>();
  if (d.num_queues == 0 || d.num_queues > queues_.size() || d.queue_size == 0 || d.queue_size > kMaxQueueSize)
    throw InputError("GET_INFLIGHT_FD for " + std::to_string(d.num_queues) + " queues of " + std::to_string(d.queue_size));
  size_t bytes = d.num_queues * inflight_queue_bytes(d.queue_size);
  // An anonymous, sealed memory file the front-end keeps across our restarts.
  UniqueFd fd(::memfd_create("bulkhead-inflight", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd || ::ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0 ||
      ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    throw_errno("creating the inflight region");
  inflight_ = Mapping::map(fd.get(), bytes, PROT_READ | PROT_WRITE);
  inflight_queue_size_ = d.queue_size;
  inflight_queues_ = d.num_queues;
  InflightDescription reply{bytes, 0, d.num_queues, d.queue_size, 0};
  int raw = fd.get();
  connection_.send(Message::make(m.request(), reply, kFlagReply), {&raw, 1});
  inflight_fd_ = std::move(fd);
}

void Backend::set_inflight(Message& m) {
  require_fds(m, 1, "SET_INFLIGHT_FD");
  auto d = m.payload_as<InflightDescription>();
  if (d.num_queues == 0 || d.num_queues > queues_.size() || d.queue_size == 0 || d.queue_size > kMaxQueueSize ||
      d.mmap_size < d.num_queues * inflight_queue_bytes(d.queue_size) || d.mmap_offset % 4096)
    throw InputError("SET_INFLIGHT_FD with an unusable region");
  struct stat st;
  // fstat on the descriptor the front-end sent, so the mapping cannot run past its end.
  if (::fstat(m.fds[0].get(), &st) != 0 || static_cast<uint64_t>(st.st_size) < d.mmap_offset + d.mmap_size)
    throw InputError("SET_INFLIGHT_FD region is larger than its file");
  inflight_ = Mapping::map(m.fds[0].get(), d.mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, static_cast<off_t>(d.mmap_offset));
  inflight_fd_ = std::move(m.fds[0]);
  inflight_queue_size_ = d.queue_size;
  inflight_queues_ = d.num_queues;
}

void Backend::handle(Message& m) {
  switch (static_cast<Request>(m.request())) {
    case Request::kGetFeatures:
      require_fds(m, 0, "GET_FEATURES");
      connection_.reply_u64(m, device_.features() | feature::kProtocolFeatures);
      return;
    case Request::kSetFeatures: {
      require_fds(m, 0, "SET_FEATURES");
      uint64_t wanted = u64_payload(m);
      // Front-ends may pass on bits the driver acked but we never offered; ignore those.
      acked_features_ = wanted & (device_.features() | feature::kProtocolFeatures);
      if (!(acked_features_ & feature::kProtocolFeatures))
        for (auto& q : queues_) q->enabled_ = true;
      device_.set_features(acked_features_);
      return reply(m, true);
    }
    case Request::kGetProtocolFeatures:
      require_fds(m, 0, "GET_PROTOCOL_FEATURES");
      connection_.reply_u64(m, kProtocolFeatures);
      return;
    case Request::kSetProtocolFeatures:
      require_fds(m, 0, "SET_PROTOCOL_FEATURES");
      protocol_features_ = u64_payload(m) & kProtocolFeatures;
      return reply(m, true);
    case Request::kSetOwner:
    case Request::kResetOwner:
      require_fds(m, 0, "SET_OWNER");
      return reply(m, true);
    case Request::kGetQueueNum:
      require_fds(m, 0, "GET_QUEUE_NUM");
      connection_.reply_u64(m, queues_.size());
      return;
    case Request::kGetMaxMemSlots:
      require_fds(m, 0, "GET_MAX_MEM_SLOTS");
      connection_.reply_u64(m, kMaxMemSlots);
      return;
    case Request::kSetMemTable: {
      if (m.payload.size() < 8) throw InputError("SET_MEM_TABLE payload too short");
      uint32_t n;
      std::memcpy(&n, m.payload.data(), 4);
      if (n == 0 || n > kMaxMemoryRegions || m.payload.size() != 8 + n * sizeof(MemoryRegion))
        throw InputError("SET_MEM_TABLE with " + std::to_string(n) + " regions");
      require_fds(m, n, "SET_MEM_TABLE");
      relocate_rings();
      memory_.clear();
      for (uint32_t i = 0; i < n; ++i) {
        MemoryRegion r;
        std::memcpy(&r, m.payload.data() + 8 + i * sizeof r, sizeof r);
        memory_.add(r, std::move(m.fds[i]));
      }
      for (auto& q : queues_) try_start(*q);
      return reply(m, true);
    }
    case Request::kAddMemReg: {
      require_fds(m, 1, "ADD_MEM_REG");
      auto r = m.payload_as<SingleMemoryRegion>();
      memory_.add(r.region, std::move(m.fds[0]));
      for (auto& q : queues_) try_start(*q);
      return reply(m, true);
    }
    case Request::kRemMemReg: {
      if (m.fds.size() > 1) throw InputError("REM_MEM_REG carries more than one descriptor");
      auto r = m.payload_as<SingleMemoryRegion>();
      relocate_rings();
      bool removed = memory_.remove(r.region);
      for (auto& q : queues_) try_start(*q);
      return reply(m, removed);
    }
    case Request::kSetVringNum: {
      require_fds(m, 0, "SET_VRING_NUM");
      auto s = m.payload_as<VringState>();
      Queue& q = queue_for(s.index, "SET_VRING_NUM");
      bool ok = s.num > 0 && s.num <= device_.max_queue_size() && (s.num & (s.num - 1)) == 0 && !q.ring_.running();
      if (ok) q.num_ = static_cast<uint16_t>(s.num);
      return reply(m, ok);
    }
    case Request::kSetVringAddr: {
      require_fds(m, 0, "SET_VRING_ADDR");
      auto a = m.payload_as<VringAddr>();
      Queue& q = queue_for(a.index, "SET_VRING_ADDR");
      bool ok = a.flags == 0 && !q.ring_.running();  // logging (flag bit 0) is not offered
      if (ok) {
        q.addr_ = a;
        q.addr_set_ = true;
        try_start(q);
      }
      return reply(m, ok);
    }
    case Request::kSetVringBase: {
      require_fds(m, 0, "SET_VRING_BASE");
      auto s = m.payload_as<VringState>();
      Queue& q = queue_for(s.index, "SET_VRING_BASE");
      bool ok = s.num <= 0xffff && !q.ring_.running();
      if (ok) q.base_ = static_cast<uint16_t>(s.num);
      return reply(m, ok);
    }
    case Request::kGetVringBase: {
      require_fds(m, 0, "GET_VRING_BASE");
      auto s = m.payload_as<VringState>();
      Queue& q = queue_for(s.index, "GET_VRING_BASE");
      stop(q);
      if (q.kick_) loop_.remove(q.kick_.get());
      q.kick_.reset();
      q.kick_set_ = false;
      q.base_ = q.ring_.next_avail();
      q.broken_ = false;
      connection_.send(Message::make(m.request(), VringState{s.index, q.base_}, kFlagReply));
      return;
    }
    case Request::kSetVringKick:
      set_queue_fd(m, &Queue::kick_, "SET_VRING_KICK");
      return reply(m, true);
    case Request::kSetVringCall:
      set_queue_fd(m, &Queue::call_, "SET_VRING_CALL");
      return reply(m, true);
    case Request::kSetVringErr:
      set_queue_fd(m, &Queue::err_, "SET_VRING_ERR");
      return reply(m, true);
    case Request::kSetVringEnable: {
      require_fds(m, 0, "SET_VRING_ENABLE");
      auto s = m.payload_as<VringState>();
      Queue& q = queue_for(s.index, "SET_VRING_ENABLE");
      q.enabled_ = s.num != 0;
      if (q.enabled_) on_kick(q);
      return reply(m, s.num <= 1);
    }
    case Request::kGetConfig:
      require_fds(m, 0, "GET_CONFIG");
      return get_config(m);
    case Request::kSetConfig: {
      require_fds(m, 0, "SET_CONFIG");
      if (m.payload.size() < sizeof(ConfigHeader)) throw InputError("SET_CONFIG payload too short");
      ConfigHeader h;
      std::memcpy(&h, m.payload.data(), sizeof h);
      bool ok = h.size <= kMaxConfigSize && m.payload.size() == sizeof h + h.size &&
                device_.write_config(h.offset, {m.payload.data() + sizeof h, h.size});
      return reply(m, ok);
    }
    case Request::kGetInflightFd:
      require_fds(m, 0, "GET_INFLIGHT_FD");
      return get_inflight(m);
    case Request::kSetInflightFd:
      set_inflight(m);
      return reply(m, true);
    case Request::kResetDevice:
      require_fds(m, 0, "RESET_DEVICE");
      for (auto& q : queues_) {
        stop(*q);
        q->broken_ = false;
        q->enabled_ = false;
        q->base_ = 0;
      }
      device_.reset();
      return reply(m, true);
    case Request::kSetStatus:
      require_fds(m, 0, "SET_STATUS");
      status_ = static_cast<uint8_t>(u64_payload(m));
      return reply(m, true);
    case Request::kGetStatus:
      require_fds(m, 0, "GET_STATUS");
      connection_.reply_u64(m, status_);
      return;
    default:
      spdlog::warn("unsupported vhost-user request {}", m.request());
      return reply(m, false);
  }
}

}  // namespace bulkhead::vhost_user
