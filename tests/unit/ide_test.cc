// The IDE controller's parts on their own: the CD-ROM's command set, the PRD table walk, and
// one channel's ATA protocols on a memory-file image (I/O completes inline there), driven
// through its registers as ata_piix drives them.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"
#include "device-procs/ide/ata.h"
#include "device-procs/ide/cdrom.h"
#include "device-procs/ide/ide_channel.h"
#include "device-procs/ide/prd.h"

namespace bulkhead::device {
namespace {

using Cdb = std::array<uint8_t, Cdrom::kPacketSize>;

TEST(Cdrom, ReadsAreCheckedAgainstTheMedium) {
  Cdrom cd(100 * Cdrom::kBlockSize);
  Cdrom::Reply r = cd.execute(Cdb{0x28, 0, 0, 0, 0, 90, 0, 0, 10});
  EXPECT_EQ(r.kind, Cdrom::Reply::Kind::kRead);
  EXPECT_EQ(r.lba, 90u);
  EXPECT_EQ(r.blocks, 10u);
  // CVE-2020-29443: one block past the end, and an LBA near 2^32.
  EXPECT_EQ(cd.execute(Cdb{0x28, 0, 0, 0, 0, 91, 0, 0, 10}).kind, Cdrom::Reply::Kind::kCheck);
  EXPECT_EQ(cd.sense().asc, 0x21);
  EXPECT_EQ(cd.execute(Cdb{0xa8, 0, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1}).kind, Cdrom::Reply::Kind::kCheck);
  Cdrom::Reply sense = cd.execute(Cdb{0x03, 0, 0, 0, 18});
  ASSERT_EQ(sense.data.size(), 18u);
  EXPECT_EQ(sense.data[2], 0x05);
  EXPECT_EQ(sense.data[12], 0x21);
}

TEST(Cdrom, MediaChangeIsReportedOnceAndALockedTrayStaysShut) {
  Cdrom cd(100 * Cdrom::kBlockSize);
  EXPECT_EQ(cd.execute(Cdb{0x1e, 0, 0, 0, 1}).kind, Cdrom::Reply::Kind::kData);  // prevent removal
  EXPECT_FALSE(cd.eject());
  EXPECT_EQ(cd.execute(Cdb{0x1b, 0, 0, 0, 0x02}).kind, Cdrom::Reply::Kind::kCheck);  // eject refused
  EXPECT_EQ(cd.sense().asc, 0x53);
  cd.execute(Cdb{0x1e, 0, 0, 0, 0});
  EXPECT_TRUE(cd.eject());
  EXPECT_EQ(cd.execute(Cdb{0x00}).kind, Cdrom::Reply::Kind::kCheck);  // unit attention first
  EXPECT_EQ(cd.sense().key, 0x06);
  EXPECT_EQ(cd.execute(Cdb{0x00}).kind, Cdrom::Reply::Kind::kCheck);  // then: no medium
  EXPECT_EQ(cd.sense().asc, 0x3a);
  cd.insert(5000000ull * Cdrom::kBlockSize);  // a DVD's worth
  Cdrom::Reply events = cd.execute(Cdb{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8});
  ASSERT_EQ(events.data.size(), 8u);
  EXPECT_EQ(events.data[4], 2) << "new media";
  EXPECT_EQ(cd.execute(Cdb{0x4a, 1, 0, 0, 0x10, 0, 0, 0, 8}).data[4], 0) << "reported once";
  Cdrom::Reply config = cd.execute(Cdb{0x46, 0, 0, 0, 0, 0, 0, 0, 64});
  ASSERT_GE(config.data.size(), 8u);
  EXPECT_EQ(config.data[7], 0x10) << "current profile: DVD-ROM";
}

TEST(Cdrom, TheTocDescribesOneDataTrackInLbaAndMsf) {
  Cdrom cd(1000 * Cdrom::kBlockSize);
  Cdrom::Reply lba = cd.execute(Cdb{0x43, 0, 0, 0, 0, 0, 0, 0, 100});
  ASSERT_EQ(lba.data.size(), 20u);
  EXPECT_EQ(lba.data[5], 0x14);  // a data track
  EXPECT_EQ(lba.data[14], 0xaa);  // the lead-out ...
  EXPECT_EQ(lba.data[18] << 8 | lba.data[19], 1000);  // ... after the last block
  Cdrom::Reply msf = cd.execute(Cdb{0x43, 0x02, 0, 0, 0, 0, 0, 0, 100});
  EXPECT_EQ(msf.data[10], 2) << "track 1 starts 2 seconds in";
  EXPECT_EQ(cd.execute(Cdb{0x43, 0, 0, 0, 0, 0, 5, 0, 100}).kind, Cdrom::Reply::Kind::kCheck);  // no track 5
}

TEST(PrdTable, ZeroMeans64KiBAndATableWithoutEndIsCut) {
  auto entries = [](uint32_t count_field, bool last) {
    return [=](uint64_t, void* out, size_t n) {
      uint32_t entry[2] = {0x1000, count_field | (last ? 0x80000000u : 0)};
      std::memcpy(out, entry, std::min(n, sizeof entry));
      return true;
    };
  };
  PrdTable t = walk_prd_table(0x100, 65536, entries(0, true));
  EXPECT_EQ(t.status, PrdTable::Status::kOk);
  ASSERT_EQ(t.regions.size(), 1u);
  EXPECT_EQ(t.regions[0].bytes, 65536u);
  // CVE-2014-9718: 2-byte entries that never end the table, for a large transfer.
  t = walk_prd_table(0x100, 1ull << 30, entries(2, false));
  EXPECT_EQ(t.status, PrdTable::Status::kShort);
  EXPECT_EQ(t.regions.size(), kMaxPrdEntries);
  t = walk_prd_table(0x100, 512, entries(4096, true));
  EXPECT_TRUE(t.longer);
  t = walk_prd_table(0x100, 512, [](uint64_t, void*, size_t) { return false; });
  EXPECT_EQ(t.status, PrdTable::Status::kUnreadable);
}

// One channel with a 1 MiB disk as master and, optionally, a CD-ROM as slave.
class IdeChannelTest : public ::testing::Test {
 protected:
  static constexpr uint64_t kDiskBytes = 1 << 20;
  void make(bool with_cdrom, bool read_only = false) { channel_ = another_channel(with_cdrom, read_only); }
  // A channel on the same images: what a restarted device process builds.
  std::unique_ptr<IdeChannel> another_channel(bool with_cdrom, bool read_only = false) {
    if (!image_) image_ = memory_file(kDiskBytes);
    std::array<IdeDrive, 2> drives;
    drives[0].kind = IdeDrive::Kind::kDisk;
    drives[0].backend = std::make_unique<BlockBackend>(UniqueFd(::dup(image_.get())), kDiskBytes, 8);
    drives[0].read_only = read_only;
    drives[0].disk = {kDiskBytes / 512, "SERIAL0", "BULKHEAD HARDDISK", {}, 0, true, {}};
    if (with_cdrom) {
      drives[1].kind = IdeDrive::Kind::kCdrom;
      drives[1].backend = std::make_unique<BlockBackend>(memory_file(64 * 2048), 64 * 2048, 8);
      drives[1].cdrom = std::make_unique<Cdrom>(64 * 2048);
      drives[1].read_only = true;
    }
    return std::make_unique<IdeChannel>(std::move(drives), dma_, counters_);
  }
  static UniqueFd memory_file(uint64_t bytes) {
    UniqueFd fd(::memfd_create("image", MFD_CLOEXEC));
    EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(bytes)), 0);
    return fd;
  }
  uint8_t reg(uint8_t r) { return static_cast<uint8_t>(channel_->read_command_block(r, 1)); }
  void set(uint8_t r, uint8_t v) { channel_->write_command_block(r, 1, v); }
  void command(uint8_t device, uint8_t count, uint32_t lba, uint8_t opcode) {
    set(ata::kDevice, static_cast<uint8_t>(device | ata::kDeviceLba | ((lba >> 24) & 0x0f)));
    set(ata::kSectorCount, count);
    set(ata::kLbaLow, static_cast<uint8_t>(lba));
    set(ata::kLbaMid, static_cast<uint8_t>(lba >> 8));
    set(ata::kLbaHigh, static_cast<uint8_t>(lba >> 16));
    set(ata::kStatusCommand, opcode);
  }
  std::vector<uint8_t> image_bytes(uint64_t offset, size_t n) {
    std::vector<uint8_t> out(n);
    EXPECT_EQ(::pread(image_.get(), out.data(), n, static_cast<off_t>(offset)), static_cast<ssize_t>(n));
    return out;
  }
  static std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
    std::vector<uint8_t> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(i * 7 + seed);
    return v;
  }
  // The channel's state as its state page would hold it, and its bulk area.
  void keep_state(IdeChannel& channel) { channel.keep_state_in(bulk_); }
  // The restarted process: a new channel that takes over `saved` and resumes it.
  void restart_from(const IdeChannel::Saved& saved) {
    channel_ = another_channel(false);
    keep_state(*channel_);
    channel_->restore(saved);
    channel_->resume();
  }
  UniqueFd image_;
  std::vector<uint8_t> bulk_ = std::vector<uint8_t>(IdeChannel::kBulkBytes);
  DmaAccess dma_;
  IdeCounters counters_;
  std::unique_ptr<IdeChannel> channel_;
};

