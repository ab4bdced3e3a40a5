// The virtio-balloon device, driven through its vhost-user back-end by a fake driver whose
// guest RAM is a real memfd: inflated and reported pages must leave the memfd (its allocated
// blocks drop), and hostile page numbers are ignored and counted.
#include "device-procs/virtio-balloon/balloon_device.h"

#include <sys/stat.h>

#include <gtest/gtest.h>

#include "tests/unit/fake_driver.h"

namespace bulkhead::device {
namespace {

using test::DriverQueue;
using vhost_user::Descriptor;
using vhost_user::kDescWrite;
namespace bf = balloon_feature;

constexpr uint64_t kPfnBuffer = 0x40000, kStatsBuffer = 0x48000;
constexpr uint64_t kPool = 0x100000;  // 1 MiB..4 MiB: pages to give away
constexpr uint64_t kPage = 4096;

class BalloonDeviceTest : public ::testing::Test, public test::FrontEnd {
 protected:
  BalloonDeviceTest() : FrontEnd(loop) {}

  void start(BalloonDevice::Options options, uint64_t features) {
    device = std::make_unique<BalloonDevice>(loop, options);
    backend = std::make_unique<vhost_user::Backend>(*device, loop, take_backend_socket());
    device->attach(*backend);
    negotiate(features & device->features());
    set_mem_table();
    for (uint32_t q = 0; q < device->queue_count(); ++q) start_queue(queues[q], q, kicks[q].get(), calls[q].get());
  }
  // Guest RAM the memfd really holds, in bytes.
  uint64_t allocated() {
    struct stat st;
    EXPECT_EQ(::fstat(ram.fd(), &st), 0);
    return static_cast<uint64_t>(st.st_blocks) * 512;
  }
  void touch(uint64_t gpa, uint64_t bytes) {
    for (uint64_t at = gpa; at < gpa + bytes; at += kPage) *ram.at(at) = 0x5a;
  }
  // One buffer of page numbers on queue `q`; true if the device returned it.
  bool send_pfns(uint32_t q, const std::vector<uint32_t>& pfns) {
    std::memcpy(ram.at(kPfnBuffer), pfns.data(), pfns.size() * 4);
    return send(q, {{kPfnBuffer, static_cast<uint32_t>(pfns.size() * 4), 0, 0}});
  }
  bool send(uint32_t q, std::vector<Descriptor> d) {
    uint16_t before = queues[q].used_idx();
    queues[q].add_chain(next_[q], d);
    next_[q] = static_cast<uint16_t>(next_[q] + d.size());
    kick(kicks[q].get());
    pump();
    return queues[q].used_idx() != before;
  }
  static std::vector<uint32_t> pages(uint64_t gpa, uint64_t count) {
    std::vector<uint32_t> pfns;
    for (uint64_t i = 0; i < count; ++i) pfns.push_back(static_cast<uint32_t>(gpa / kPage + i));
    return pfns;
  }

