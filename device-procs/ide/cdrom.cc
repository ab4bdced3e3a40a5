#include "device-procs/ide/cdrom.h"

#include <algorithm>
#include <cstring>

#include "common/error.h"

namespace bulkhead::device {

namespace {

namespace op {
inline constexpr uint8_t kTestUnitReady = 0x00, kRequestSense = 0x03, kInquiry = 0x12, kStartStopUnit = 0x1b,
                         kPreventAllowRemoval = 0x1e, kReadCapacity = 0x25, kRead10 = 0x28, kSeek10 = 0x2b,
                         kReadToc = 0x43, kGetConfiguration = 0x46, kGetEventStatus = 0x4a, kReadDiscInformation = 0x51,
                         kModeSense10 = 0x5a, kRead12 = 0xa8, kSetCdSpeed = 0xbb, kMechanismStatus = 0xbd;
}

constexpr scsi::Sense kNoMedium{0x02, 0x3a, 0x00};
constexpr scsi::Sense kMediumMayHaveChanged{0x06, 0x28, 0x00};
constexpr scsi::Sense kRemovalPrevented{0x05, 0x53, 0x02};

constexpr uint16_t kProfileCdRom = 0x0008, kProfileDvdRom = 0x0010;
// More than a CD holds (80 minutes of 75 sectors a second): the medium is a DVD.
constexpr uint64_t kCdBlocks = 80ull * 60 * 75;
constexpr uint8_t kDataTrackControl = 0x14;  // ADR 1 (position), control 4 (data track)
constexpr uint8_t kLeadOut = 0xaa;

Cdrom::Reply data(std::vector<uint8_t> bytes, size_t allocation) {
  if (bytes.size() > allocation) bytes.resize(allocation);
  return {Cdrom::Reply::Kind::kData, std::move(bytes), 0, 0};
}

// The address of block `lba` as a TOC gives it: LBA, or minutes/seconds/frames from the
// start of the disc (the first block is 2 seconds in).
void put_address(uint8_t* p, uint64_t lba, bool msf) {
  if (!msf) {
    scsi::put_be32(p, static_cast<uint32_t>(lba));
    return;
  }
  uint64_t frames = lba + 150;
  p[0] = 0;
  p[1] = static_cast<uint8_t>(std::min<uint64_t>(frames / (75 * 60), 0xff));
  p[2] = static_cast<uint8_t>(frames / 75 % 60);
  p[3] = static_cast<uint8_t>(frames % 75);
}

}  // namespace

Cdrom::Reply Cdrom::fail(scsi::Sense s) {
  sense_ = s;
  return {Reply::Kind::kCheck, {}, 0, 0};
}

bool Cdrom::eject() {
  if (locked_) return false;
  blocks_ = 0;
  media_event_ = false;
  unit_attention_ = true;
  return true;
}

void Cdrom::insert(uint64_t image_bytes, bool notify) {
  blocks_ = image_bytes / kBlockSize;
  unit_attention_ = notify;
  media_event_ = notify && blocks_ > 0;
}

Cdrom::State Cdrom::state() const {
  return {blocks_, sense_, unit_attention_, media_event_, locked_};
}

void Cdrom::restore(const State& state, uint64_t image_bytes) {
  if ((state.blocks != 0 && state.blocks != image_bytes / kBlockSize) || state.unit_attention > 1 ||
      state.media_event > 1 || state.locked > 1)
    throw InputError("the saved CD-ROM state does not fit its image");
  blocks_ = state.blocks;
  sense_ = state.sense;
  unit_attention_ = state.unit_attention;
  media_event_ = state.media_event;
  locked_ = state.locked;
}

bool Cdrom::is_dvd() const { return blocks_ > kCdBlocks; }

Cdrom::Reply Cdrom::execute(std::span<const uint8_t, kPacketSize> cdb) {
  const uint8_t code = cdb[0];
  // Commands MMC allows while a unit attention is pending; the rest report it once.
  const bool unaffected = code == op::kInquiry || code == op::kRequestSense || code == op::kGetConfiguration ||
                          code == op::kGetEventStatus;
  if (unit_attention_ && !unaffected) {
    unit_attention_ = false;
    return fail(kMediumMayHaveChanged);
  }
  switch (code) {
    case op::kTestUnitReady:
      return has_medium() ? Reply{} : fail(kNoMedium);
    case op::kRequestSense:
      return request_sense(cdb);
    case op::kInquiry:
      return inquiry(cdb);
    case op::kStartStopUnit:
      return start_stop(cdb);
    case op::kPreventAllowRemoval:
      locked_ = (cdb[4] & 0x03) != 0;
      return {};
    case op::kReadCapacity:
      return read_capacity();
    case op::kRead10:
      return read(scsi::be32(cdb, 2), scsi::be16(cdb, 7));
    case op::kRead12:
      return read(scsi::be32(cdb, 2), scsi::be32(cdb, 6));
    case op::kSeek10:
    case op::kSetCdSpeed:
      return has_medium() || code == op::kSetCdSpeed ? Reply{} : fail(kNoMedium);
    case op::kReadToc:
      return read_toc(cdb);
    case op::kGetConfiguration:
      return get_configuration(cdb);
    case op::kGetEventStatus:
      return event_status(cdb);
    case op::kReadDiscInformation:
      return disc_information(cdb);
    case op::kModeSense10:
      return mode_sense(cdb);
    case op::kMechanismStatus:
      return data(std::vector<uint8_t>(8, 0), scsi::be16(cdb, 8));
    default:
      return fail(scsi::sense::kInvalidOpcode);
  }
}

Cdrom::Reply Cdrom::request_sense(std::span<const uint8_t> cdb) {
  scsi::Sense s = sense_;
  if (unit_attention_) {
    s = kMediumMayHaveChanged;
    unit_attention_ = false;
  }
  sense_ = scsi::sense::kNone;
  auto fixed = scsi::fixed_sense(s);
  return data({fixed.begin(), fixed.end()}, cdb[4]);
}

Cdrom::Reply Cdrom::inquiry(std::span<const uint8_t> cdb) {
  if (cdb[1] & 0x01) return fail(scsi::sense::kInvalidFieldInCdb);  // no vital product data pages
  std::vector<uint8_t> b(36, 0);
  b[0] = 0x05;  // CD/DVD device
  b[1] = 0x80;  // removable medium
  b[2] = 0x05;  // SPC-3
  b[3] = 0x02;  // response data format 2
  b[4] = static_cast<uint8_t>(b.size() - 5);
  std::memcpy(&b[8], "BULKHEAD", 8);
  std::memcpy(&b[16], "ATAPI DVD-ROM   ", 16);
  std::memcpy(&b[32], "1.0 ", 4);
  return data(std::move(b), scsi::be16(cdb, 3));
}

Cdrom::Reply Cdrom::start_stop(std::span<const uint8_t> cdb) {
  const bool load_eject = cdb[4] & 0x02, start = cdb[4] & 0x01;
  if (load_eject && !start && !eject()) return fail(kRemovalPrevented);
  return {};
}

Cdrom::Reply Cdrom::read_capacity() {
  if (!has_medium()) return fail(kNoMedium);
  std::vector<uint8_t> b(8);
  scsi::put_be32(&b[0], static_cast<uint32_t>(std::min<uint64_t>(blocks_ - 1, 0xffffffff)));
  scsi::put_be32(&b[4], kBlockSize);
  return data(std::move(b), b.size());
}

Cdrom::Reply Cdrom::read(uint64_t lba, uint32_t blocks) {
  if (!has_medium()) return fail(kNoMedium);
  if (lba > blocks_ || blocks > blocks_ - lba) return fail(scsi::sense::kLbaOutOfRange);
  if (blocks == 0) return {};
  return {Reply::Kind::kRead, {}, lba, blocks};
}

Cdrom::Reply Cdrom::read_toc(std::span<const uint8_t> cdb) {
  if (!has_medium()) return fail(kNoMedium);
  const bool msf = cdb[1] & 0x02;
  uint8_t format = cdb[2] & 0x0f;
  if (format == 0) format = cdb[9] >> 6;  // the older (SFF-8020) place for it
  const uint8_t start_track = cdb[6];
  std::vector<uint8_t> b(4, 0);
  b[2] = 1;  // first track (or session)
  b[3] = 1;  // last
  auto add_track = [&](uint8_t track, uint64_t lba) {
    size_t at = b.size();
    b.resize(at + 8, 0);
    b[at + 1] = kDataTrackControl;
    b[at + 2] = track;
    put_address(&b[at + 4], lba, msf);
  };
  switch (format) {
    case 0:  // the TOC: our one data track from `start_track` on, then the lead-out
      if (start_track > 1 && start_track != kLeadOut) return fail(scsi::sense::kInvalidFieldInCdb);
      if (start_track <= 1) add_track(1, 0);
      add_track(kLeadOut, blocks_);
      break;
    case 1:  // session information: the first track of the last (only) session
      add_track(1, 0);
      break;
    default:
      return fail(scsi::sense::kInvalidFieldInCdb);
  }
  scsi::put_be16(&b[0], static_cast<uint16_t>(b.size() - 2));
  return data(std::move(b), scsi::be16(cdb, 7));
}

Cdrom::Reply Cdrom::get_configuration(std::span<const uint8_t> cdb) {
  const uint8_t requested = cdb[1] & 0x03;  // 0 all, 1 current ones, 2 just the starting one
  const uint16_t starting = scsi::be16(cdb, 2);
  if (requested == 3) return fail(scsi::sense::kInvalidFieldInCdb);
  const uint16_t current_profile = !has_medium() ? 0 : is_dvd() ? kProfileDvdRom : kProfileCdRom;
  std::vector<uint8_t> b(8, 0);
  scsi::put_be16(&b[6], current_profile);
  auto add_feature = [&](uint16_t code, bool current, std::vector<uint8_t> body, uint8_t version = 0) {
    if (requested == 2 ? code != starting : code < starting) return;
    if (requested == 1 && !current) return;
    size_t at = b.size();
    b.resize(at + 4, 0);
    scsi::put_be16(&b[at], code);
    b[at + 2] = static_cast<uint8_t>(version << 2 | 0x02 | (current ? 1 : 0));  // persistent
    b[at + 3] = static_cast<uint8_t>(body.size());
    b.insert(b.end(), body.begin(), body.end());
  };
  add_feature(0x0000, true,  // profile list, newest first
              {0x00, static_cast<uint8_t>(kProfileDvdRom), current_profile == kProfileDvdRom, 0, 0,
               static_cast<uint8_t>(kProfileCdRom), current_profile == kProfileCdRom, 0});
  add_feature(0x0001, true, {0, 0, 0, 2 /* ATAPI */, 0, 0, 0, 0}, 2);  // core
  add_feature(0x0003, true, {0x29 /* tray, can eject, can lock */, 0, 0, 0});  // removable medium
  add_feature(0x0010, has_medium(),  // random readable, 2048-byte blocks
              {0, 0, 0x08, 0x00, 0, static_cast<uint8_t>(is_dvd() ? 16 : 1), 0, 0});
  scsi::put_be32(&b[0], static_cast<uint32_t>(b.size() - 4));
  return data(std::move(b), scsi::be16(cdb, 7));
}

Cdrom::Reply Cdrom::event_status(std::span<const uint8_t> cdb) {
  if (!(cdb[1] & 0x01)) return fail(scsi::sense::kInvalidFieldInCdb);  // only polled operation
  constexpr uint8_t kMediaClass = 0x10;
  std::vector<uint8_t> b(4, 0);
  b[3] = kMediaClass;  // supported event classes
  if (cdb[4] & kMediaClass) {
    b[2] = 4;  // the media class
    b.push_back(media_event_ ? 2 : 0);  // new media, or no change
    b.push_back(has_medium() ? 0x02 : 0x00);
    b.push_back(0);
    b.push_back(0);
    media_event_ = false;
  } else {
    b[2] = 0x80;  // no event available
  }
  scsi::put_be16(&b[0], static_cast<uint16_t>(b.size() - 2));
  return data(std::move(b), scsi::be16(cdb, 7));
}

Cdrom::Reply Cdrom::disc_information(std::span<const uint8_t> cdb) {
  if (cdb[1] & 0x07) return fail(scsi::sense::kInvalidFieldInCdb);  // standard disc information only
  if (!has_medium()) return fail(kNoMedium);
  std::vector<uint8_t> b(34, 0);
  scsi::put_be16(&b[0], static_cast<uint16_t>(b.size() - 2));
  b[2] = 0x0e;  // last session complete, disc complete
  b[3] = 1;     // first track
  b[4] = 1;     // sessions
  b[5] = 1;     // first track in the last session
  b[6] = 1;     // last track in the last session
  return data(std::move(b), scsi::be16(cdb, 7));
}

Cdrom::Reply Cdrom::mode_sense(std::span<const uint8_t> cdb) {
  const uint8_t page = cdb[2] & 0x3f, control = cdb[2] >> 6;
  if (control == 3) return fail(scsi::sense::kSavingParametersNotSupported);
  std::vector<uint8_t> b(8, 0);
  const bool all = page == 0x3f;
  if (page == 0x01 || all) {  // read error recovery: 5 retries
    const uint8_t recovery[] = {0x01, 0x06, 0x00, 0x05, 0x00, 0x00, 0x00, 0x00};
    b.insert(b.end(), std::begin(recovery), std::end(recovery));
  }
  if (page == 0x2a || all) {  // capabilities: reads CD and DVD media, a tray that locks and ejects
    std::vector<uint8_t> caps(22, 0);
    caps[0] = 0x2a;
    caps[1] = static_cast<uint8_t>(caps.size() - 2);
    caps[2] = 0x08;  // DVD-ROM read
    caps[4] = 0x01;  // audio play
    caps[6] = static_cast<uint8_t>(0x29 | (locked_ ? 0x02 : 0));
    scsi::put_be16(&caps[8], 8467);   // maximum read speed, kB/s (48x)
    scsi::put_be16(&caps[12], 512);   // buffer, KiB
    scsi::put_be16(&caps[14], 8467);  // current read speed
    b.insert(b.end(), caps.begin(), caps.end());
  }
  if (b.size() == 8) return fail(scsi::sense::kInvalidFieldInCdb);
  scsi::put_be16(&b[0], static_cast<uint16_t>(b.size() - 2));
  return data(std::move(b), scsi::be16(cdb, 7));
}

}  // namespace bulkhead::device
