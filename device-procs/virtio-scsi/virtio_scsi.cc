#include "device-procs/virtio-scsi/virtio_scsi.h"

#include <sys/epoll.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

using vhost_user::Chain;
using vhost_user::GuestBuffers;
using vhost_user::Queue;
using vhost_user::QueueBroken;

namespace {

// virtio-scsi response codes (virtio 1.x, 5.6.6.1).
constexpr uint8_t kOk = 0, kOverrun = 1, kBadTarget = 3, kFailure = 9, kFunctionRejected = 11;
constexpr uint32_t kTypeTmf = 0, kTypeAnQuery = 1, kTypeAnSubscribe = 2;
constexpr uint32_t kTmfClearAca = 2;
constexpr uint32_t kMaxSenseSize = 252, kMaxCdbSize = 252;
constexpr uint32_t kConfigSenseSize = 20, kConfigCdbSize = 24, kConfigSize = 36;

void put_le32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
void put_le16(uint8_t* p, uint16_t v) { std::memcpy(p, &v, 2); }

}  // namespace

VirtioScsiDevice::VirtioScsiDevice(EventLoop& loop, std::vector<Disk> disks, uint32_t request_queues)
    : loop_(loop), request_queues_(request_queues), in_flight_(kFirstRequestQueue + request_queues, 0) {
  if (disks.empty()) throw InputError("virtio-scsi needs at least one disk");
  if (request_queues == 0 || request_queues > 64) throw InputError("virtio-scsi takes 1 to 64 request queues");
  for (Disk& d : disks) {
    Lun lun;
    lun.backend = std::make_unique<BlockBackend>(std::move(d.image), d.size);
    lun.disk = std::make_unique<ScsiDisk>(*lun.backend, d.options);
    loop_.add(lun.backend->completion_fd(), EPOLLIN, [this](uint32_t) { on_completions(); });
    luns_.push_back(std::move(lun));
  }
}

uint64_t VirtioScsiDevice::features() const {
  return vhost_user::feature::kVersion1 | vhost_user::feature::kIndirectDesc | vhost_user::feature::kEventIdx;
}

std::vector<uint8_t> VirtioScsiDevice::config() const {
  std::vector<uint8_t> c(kConfigSize, 0);
  put_le32(&c[0], request_queues_);
  put_le32(&c[4], kQueueSize - 2);  // seg_max: data segments besides the two headers
  put_le32(&c[8], 0xffff);          // max_sectors
  put_le32(&c[12], 128);            // cmd_per_lun
  put_le32(&c[16], 16);             // event_info_size
  put_le32(&c[kConfigSenseSize], sense_size_);
  put_le32(&c[kConfigCdbSize], cdb_size_);
  put_le16(&c[28], 0);      // max_channel
  put_le16(&c[30], 0);      // max_target: one target
  put_le32(&c[32], 16383);  // max_lun
  return c;
}

bool VirtioScsiDevice::write_config(uint32_t offset, std::span<const uint8_t> bytes) {
  // The driver may set only sense_size and cdb_size.
  if ((offset != kConfigSenseSize && offset != kConfigCdbSize) || bytes.size() != 4) return false;
  uint32_t v;
  std::memcpy(&v, bytes.data(), 4);
  if (offset == kConfigSenseSize) {
    if (v > kMaxSenseSize) return false;
    sense_size_ = v;
  } else {
    if (v < 6 || v > kMaxCdbSize) return false;
    cdb_size_ = v;
  }
  return true;
}

int VirtioScsiDevice::decode_lun(const uint8_t lun[8], bool* bad_target) const {
  *bad_target = lun[0] != 1 || lun[1] != 0;
  if (*bad_target) return -1;
  if (lun[2] != 0 && (lun[2] & 0xc0) != 0x40) return -1;  // only flat and peripheral addressing
  int index = ((lun[2] & 0x3f) << 8) | lun[3];
  return index < static_cast<int>(luns_.size()) ? index : -1;
}

