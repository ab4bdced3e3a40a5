// The SCSI disk emulation command by command: data, sense and the edge cases of SBC/SPC.
// Runs on a memory-backed image (inline I/O) and on a disk-backed one (io_uring).
#include "device-procs/virtio-scsi/scsi_disk.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>

namespace bulkhead::device {
namespace {

using scsi::Result;
using vhost_user::GuestBuffers;
using vhost_user::HostRange;

constexpr uint64_t kImageBytes = 8 << 20;  // 16384 blocks

class ScsiDiskTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      image_.reset(::memfd_create("image", MFD_CLOEXEC));
    } else {
      char path[] = "/var/tmp/bulkhead-scsi-XXXXXX";  // a disk-backed file system, not tmpfs
      image_.reset(::mkstemp(path));
      ::unlink(path);
    }
    ASSERT_TRUE(image_.valid());
    ASSERT_EQ(::ftruncate(image_.get(), kImageBytes), 0);
    make_disk(false);
  }
  void make_disk(bool read_only) {
    disk_.reset();
    backend_.reset();
    backend_ = std::make_unique<BlockBackend>(UniqueFd(::dup(image_.get())), kImageBytes);
    disk_ = std::make_unique<ScsiDisk>(*backend_, ScsiDisk::Options{read_only, "SERIAL42"});
  }
  // Runs a command to completion with `out` as data-out and a data-in buffer of `in_size`.
  Result run(std::vector<uint8_t> cdb, std::vector<uint8_t> out = {}, size_t in_size = 0) {
    out_ = std::move(out);
    in_.assign(in_size, 0xcc);
    GuestBuffers data_out(std::vector<HostRange>{{out_.data(), out_.size()}});
    GuestBuffers data_in(std::vector<HostRange>{{in_.data(), in_.size()}});
    std::optional<Result> result;
    disk_->execute(cdb, data_out, data_in, [&](const Result& r) { result = r; });
    backend_->submit();
    backend_->wait_all();
    EXPECT_TRUE(result.has_value()) << "command never completed";
    return result.value_or(Result{});
  }
  static void expect_sense(const Result& r, scsi::Sense s) {
    EXPECT_EQ(r.status, scsi::kStatusCheckCondition);
    EXPECT_EQ(r.sense.key, s.key);
    EXPECT_EQ(r.sense.asc, s.asc);
    EXPECT_EQ(r.sense.ascq, s.ascq);
  }
  static std::vector<uint8_t> rw10(uint8_t op, uint32_t lba, uint16_t blocks, uint8_t flags = 0) {
    return {op, flags, uint8_t(lba >> 24), uint8_t(lba >> 16), uint8_t(lba >> 8), uint8_t(lba), 0, uint8_t(blocks >> 8),
            uint8_t(blocks), 0};
  }
  static std::vector<uint8_t> rw16(uint8_t op, uint64_t lba, uint32_t blocks) {
    std::vector<uint8_t> c(16, 0);
    c[0] = op;
    for (int i = 0; i < 8; ++i) c[2 + i] = uint8_t(lba >> (56 - 8 * i));
    for (int i = 0; i < 4; ++i) c[10 + i] = uint8_t(blocks >> (24 - 8 * i));
    return c;
  }
  std::vector<uint8_t> out_, in_;
  UniqueFd image_;
  std::unique_ptr<BlockBackend> backend_;
  std::unique_ptr<ScsiDisk> disk_;
};

TEST_P(ScsiDiskTest, StandardInquiry) {
  Result r = run({0x12, 0, 0, 0, 96, 0}, {}, 96);
  EXPECT_EQ(r.status, scsi::kStatusGood);
  EXPECT_EQ(r.data_in, 36u);
  EXPECT_EQ(in_[0], 0x00);  // direct-access device
  EXPECT_EQ(in_[2], 0x05) << "SPC-3";
  EXPECT_EQ(in_[4], 31);
  EXPECT_EQ(std::string(in_.begin() + 8, in_.begin() + 16), "BULKHEAD");
}

TEST_P(ScsiDiskTest, InquiryHonoursTheAllocationLength) {
  Result r = run({0x12, 0, 0, 0, 5, 0}, {}, 96);
  EXPECT_EQ(r.data_in, 5u);
  EXPECT_EQ(in_[5], 0xcc) << "nothing beyond the allocation length";
}

