#include "drivers/virtio_scsi.h"

#include <string.h>

#include "arch.h"
#include "dma.h"

namespace guest {

bool VirtioScsiDriver::init(int n, uint8_t msix_cpu_vector) {
  if (!pci_.probe(kType, n)) return false;
  uint64_t features =
      pci_.negotiate(VirtioPciDriver::kFeatureVersion1 | VirtioPciDriver::kFeatureIndirect | VirtioPciDriver::kFeatureEventIdx);
  if (!features || pci_.queue_count() < 3) return false;
  indirect_ = features & VirtioPciDriver::kFeatureIndirect;
  uint16_t vector = msix_cpu_vector ? 0 : 0xffff;
  if (!pci_.setup_queue(0, control_, 16) || !pci_.setup_queue(1, event_, 16)) return false;
  request_queues_ = pci_.queue_count() - kRequestQueue;
  if (request_queues_ > kMaxRequestQueues) request_queues_ = kMaxRequestQueues;
  for (int q = 0; q < request_queues_; ++q)
    if (!pci_.setup_queue(static_cast<uint16_t>(kRequestQueue + q), vq_[q], 128, q == 0 ? vector : 0xffff)) return false;
  if (msix_cpu_vector && !pci_.enable_msix(0, msix_cpu_vector)) return false;
  requests_ = static_cast<Request*>(dma_alloc(sizeof(Request) * vq_[0].size(), 16));
  responses_ = static_cast<Response*>(dma_alloc(sizeof(Response) * vq_[0].size(), 16));
  pci_.driver_ok();
  return true;
}

bool VirtioScsiDriver::submit(const uint8_t* cdb, int cdb_len, const Segment* data, int segments, uint8_t lun, uint16_t slot,
                        bool indirect) {
  return submit_on(0, cdb, cdb_len, data, segments, lun, slot, indirect);
}

bool VirtioScsiDriver::submit_on(int queue, const uint8_t* cdb, int cdb_len, const Segment* data, int segments, uint8_t lun,
                           uint16_t slot, bool indirect) {
  Request& r = requests_[slot];
  memset(&r, 0, sizeof r);
  r.lun[0] = 1;
  r.lun[1] = 0;  // target 0
  r.lun[2] = 0x40;
  r.lun[3] = lun;
  r.tag = slot;
  memcpy(r.cdb, cdb, cdb_len);
  Segment segs[40];
  int n = 0;
  bool data_in = segments && data[0].device_writes;
  segs[n++] = {&r, sizeof r, false};
  if (!data_in)
    for (int i = 0; i < segments; ++i) segs[n++] = data[i];
  segs[n++] = {&responses_[slot], sizeof(Response), true};
  if (data_in)
    for (int i = 0; i < segments; ++i) segs[n++] = data[i];
  if (!vq_[queue].add(segs, n, slot, indirect && indirect_)) return false;
  pci_.kick(static_cast<uint16_t>(kRequestQueue + queue), vq_[queue]);
  return true;
}

bool VirtioScsiDriver::reap(uint16_t* slot, Result* result) { return reap_on(0, slot, result); }

bool VirtioScsiDriver::reap_on(int queue, uint16_t* slot, Result* result) {
  uint64_t token;
  uint32_t written;
  if (!vq_[queue].pop(&token, &written)) return false;
  *slot = static_cast<uint16_t>(token);
  const Response& r = responses_[*slot];
  *result = {r.response, r.status, static_cast<uint8_t>(r.sense[2] & 0x0f), r.sense[12], r.sense[13], r.resid};
  if (r.sense_len < 14) result->sense_key = result->asc = result->ascq = 0;
  return true;
}

VirtioScsiDriver::Result VirtioScsiDriver::command_on(int queue, const uint8_t* cdb, int cdb_len, const Segment* data, int segments) {
  Result result{0xff, 0xff, 0, 0, 0, 0};
  // A UNIT ATTENTION (reset, power on) is reported once; an initiator repeats the command.
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (queue >= request_queues_ || !submit_on(queue, cdb, cdb_len, data, segments, 0, 0, false)) return result;
    uint16_t slot;
    while (!reap_on(queue, &slot, &result)) pause();
    if (!(result.status == 2 && result.sense_key == 6)) break;
  }
  return result;
}

uint8_t VirtioScsiDriver::task_management(uint32_t subtype, uint8_t lun) {
  struct Tmf {
    uint32_t type, subtype;
    uint8_t lun[8];
    uint64_t tag;
  } __attribute__((packed));
  auto* req = static_cast<Tmf*>(dma_alloc(sizeof(Tmf), 8));
  auto* resp = static_cast<uint8_t*>(dma_alloc(1, 1));
  *req = {0, subtype, {1, 0, 0x40, lun, 0, 0, 0, 0}, 0};
  *resp = 0xff;
  Segment segs[2] = {{req, sizeof(Tmf), false}, {resp, 1, true}};
  if (!control_.add(segs, 2, 0)) return 0xff;
  pci_.kick(0, control_);
  uint64_t token;
  uint32_t written;
  while (!control_.pop(&token, &written)) pause();
  return *resp;
}

VirtioScsiDriver::Result VirtioScsiDriver::command(const uint8_t* cdb, int cdb_len, const Segment* data, int segments, uint8_t lun,
                                       bool indirect) {
  Result result{0xff, 0xff, 0, 0, 0, 0};
  for (int attempt = 0; attempt < 3; ++attempt) {
    if (!submit(cdb, cdb_len, data, segments, lun, 0, indirect)) return result;
    uint16_t slot;
    while (!reap(&slot, &result)) pause();
    if (!(result.status == 2 && result.sense_key == 6)) break;
  }
  return result;
}

}  // namespace guest
