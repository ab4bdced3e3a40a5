// virtio-scsi (virtio 1.x, section 5.6) as a vhost-user back-end: one target with one LUN
// per disk image, a control queue (task management), an event queue and N request queues.
#pragma once

#include <memory>
#include <vector>

#include "common/event_loop.h"
#include "device-procs/virtio-scsi/scsi_disk.h"
#include "vhost-user/backend.h"

namespace bulkhead::device {

class VirtioScsiDevice : public vhost_user::BackendDevice {
 public:
  static constexpr uint32_t kControlQueue = 0, kEventQueue = 1, kFirstRequestQueue = 2;
  static constexpr uint16_t kQueueSize = 256;

  struct Disk {
    UniqueFd image;
    uint64_t size;
    ScsiDisk::Options options;
  };

  VirtioScsiDevice(EventLoop& loop, std::vector<Disk> disks, uint32_t request_queues);

  uint64_t features() const override;
  uint32_t queue_count() const override { return kFirstRequestQueue + request_queues_; }
  uint16_t max_queue_size() const override { return kQueueSize; }
  std::vector<uint8_t> config() const override;
  bool write_config(uint32_t offset, std::span<const uint8_t> bytes) override;
  void process(vhost_user::Queue& queue) override;
  void resubmit(vhost_user::Queue& queue, std::vector<vhost_user::Chain> chains) override;
  void drain(vhost_user::Queue& queue) override;
  void reset() override;

  // Completes finished I/O without system calls (adaptive polling); true if any finished.
  bool poll_completions() override;
  bool busy() const override;

 private:
  struct Lun {
    std::unique_ptr<BlockBackend> backend;
    std::unique_ptr<ScsiDisk> disk;
  };
  void handle_request(vhost_user::Queue& queue, vhost_user::Chain chain);
  void handle_control(vhost_user::Queue& queue, vhost_user::Chain chain);
  // Waits for every in-flight command (all queues) to complete.
  void drain_all();
  void on_completions();
  // LUN index for a virtio-scsi LUN field, or -1 (and *bad_target for another target).
  int decode_lun(const uint8_t lun[8], bool* bad_target) const;

  EventLoop& loop_;
  std::vector<Lun> luns_;
  uint32_t request_queues_;
  uint32_t sense_size_ = 96;
  uint32_t cdb_size_ = 32;
  std::vector<uint32_t> in_flight_;  // per queue
  std::vector<vhost_user::Queue*> to_notify_;
};

}  // namespace bulkhead::device
