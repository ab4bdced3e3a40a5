// A SCSI direct-access device (SBC) on a disk image: the commands Linux's sd driver and other
// guests use, proper CHECK CONDITION sense for everything else. Block size 512.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "device-procs/common/block_backend.h"
#include "device-procs/common/scsi.h"
#include "vhost-user/guest_buffers.h"

namespace bulkhead::device {

class ScsiDisk {
 public:
  static constexpr uint32_t kBlockSize = 512;

  struct Options {
    bool read_only = false;
    std::string serial;  // printable ASCII, at most 20 characters
  };

  ScsiDisk(BlockBackend& backend, Options options);

  using Done = std::function<void(const scsi::Result&)>;
  // Runs one command. `data_out` holds what the initiator sent, `data_in` is where data for
  // the initiator goes. `done` runs exactly once, at once for emulated commands and on I/O
  // completion for the rest.
  void execute(std::span<const uint8_t> cdb, const vhost_user::GuestBuffers& data_out, vhost_user::GuestBuffers data_in,
               Done done);

  // A logical unit reset happened: the next command (other than INQUIRY, REPORT LUNS and
  // REQUEST SENSE) reports UNIT ATTENTION once, as SAM requires.
  void reset_occurred() { unit_attention_ = true; }

  uint64_t blocks() const { return blocks_; }
  bool read_only() const { return options_.read_only; }
  BlockBackend& backend() { return backend_; }

  // Standard INQUIRY data for a LUN with no disk behind it (peripheral qualifier 3).
  static scsi::Result inquiry_no_lun(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);

 private:
  scsi::Result inquiry(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);
  scsi::Result read_capacity_10(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);
  scsi::Result read_capacity_16(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);
  scsi::Result mode_sense(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);
  scsi::Result request_sense(std::span<const uint8_t> cdb, vhost_user::GuestBuffers& data_in);
  void read_write(std::span<const uint8_t> cdb, const vhost_user::GuestBuffers& data_out,
                  const vhost_user::GuestBuffers& data_in, Done done);
  void unmap(std::span<const uint8_t> cdb, const vhost_user::GuestBuffers& data_out, Done done);
  void write_same(std::span<const uint8_t> cdb, const vhost_user::GuestBuffers& data_out, Done done);
  scsi::Result io_result(int64_t result, bool write, uint64_t data_in) const;

  BlockBackend& backend_;
  Options options_;
  uint64_t blocks_;
  bool unit_attention_ = false;
};

// Copies `bytes` into `data_in`, truncated to the CDB's allocation length and the buffers.
scsi::Result reply(vhost_user::GuestBuffers& data_in, std::span<const uint8_t> bytes, uint64_t allocation_length);

}  // namespace bulkhead::device
