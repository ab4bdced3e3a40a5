// The serial device process's model behind its register window: bounds, output to the
// backend stream, input into the FIFO.
#include "device-procs/serial/serial_device.h"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace bulkhead::device {
namespace {

struct Pipes {
  Pipes() {
    int in[2], out[2];
    EXPECT_EQ(::pipe2(in, O_CLOEXEC | O_NONBLOCK), 0);
    EXPECT_EQ(::pipe2(out, O_CLOEXEC | O_NONBLOCK), 0);
    host_writes.reset(in[1]);
    device_input.reset(in[0]);
    device_output.reset(out[1]);
    host_reads.reset(out[0]);
  }
  UniqueFd host_writes, device_input, device_output, host_reads;
};

TEST(SerialDevice, DescribesOneWindowOfEightRegistersAndOneLine) {
  EventLoop loop;
  SerialDevice dev(loop, {});
  auto info = dev.info();
  EXPECT_STREQ(info.kind, "serial");
  EXPECT_EQ(info.num_regions, 1u);
  EXPECT_EQ(info.region_size[0], 8u);
  EXPECT_EQ(info.num_irqs, 1u);
  EXPECT_EQ(info.flags & legacy::kDeviceNeedsGuestMemory, 0u) << "a UART needs no guest memory";
}

TEST(SerialDevice, GarbageOffsetsSizesAndRegionsReadAllOnesAndWriteNothing) {
  EventLoop loop;
  SerialDevice dev(loop, {});
  dev.write(0, 7, 1, 0x5a);
  EXPECT_EQ(dev.read(0, 8, 1), ~0ull);
  EXPECT_EQ(dev.read(0, ~0ull, 1), ~0ull);
  EXPECT_EQ(dev.read(0, 7, 2), ~0ull);
  EXPECT_EQ(dev.read(3, 7, 1), ~0ull);
  dev.write(0, 1000, 1, 0);
  dev.write(0, 7, 4, 0);
  dev.write(1, 7, 1, 0);
  EXPECT_EQ(dev.read(0, 7, 1), 0x5au) << "only the valid write reached the scratch register";
}

TEST(SerialDevice, TransmitsToItsOutputStreamAfterABatch) {
  Pipes p;
  EventLoop loop;
  SerialDevice dev(loop, {{}, std::move(p.device_output), {}, false});
  dev.begin_serving();  // as the server does once the core set it up
  for (char c : std::string("ok\n")) dev.write(0, 0, 1, static_cast<uint8_t>(c));
  dev.after_accesses();
  for (int i = 0; i < 10; ++i) loop.run_once(10);  // EPOLLOUT, then the write
  char buffer[8] = {};
  EXPECT_EQ(::read(p.host_reads.get(), buffer, sizeof buffer), 3);
  EXPECT_STREQ(buffer, "ok\n");
}

TEST(SerialDevice, ReceivesFromItsInputStreamIntoTheFifo) {
  Pipes p;
  EventLoop loop;
  SerialDevice dev(loop, {std::move(p.device_input), {}, {}, false});
  dev.begin_serving();  // as the server does once the core set it up
  dev.write(0, 2, 1, 0x01);  // FIFO on
  ASSERT_EQ(::write(p.host_writes.get(), "xyz", 3), 3);
  for (int i = 0; i < 5; ++i) loop.run_once(10);
  std::string got;
  while (dev.read(0, 5, 1) & 0x01) got += static_cast<char>(dev.read(0, 0, 1));
  EXPECT_EQ(got, "xyz");
}

TEST(SerialDevice, InputEndingDoesNotSilenceOutput) {
  Pipes p;
  EventLoop loop;
  SerialDevice dev(loop, {std::move(p.device_input), std::move(p.device_output), {}, false});
  dev.begin_serving();  // as the server does once the core set it up
  p.host_writes.reset();  // stdin at EOF
  for (int i = 0; i < 5; ++i) loop.run_once(10);
  dev.write(0, 0, 1, 'z');
  dev.after_accesses();
  for (int i = 0; i < 5; ++i) loop.run_once(10);
  char c = 0;
  EXPECT_EQ(::read(p.host_reads.get(), &c, 1), 1);
  EXPECT_EQ(c, 'z');
}

}  // namespace
}  // namespace bulkhead::device
