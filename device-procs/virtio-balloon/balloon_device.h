// virtio-balloon (virtio 1.x, section 5.5) as a vhost-user back-end. Pages the driver puts in
// the balloon, and free pages it reports, go back to the host: the device punches them out of
// the guest-RAM memfd (MADV_REMOVE on its own shared mapping), so host memory really drops in
// every process that maps it, and the guest finds zeroes there when it uses them again.
//
// Guest RAM may be in pages larger than the guest's 4 KiB ones (hugepages=on, 2 MiB): such a
// page goes back only once the balloon holds all of it, or a report covers it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "vhost-user/backend.h"

namespace bulkhead::device {

namespace balloon_feature {
inline constexpr uint64_t kStatsVq = 1ull << 1, kDeflateOnOom = 1ull << 2, kFreePageReporting = 1ull << 5;
}  // namespace balloon_feature

class BalloonDevice : public vhost_user::BackendDevice {
 public:
  static constexpr uint32_t kInflateQueue = 0, kDeflateQueue = 1, kStatsQueue = 2, kReportingQueue = 3;
  static constexpr uint64_t kGuestPage = 4096;  // VIRTIO_BALLOON_PFN_SHIFT 12
  // Standard statistics tags (5.5.6.3, and those Linux added since: 10-15).
  static constexpr size_t kStatTags = 16;
  // The most page numbers one buffer may carry (Linux sends 256); the rest are ignored.
  static constexpr uint64_t kMaxPfnsPerBuffer = 1u << 18;

  struct Options {
    uint32_t target_pages = 0;          // num_pages: how many 4 KiB pages the balloon is to hold
    bool free_page_reporting = false;
    bool deflate_on_oom = false;
    std::chrono::seconds stats_interval{0};  // 0: only the statistics the driver sends at start
    uint64_t host_page_size = kGuestPage;    // of guest RAM's backing (2 MiB with hugepages)
  };
  // What the driver did, and what it got wrong (hostile page numbers are ignored and counted).
  struct Counters {
    uint64_t inflated = 0, deflated = 0;  // pages, in total
    uint64_t returned_bytes = 0;          // punched out of guest RAM, by inflation and reports
    uint64_t reported_bytes = 0;          // free memory the driver reported
    uint64_t outside_ram = 0;             // page numbers that are not guest RAM
    uint64_t repeated = 0;                // inflations of a page already in the balloon
    uint64_t not_inflated = 0;            // deflations of a page not in the balloon
    uint64_t ignored = 0;                 // page numbers beyond kMaxPfnsPerBuffer in one buffer
    uint64_t malformed = 0;               // buffers with a partial entry or the wrong direction
    uint64_t stats_updates = 0;
  };
  using Stats = std::array<std::optional<uint64_t>, kStatTags>;
  static const char* stat_name(size_t tag);

  BalloonDevice(EventLoop& loop, Options options);

  uint64_t features() const override;
  uint32_t queue_count() const override { return options_.free_page_reporting ? 4 : 3; }
  uint16_t max_queue_size() const override { return 256; }
  std::vector<uint8_t> config() const override;
  bool write_config(uint32_t offset, std::span<const uint8_t> bytes) override;
  void set_features(uint64_t acked) override { acked_ = acked; }
  void process(vhost_user::Queue& queue) override;
  void resubmit(vhost_user::Queue& queue, std::vector<vhost_user::Chain> chains) override;
  void drain(vhost_user::Queue&) override {}
  void reset() override;

  // Asks the driver for fresh statistics (returns the buffer it keeps with the device).
  void request_stats();
  void attach(vhost_user::Backend& server) { server_ = &server; }

  const Counters& counters() const { return counters_; }
  const Stats& stats() const { return stats_; }
  uint32_t actual_pages() const { return actual_; }
  uint64_t pages_held() const { return held_pages_; }

 private:
  void handle(vhost_user::Queue& queue, vhost_user::Chain chain);
  void change_pages(vhost_user::Queue& queue, const vhost_user::Chain& chain, bool inflate);
  // Puts a page in the balloon; the backing page to give back, once the balloon holds all of it.
  std::optional<uint64_t> inflate(uint64_t pfn);
  void deflate(uint64_t pfn);
  // Whether every guest page of the backing page at `gpa` (aligned) is in the balloon.
  bool holds_backing_page(uint64_t gpa) const;
  // Gives back these backing pages (guest-physical), in runs.
  void punch_runs(std::vector<uint64_t> backing_pages);
  void report(const vhost_user::Chain& chain);
  void read_stats(const vhost_user::Chain& chain);
  // Gives [host, host + size) back to the host, in whole backing pages; the bytes returned.
  uint64_t punch(uint8_t* host, uint64_t size);
  bool in_balloon(uint64_t pfn) const { return pfn / 64 < held_.size() && (held_[pfn / 64] >> (pfn % 64)) & 1; }

  EventLoop& loop_;
  Options options_;
  vhost_user::Backend* server_ = nullptr;
  uint64_t acked_ = 0;
  uint32_t actual_ = 0;                    // what the driver says the balloon holds
  std::vector<uint64_t> held_;             // bitmap of guest pages in the balloon
  uint64_t held_pages_ = 0;
  std::optional<vhost_user::Chain> stats_chain_;  // the driver's statistics buffer, kept
  Stats stats_{};
  UniqueFd stats_timer_;
  Counters counters_;
};

}  // namespace bulkhead::device