TEST_F(IdeChannelTest, ResetPostsSignaturesAndAnAbsentSlaveAnswersNothing) {
  make(false);
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
  EXPECT_EQ(reg(ata::kErrorFeature), ata::error::kDiagnosticPassed);
  EXPECT_EQ(reg(ata::kSectorCount), 1);
  EXPECT_EQ(reg(ata::kLbaLow), 1);
  set(ata::kDevice, ata::kDeviceSlave);
  // libata's presence check writes patterns and reads them back: nothing must echo.
  set(ata::kSectorCount, 0x55);
  set(ata::kLbaLow, 0xaa);
  EXPECT_EQ(reg(ata::kSectorCount), 0);
  EXPECT_EQ(reg(ata::kLbaLow), 0);
  EXPECT_EQ(reg(ata::kStatusCommand), 0);
}

TEST_F(IdeChannelTest, ACdromHasThePacketSignatureAndRefusesDiskCommands) {
  make(true);
  set(ata::kDevice, ata::kDeviceSlave);
  EXPECT_EQ(reg(ata::kLbaMid), 0x14);
  EXPECT_EQ(reg(ata::kLbaHigh), 0xeb);
  EXPECT_EQ(reg(ata::kStatusCommand), 0) << "DRDY clear until the first command";
  set(ata::kStatusCommand, ata::cmd::kReadNativeMax);  // CVE-2015-6855
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kErr, ata::status::kErr);
  EXPECT_EQ(reg(ata::kErrorFeature), ata::error::kAbrt);
  EXPECT_EQ(reg(ata::kLbaMid), 0x14) << "the signature stays for libata's IDENTIFY fallback";
}

