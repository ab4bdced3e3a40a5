// A virtio-balloon driver (polling): page numbers in and out of the balloon, statistics kept
// with the device until it asks for fresh ones, and free page reports.
#pragma once

#include <stdint.h>

#include "drivers/virtio_pci.h"

namespace guest {

class VirtioBalloonDriver {
 public:
  static constexpr uint16_t kType = 5;
  static constexpr uint64_t kStatsVq = 1ull << 1, kDeflateOnOom = 1ull << 2, kReporting = 1ull << 5;
  static constexpr uint16_t kInflateQueue = 0, kDeflateQueue = 1, kStatsQueue = 2, kReportingQueue = 3;
  static constexpr uint32_t kPfnsPerBuffer = 256;  // as Linux
  struct Stat {
    uint16_t tag;
    uint64_t value;
  } __attribute__((packed));

  // Negotiates what the device offers of statistics, deflate-on-OOM and free page reporting.
  bool init();
  uint64_t features() const { return features_; }
  uint32_t target_pages();   // num_pages
  uint32_t actual_pages();
  void set_actual_pages(uint32_t pages);
  // Sends `count` page numbers to the inflate or deflate queue and waits for the device.
  bool inflate(const uint32_t* pfns, uint32_t count) { return send(kInflateQueue, pfns, count); }
  bool deflate(const uint32_t* pfns, uint32_t count) { return send(kDeflateQueue, pfns, count); }
  // Any buffers, as a hostile driver builds them: `segs` on queue `queue`; waits for it.
  bool send_raw(uint16_t queue, const Segment* segs, int count);
  // Hands the device a statistics buffer (it keeps it until it wants fresh values).
  bool give_stats(const Stat* stats, uint32_t count);
  // Whether the device returned the statistics buffer (asked for fresh values).
  bool stats_requested();
  // Reports [gpa, gpa + size) free; waits for the device.
  bool report_free(uint64_t gpa, uint64_t size);

 private:
  bool send(uint16_t queue, const uint32_t* pfns, uint32_t count);
  bool wait(uint16_t queue);
  VirtioPciDriver pci_;
  Virtqueue vqs_[4];
  uint16_t queues_ = 0;
  uint64_t features_ = 0;
  uint32_t* pfn_buffer_ = nullptr;
  Stat* stats_ = nullptr;
  bool stats_given_ = false;
};

}  // namespace guest