void VirtioScsiDevice::handle_request(Queue& queue, Chain chain) {
  GuestBuffers out(std::move(chain.readable)), in(std::move(chain.writable));
  size_t req_len = 19 + cdb_size_, resp_len = 12 + sense_size_;
  if (out.size() < req_len || in.size() < resp_len) throw QueueBroken("virtio-scsi request shorter than its headers");
  uint8_t req[19 + kMaxCdbSize];
  out.read(0, req, req_len);
  GuestBuffers data_out = out.slice(req_len), data_in = in.slice(resp_len), resp = in.slice(0, resp_len);
  uint64_t data_in_capacity = data_in.size();
  uint16_t head = chain.head;
  uint32_t sense_size = sense_size_;
  ++in_flight_[queue.index()];
  auto finish = [this, &queue, head, resp, resp_len, data_in_capacity, sense_size](const scsi::Result& r, uint8_t response) mutable {
    uint8_t header[12 + kMaxSenseSize] = {};
    uint32_t sense_len = 0;
    if (r.overrun) response = kOverrun;
    if (response == kOk && r.status == scsi::kStatusCheckCondition) {
      auto sense = scsi::fixed_sense(r.sense);
      sense_len = std::min<uint32_t>(sense_size, sense.size());
      std::memcpy(header + 12, sense.data(), sense_len);
    }
    put_le32(header, sense_len);
    put_le32(header + 4, static_cast<uint32_t>(data_in_capacity - std::min(r.data_in, data_in_capacity)));
    header[10] = r.status;
    header[11] = response;
    resp.write(0, header, resp_len);
    queue.complete(head, static_cast<uint32_t>(resp_len + r.data_in));
    --in_flight_[queue.index()];
    if (std::find(to_notify_.begin(), to_notify_.end(), &queue) == to_notify_.end()) to_notify_.push_back(&queue);
  };
  if (data_out.size() && data_in.size()) return finish(scsi::Result{}, kFailure);  // bidirectional: not offered
  bool bad_target;
  int lun = decode_lun(req, &bad_target);
  if (bad_target) return finish(scsi::Result{}, kBadTarget);
  std::span<const uint8_t> cdb(req + 19, cdb_size_);
  if (cdb[0] == scsi::opcode::kReportLuns) {
    uint32_t allocation = static_cast<uint32_t>(cdb[6]) << 24 | cdb[7] << 16 | cdb[8] << 8 | cdb[9];
    if (allocation < 16 || cdb[2] > 2) return finish(scsi::Result::check(scsi::sense::kInvalidFieldInCdb), kOk);
    std::vector<uint8_t> list(8 + 8 * luns_.size(), 0);
    uint32_t length = static_cast<uint32_t>(8 * luns_.size());
    for (int i = 0; i < 4; ++i) list[i] = static_cast<uint8_t>(length >> (24 - 8 * i));
    for (size_t i = 0; i < luns_.size(); ++i) {
      list[8 + 8 * i] = i < 256 ? 0 : static_cast<uint8_t>(0x40 | (i >> 8));
      list[9 + 8 * i] = static_cast<uint8_t>(i);
    }
    return finish(reply(data_in, list, allocation), kOk);
  }
  if (lun < 0) {
    if (cdb[0] == scsi::opcode::kInquiry) return finish(ScsiDisk::inquiry_no_lun(cdb, data_in), kOk);
    return finish(scsi::Result::check(scsi::sense::kLunNotSupported), kOk);
  }
  luns_[lun].disk->execute(cdb, data_out, data_in, [finish](const scsi::Result& r) mutable { finish(r, kOk); });
}

void VirtioScsiDevice::handle_control(Queue& queue, Chain chain) {
  GuestBuffers out(std::move(chain.readable)), in(std::move(chain.writable));
  uint32_t type = 0;
  if (out.read(0, &type, 4) != 4 || in.size() == 0) throw QueueBroken("virtio-scsi control request too short");
  uint8_t response = kFailure;
  uint32_t written = 1;
  if (type == kTypeTmf) {
    uint8_t req[24];
    if (out.read(0, req, sizeof req) != sizeof req) throw QueueBroken("virtio-scsi TMF request too short");
    uint32_t subtype;
    std::memcpy(&subtype, req + 4, 4);
    bool bad_target;
    decode_lun(req + 8, &bad_target);
    if (bad_target) {
      response = kBadTarget;
    } else if (subtype == kTmfClearAca || subtype > 7) {
      response = kFunctionRejected;
    } else {
      // Aborts, resets and queries: every command still running completes first, so its
      // completion reaches the driver before this function's.
      drain_all();
      constexpr uint32_t kTmfItNexusReset = 4, kTmfLunReset = 5;
      if (subtype == kTmfItNexusReset || subtype == kTmfLunReset)
        for (Lun& l : luns_) l.disk->reset_occurred();
      response = kOk;
    }
  } else if (type == kTypeAnQuery || type == kTypeAnSubscribe) {
    uint8_t resp[5] = {0, 0, 0, 0, kOk};  // event_actual = 0: no asynchronous events
    written = static_cast<uint32_t>(in.write(0, resp, sizeof resp));
    queue.complete(chain.head, written);
    queue.flush_notifications();
    return;
  }
  in.write(0, &response, 1);
  queue.complete(chain.head, written);
  queue.flush_notifications();
}

void VirtioScsiDevice::process(Queue& queue) {
  if (queue.index() == kEventQueue) return;  // no events to report: buffers wait in the ring
  while (auto chain = queue.ring().pop(queue.memory())) {
    if (queue.index() == kControlQueue) handle_control(queue, std::move(*chain));
    else handle_request(queue, std::move(*chain));
  }
  for (Lun& lun : luns_) lun.backend->submit();
  poll_completions();
}

void VirtioScsiDevice::resubmit(Queue& queue, std::vector<Chain> chains) {
  for (Chain& chain : chains) {
    if (queue.index() == kControlQueue) handle_control(queue, std::move(chain));
    else if (queue.index() != kEventQueue) handle_request(queue, std::move(chain));
  }
  for (Lun& lun : luns_) lun.backend->submit();
}

void VirtioScsiDevice::on_completions() {
  for (Lun& lun : luns_) lun.backend->complete();
  for (Queue* q : to_notify_) q->flush_notifications();
  to_notify_.clear();
}

bool VirtioScsiDevice::poll_completions() {
  size_t done = 0;
  for (Lun& lun : luns_) done += lun.backend->reap();
  for (Queue* q : to_notify_) q->flush_notifications();
  to_notify_.clear();
  return done > 0;
}

bool VirtioScsiDevice::busy() const {
  for (uint32_t n : in_flight_)
    if (n) return true;
  return false;
}

void VirtioScsiDevice::drain_all() {
  for (Lun& lun : luns_) lun.backend->wait_all();
  for (Queue* q : to_notify_) q->flush_notifications();
  to_notify_.clear();
}

void VirtioScsiDevice::drain(Queue&) { drain_all(); }

void VirtioScsiDevice::reset() {
  drain_all();
  sense_size_ = 96;
  cdb_size_ = 32;
}

}  // namespace bulkhead::device
