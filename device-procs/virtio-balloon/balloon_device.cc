#include "device-procs/virtio-balloon/balloon_device.h"

#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "vhost-user/guest_buffers.h"

namespace bulkhead::device {

using vhost_user::Chain;
using vhost_user::GuestBuffers;
using vhost_user::Queue;
namespace bf = balloon_feature;

namespace {
constexpr size_t kStatEntry = 10;     // le16 tag, le64 value (packed)
constexpr size_t kMaxStatEntries = 64;
}  // namespace

const char* BalloonDevice::stat_name(size_t tag) {
  static constexpr const char* kNames[kStatTags] = {
      "swap-in",   "swap-out",  "major-faults", "minor-faults", "free",       "total",        "available",      "caches",
      "hugetlb-allocations", "hugetlb-failures", "oom-kills", "alloc-stalls", "async-scans", "direct-scans",
      "async-reclaims", "direct-reclaims"};
  return tag < kStatTags ? kNames[tag] : "unknown";
}

BalloonDevice::BalloonDevice(EventLoop& loop, Options options) : loop_(loop), options_(options) {
  // Large backing pages are whole words of the bitmap of held pages (holds_backing_page).
  if (options_.host_page_size != kGuestPage && (options_.host_page_size == 0 || options_.host_page_size % (64 * kGuestPage)))
    throw InputError("the balloon's backing page size must be 4 KiB or a multiple of 256 KiB");
  if (options_.stats_interval.count() > 0) {
    // A periodic timer of our own: the driver refreshes statistics when asked.
    stats_timer_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
    if (!stats_timer_) throw_errno("timerfd_create");
    itimerspec every{};
    every.it_interval.tv_sec = every.it_value.tv_sec = options_.stats_interval.count();
    // Arms the timer we just created; `every` outlives the call.
    if (::timerfd_settime(stats_timer_.get(), 0, &every, nullptr) != 0) throw_errno("timerfd_settime");
    loop_.add(stats_timer_.get(), EPOLLIN, [this](uint32_t) {
      uint64_t expirations;
      // Reads the timer's 8-byte expiration count, which re-arms its readiness.
      if (::read(stats_timer_.get(), &expirations, sizeof expirations) == sizeof expirations) request_stats();
    });
  }
}

uint64_t BalloonDevice::features() const {
  uint64_t f = vhost_user::feature::kVersion1 | bf::kStatsVq;
  if (options_.deflate_on_oom) f |= bf::kDeflateOnOom;
  if (options_.free_page_reporting) f |= bf::kFreePageReporting;
  return f;
}

std::vector<uint8_t> BalloonDevice::config() const {
  // num_pages, actual, free_page_hint_cmd_id, poison_val (the last two unused: not offered).
  std::vector<uint8_t> c(16, 0);
  std::memcpy(&c[0], &options_.target_pages, 4);
  std::memcpy(&c[4], &actual_, 4);
  return c;
}

bool BalloonDevice::write_config(uint32_t offset, std::span<const uint8_t> bytes) {
  // The driver writes only `actual` (num_pages is the device's).
  if (offset != 4 || bytes.size() != 4) return false;
  std::memcpy(&actual_, bytes.data(), 4);
  // The target may have changed since (`bulkhead ctl balloon`, which the core serves), so
  // only the core can say whether the driver reached it (`ctl balloon-stats`).
  spdlog::debug("the guest's balloon holds {} MiB", uint64_t{actual_} * kGuestPage >> 20);
  return true;
}

void BalloonDevice::process(Queue& q) {
  while (auto chain = q.ring().pop(q.memory())) handle(q, std::move(*chain));
  q.flush_notifications();
}

void BalloonDevice::resubmit(Queue& q, std::vector<Chain> chains) {
  // Inflating or deflating a page twice changes nothing; a report punches zeroes again.
  for (Chain& chain : chains) handle(q, std::move(chain));
  q.flush_notifications();
}

void BalloonDevice::handle(Queue& q, Chain chain) {
  switch (q.index()) {
    case kInflateQueue:
    case kDeflateQueue: change_pages(q, chain, q.index() == kInflateQueue); break;
    case kStatsQueue:
      read_stats(chain);
      // Kept until statistics are wanted again; a second buffer returns the first.
      if (stats_chain_) q.complete(stats_chain_->head, 0);
      stats_chain_ = std::move(chain);
      return;
    case kReportingQueue:
      if (acked_ & bf::kFreePageReporting) report(chain);
      break;
    default: break;
  }
  q.complete(chain.head, 0);
}

void BalloonDevice::change_pages(Queue& q, const Chain& chain, bool inflate_pages) {
  if (!chain.writable.empty() || chain.readable_bytes % 4) ++counters_.malformed;
  GuestBuffers pfns(chain.readable);
  uint64_t count = pfns.size() / 4;
  if (count > kMaxPfnsPerBuffer) {
    counters_.ignored += count - kMaxPfnsPerBuffer;
    count = kMaxPfnsPerBuffer;
  }
  std::vector<uint32_t> batch(1024);
  std::vector<uint64_t> to_punch;  // guest-physical backing pages that are wholly in the balloon now
  for (uint64_t done = 0; done < count;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(batch.size(), count - done));
    pfns.read(done * 4, batch.data(), n * 4);  // copied out: the guest may change them meanwhile
    for (size_t i = 0; i < n; ++i) {
      uint64_t pfn = batch[i];
      if (!q.memory().gpa_to_host(pfn * kGuestPage, kGuestPage)) {
        ++counters_.outside_ram;
        continue;
      }
      if (!inflate_pages) {
        deflate(pfn);
      } else if (std::optional<uint64_t> backing = inflate(pfn)) {
        to_punch.push_back(*backing);
      }
    }
    done += n;
  }
  punch_runs(std::move(to_punch));
}