TEST_P(ScsiDiskTest, VpdPages) {
  run({0x12, 1, 0x00, 0, 64, 0}, {}, 64);
  std::vector<uint8_t> pages(in_.begin() + 4, in_.begin() + 4 + in_[3]);
  EXPECT_EQ(pages, (std::vector<uint8_t>{0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}));
  run({0x12, 1, 0x80, 0, 64, 0}, {}, 64);
  EXPECT_EQ(std::string(in_.begin() + 4, in_.begin() + 4 + in_[3]), "SERIAL42");
  run({0x12, 1, 0x83, 0, 64, 0}, {}, 64);
  EXPECT_EQ(in_[4], 0x02) << "ASCII code set";
  EXPECT_EQ(in_[5], 0x01) << "T10 vendor ID designator for the logical unit";
  run({0x12, 1, 0xb0, 0, 64, 0}, {}, 64);
  EXPECT_EQ(in_[3], 0x3c) << "Linux parses unmap limits only from a 64-byte page";
  EXPECT_EQ(in_[20], 0xff) << "maximum unmap LBA count";
  run({0x12, 1, 0xb1, 0, 64, 0}, {}, 64);
  EXPECT_EQ(in_[5], 1) << "non-rotating";
  run({0x12, 1, 0xb2, 0, 64, 0}, {}, 64);
  EXPECT_EQ(in_[5] & 0xc4, 0xc4) << "LBPU, LBPWS and LBPRZ";
}

TEST_P(ScsiDiskTest, InquiryFieldErrors) {
  expect_sense(run({0x12, 2, 0, 0, 36, 0}, {}, 36), scsi::sense::kInvalidFieldInCdb);     // CMDDT
  expect_sense(run({0x12, 0, 0x80, 0, 36, 0}, {}, 36), scsi::sense::kInvalidFieldInCdb);  // page without EVPD
  expect_sense(run({0x12, 1, 0x42, 0, 36, 0}, {}, 36), scsi::sense::kInvalidFieldInCdb);  // unknown page
}