  EventLoop loop;
  std::unique_ptr<BalloonDevice> device;
  std::unique_ptr<vhost_user::Backend> backend;
  DriverQueue queues[4] = {{ram, 16, 0x10000}, {ram, 16, 0x14000}, {ram, 16, 0x18000}, {ram, 16, 0x1c000}};
  UniqueFd kicks[4] = {eventfd(), eventfd(), eventfd(), eventfd()};
  UniqueFd calls[4] = {eventfd(), eventfd(), eventfd(), eventfd()};
  uint16_t next_[4] = {};
};

constexpr uint64_t kAll = vhost_user::feature::kVersion1 | bf::kStatsVq | bf::kDeflateOnOom | bf::kFreePageReporting;

TEST_F(BalloonDeviceTest, OffersWhatItWasToldAndTheTargetInItsConfiguration) {
  start({.target_pages = 300}, kAll);
  EXPECT_EQ(device->features() & (bf::kDeflateOnOom | bf::kFreePageReporting), 0u);
  EXPECT_EQ(device->queue_count(), 3u) << "inflate, deflate, statistics";
  std::vector<uint8_t> config = device->config();
  ASSERT_EQ(config.size(), 16u);
  uint32_t num_pages;
  std::memcpy(&num_pages, config.data(), 4);
  EXPECT_EQ(num_pages, 300u);
  // The driver writes `actual`, and nothing else.
  uint32_t actual = 300;
  EXPECT_TRUE(device->write_config(4, {reinterpret_cast<uint8_t*>(&actual), 4}));
  EXPECT_FALSE(device->write_config(0, {reinterpret_cast<uint8_t*>(&actual), 4})) << "num_pages is the device's";
  EXPECT_EQ(device->actual_pages(), 300u);
}

TEST_F(BalloonDeviceTest, OffersDeflateOnOomAndReportingWhenAsked) {
  start({.free_page_reporting = true, .deflate_on_oom = true}, kAll);
  EXPECT_EQ(device->features() & kAll, kAll);
  EXPECT_EQ(device->queue_count(), 4u) << "inflate, deflate, statistics, free page reporting";
}

TEST_F(BalloonDeviceTest, InflatedPagesLeaveGuestRamAndDeflatedOnesComeBackZeroed) {
  start({.target_pages = 512}, kAll);
  touch(kPool, 512 * kPage);
  touch(kPfnBuffer, kPage);
  uint64_t before = allocated();
  ASSERT_TRUE(send_pfns(0, pages(kPool, 256)));
  ASSERT_TRUE(send_pfns(0, pages(kPool + 256 * kPage, 256)));
  EXPECT_LE(allocated(), before - 512 * kPage) << "2 MiB punched out of the memfd";
  EXPECT_EQ(device->pages_held(), 512u);
  ASSERT_TRUE(send_pfns(1, pages(kPool, 512)));
  EXPECT_EQ(device->pages_held(), 0u);
  EXPECT_EQ(*ram.at(kPool), 0) << "a page the host freed reads zero";
  touch(kPool, kPage);
  EXPECT_EQ(*ram.at(kPool), 0x5a) << "and is usable again";
  EXPECT_EQ(device->counters().returned_bytes, 512 * kPage);
}

TEST_F(BalloonDeviceTest, HostilePageNumbersAreIgnoredAndCounted) {
  start({}, kAll);
  touch(kPool, kPage);
  uint32_t outside = static_cast<uint32_t>(test::GuestRam::kSize / kPage);
  EXPECT_TRUE(send_pfns(0, {outside, 0xc0000, 0xffffffff}));
  EXPECT_TRUE(send_pfns(0, {static_cast<uint32_t>(kPool / kPage), static_cast<uint32_t>(kPool / kPage)}));
  EXPECT_TRUE(send_pfns(1, {static_cast<uint32_t>(kPool / kPage + 9)}));
  EXPECT_TRUE(send(0, {{kPfnBuffer, 6, 0, 0}})) << "a partial page number";
  EXPECT_TRUE(send(0, {{kPfnBuffer, 8, kDescWrite, 0}})) << "a buffer for the device to write";
  const auto& c = device->counters();
  EXPECT_EQ(c.outside_ram, 3u);
  EXPECT_EQ(c.repeated, 1u);
  EXPECT_EQ(c.not_inflated, 1u);
  EXPECT_EQ(c.malformed, 2u);
  EXPECT_EQ(c.inflated, 2u) << "the first page, and the page number the partial buffer's first 4 bytes held";
}

TEST_F(BalloonDeviceTest, MoreThanABuffersLimitOfPageNumbersIsCutAtTheLimit) {
  start({}, kAll);
  // 1.5 MiB of page numbers, all the same page, in one buffer (at 2 MiB, above the pool's start).
  uint64_t count = BalloonDevice::kMaxPfnsPerBuffer + 128 * 1024;
  std::vector<uint32_t> same(count, static_cast<uint32_t>(kPool / kPage));
  std::memcpy(ram.at(0x200000), same.data(), same.size() * 4);
  EXPECT_TRUE(send(0, {{0x200000, static_cast<uint32_t>(count * 4), 0, 0}}));
  EXPECT_EQ(device->counters().ignored, 128u * 1024);
  EXPECT_EQ(device->counters().inflated + device->counters().repeated, BalloonDevice::kMaxPfnsPerBuffer);
}

TEST_F(BalloonDeviceTest, FreePageReportsArePunchedAndReturned) {
  start({.free_page_reporting = true}, kAll);
  ASSERT_EQ(device->queue_count(), 4u);
  touch(kPool, 1 << 20);
  uint64_t before = allocated();
  EXPECT_TRUE(send(3, {{kPool, 1 << 20, kDescWrite, 0}}));
  EXPECT_LE(allocated(), before - (1 << 20));
  EXPECT_EQ(device->counters().reported_bytes, 1u << 20);
  touch(kPool, 1 << 20);
  EXPECT_TRUE(send(3, {{kPool, 1 << 20, 0, 0}})) << "a report the device may not write: refused";
  EXPECT_EQ(device->counters().reported_bytes, 1u << 20);
  EXPECT_EQ(device->counters().malformed, 1u);
}

TEST_F(BalloonDeviceTest, StatisticsAreKeptUntilFreshOnesAreWanted) {
  start({}, kAll);
  struct __attribute__((packed)) Stat {
    uint16_t tag;
    uint64_t value;
  } stats[] = {{4, 1000}, {5, 4000}, {0xffff, 7}};  // free, total, and a tag from the future
  std::memcpy(ram.at(kStatsBuffer), stats, sizeof stats);
  EXPECT_FALSE(send(2, {{kStatsBuffer, sizeof stats, 0, 0}})) << "the device keeps the buffer";
  EXPECT_EQ(device->stats()[4], 1000u);
  EXPECT_EQ(device->stats()[5], 4000u);
  EXPECT_EQ(device->counters().stats_updates, 1u);
  device->request_stats();
  EXPECT_EQ(queues[2].used_idx(), 1) << "asking for fresh statistics returns the buffer";
}

// With guest RAM in 2 MiB pages, nothing is returned until the balloon holds a whole one.
TEST_F(BalloonDeviceTest, LargeBackingPagesGoBackOnlyWhenWhollyInTheBalloon) {
  start({.host_page_size = 2 << 20}, kAll);
  uint64_t huge = 0x200000;
  touch(huge, 2 << 20);
  ASSERT_TRUE(send_pfns(0, pages(huge, 256)));
  EXPECT_EQ(device->counters().returned_bytes, 0u) << "half of the large page is still the guest's";
  EXPECT_EQ(*ram.at(huge + 300 * kPage), 0x5a);
  ASSERT_TRUE(send_pfns(0, pages(huge + 256 * kPage, 256)));
  EXPECT_EQ(device->counters().returned_bytes, 2u << 20);
  EXPECT_EQ(*ram.at(huge + 300 * kPage), 0);
}

}  // namespace
}  // namespace bulkhead::device
