#include "device-procs/virtio-scsi/scsi_disk.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "common/error.h"

namespace bulkhead::device {

using scsi::Result;
using vhost_user::GuestBuffers;
namespace op = scsi::opcode;

using scsi::be16, scsi::be32, scsi::be64, scsi::put_be16, scsi::put_be32, scsi::put_be64;

namespace {

constexpr uint8_t kVersionSpc3 = 0x05;  // Linux then reads VPD pages and uses READ CAPACITY(16)
constexpr uint32_t kMaxUnmapDescriptors = 255;
constexpr uint32_t kMaxWriteSameBlocks = 1u << 22;  // 2 GiB per WRITE SAME
constexpr uint64_t kPatternBlocks = 128, kBlocksPerWrite = 2048;  // WRITE SAME of a pattern
constexpr uint32_t kUnmapGranularityBlocks = 8;     // 4 KiB

void put_ascii(uint8_t* p, size_t width, const std::string& s) {
  std::memset(p, ' ', width);
  std::memcpy(p, s.data(), std::min(width, s.size()));
}

// Length a CDB needs, from its group code; 0 for reserved groups.
size_t cdb_length(uint8_t opcode) {
  switch (opcode >> 5) {
    case 0: return 6;
    case 1:
    case 2: return 10;
    case 4: return 16;
    case 5: return 12;
    default: return 0;
  }
}

}  // namespace

Result reply(GuestBuffers& data_in, std::span<const uint8_t> bytes, uint64_t allocation_length) {
  size_t n = static_cast<size_t>(std::min<uint64_t>({bytes.size(), allocation_length, data_in.size()}));
  data_in.write(0, bytes.data(), n);
  return Result::good(n);
}

ScsiDisk::ScsiDisk(BlockBackend& backend, Options options)
    : backend_(backend), options_(std::move(options)), blocks_(backend.size() / kBlockSize) {
  if (blocks_ == 0) throw InputError("disk image is smaller than one 512-byte block");
}

Result ScsiDisk::inquiry_no_lun(std::span<const uint8_t> cdb, GuestBuffers& data_in) {
  if (cdb[1] & 0x01) return Result::check(scsi::sense::kLunNotSupported);
  uint8_t data[36] = {};
  data[0] = 0x7f;  // peripheral qualifier 3: no logical unit here
  data[2] = kVersionSpc3;
  data[3] = 0x12;
  data[4] = sizeof data - 5;
  return reply(data_in, data, be16(cdb, 3));
}

Result ScsiDisk::inquiry(std::span<const uint8_t> cdb, GuestBuffers& data_in) {
  bool evpd = cdb[1] & 0x01;
  uint8_t page = cdb[2];
  uint16_t allocation = be16(cdb, 3);
  if (cdb[1] & 0x02) return Result::check(scsi::sense::kInvalidFieldInCdb);  // CMDDT is obsolete
  if (!evpd) {
    if (page != 0) return Result::check(scsi::sense::kInvalidFieldInCdb);
    uint8_t data[36] = {};
    data[2] = kVersionSpc3;
    data[3] = 0x12;  // HISUP, response data format 2
    data[4] = sizeof data - 5;
    data[7] = 0x02;  // CMDQUE: tagged queuing
    put_ascii(data + 8, 8, "BULKHEAD");
    put_ascii(data + 16, 16, "VIRTUAL DISK");
    put_ascii(data + 32, 4, "0.1");
    return reply(data_in, data, allocation);
  }
  bool provisioning = !options_.read_only;
  std::vector<uint8_t> d(4, 0);
  d[1] = page;
  switch (page) {
    case 0x00:  // supported pages
      for (uint8_t p : {0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2}) d.push_back(p);
      break;
    case 0x80:  // unit serial number
      d.insert(d.end(), options_.serial.begin(), options_.serial.end());
      break;
    case 0x83: {  // device identification: a T10 vendor ID designator for the logical unit
      std::string id = "BULKHEAD" + options_.serial;
      d.insert(d.end(), {0x02, 0x01, 0x00, static_cast<uint8_t>(id.size())});
      d.insert(d.end(), id.begin(), id.end());
      break;
    }
    case 0xb0: {  // block limits
      d.resize(64, 0);
      put_be32(&d[8], 0xffff);  // maximum transfer length in blocks
      if (provisioning) {
        put_be32(&d[20], 0xffffffff);  // maximum unmap LBA count
        put_be32(&d[24], kMaxUnmapDescriptors);
        put_be32(&d[28], kUnmapGranularityBlocks);
      }
      put_be64(&d[36], kMaxWriteSameBlocks);
      break;
    }
    case 0xb1:  // block device characteristics
      d.resize(64, 0);
      put_be16(&d[4], 1);  // non-rotating medium
      break;
    case 0xb2:  // logical block provisioning
      d.resize(8, 0);
      if (provisioning) d[5] = 0x80 | 0x40 | 0x04;  // LBPU, LBPWS, LBPRZ: unmapped blocks read zero
      d[6] = provisioning ? 0x02 : 0x00;           // thin provisioned
      break;
    default:
      return Result::check(scsi::sense::kInvalidFieldInCdb);
  }
  put_be16(&d[2], static_cast<uint16_t>(d.size() - 4));
  return reply(data_in, d, allocation);
}

Result ScsiDisk::read_capacity_10(std::span<const uint8_t>, GuestBuffers& data_in) {
  uint8_t data[8];
  put_be32(data, static_cast<uint32_t>(std::min<uint64_t>(blocks_ - 1, 0xffffffff)));
  put_be32(data + 4, kBlockSize);
  return reply(data_in, data, sizeof data);
}

Result ScsiDisk::read_capacity_16(std::span<const uint8_t> cdb, GuestBuffers& data_in) {
  uint8_t data[32] = {};
  put_be64(data, blocks_ - 1);
  put_be32(data + 8, kBlockSize);
  if (!options_.read_only) data[14] = 0x80 | 0x40;  // LBPME, LBPRZ
  return reply(data_in, data, be32(cdb, 10));
}

Result ScsiDisk::request_sense(std::span<const uint8_t> cdb, GuestBuffers& data_in) {
  // Sense is delivered with the failing command (autosense); only a unit attention waits.
  auto data = scsi::fixed_sense(unit_attention_ ? scsi::sense::kResetOccurred : scsi::sense::kNone);
  unit_attention_ = false;
  return reply(data_in, data, cdb[4]);
}

Result ScsiDisk::mode_sense(std::span<const uint8_t> cdb, GuestBuffers& data_in) {
  bool ten = cdb[0] == op::kModeSense10;
  bool dbd = cdb[1] & 0x08;
  uint8_t control = cdb[2] >> 6;
  uint8_t page = cdb[2] & 0x3f;
  uint8_t subpage = cdb[3];
  uint64_t allocation = ten ? be16(cdb, 7) : cdb[4];
  if (control == 3) return Result::check(scsi::sense::kSavingParametersNotSupported);
  if (subpage != 0 && !(page == 0x3f && subpage == 0xff)) return Result::check(scsi::sense::kInvalidFieldInCdb);

  std::vector<uint8_t> pages;
  auto caching = [&] {
    uint8_t p[20] = {0x08, 0x12};
    if (control != 1) p[2] = 0x04;  // WCE: writes are cached until SYNCHRONIZE CACHE or FUA
    pages.insert(pages.end(), p, p + sizeof p);
  };
  auto control_page = [&] {
    uint8_t p[12] = {0x0a, 0x0a};
    pages.insert(pages.end(), p, p + sizeof p);
  };
  switch (page) {
    case 0x08: caching(); break;
    case 0x0a: control_page(); break;
    case 0x3f:
      caching();
      control_page();
      break;
    default:
      return Result::check(scsi::sense::kInvalidFieldInCdb);
  }
  std::vector<uint8_t> block_descriptor;
  if (!dbd) {
    block_descriptor.assign(8, 0);
    // Short LBA descriptor: number of blocks, a reserved byte, 24-bit block length.
    put_be32(&block_descriptor[0], static_cast<uint32_t>(std::min<uint64_t>(blocks_, 0xffffffff)));
    put_be32(&block_descriptor[4], kBlockSize);
  }
  uint8_t device_specific = 0x10;  // DPOFUA: FUA writes are honoured
  if (options_.read_only) device_specific |= 0x80;
  std::vector<uint8_t> d;
  if (ten) {
    d.assign(8, 0);
    d[3] = device_specific;
    put_be16(&d[6], static_cast<uint16_t>(block_descriptor.size()));
  } else {
    d.assign(4, 0);
    d[2] = device_specific;
    d[3] = static_cast<uint8_t>(block_descriptor.size());
  }
  d.insert(d.end(), block_descriptor.begin(), block_descriptor.end());
  d.insert(d.end(), pages.begin(), pages.end());
  if (ten) put_be16(&d[0], static_cast<uint16_t>(d.size() - 2));
  else d[0] = static_cast<uint8_t>(d.size() - 1);
  return reply(data_in, d, allocation);
}

Result ScsiDisk::io_result(int64_t result, bool write, uint64_t data_in) const {
  if (result >= 0) return Result::good(data_in);
  if (write && result == -ENOSPC) return Result::check(scsi::sense::kSpaceAllocationFailed);
  return Result::check(write ? scsi::sense::kWriteError : scsi::sense::kUnrecoveredReadError);
}

void ScsiDisk::read_write(std::span<const uint8_t> cdb, const GuestBuffers& data_out, const GuestBuffers& data_in, Done done) {
  uint8_t code = cdb[0];
  bool write = code == op::kWrite6 || code == op::kWrite10 || code == op::kWrite16;
  uint64_t lba;
  uint64_t count;
  bool fua = false;
  if (code == op::kRead6 || code == op::kWrite6) {
    lba = (static_cast<uint64_t>(cdb[1] & 0x1f) << 16) | be16(cdb, 2);
    count = cdb[4] ? cdb[4] : 256;
  } else {
    if (cdb[1] & 0xe0) return done(Result::check(scsi::sense::kInvalidFieldInCdb));  // protection information
    fua = cdb[1] & 0x08;
    bool sixteen = code == op::kRead16 || code == op::kWrite16;
    lba = sixteen ? be64(cdb, 2) : be32(cdb, 2);
    count = sixteen ? be32(cdb, 10) : be16(cdb, 7);
  }
  if (lba > blocks_ || count > blocks_ - lba) return done(Result::check(scsi::sense::kLbaOutOfRange));
  if (write && options_.read_only) return done(Result::check(scsi::sense::kWriteProtected));
  if (count == 0) return done(Result::good());
  uint64_t bytes = count * kBlockSize;
  const GuestBuffers& buffers = write ? data_out : data_in;
  if (buffers.size() < bytes) return done(Result::buffer_mismatch());
  std::vector<iovec> iov = buffers.slice(0, bytes).iovecs();
  if (iov.size() > IOV_MAX) return done(Result::buffer_mismatch());
  auto complete = [this, done = std::move(done), write, bytes](int64_t r) { done(io_result(r, write, write ? 0 : bytes)); };
  if (write) backend_.write(lba * kBlockSize, std::move(iov), fua, std::move(complete));
  else backend_.read(lba * kBlockSize, std::move(iov), std::move(complete));
}

void ScsiDisk::unmap(std::span<const uint8_t> cdb, const GuestBuffers& data_out, Done done) {
  if (cdb[1] & 0x01) return done(Result::check(scsi::sense::kInvalidFieldInCdb));  // ANCHOR
  uint16_t length = be16(cdb, 7);
  if (length == 0) return done(Result::good());
  if (data_out.size() < length) return done(Result::buffer_mismatch());
  std::vector<uint8_t> list(length);
  data_out.read(0, list.data(), length);
  if (length < 8) return done(Result::check(scsi::sense::kParameterListLengthError));
  uint16_t data_length = be16(list, 0);
  uint16_t descriptors_length = be16(list, 2);
  if (length < data_length + 2u || length < descriptors_length + 8u || descriptors_length % 16)
    return done(Result::check(scsi::sense::kParameterListLengthError));
  if (descriptors_length / 16 > kMaxUnmapDescriptors) return done(Result::check(scsi::sense::kInvalidFieldInParameterList));
  if (options_.read_only) return done(Result::check(scsi::sense::kWriteProtected));
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (size_t at = 8; at + 16 <= 8u + descriptors_length; at += 16) {
    uint64_t lba = be64(list, at);
    uint64_t count = be32(list, at + 8);
    if (lba > blocks_ || count > blocks_ - lba) return done(Result::check(scsi::sense::kLbaOutOfRange));
    if (count) ranges.emplace_back(lba, count);
  }
  if (ranges.empty()) return done(Result::good());
  // Completes once every range is deallocated; the first error wins.
  struct Pending {
    size_t left;
    int64_t error = 0;
    Done done;
  };
  auto pending = std::make_shared<Pending>(Pending{ranges.size(), 0, std::move(done)});
  for (auto [lba, count] : ranges) {
    backend_.discard(lba * kBlockSize, count * kBlockSize, [this, pending](int64_t r) {
      if (r < 0 && !pending->error) pending->error = r;
      if (--pending->left == 0) pending->done(io_result(pending->error, true, 0));
    });
  }
}

void ScsiDisk::write_same(std::span<const uint8_t> cdb, const GuestBuffers& data_out, Done done) {
  bool sixteen = cdb[0] == op::kWriteSame16;
  bool ndob = sixteen && (cdb[1] & 0x01);  // no data-out buffer: the block is zeros
  // WRPROTECT, ANCHOR, PBDATA and LBDATA are not supported; UNMAP (0x08) is.
  if (cdb[1] & 0xf6) return done(Result::check(scsi::sense::kInvalidFieldInCdb));
  uint64_t lba = sixteen ? be64(cdb, 2) : be32(cdb, 2);
  uint64_t count = sixteen ? be32(cdb, 10) : be16(cdb, 7);
  if (count == 0 || count > kMaxWriteSameBlocks) return done(Result::check(scsi::sense::kInvalidFieldInCdb));
  if (lba > blocks_ || count > blocks_ - lba) return done(Result::check(scsi::sense::kLbaOutOfRange));
  if (options_.read_only) return done(Result::check(scsi::sense::kWriteProtected));
  std::vector<uint8_t> block(kBlockSize, 0);
  if (!ndob) {
    if (data_out.size() < kBlockSize) return done(Result::buffer_mismatch());
    data_out.read(0, block.data(), kBlockSize);
  }
  bool zeros = std::all_of(block.begin(), block.end(), [](uint8_t b) { return b == 0; });
  auto complete = [this, done = std::move(done)](int64_t r) { done(io_result(r, true, 0)); };
  if (zeros) {
    // Deallocated blocks read back as zeros (LBPRZ), so zeros are written by deallocating,
    // with or without the UNMAP bit.
    return backend_.discard(lba * kBlockSize, count * kBlockSize, std::move(complete));
  }
  // Replicate the block: a buffer holding it kPatternBlocks times, written up to 1 MiB at a
  // time as a few iovecs of that buffer (far below IOV_MAX, which one iovec per block would
  // exceed).
  struct State {
    uint64_t lba, left;
    std::vector<uint8_t> pattern;
    std::function<void(int64_t)> done;
  };
  auto state = std::make_shared<State>(State{lba, count, {}, std::move(complete)});
  state->pattern.reserve(kPatternBlocks * kBlockSize);
  for (uint64_t i = 0; i < kPatternBlocks; ++i) state->pattern.insert(state->pattern.end(), block.begin(), block.end());
  auto step = std::make_shared<std::function<void(int64_t)>>();
  *step = [this, state, step](int64_t r) {
    if (r < 0 || state->left == 0) {
      auto d = std::move(state->done);
      *step = nullptr;
      return d(r < 0 ? r : 0);
    }
    uint64_t chunk = std::min<uint64_t>(state->left, kBlocksPerWrite);
    std::vector<iovec> iov;
    for (uint64_t done_blocks = 0; done_blocks < chunk; done_blocks += kPatternBlocks)
      iov.push_back(iovec{state->pattern.data(), std::min(kPatternBlocks, chunk - done_blocks) * kBlockSize});
    uint64_t at = state->lba;
    state->lba += chunk;
    state->left -= chunk;
    backend_.write(at * kBlockSize, std::move(iov), false, *step);
  };
  (*step)(0);
}

void ScsiDisk::execute(std::span<const uint8_t> cdb, const GuestBuffers& data_out, GuestBuffers data_in, Done done) {
  if (cdb.empty() || cdb_length(cdb[0]) == 0 || cdb.size() < cdb_length(cdb[0]))
    return done(Result::check(scsi::sense::kInvalidOpcode));
  if (unit_attention_ && cdb[0] != op::kInquiry && cdb[0] != op::kRequestSense && cdb[0] != op::kReportLuns) {
    unit_attention_ = false;
    return done(Result::check(scsi::sense::kResetOccurred));
  }
  switch (cdb[0]) {
    case op::kTestUnitReady:
    case op::kStartStopUnit:
    case op::kAllowMediumRemoval:
      return done(Result::good());
    case op::kInquiry:
      return done(inquiry(cdb, data_in));
    case op::kRequestSense:
      return done(request_sense(cdb, data_in));
    case op::kReadCapacity10:
      return done(read_capacity_10(cdb, data_in));
    case op::kServiceActionIn16:
      if ((cdb[1] & 0x1f) != op::kReadCapacity16ServiceAction) return done(Result::check(scsi::sense::kInvalidOpcode));
      return done(read_capacity_16(cdb, data_in));
    case op::kModeSense6:
    case op::kModeSense10:
      return done(mode_sense(cdb, data_in));
    case op::kRead6:
    case op::kRead10:
    case op::kRead16:
    case op::kWrite6:
    case op::kWrite10:
    case op::kWrite16:
      return read_write(cdb, data_out, data_in, std::move(done));
    case op::kSynchronizeCache10:
    case op::kSynchronizeCache16:
      return backend_.flush([this, done = std::move(done)](int64_t r) { done(io_result(r, true, 0)); });
    case op::kUnmap:
      return unmap(cdb, data_out, std::move(done));
    case op::kWriteSame10:
    case op::kWriteSame16:
      return write_same(cdb, data_out, std::move(done));
    default:
      return done(Result::check(scsi::sense::kInvalidOpcode));
  }
}

}  // namespace bulkhead::device
