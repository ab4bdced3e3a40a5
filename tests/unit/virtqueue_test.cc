// The device side of split virtqueues against well-formed and hostile rings. Each class of
// DPDK's vhost CVEs (2018-1059, 2020-10722/10723/10725/10726, 2022-0669, 2022-2132) has a
// test here or in vhost_user_backend_test.cc.
#include "vhost-user/virtqueue.h"

#include <gtest/gtest.h>

#include "tests/unit/fake_driver.h"

namespace bulkhead::vhost_user {
namespace {

using test::DriverQueue;
using test::GuestRam;

constexpr uint64_t kAll = feature::kEventIdx | feature::kIndirectDesc | feature::kVersion1;

class VirtqueueTest : public ::testing::Test {
 protected:
  VirtqueueTest() { memory.add(ram.region(), ram.dup_fd()); }
  void start(uint64_t features = kAll, uint8_t* inflight = nullptr) { queue.start(driver.size(), driver.rings(), 0, features, inflight); }
  void expect_broken(const char* why) {
    EXPECT_THROW(queue.pop(memory), QueueBroken) << why;
  }
  GuestRam ram;
  MemoryMap memory;
  DriverQueue driver{ram, 16};
  SplitQueue queue;
};

TEST_F(VirtqueueTest, PopsReadableThenWritableBuffersTranslated) {
  start();
  ram.at(0x100000)[0] = 0xa5;
  driver.add_chain(0, {{0x100000, 512, 0, 0}, {0x200000, 4096, kDescWrite, 0}, {0x300000, 1, kDescWrite, 0}});
  auto chain = queue.pop(memory);
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->head, 0);
  ASSERT_EQ(chain->readable.size(), 1u);
  EXPECT_EQ(chain->readable[0].data[0], 0xa5) << "the device sees the guest's bytes";
  chain->writable[1].data[0] = 0x5a;
  EXPECT_EQ(ram.at(0x300000)[0], 0x5a) << "and the guest sees the device's";
  EXPECT_EQ(chain->readable_bytes, 512u);
  ASSERT_EQ(chain->writable.size(), 2u);
  EXPECT_EQ(chain->writable_bytes, 4097u);
  EXPECT_FALSE(queue.pop(memory)) << "one request only";
}

TEST_F(VirtqueueTest, PushPublishesUsedElementsInOrder) {
  start();
  driver.add_chain(0, {{0x100000, 8, kDescWrite, 0}});
  driver.add_chain(1, {{0x100100, 8, kDescWrite, 0}});
  auto a = queue.pop(memory), b = queue.pop(memory);
  queue.push(b->head, 8);
  queue.push(a->head, 3);
  EXPECT_EQ(driver.used_idx(), 2);
  EXPECT_EQ(driver.used_id(0), 1u);
  EXPECT_EQ(driver.used_id(1), 0u);
  EXPECT_EQ(driver.used_len(1), 3u);
}

TEST_F(VirtqueueTest, DescriptorLoopIsBroken) {
  start();
  driver.set_desc(0, {0x100000, 8, kDescNext, 1});
  driver.set_desc(1, {0x100000, 8, kDescNext, 0});
  driver.publish(0);
  expect_broken("0 -> 1 -> 0 never ends");
}

TEST_F(VirtqueueTest, NextIndexOutOfRangeIsBroken) {
  start();
  driver.set_desc(0, {0x100000, 8, kDescNext, 16});
  driver.publish(0);
  expect_broken("next = queue size");
}

TEST_F(VirtqueueTest, HeadOutOfRangeIsBroken) {
  start();
  driver.publish(200);
  expect_broken("avail ring names descriptor 200 of 16");
}

TEST_F(VirtqueueTest, AvailIndexRunningAheadIsBroken) {
  start();
  driver.add_chain(0, {{0x100000, 8, 0, 0}});
  driver.set_avail_idx(100);  // claims 100 new buffers in a ring of 16
  expect_broken("avail idx moved by more than the ring size");
}

TEST_F(VirtqueueTest, SameHeadTwiceWhileInFlightIsBroken) {
  start();
  driver.add_chain(0, {{0x100000, 8, 0, 0}});
  driver.publish(0);
  ASSERT_TRUE(queue.pop(memory));
  expect_broken("descriptor 0 is still ours");
}

TEST_F(VirtqueueTest, ZeroLengthDescriptorIsBroken) {
  start();
  driver.add_chain(0, {{0x100000, 0, 0, 0}});
  expect_broken("zero length");
}

TEST_F(VirtqueueTest, ReadableAfterWritableIsBroken) {
  start();
  driver.add_chain(0, {{0x100000, 8, kDescWrite, 0}, {0x100100, 8, 0, 0}});
  expect_broken("readable after writable");
}

TEST_F(VirtqueueTest, BufferOutsideGuestMemoryIsBroken) {  // CVE-2018-1059 class
  start();
  driver.add_chain(0, {{GuestRam::kSize - 8, 16, 0, 0}});
  expect_broken("runs past the end of RAM");
}

TEST_F(VirtqueueTest, AddressArithmeticOverflowIsBroken) {
  start();
  driver.add_chain(0, {{~0ull - 4, 64, 0, 0}});
  expect_broken("addr + len wraps");
}

TEST_F(VirtqueueTest, BufferAcrossAdjacentRegionsIsSplit) {
  MemoryMap two;
  two.add(ram.region(0, 2 << 20), ram.dup_fd());
  two.add(ram.region(2 << 20, 2 << 20), ram.dup_fd());
  start();
  ram.at(2 << 20)[0] = 0x77;
  driver.add_chain(0, {{(2 << 20) - 100, 300, 0, 0}});
  auto chain = queue.pop(two);
  ASSERT_TRUE(chain);
  ASSERT_EQ(chain->readable.size(), 2u);
  EXPECT_EQ(chain->readable[0].size, 100u);
  EXPECT_EQ(chain->readable[1].size, 200u);
  EXPECT_EQ(chain->readable[1].data[0], 0x77);
}

TEST_F(VirtqueueTest, IndirectTableIsFollowed) {
  start();
  Descriptor table[3] = {{0x100000, 16, kDescNext, 1}, {0x100100, 32, kDescNext | kDescWrite, 2}, {0x100200, 64, kDescWrite, 0}};
  std::memcpy(ram.at(0x50000), table, sizeof table);
  driver.add_chain(0, {{0x50000, sizeof table, kDescIndirect, 0}});
  auto chain = queue.pop(memory);
  ASSERT_TRUE(chain);
  EXPECT_EQ(chain->readable_bytes, 16u);
  EXPECT_EQ(chain->writable_bytes, 96u);
}

TEST_F(VirtqueueTest, IndirectWithoutTheFeatureIsBroken) {
  start(feature::kVersion1);
  driver.add_chain(0, {{0x50000, 16, kDescIndirect, 0}});
  expect_broken("INDIRECT_DESC not negotiated");
}

TEST_F(VirtqueueTest, IndirectTableSizesAreChecked) {
  start();
  Descriptor one{0x100000, 16, 0, 0};
  std::memcpy(ram.at(0x50000), &one, sizeof one);
  driver.add_chain(0, {{0x50000, 24, kDescIndirect, 0}});
  expect_broken("not a multiple of 16");
}

TEST_F(VirtqueueTest, OversizedIndirectTableIsBroken) {
  start();
  driver.add_chain(0, {{0x50000, 16 * 1025, kDescIndirect, 0}});
  expect_broken("more than 1024 entries");
}

TEST_F(VirtqueueTest, NestedIndirectIsBroken) {
  start();
  Descriptor inner{0x60000, 16, kDescIndirect, 0};
  std::memcpy(ram.at(0x50000), &inner, sizeof inner);
  driver.add_chain(0, {{0x50000, 16, kDescIndirect, 0}});
  expect_broken("indirect inside indirect");
}

TEST_F(VirtqueueTest, IndirectWithNextIsBroken) {
  start();
  Descriptor one{0x100000, 16, 0, 0};
  std::memcpy(ram.at(0x50000), &one, sizeof one);
  driver.set_desc(0, {0x50000, 16, kDescIndirect | kDescNext, 1});
  driver.set_desc(1, {0x100000, 16, 0, 0});
  driver.publish(0);
  expect_broken("INDIRECT and NEXT together");
}

TEST_F(VirtqueueTest, IndirectLoopIsBroken) {
  start();
  Descriptor table[2] = {{0x100000, 16, kDescNext, 1}, {0x100000, 16, kDescNext, 0}};
  std::memcpy(ram.at(0x50000), table, sizeof table);
  driver.add_chain(0, {{0x50000, sizeof table, kDescIndirect, 0}});
  expect_broken("loop inside the indirect table");
}

TEST_F(VirtqueueTest, ChainLongerThanTheQueueIsBroken) {
  start();
  for (uint16_t i = 0; i < 16; ++i) driver.set_desc(i, {0x100000, 8, kDescNext, static_cast<uint16_t>((i + 1) % 16)});
  driver.publish(0);
  expect_broken("16 descriptors all with NEXT");
}

TEST_F(VirtqueueTest, EventIdxSuppressesNotificationsUntilUsedEvent) {
  start();
  for (uint16_t i = 0; i < 4; ++i) driver.add_chain(i, {{0x100000u + i * 0x100u, 8, kDescWrite, 0}});
  driver.set_used_event(2);  // "interrupt me when used idx passes 2"
  for (int i = 0; i < 4; ++i) {
    auto c = queue.pop(memory);
    queue.push(c->head, 8);
    bool notify = queue.should_notify();
    EXPECT_EQ(notify, i == 0 || i == 2) << "after " << i + 1 << " completions";
  }
  EXPECT_EQ(driver.avail_event(), 4) << "kick wanted at the next new buffer";
}

TEST_F(VirtqueueTest, NoInterruptFlagWithoutEventIdx) {
  start(feature::kVersion1);
  driver.add_chain(0, {{0x100000, 8, kDescWrite, 0}});
  auto c = queue.pop(memory);
  queue.push(c->head, 8);
  driver.set_avail_flags(1);
  EXPECT_FALSE(queue.should_notify());
  driver.set_avail_flags(0);
  EXPECT_TRUE(queue.should_notify());
}

TEST_F(VirtqueueTest, RejectsBadSizesAndMisalignedRings) {
  EXPECT_THROW(queue.start(0, driver.rings(), 0, kAll, nullptr), QueueBroken);
  EXPECT_THROW(queue.start(12, driver.rings(), 0, kAll, nullptr), QueueBroken);
  auto rings = driver.rings();
  rings.desc += 8;
  EXPECT_THROW(queue.start(16, rings, 0, kAll, nullptr), QueueBroken);
}

TEST_F(VirtqueueTest, InflightRegionLetsANewBackEndResubmitInOrder) {
  std::vector<uint8_t> region(inflight_queue_bytes(16));
  start(kAll, region.data());
  for (uint16_t i = 0; i < 3; ++i) driver.add_chain(i * 2, {{0x100000, 8, 0, 0}, {0x100100, 8, kDescWrite, 0}});
  auto a = queue.pop(memory), b = queue.pop(memory), c = queue.pop(memory);
  queue.push(b->head, 8);  // only the second one completes before the "crash"

  SplitQueue restarted;  // a new back-end process, same guest memory and inflight region
  restarted.start(16, driver.rings(), 0, kAll, region.data());
  EXPECT_EQ(restarted.next_avail(), 3) << "two in flight + one used";
  auto redo = restarted.take_resubmissions(memory);
  ASSERT_EQ(redo.size(), 2u);
  EXPECT_EQ(redo[0].head, a->head) << "oldest first";
  EXPECT_EQ(redo[1].head, c->head);
  EXPECT_EQ(redo[0].writable_bytes, 8u);
  restarted.push(redo[0].head, 8);
  restarted.push(redo[1].head, 8);
  EXPECT_EQ(driver.used_idx(), 3);
  driver.add_chain(8, {{0x100000, 8, 0, 0}});
  auto next = restarted.pop(memory);
  ASSERT_TRUE(next);
  EXPECT_EQ(next->head, 8) << "new requests continue after the resubmitted ones";
}

TEST_F(VirtqueueTest, InflightRecoveryTreatsAPublishedBatchAsComplete) {
  std::vector<uint8_t> region(inflight_queue_bytes(16));
  start(kAll, region.data());
  driver.add_chain(0, {{0x100000, 8, 0, 0}});
  auto a = queue.pop(memory);
  // The back-end died after publishing used->idx but before clearing the inflight flag.
  auto* header = reinterpret_cast<InflightSplitHeader*>(region.data());
  auto* desc = reinterpret_cast<InflightSplitDesc*>(region.data() + sizeof(InflightSplitHeader));
  header->last_batch_head = a->head;
  driver.set_used_idx(1);
  ASSERT_EQ(desc[a->head].inflight, 1);
  SplitQueue restarted;
  restarted.start(16, driver.rings(), 0, kAll, region.data());
  EXPECT_TRUE(restarted.take_resubmissions(memory).empty()) << "no write is done twice";
  EXPECT_EQ(restarted.next_avail(), 1);
}

}  // namespace
}  // namespace bulkhead::vhost_user