TEST_F(IdeChannelTest, PioWritesLandInTheImageAndReadBack) {
  make(false);
  std::vector<uint8_t> data(2 * 512);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 3);
  command(0, 2, 100, ata::cmd::kWriteSectors);
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kDrq, ata::status::kDrq);
  channel_->write_data({data.data(), 512});
  channel_->write_data({data.data() + 512, 512});
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
  command(0, 2, 100, ata::cmd::kReadSectors);
  std::vector<uint8_t> back(1024);
  channel_->read_data(back);
  EXPECT_EQ(back, data);
  // Past the end of the transfer: zeros and a count, never bytes from anywhere else.
  uint8_t extra[4] = {1, 2, 3, 4};
  channel_->read_data(extra);
  EXPECT_EQ(extra[0] | extra[1] | extra[2] | extra[3], 0);
  EXPECT_EQ(counters_.stray_data, 1u);
}

TEST_F(IdeChannelTest, Lba48AddressesAndRangeChecks) {
  make(false);
  // 48-bit: the high bytes first; the drive has 2048 sectors, so this is past its end.
  set(ata::kSectorCount, 0);
  set(ata::kLbaLow, 1);  // bits 24-31
  set(ata::kLbaMid, 0);
  set(ata::kLbaHigh, 0);
  command(0, 1, 0, ata::cmd::kReadSectorsExt);
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kErr, ata::status::kErr);
  EXPECT_EQ(reg(ata::kErrorFeature) & ata::error::kIdnf, ata::error::kIdnf);
  command(0, 0, 2047, ata::cmd::kReadSectors);  // 256 sectors from the last one
  EXPECT_EQ(reg(ata::kErrorFeature) & ata::error::kIdnf, ata::error::kIdnf);
}

TEST_F(IdeChannelTest, AReadOnlyDiskAbortsWritesAndDmaNeedsBusMastering) {
  make(false, true);
  command(0, 1, 0, ata::cmd::kWriteSectors);
  EXPECT_EQ(reg(ata::kErrorFeature), ata::error::kAbrt);
  command(0, 1, 0, ata::cmd::kReadDma);
  channel_->write_bus_master(IdeChannel::kBmCommand, 1, 0x09);  // start, to memory
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kErr, ata::status::kErr);
  EXPECT_EQ(counters_.dma_refused, 1u);
  EXPECT_EQ(channel_->read_bus_master(IdeChannel::kBmStatus, 1) & 0x02, 0x02) << "the engine's error bit";
}

