// The vhost-user back-end driven the way real front-ends drive it, including the message
// orders that bite and malformed messages.
#include "vhost-user/backend.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/unit/fake_driver.h"

namespace bulkhead::vhost_user {
namespace {

using test::DriverQueue;
using test::GuestRam;

// Copies each request's readable bytes into its writable buffers, upper-cased.
class EchoDevice : public BackendDevice {
 public:
  uint64_t features() const override { return feature::kVersion1 | feature::kEventIdx | feature::kIndirectDesc; }
  uint32_t queue_count() const override { return 2; }
  std::vector<uint8_t> config() const override { return {1, 2, 3, 4, 5, 6, 7, 8}; }
  bool write_config(uint32_t offset, std::span<const uint8_t> bytes) override {
    last_config_write = {offset, bytes.size()};
    return offset + bytes.size() <= 8;
  }
  void process(Queue& q) override {
    while (auto chain = q.ring().pop(q.memory())) {
      std::string text;
      for (auto& r : chain->readable) text.append(reinterpret_cast<char*>(r.data), r.size);
      for (char& c : text) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      size_t done = 0;
      for (auto& w : chain->writable) {
        size_t n = std::min<size_t>(w.size, text.size() - done);
        std::memcpy(w.data, text.data() + done, n);
        done += n;
      }
      q.complete(chain->head, static_cast<uint32_t>(done));
      ++processed;
    }
    q.flush_notifications();
  }
  void resubmit(Queue&, std::vector<Chain> chains) override { resubmitted += chains.size(); }
  void drain(Queue&) override { ++drains; }
  void reset() override { ++resets; }
  int processed = 0, drains = 0, resets = 0;
  size_t resubmitted = 0;
  std::pair<uint32_t, size_t> last_config_write{};
};

class BackendTest : public ::testing::Test, public test::FrontEnd {
 protected:
  BackendTest() : FrontEnd(loop) { backend = std::make_unique<Backend>(device, loop, take_backend_socket()); }
  void negotiate() { FrontEnd::negotiate(device.features()); }

  EventLoop loop;
  EchoDevice device;
  std::unique_ptr<Backend> backend;
};

TEST_F(BackendTest, OffersVersion1AndProtocolFeatures) {
  Message r = call(empty(Request::kGetFeatures));
  uint64_t f = r.payload_as<uint64_t>();
  EXPECT_TRUE(f & feature::kVersion1);
  EXPECT_TRUE(f & feature::kProtocolFeatures);
  EXPECT_EQ(r.header.flags, kVersion | kFlagReply) << "QEMU accepts only flags == 0x5 on replies";
  Message p = call(empty(Request::kGetProtocolFeatures));
  EXPECT_TRUE(p.payload_as<uint64_t>() & protocol_feature::kInflightShmfd);
  EXPECT_EQ(call(empty(Request::kGetQueueNum)).payload_as<uint64_t>(), 2u);
}

TEST_F(BackendTest, ServesRequestsAndInterrupts) {
  negotiate();
  set_mem_table();
  DriverQueue q(ram, 8);
  UniqueFd kick = eventfd(), irq = eventfd();
  start_queue(q, 0, kick.get(), irq.get());
  read_counter(irq.get());  // SET_VRING_CALL re-sends a possibly lost notification
  std::memcpy(ram.at(0x100000), "hello", 5);
  q.add_chain(0, {{0x100000, 5, 0, 0}, {0x200000, 16, kDescWrite, 0}});
  uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(device.processed, 1);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(ram.at(0x200000)), 5), "HELLO");
  EXPECT_EQ(q.used_len(0), 5u);
  EXPECT_EQ(read_counter(irq.get()), 1u) << "the driver was interrupted";
}

