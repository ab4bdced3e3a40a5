#include "drivers/virtio_balloon.h"

#include <string.h>

#include "arch.h"
#include "dma.h"

namespace guest {

namespace {
constexpr uint32_t kMaxStats = 16;
}  // namespace

bool VirtioBalloonDriver::init() {
  if (!pci_.probe(kType, 0)) return false;
  features_ = pci_.negotiate(VirtioPciDriver::kFeatureVersion1 | kStatsVq | kDeflateOnOom | kReporting);
  if (!features_) return false;
  queues_ = (features_ & kReporting) ? 4 : (features_ & kStatsVq) ? 3 : 2;
  for (uint16_t q = 0; q < queues_; ++q)
    if (!pci_.setup_queue(q, vqs_[q], 64)) return false;
  pfn_buffer_ = static_cast<uint32_t*>(dma_alloc(sizeof(uint32_t) * kPfnsPerBuffer, 64));
  stats_ = static_cast<Stat*>(dma_alloc(sizeof(Stat) * kMaxStats, 64));
  pci_.driver_ok();
  return true;
}

uint32_t VirtioBalloonDriver::target_pages() { return *reinterpret_cast<volatile uint32_t*>(pci_.device_config()); }
uint32_t VirtioBalloonDriver::actual_pages() { return *reinterpret_cast<volatile uint32_t*>(pci_.device_config() + 4); }
void VirtioBalloonDriver::set_actual_pages(uint32_t pages) {
  *reinterpret_cast<volatile uint32_t*>(pci_.device_config() + 4) = pages;
}

bool VirtioBalloonDriver::wait(uint16_t queue) {
  uint64_t token;
  uint32_t written;
  for (uint64_t spins = 0; spins < (1ull << 32); ++spins) {
    if (vqs_[queue].pop(&token, &written)) return true;
    pause();
  }
  return false;
}

bool VirtioBalloonDriver::send_raw(uint16_t queue, const Segment* segs, int count) {
  if (queue >= queues_ || !vqs_[queue].add(segs, count, 0)) return false;
  pci_.kick(queue, vqs_[queue]);
  return wait(queue);
}

bool VirtioBalloonDriver::send(uint16_t queue, const uint32_t* pfns, uint32_t count) {
  for (uint32_t done = 0; done < count;) {
    uint32_t n = count - done < kPfnsPerBuffer ? count - done : kPfnsPerBuffer;
    memcpy(pfn_buffer_, pfns + done, n * sizeof(uint32_t));
    Segment seg{pfn_buffer_, n * static_cast<uint32_t>(sizeof(uint32_t)), false};
    if (!send_raw(queue, &seg, 1)) return false;
    done += n;
  }
  return true;
}

bool VirtioBalloonDriver::give_stats(const Stat* stats, uint32_t count) {
  if (!(features_ & kStatsVq) || count > kMaxStats || stats_given_) return false;
  memcpy(stats_, stats, count * sizeof(Stat));
  Segment seg{stats_, count * static_cast<uint32_t>(sizeof(Stat)), false};
  if (!vqs_[kStatsQueue].add(&seg, 1, 0)) return false;
  pci_.kick(kStatsQueue, vqs_[kStatsQueue]);
  stats_given_ = true;
  return true;
}

bool VirtioBalloonDriver::stats_requested() {
  uint64_t token;
  uint32_t written;
  if (!stats_given_ || !vqs_[kStatsQueue].pop(&token, &written)) return false;
  stats_given_ = false;
  return true;
}

bool VirtioBalloonDriver::report_free(uint64_t gpa, uint64_t size) {
  if (!(features_ & kReporting)) return false;
  // Device-writable, as Linux hands them over (the device may discard their contents).
  Segment seg{reinterpret_cast<const void*>(gpa), static_cast<uint32_t>(size), true};
  return send_raw(kReportingQueue, &seg, 1);
}

}  // namespace guest
