// The access ring between the core (producer) and a device (consumer), across threads.
#include "ipc/legacy_device/access_ring.h"

#include "common/error.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace bulkhead::legacy {
namespace {

UniqueFd dup_fd(int fd) { return UniqueFd(::fcntl(fd, F_DUPFD_CLOEXEC, 0)); }

// A consumer thread that answers reads with offset * 3 (string reads: offset * 3 + item
// index, per byte) and logs writes, sleeping on the kick eventfd like a device process does.
class Device {
 public:
  explicit Device(AccessRingProducer& p)
      : consumer_(dup_fd(p.memfd()), dup_fd(p.kick_fd()), dup_fd(p.notify_fd())), thread_([this] { loop(); }) {}
  ~Device() {
    stop_ = true;
    uint64_t one = 1;
    [[maybe_unused]] ssize_t n = ::write(consumer_.kick_fd(), &one, 8);
    thread_.join();
  }
  std::vector<uint64_t> writes;
  std::vector<std::vector<uint8_t>> string_writes;
  std::atomic<int> accesses{0};
  std::atomic<bool> paused{false};

 private:
  void loop() {
    while (!stop_) {
      if (!paused) consumer_.drain([this](const AccessSlot& s, std::span<uint8_t> items) -> uint64_t {
        ++accesses;
        if (s.kind == static_cast<uint8_t>(AccessKind::kWrite)) writes.push_back(s.data);
        if (s.kind == static_cast<uint8_t>(AccessKind::kWriteString)) string_writes.emplace_back(items.begin(), items.end());
        if (s.kind == static_cast<uint8_t>(AccessKind::kReadString))
          for (size_t i = 0; i < items.size(); ++i) items[i] = static_cast<uint8_t>(s.offset * 3 + i / s.size);
        return s.offset * 3;
      });
      if (!consumer_.prepare_to_sleep()) continue;
      pollfd p{consumer_.kick_fd(), POLLIN, 0};
      ::poll(&p, 1, 10);
      consumer_.woke_up();
    }
  }
  AccessRingConsumer consumer_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST(AccessRing, ReadsReturnTheDevicesAnswer) {
  AccessRingProducer producer;
  Device device(producer);
  for (uint64_t off = 0; off < 200; ++off) EXPECT_EQ(producer.read(0, off, 1), off * 3);
}

TEST(AccessRing, PostedWritesArriveInOrderBeforeALaterRead) {
  AccessRingProducer producer;
  Device device(producer);
  for (uint64_t i = 0; i < 1000; ++i) producer.write(0, 7, 1, i);
  producer.read(0, 0, 1);  // a read completes only after every earlier write
  ASSERT_EQ(device.writes.size(), 1000u);
  for (uint64_t i = 0; i < 1000; ++i) EXPECT_EQ(device.writes[i], i);
}

TEST(AccessRing, AFullRingMakesTheProducerWaitNotOverwrite) {
  AccessRingProducer producer;
  Device device(producer);
  device.paused = true;
  std::thread writer([&] {
    for (uint64_t i = 0; i < kRingSlots * 3; ++i) producer.write(0, 1, 1, i);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  device.paused = false;
  writer.join();
  producer.read(0, 0, 1);
  ASSERT_EQ(device.writes.size(), kRingSlots * 3);
  for (uint64_t i = 0; i < device.writes.size(); ++i) EXPECT_EQ(device.writes[i], i);
}

TEST(AccessRing, ConcurrentVcpusEachGetTheirOwnAnswers) {
  AccessRingProducer producer;
  Device device(producer);
  std::atomic<int> wrong{0};
  std::vector<std::thread> vcpus;
  for (int t = 0; t < 4; ++t)
    vcpus.emplace_back([&, t] {
      for (uint64_t i = 0; i < 500; ++i) {
        uint64_t off = t * 1000 + i;
        if (producer.read(0, off, 4) != off * 3) ++wrong;
      }
    });
  for (auto& v : vcpus) v.join();
  EXPECT_EQ(wrong, 0);
}

TEST(AccessRing, AStringReadIsOneAccessForEveryItem) {
  AccessRingProducer producer;
  Device device(producer);
  std::vector<uint8_t> items(512);
  producer.read_string(0, 10, 2, 256, items.data());  // rep insw of one ATA sector
  EXPECT_EQ(device.accesses, 1);
  for (size_t i = 0; i < items.size(); ++i) ASSERT_EQ(items[i], static_cast<uint8_t>(30 + i / 2)) << i;
}

TEST(AccessRing, StringWritesArePostedAndNeverOverwriteOneTheDeviceHasNotRead) {
  AccessRingProducer producer;
  Device device(producer);
  device.paused = true;
  std::thread writer([&] {
    for (uint8_t round = 0; round < 4; ++round) {
      std::vector<uint8_t> items(kBulkBytes, round);
      producer.write_string(0, 0, 4, kBulkBytes / 4, items.data());
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  device.paused = false;
  writer.join();
  producer.read(0, 0, 1);
  ASSERT_EQ(device.string_writes.size(), 4u);
  for (uint8_t round = 0; round < 4; ++round)
    EXPECT_EQ(device.string_writes[round], std::vector<uint8_t>(kBulkBytes, round)) << "round " << int{round};
}

TEST(AccessRing, AStringLongerThanTheBulkBufferIsRefused) {
  AccessRingProducer producer;
  std::vector<uint8_t> items(2 * kBulkBytes);
  EXPECT_THROW(producer.read_string(0, 0, 2, kBulkBytes, items.data()), std::invalid_argument);
}

TEST(AccessRing, HungUpDeviceIsReportedLost) {
  AccessRingProducer producer;
  int pair[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
  UniqueFd ours(pair[0]);
  producer.set_peer_socket(ours.get());
  ::close(pair[1]);  // the device process is gone; nobody drains the ring
  EXPECT_THROW(producer.read(0, 0, 1), DeviceLost);
}

TEST(AccessRing, CorruptedTailIsReportedLost) {
  AccessRingProducer producer;
  Mapping shared = Mapping::map(producer.memfd(), ring_bytes(), PROT_READ | PROT_WRITE);
  auto* ring = reinterpret_cast<RingLayout*>(shared.data());
  ring->tail.store(12345);  // a hostile device scribbles on the shared page
  EXPECT_THROW(producer.write(0, 0, 1, 0), DeviceLost);
}

TEST(AccessRing, ConsumerRejectsAnUnsealedOrSmallRing) {
  UniqueFd memfd(::memfd_create("fake", MFD_CLOEXEC));
  ASSERT_EQ(::ftruncate(memfd.get(), static_cast<off_t>(ring_bytes())), 0);
  UniqueFd a(::dup(memfd.get())), b(::dup(memfd.get()));
  EXPECT_THROW(AccessRingConsumer(std::move(memfd), std::move(a), std::move(b)), std::exception)
      << "an unsealed ring could be shrunk under the other side";
}

// Crash recovery: a device process that resumes a committed state starts serving the ring
// where that state says, neither before (accesses applied twice) nor after (accesses lost).
TEST(AccessRing, AResumedConsumerStartsWhereTheCommittedStateSays) {
  AccessRingProducer producer;
  for (uint64_t i = 0; i < 10; ++i) producer.write(0, 0, 1, i);  // posted: queued for the dead device
  AccessRingConsumer resumed(dup_fd(producer.memfd()), dup_fd(producer.kick_fd()), dup_fd(producer.notify_fd()), 6);
  std::vector<uint64_t> seen;
  resumed.drain([&](const AccessSlot& s, std::span<uint8_t>) -> uint64_t {
    seen.push_back(s.data);
    return 0;
  });
  EXPECT_EQ(seen, (std::vector<uint64_t>{6, 7, 8, 9}));
}

TEST(AccessRing, AResumePointTheRingNeverReachedIsRefused) {
  AccessRingProducer producer;
  for (uint64_t i = 0; i < 3; ++i) producer.write(0, 0, 1, i);
  EXPECT_THROW(AccessRingConsumer(dup_fd(producer.memfd()), dup_fd(producer.kick_fd()), dup_fd(producer.notify_fd()), 100),
               InputError);
}

struct SocketPair {
  SocketPair() {
    int pair[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
    core.reset(pair[0]);
    device.reset(pair[1]);
  }
  UniqueFd core, device;
};

// A restartable device's hang-up is its process dying: the vCPU's read waits for the next
// process, which answers it.
TEST(AccessRing, AReadWaitsForTheNextProcessOfARestartableDevice) {
  AccessRingProducer producer;
  producer.set_restartable(true);
  SocketPair first;
  producer.set_peer_socket(first.core.get());
  first.device.reset();  // the process died
  std::atomic<uint64_t> answer{0};
  std::thread vcpu([&] { answer = producer.read(0, 5, 1); });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(answer, 0u) << "answered with no device";
  SocketPair second;
  Device device(producer);
  producer.set_peer_socket(second.core.get());
  vcpu.join();
  EXPECT_EQ(answer, 15u);
}

TEST(AccessRing, AbandoningADeviceThatIsDownEndsTheWaitAndLaterAccesses) {
  AccessRingProducer producer;
  producer.set_restartable(true);
  SocketPair first;
  producer.set_peer_socket(first.core.get());
  first.device.reset();
  std::atomic<bool> lost{false};
  std::thread vcpu([&] {
    try {
      producer.read(0, 5, 1);
    } catch (const DeviceLost&) {
      lost = true;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  producer.abandon("the device failed");
  vcpu.join();
  EXPECT_TRUE(lost);
  EXPECT_TRUE(producer.abandoned());
  EXPECT_THROW(producer.write(0, 0, 1, 1), DeviceLost);
}

}  // namespace
}  // namespace bulkhead::legacy