void BalloonDevice::punch_runs(std::vector<uint64_t> backing_pages) {
  // Each punch makes KVM drop its mappings of the range: one call per run of adjacent pages.
  std::sort(backing_pages.begin(), backing_pages.end());
  const uint64_t page = options_.host_page_size;
  for (size_t start = 0; start < backing_pages.size();) {
    size_t end = start + 1;
    while (end < backing_pages.size() && backing_pages[end] == backing_pages[end - 1] + page) ++end;
    std::vector<vhost_user::HostRange> pieces;  // a run may cross from one region into the next
    server_->memory().gpa_to_ranges(backing_pages[start], (end - start) * page, pieces);
    for (const vhost_user::HostRange& piece : pieces) counters_.returned_bytes += punch(piece.data, piece.size);
    start = end;
  }
}

std::optional<uint64_t> BalloonDevice::inflate(uint64_t pfn) {
  if (in_balloon(pfn)) {
    ++counters_.repeated;
    return std::nullopt;
  }
  if (held_.size() <= pfn / 64) held_.resize(pfn / 64 + 1);
  held_[pfn / 64] |= 1ull << (pfn % 64);
  ++held_pages_;
  ++counters_.inflated;
  uint64_t backing = pfn * kGuestPage / options_.host_page_size * options_.host_page_size;
  if (!holds_backing_page(backing)) return std::nullopt;  // part of a large page is still the guest's
  return backing;
}

bool BalloonDevice::holds_backing_page(uint64_t gpa) const {
  if (options_.host_page_size == kGuestPage) return in_balloon(gpa / kGuestPage);
  uint64_t first = gpa / kGuestPage / 64, words = options_.host_page_size / kGuestPage / 64;
  return first + words <= held_.size() &&
         std::all_of(held_.begin() + first, held_.begin() + first + words, [](uint64_t w) { return w == ~0ull; });
}

void BalloonDevice::deflate(uint64_t pfn) {
  if (!in_balloon(pfn)) {
    ++counters_.not_inflated;
    return;
  }
  held_[pfn / 64] &= ~(1ull << (pfn % 64));
  --held_pages_;
  ++counters_.deflated;
  // Nothing to map back: the guest's next touch of the page faults in a zeroed one.
}

void BalloonDevice::report(const Chain& chain) {
  // The driver hands free pages over as device-writable buffers (Linux, QEMU: virtio 1.x 5.5.6.7).
  if (!chain.readable.empty()) ++counters_.malformed;
  for (const vhost_user::HostRange& range : chain.writable) {
    counters_.reported_bytes += range.size;
    counters_.returned_bytes += punch(range.data, range.size);
  }
}

uint64_t BalloonDevice::punch(uint8_t* host, uint64_t size) {
  // Whole backing pages only, which align in guest-physical space (as in the memfd).
  const uint64_t page = options_.host_page_size;
  std::optional<uint64_t> gpa = server_->memory().host_to_gpa(host);
  if (!gpa) return 0;
  uint64_t skip = (page - *gpa % page) % page;
  if (size <= skip) return 0;
  uint64_t length = (size - skip) / page * page;
  if (length == 0) return 0;
  // MADV_REMOVE punches the range out of the memfd behind our shared mapping of guest RAM, which
  // covers [host + skip, + length) (one region's): the pages are freed for every process that maps them.
  if (::madvise(host + skip, length, MADV_REMOVE) != 0) {
    spdlog::warn("returning {} KiB of guest memory failed: {}", length >> 10, std::strerror(errno));
    return 0;
  }
  return length;
}

void BalloonDevice::read_stats(const Chain& chain) {
  if (!chain.writable.empty() || chain.readable_bytes % kStatEntry) ++counters_.malformed;
  GuestBuffers buffers(chain.readable);
  size_t entries = std::min<size_t>(buffers.size() / kStatEntry, kMaxStatEntries);
  if (entries == 0) return;  // the first buffer of a driver without statistics to give
  std::vector<uint8_t> raw(entries * kStatEntry);
  buffers.read(0, raw.data(), raw.size());
  Stats previous = stats_;
  std::string line;
  for (size_t i = 0; i < entries; ++i) {
    uint16_t tag;
    uint64_t value;
    std::memcpy(&tag, &raw[i * kStatEntry], 2);
    std::memcpy(&value, &raw[i * kStatEntry + 2], 8);
    if (tag >= kStatTags) continue;  // a tag newer than this device: skipped
    stats_[tag] = value;
    line += fmt::format("{}{}={}", line.empty() ? "" : " ", stat_name(tag), value);
  }
  ++counters_.stats_updates;
  if (stats_ != previous) spdlog::info("guest memory statistics: {}", line);
}

void BalloonDevice::request_stats() {
  if (!stats_chain_ || !server_ || !(acked_ & bf::kStatsVq)) return;
  Queue& q = server_->queue(kStatsQueue);
  if (!q.ready()) return;
  q.complete(stats_chain_->head, 0);
  stats_chain_.reset();
  q.flush_notifications();
}

void BalloonDevice::reset() {
  // A reset driver starts with an empty balloon; the pages it held are zero, and its own.
  held_.clear();
  held_pages_ = 0;
  actual_ = 0;
  acked_ = 0;
  stats_chain_.reset();
}

}  // namespace bulkhead::device