TEST_F(BackendTest, ToleratesTheOrdersRealFrontEndsUse) {
  UniqueFd call0 = eventfd(), err0 = eventfd();
  // CALL and ERR before any feature negotiation (QEMU's vhost_dev_init does this).
  send(msg(Request::kSetVringCall, uint64_t{0}), {call0.get()});
  send(msg(Request::kSetVringErr, uint64_t{0}), {err0.get()});
  // Protocol negotiation before SET_OWNER; GET_FEATURES as a barrier at any time.
  send(msg(Request::kSetProtocolFeatures, Backend::kProtocolFeatures));
  call(empty(Request::kGetFeatures));
  send(empty(Request::kSetOwner));
  // ENABLE for a ring that is not configured yet.
  send(msg(Request::kSetVringEnable, VringState{1, 1}));
  send(msg(Request::kSetFeatures, device.features() | feature::kProtocolFeatures));
  call(empty(Request::kGetFeatures));
  DriverQueue q(ram, 8);
  UniqueFd kick = eventfd();
  // Kick and addresses before the memory table: the ring starts once memory arrives.
  send(msg(Request::kSetVringNum, VringState{0, 8}));
  send(msg(Request::kSetVringAddr, q.addr(0)));
  send(msg(Request::kSetVringKick, uint64_t{0}), {kick.get()});
  send(msg(Request::kSetVringEnable, VringState{0, 1}));
  set_mem_table();
  q.add_chain(0, {{0x100000, 4, 0, 0}, {0x200000, 4, kDescWrite, 0}});
  uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(device.processed, 1);
  // SET_MEM_TABLE while the ring runs: the ring is drained, remapped and keeps going.
  set_mem_table();
  EXPECT_GE(device.drains, 1);
  q.add_chain(2, {{0x100000, 4, 0, 0}, {0x200000, 4, kDescWrite, 0}});
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(device.processed, 2);
  EXPECT_TRUE(backend->connected());
}

TEST_F(BackendTest, GetVringBaseStopsTheRingAndReportsThePosition) {
  negotiate();
  set_mem_table();
  DriverQueue q(ram, 8);
  UniqueFd kick = eventfd(), irq = eventfd();
  start_queue(q, 0, kick.get(), irq.get());
  q.add_chain(0, {{0x100000, 4, 0, 0}});
  q.add_chain(1, {{0x100000, 4, 0, 0}});
  uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  Message r = call(msg(Request::kGetVringBase, VringState{0, 0}));
  EXPECT_EQ(r.payload_as<VringState>().num, 2u);
  EXPECT_GE(device.drains, 1) << "in-flight requests finish before the reply";
  q.add_chain(2, {{0x100000, 4, 0, 0}});
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(device.processed, 2) << "a stopped ring is not touched";
}

TEST_F(BackendTest, DescriptorsOnMessagesThatCarryNoneCloseTheConnection) {  // CVE-2022-0669 class
  UniqueFd stray = eventfd();
  send(empty(Request::kSetOwner), {stray.get()});
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, MissingDescriptorCloseTheConnection) {
  send(msg(Request::kSetVringKick, uint64_t{0}));  // no NOFD flag, no fd
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, QueueIndexOutOfRangeClosesTheConnection) {  // CVE-2020-10723/10725 class
  send(msg(Request::kSetVringNum, VringState{2, 8}));
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, KickIndexBeyondTheMaskIsRefused) {
  UniqueFd kick = eventfd();
  send(msg(Request::kSetVringKick, uint64_t{0x10000}), {kick.get()});
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, WrongPayloadSizeClosesTheConnection) {
  send(msg(Request::kSetVringNum, uint32_t{8}));
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, MemoryTableWithMoreRegionsThanDescriptorsIsRefused) {
  MemoryTable table{};
  table.nregions = 2;
  table.regions[0] = ram.region(0, 1 << 20);
  table.regions[1] = ram.region(1 << 20, 1 << 20);
  Message m;
  m.header = {static_cast<uint32_t>(Request::kSetMemTable), kVersion, 0};
  m.payload.resize(8 + 2 * sizeof(MemoryRegion));
  std::memcpy(m.payload.data(), &table, m.payload.size());
  send(m, {ram.fd()});
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, MemoryRegionsMustFitTheirFileAndNotOverlap) {  // CVE-2018-1059 class
  auto add = [&](MemoryRegion r) {
    send(msg(Request::kAddMemReg, SingleMemoryRegion{0, r}), {ram.fd()});
  };
  add(ram.region(0, GuestRam::kSize + 4096));
  EXPECT_FALSE(backend->connected()) << "region larger than the memfd";
}