TEST_P(ScsiDiskTest, ReadCapacity) {
  run({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, {}, 8);
  EXPECT_EQ((in_[2] << 8) | in_[3], 16383);  // last LBA
  EXPECT_EQ((in_[6] << 8) | in_[7], 512);
  std::vector<uint8_t> rc16(16, 0);
  rc16[0] = 0x9e;
  rc16[1] = 0x10;
  rc16[13] = 32;
  Result r = run(rc16, {}, 32);
  EXPECT_EQ(r.data_in, 32u);
  EXPECT_EQ((in_[6] << 8) | in_[7], 16383);
  EXPECT_EQ(in_[14] & 0xc0, 0xc0) << "LBPME and LBPRZ";
}

TEST_P(ScsiDiskTest, WriteThenReadBackWithEveryCdbSize) {
  std::vector<uint8_t> data(1024);
  for (size_t i = 0; i < data.size(); ++i) data[i] = uint8_t(i * 3);
  EXPECT_EQ(run(rw10(0x2a, 100, 2), data).status, scsi::kStatusGood);
  Result r = run(rw16(0x88, 100, 2), {}, 1024);
  EXPECT_EQ(r.data_in, 1024u);
  EXPECT_EQ(in_, data);
  EXPECT_EQ(run(rw16(0x8a, 16382, 2), data).status, scsi::kStatusGood) << "the last two blocks";
  run({0x08, 0x00, 0x3f, 0xfe, 2, 0}, {}, 1024);  // READ(6) at 16382
  EXPECT_EQ(in_, data);
}

TEST_P(ScsiDiskTest, FuaWriteCompletesGood) {
  std::vector<uint8_t> block(512, 7);
  EXPECT_EQ(run(rw10(0x2a, 5, 1, 0x08), block).status, scsi::kStatusGood);
}

TEST_P(ScsiDiskTest, OutOfRangeAndOverflowingLbas) {
  expect_sense(run(rw10(0x28, 16384, 1), {}, 512), scsi::sense::kLbaOutOfRange);
  expect_sense(run(rw10(0x28, 16383, 2), {}, 1024), scsi::sense::kLbaOutOfRange);
  expect_sense(run(rw16(0x88, ~0ull, 2), {}, 1024), scsi::sense::kLbaOutOfRange);  // lba + count wraps
  EXPECT_EQ(run(rw10(0x28, 16384, 0), {}, 0).status, scsi::kStatusGood) << "zero blocks at the end is fine";
}

TEST_P(ScsiDiskTest, ProtectionInformationIsRefused) {
  expect_sense(run(rw10(0x28, 0, 1, 0x20), {}, 512), scsi::sense::kInvalidFieldInCdb);
}

TEST_P(ScsiDiskTest, BuffersSmallerThanTheTransferAreAnOverrun) {
  EXPECT_TRUE(run(rw10(0x28, 0, 2), {}, 512).overrun);
  EXPECT_TRUE(run(rw10(0x2a, 0, 2), std::vector<uint8_t>(512)).overrun);
}

TEST_P(ScsiDiskTest, ReadOnlyDiskRefusesWritesAndSaysSo) {
  make_disk(true);
  expect_sense(run(rw10(0x2a, 0, 1), std::vector<uint8_t>(512)), scsi::sense::kWriteProtected);
  run({0x1a, 0, 0x3f, 0, 64, 0}, {}, 64);
  EXPECT_EQ(in_[2] & 0x80, 0x80);  // WP in the mode parameter header
  std::vector<uint8_t> rc16(16, 0);
  rc16[0] = 0x9e;
  rc16[1] = 0x10;
  rc16[13] = 32;
  run(rc16, {}, 32);
  EXPECT_EQ(in_[14] & 0x80, 0) << "no thin provisioning on a read-only disk";
}

TEST_P(ScsiDiskTest, ModeSenseCachingPage) {
  Result r = run({0x1a, 0x08, 0x08, 0, 255, 0}, {}, 255);  // DBD, caching page
  ASSERT_EQ(r.status, scsi::kStatusGood);
  EXPECT_EQ(in_[3], 0) << "no block descriptor with DBD";
  EXPECT_EQ(in_[4], 0x08);
  EXPECT_EQ(in_[6] & 0x04, 0x04) << "WCE: the host caches writes until a flush";
  EXPECT_EQ(in_[2] & 0x10, 0x10) << "DPOFUA";
  r = run({0x5a, 0, 0x3f, 0, 0, 0, 0, 0, 255, 0}, {}, 255);  // MODE SENSE(10), all pages
  EXPECT_EQ(in_[7], 8) << "one short block descriptor";
  EXPECT_EQ(r.data_in, ((in_[0] << 8) | in_[1]) + 2u);
}

TEST_P(ScsiDiskTest, ModeSenseErrors) {
  expect_sense(run({0x1a, 0, 0xc8, 0, 255, 0}, {}, 255), scsi::sense::kSavingParametersNotSupported);
  expect_sense(run({0x1a, 0, 0x19, 0, 255, 0}, {}, 255), scsi::sense::kInvalidFieldInCdb);
}

TEST_P(ScsiDiskTest, UnmapDeallocatesToZeros) {
  std::vector<uint8_t> data(4096, 0xab);
  run(rw10(0x2a, 64, 8), data);
  std::vector<uint8_t> list = {0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64, 0, 0, 0, 8, 0, 0, 0, 0};
  EXPECT_EQ(run({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, list).status, scsi::kStatusGood);
  run(rw10(0x28, 64, 8), {}, 4096);
  EXPECT_EQ(in_, std::vector<uint8_t>(4096, 0));
}

TEST_P(ScsiDiskTest, UnmapParameterListErrors) {
  expect_sense(run({0x42, 0, 0, 0, 0, 0, 0, 0, 6, 0}, std::vector<uint8_t>(6)), scsi::sense::kParameterListLengthError);
  std::vector<uint8_t> odd = {0, 22, 0, 15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  expect_sense(run({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, odd), scsi::sense::kParameterListLengthError);
  std::vector<uint8_t> beyond = {0, 22, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x40, 0, 0, 0, 0, 1, 0, 0, 0, 0};
  expect_sense(run({0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0}, beyond), scsi::sense::kLbaOutOfRange);
  expect_sense(run({0x42, 1, 0, 0, 0, 0, 0, 0, 24, 0}, beyond), scsi::sense::kInvalidFieldInCdb);  // ANCHOR
}

TEST_P(ScsiDiskTest, WriteSameReplicatesOrDeallocates) {
  std::vector<uint8_t> block(512);
  for (int i = 0; i < 512; ++i) block[i] = uint8_t(i);
  std::vector<uint8_t> ws16(16, 0);
  ws16[0] = 0x93;
  ws16[9] = 10;   // LBA 10
  ws16[13] = 3;   // 3 blocks
  EXPECT_EQ(run(ws16, block).status, scsi::kStatusGood);
  run(rw10(0x28, 10, 3), {}, 1536);
  for (int b = 0; b < 3; ++b) EXPECT_TRUE(std::equal(block.begin(), block.end(), in_.begin() + 512 * b)) << b;
  ws16[1] = 0x08 | 0x01;  // UNMAP, NDOB: zeros without a data-out buffer
  EXPECT_EQ(run(ws16).status, scsi::kStatusGood);
  run(rw10(0x28, 10, 3), {}, 1536);
  EXPECT_EQ(in_, std::vector<uint8_t>(1536, 0));
  ws16[1] = 0;
  ws16[13] = 0;
  expect_sense(run(ws16, block), scsi::sense::kInvalidFieldInCdb);  // zero blocks
  ws16[13] = 1;
  ws16[1] = 0x10;
  expect_sense(run(ws16, block), scsi::sense::kInvalidFieldInCdb);  // ANCHOR
}

// More blocks than one writev may carry (IOV_MAX iovecs of one block each): the pattern must
// still land on every block.
TEST_P(ScsiDiskTest, WriteSameOfAPatternOverManyThousandBlocks) {
  std::vector<uint8_t> block(512);
  for (int i = 0; i < 512; ++i) block[i] = uint8_t(i * 7 + 1);
  constexpr uint32_t kBlocks = 5000;
  std::vector<uint8_t> ws16(16, 0);
  ws16[0] = 0x93;
  ws16[9] = 100;  // LBA 100
  ws16[12] = kBlocks >> 8;
  ws16[13] = kBlocks & 0xff;
  ASSERT_EQ(run(ws16, block).status, scsi::kStatusGood);
  for (uint32_t at = 0; at < kBlocks; at += 1000) {
    run(rw10(0x28, 100 + at, 1000), {}, 1000 * 512);
    for (int b = 0; b < 1000; ++b)
      ASSERT_TRUE(std::equal(block.begin(), block.end(), in_.begin() + 512 * b)) << "block " << 100 + at + b;
  }
  run(rw10(0x28, 100 + kBlocks, 1), {}, 512);
  EXPECT_EQ(in_, std::vector<uint8_t>(512, 0)) << "nothing past the range";
}

TEST_P(ScsiDiskTest, SynchronizeCacheAndRequestSense) {
  EXPECT_EQ(run({0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0}).status, scsi::kStatusGood);
  Result r = run({0x03, 0, 0, 0, 18, 0}, {}, 18);
  EXPECT_EQ(r.data_in, 18u);
  EXPECT_EQ(in_[0], 0x70);
  EXPECT_EQ(in_[2], 0) << "NO SENSE";
}

TEST_P(ScsiDiskTest, UnknownAndTruncatedCommands) {
  expect_sense(run({0xc7, 0, 0, 0, 0, 0}), scsi::sense::kInvalidOpcode);
  expect_sense(run({0x28, 0, 0}), scsi::sense::kInvalidOpcode);  // a CDB shorter than its group
  expect_sense(run({0xa3, 0x0c, 1, 0x12, 0, 0, 0, 0, 2, 0, 0, 0}), scsi::sense::kInvalidOpcode);  // REPORT SUPPORTED OPERATION CODES: Linux then stops asking
  expect_sense(run(std::vector<uint8_t>{}), scsi::sense::kInvalidOpcode);
}

TEST_P(ScsiDiskTest, ResetEstablishesOneUnitAttention) {
  disk_->reset_occurred();
  EXPECT_EQ(run({0x12, 0, 0, 0, 36, 0}, {}, 36).status, scsi::kStatusGood) << "INQUIRY is not held up";
  expect_sense(run({0x00, 0, 0, 0, 0, 0}), scsi::sense::kResetOccurred);
  EXPECT_EQ(run({0x00, 0, 0, 0, 0, 0}).status, scsi::kStatusGood) << "reported once";
  disk_->reset_occurred();
  run({0x03, 0, 0, 0, 18, 0}, {}, 18);
  EXPECT_EQ(in_[2], 0x06) << "REQUEST SENSE returns and clears it";
  EXPECT_EQ(run({0x00, 0, 0, 0, 0, 0}).status, scsi::kStatusGood);
}

INSTANTIATE_TEST_SUITE_P(Images, ScsiDiskTest, ::testing::Values(true, false),
                         [](const auto& info) { return info.param ? "MemoryBacked" : "DiskBacked"; });

TEST(BlockBackend, FlushWaitsForEarlierWrites) {
  char path[] = "/var/tmp/bulkhead-flush-XXXXXX";
  UniqueFd fd(::mkstemp(path));
  ::unlink(path);
  ASSERT_EQ(::ftruncate(fd.get(), 1 << 20), 0);
  BlockBackend backend(std::move(fd), 1 << 20);
  ASSERT_FALSE(backend.memory_backed());
  constexpr int kFlush = -1;
  std::vector<int> order;  // write indices as they complete, then kFlush
  std::vector<uint8_t> data(64 * 1024, 1);
  for (int i = 0; i < 8; ++i)
    backend.write(i * data.size(), {{data.data(), data.size()}}, false, [&, i](int64_t r) {
      EXPECT_EQ(r, static_cast<int64_t>(data.size()));
      order.push_back(i);
    });
  backend.flush([&](int64_t r) {
    EXPECT_EQ(r, 0);
    order.push_back(kFlush);
  });
  backend.submit();
  backend.wait_all();
  ASSERT_EQ(order.size(), 9u);
  EXPECT_EQ(order.back(), kFlush);  // a flush never completes ahead of the writes it covers
}

}  // namespace
}  // namespace bulkhead::device
