#include "vmm-core/bus.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace bulkhead::core {
namespace {

struct Recorder : BusDevice {
  uint64_t last_offset = ~0ull;
  size_t last_size = 0;
  uint64_t value = 0;
  void read(uint64_t offset, std::span<uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
    store_le(data, value);
  }
  void write(uint64_t offset, std::span<const uint8_t> data) override {
    last_offset = offset;
    last_size = data.size();
    value = load_le(data);
  }
};

TEST(Bus, DispatchesWithOffsetIntoTheWindow) {
  Bus bus("test");
  auto dev = std::make_shared<Recorder>();
  bus.add(0x3f8, 8, dev, "uart");
  uint8_t data[2] = {0x34, 0x12};
  EXPECT_TRUE(bus.write(0x3fa, data));
  EXPECT_EQ(dev->last_offset, 2u);
  EXPECT_EQ(dev->value, 0x1234u);
  uint8_t out[2];
  EXPECT_TRUE(bus.read(0x3fe, out));
  EXPECT_EQ(dev->last_offset, 6u);
  EXPECT_EQ(out[0], 0x34);
}

TEST(Bus, UnclaimedReadsSeeAllOnes) {
  Bus bus("test");
  bus.add(0x10, 4, std::make_shared<Recorder>(), "a");
  uint8_t out[4] = {};
  EXPECT_FALSE(bus.read(0x20, out));
  EXPECT_EQ(out[0], 0xff);
  EXPECT_EQ(out[3], 0xff);
  EXPECT_FALSE(bus.read(0x0f, out)) << "an access straddling a window's start belongs to nobody";
  EXPECT_FALSE(bus.read(0x12, out)) << "nor one running past its end";
}

TEST(Bus, RejectsOverlappingWindows) {
  Bus bus("test");
  bus.add(0x100, 0x10, std::make_shared<Recorder>(), "a");
  EXPECT_THROW(bus.add(0x10f, 1, std::make_shared<Recorder>(), "b"), InputError);
  EXPECT_THROW(bus.add(0xf0, 0x20, std::make_shared<Recorder>(), "c"), InputError);
  EXPECT_THROW(bus.add(0x200, 0, std::make_shared<Recorder>(), "empty"), InputError);
  EXPECT_NO_THROW(bus.add(0x110, 1, std::make_shared<Recorder>(), "adjacent"));
}

TEST(Bus, FindsTheRightWindowAmongMany) {
  Bus bus("test");
  std::vector<std::shared_ptr<Recorder>> devs;
  for (uint64_t base : {0x500, 0x100, 0x300}) {
    devs.push_back(std::make_shared<Recorder>());
    devs.back()->value = base;
    bus.add(base, 0x10, devs.back(), "d");
  }
  for (uint64_t base : {0x100, 0x300, 0x500}) {
    uint8_t out[2];
    ASSERT_TRUE(bus.read(base + 4, out));
    EXPECT_EQ(load_le(out), base);
  }
}

}  // namespace
}  // namespace bulkhead::core
