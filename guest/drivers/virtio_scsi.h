// A virtio-scsi driver (polling, optional MSI-X) that sends SCSI commands to LUN 0..n of
// target 0.
#pragma once

#include <stdint.h>

#include "drivers/virtio_pci.h"

namespace guest {

class VirtioScsiDriver {
 public:
  static constexpr uint16_t kType = 8;
  static constexpr uint16_t kRequestQueue = 2;
  static constexpr uint8_t kResponseOk = 0, kBadTarget = 3;

  struct Result {
    uint8_t response, status;
    uint8_t sense_key, asc, ascq;
    uint32_t resid;
  };

  static constexpr int kMaxRequestQueues = 4;
  static constexpr uint32_t kTmfAbortTask = 0, kTmfLunReset = 5;

  // `msix_cpu_vector` != 0: request completions interrupt on that CPU vector.
  bool init(int n = 0, uint8_t msix_cpu_vector = 0);
  uint16_t depth() const { return vq_[0].size(); }
  int request_queues() const { return request_queues_; }
  // A task management function on the control queue; returns the response byte.
  uint8_t task_management(uint32_t subtype, uint8_t lun);
  // Sends a command on request queue `queue` (0 .. request_queues()-1) and waits.
  Result command_on(int queue, const uint8_t* cdb, int cdb_len, const Segment* data, int segments);

  // Data is `segments` (all device-readable for data-out, all writable for data-in).
  bool submit(const uint8_t* cdb, int cdb_len, const Segment* data, int segments, uint8_t lun, uint16_t slot,
              bool indirect = true);
  bool reap(uint16_t* slot, Result* result);
  bool completion_pending() const { return vq_[0].used_pending(); }
  VirtioPciDriver& pci() { return pci_; }
  Result command(const uint8_t* cdb, int cdb_len, const Segment* data = nullptr, int segments = 0, uint8_t lun = 0,
                 bool indirect = true);

 private:
  struct Request {
    uint8_t lun[8];
    uint64_t tag;
    uint8_t task_attr, prio, crn;
    uint8_t cdb[32];
  } __attribute__((packed));
  struct Response {
    uint32_t sense_len, resid;
    uint16_t status_qualifier;
    uint8_t status, response;
    uint8_t sense[96];
  } __attribute__((packed));
  bool submit_on(int queue, const uint8_t* cdb, int cdb_len, const Segment* data, int segments, uint8_t lun, uint16_t slot,
                 bool indirect);
  bool reap_on(int queue, uint16_t* slot, Result* result);
  VirtioPciDriver pci_;
  Virtqueue control_, event_;
  Virtqueue vq_[kMaxRequestQueues];
  int request_queues_ = 0;
  Request* requests_ = nullptr;
  Response* responses_ = nullptr;
  bool indirect_ = false;  // VIRTIO_F_INDIRECT_DESC accepted
};

}  // namespace guest