TEST_F(BackendTest, OverlappingRegionsAreRefused) {
  send(msg(Request::kAddMemReg, SingleMemoryRegion{0, ram.region(0, 1 << 20)}), {ram.fd()});
  EXPECT_TRUE(backend->connected());
  send(msg(Request::kAddMemReg, SingleMemoryRegion{0, ram.region(1 << 19, 1 << 20)}), {ram.fd()});
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, ConfigReadsAreBoundsChecked) {
  ConfigHeader h{2, 4, 0};
  Message m;
  m.header = {static_cast<uint32_t>(Request::kGetConfig), kVersion, 0};
  m.payload.resize(sizeof h + 4);
  std::memcpy(m.payload.data(), &h, sizeof h);
  Message r = call(m);
  ASSERT_EQ(r.payload.size(), sizeof h + 4);
  EXPECT_EQ(r.payload[sizeof h], 3);
  h = {6, 4, 0};  // runs past the 8-byte config
  std::memcpy(m.payload.data(), &h, sizeof h);
  EXPECT_EQ(call(m).payload.size(), 0u) << "an empty reply means the request was invalid";
  EXPECT_TRUE(backend->connected());
}

TEST_F(BackendTest, ReplyAckReportsRefusedRequests) {
  negotiate();
  Message r = call(msg(Request::kSetVringNum, VringState{0, 12}, kFlagNeedReply));  // not a power of two
  EXPECT_EQ(r.payload_as<uint64_t>(), 1u);
  r = call(msg(Request::kSetVringNum, VringState{0, 64}, kFlagNeedReply));
  EXPECT_EQ(r.payload_as<uint64_t>(), 0u);
}

TEST_F(BackendTest, InflightRegionRoundTrip) {
  Message r = call(msg(Request::kGetInflightFd, InflightDescription{0, 0, 2, 8, 0}));
  auto d = r.payload_as<InflightDescription>();
  ASSERT_EQ(r.fds.size(), 1u);
  EXPECT_EQ(d.mmap_size, 2 * inflight_queue_bytes(8));
  EXPECT_EQ(d.num_queues, 2);
  send(msg(Request::kSetInflightFd, d), {r.fds[0].get()});
  EXPECT_TRUE(backend->connected());
}

TEST_F(BackendTest, HugeInflightRequestsAreRefused) {  // CVE-2020-10726 class
  send(msg(Request::kGetInflightFd, InflightDescription{0, 0, 0xffff, 0xffff, 0}));
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, InflightRegionSmallerThanClaimedIsRefused) {
  UniqueFd small(::memfd_create("small", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(small.get(), 4096), 0);
  send(msg(Request::kSetInflightFd, InflightDescription{1 << 20, 0, 2, 256, 0}), {small.get()});
  EXPECT_FALSE(backend->connected());
}

TEST_F(BackendTest, BrokenRingSignalsTheErrorDescriptor) {
  negotiate();
  set_mem_table();
  DriverQueue q(ram, 8);
  UniqueFd kick = eventfd(), irq = eventfd(), err = eventfd();
  send(msg(Request::kSetVringErr, uint64_t{0}), {err.get()});
  start_queue(q, 0, kick.get(), irq.get());
  q.publish(99);  // a head beyond the table
  uint64_t one = 1;
  ASSERT_EQ(::write(kick.get(), &one, 8), 8);
  pump();
  EXPECT_EQ(read_counter(err.get()), 1u);
  EXPECT_TRUE(backend->connected()) << "a broken queue is the guest's fault, not the front-end's";
}

TEST_F(BackendTest, ResetDeviceStopsRingsAndResetsTheDevice) {
  negotiate();
  set_mem_table();
  DriverQueue q(ram, 8);
  UniqueFd kick = eventfd(), irq = eventfd();
  start_queue(q, 0, kick.get(), irq.get());
  send(empty(Request::kResetDevice));
  EXPECT_EQ(device.resets, 1);
  EXPECT_FALSE(backend->queue(0).ring().running());
}

}  // namespace
}  // namespace bulkhead::vhost_user