// Crash recovery: a channel's image I/O waits for the commit of the state that asks for it,
// and a new channel resumes a committed state: a PIO write half done, a read half consumed,
// a write the dead process was waiting for.
TEST_F(IdeChannelTest, ImageIoWaitsForTheCommitOfTheStateThatAsksForIt) {
  make(false);
  keep_state(*channel_);
  const std::vector<uint8_t> data = pattern(512, 1);
  command(0, 1, 10, ata::cmd::kWriteSectors);
  channel_->write_data(data);
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kBsy, ata::status::kBsy);
  EXPECT_NE(image_bytes(10 * 512, 512), data) << "written before the state was committed";
  channel_->save();
  channel_->release_io();
  EXPECT_EQ(image_bytes(10 * 512, 512), data);
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
}

TEST_F(IdeChannelTest, ARestartedChannelFinishesAPioWriteFromItsCommittedHalf) {
  make(false);
  keep_state(*channel_);
  const std::vector<uint8_t> data = pattern(1024, 2);
  command(0, 2, 20, ata::cmd::kWriteSectors);
  channel_->write_data({data.data(), 300});
  IdeChannel::Saved committed = channel_->save();
  channel_->write_data({data.data() + 300, 100});  // handled, never committed: the core sends it again
  restart_from(committed);
  channel_->write_data({data.data() + 300, 512 - 300});
  channel_->save();
  channel_->release_io();  // the first sector is written; DRQ for the second
  channel_->write_data({data.data() + 512, 512});
  channel_->save();
  channel_->release_io();
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
  EXPECT_EQ(image_bytes(20 * 512, 1024), data);
}

TEST_F(IdeChannelTest, ARestartedChannelGoesOnWithAPioReadWhereTheCommitLeftIt) {
  make(false);
  const std::vector<uint8_t> data = pattern(4 * 512, 3);
  ASSERT_EQ(::pwrite(image_.get(), data.data(), data.size(), 30 * 512), static_cast<ssize_t>(data.size()));
  keep_state(*channel_);
  command(0, 4, 30, ata::cmd::kReadSectors);
  channel_->save();
  channel_->release_io();  // the chunk is read now
  std::vector<uint8_t> back(data.size());
  channel_->read_data({back.data(), 768});
  IdeChannel::Saved committed = channel_->save();
  std::vector<uint8_t> lost(512);
  channel_->read_data(lost);  // its answer never reached the guest
  restart_from(committed);
  channel_->read_data({back.data() + 768, back.size() - 768});
  EXPECT_EQ(back, data);
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
  EXPECT_EQ(counters_.stray_data, 0u);
}

TEST_F(IdeChannelTest, ARestartedChannelIssuesTheWriteTheDeadOneWaitedFor) {
  make(false);
  keep_state(*channel_);
  const std::vector<uint8_t> data = pattern(512, 4);
  command(0, 1, 40, ata::cmd::kWriteSectors);
  channel_->write_data(data);
  IdeChannel::Saved committed = channel_->save();  // the process dies before it issues the write
  restart_from(committed);
  EXPECT_EQ(reg(ata::kStatusCommand) & ata::status::kBsy, ata::status::kBsy);
  channel_->save();
  channel_->release_io();
  EXPECT_EQ(image_bytes(40 * 512, 512), data);
  EXPECT_EQ(reg(ata::kStatusCommand), ata::status::kDrdy | ata::status::kDsc);
}

// The next process checks what the page says like any input.
TEST_F(IdeChannelTest, AnInconsistentSavedStateIsRefused) {
  make(false);
  keep_state(*channel_);
  command(0, 2, 20, ata::cmd::kWriteSectors);
  const IdeChannel::Saved good = channel_->save();
  auto refused = [&](IdeChannel::Saved bad, const char* why) {
    std::unique_ptr<IdeChannel> next = another_channel(false);
    keep_state(*next);
    EXPECT_THROW(next->restore(bad), InputError) << why;
  };
  IdeChannel::Saved bad = good;
  bad.pos = bad.end + 1;
  refused(bad, "a position past the block");
  bad = good;
  bad.buffer_size = IdeChannel::kBufferBytes + 1;
  refused(bad, "a buffer larger than its slot");
  bad = good;
  bad.phase = 200;
  refused(bad, "no such phase");
  bad = good;
  bad.lba = kDiskBytes / 512;
  refused(bad, "a transfer past the end of the disk");
  bad = good;
  bad.has_command = 0;
  refused(bad, "PIO out without its command");
  std::unique_ptr<IdeChannel> with_cdrom = another_channel(true);
  keep_state(*with_cdrom);
  EXPECT_THROW(with_cdrom->restore(good), InputError) << "other drives";
  std::unique_ptr<IdeChannel> next = another_channel(false);
  keep_state(*next);
  EXPECT_NO_THROW(next->restore(good));
}

}  // namespace
}  // namespace bulkhead::device
