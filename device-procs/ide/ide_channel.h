// One IDE channel (cable): up to two drives (an ATA disk or an ATAPI CD-ROM each) behind one
// task file, one interrupt line and one bus-master DMA engine. It runs the ATA protocols (PIO
// in and out, DMA, non-data, PACKET) as a state machine driven by register accesses and by
// block I/O completions; it never blocks and never trusts a count, index or address the guest
// gave without checking it.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <vector>

#include "device-procs/common/block_backend.h"
#include "device-procs/common/irq_line.h"
#include "device-procs/ide/cdrom.h"
#include "device-procs/ide/identify.h"
#include "device-procs/ide/prd.h"
#include "vhost-user/memory_map.h"

namespace bulkhead::device {

// The command block registers as one drive holds them. Writes reach both drives of the
// channel; reads come from the selected one. `hob_*` are the previous bytes (48-bit commands).
struct TaskFile {
  uint8_t feature = 0, count = 0, lba_low = 0, lba_mid = 0, lba_high = 0;
  uint8_t hob_feature = 0, hob_count = 0, hob_lba_low = 0, hob_lba_mid = 0, hob_lba_high = 0;
};

struct IdeDrive {
  enum class Kind { kNone, kDisk, kCdrom } kind = Kind::kNone;
  std::unique_ptr<BlockBackend> backend;  // the disk image or the ISO
  bool read_only = false;
  DiskIdentity disk;    // kDisk
  CdromIdentity cd;     // kCdrom
  std::unique_ptr<Cdrom> cdrom;
  uint8_t status = 0, error = 0;
  TaskFile tf;
};

// What a channel may do to guest memory: nothing unless the guest enabled bus mastering.
struct DmaAccess {
  const vhost_user::MemoryMap* memory = nullptr;
  bool bus_master = false;
};

struct IdeCounters {
  uint64_t dma_refused = 0;       // PRD tables or buffers outside guest RAM, or bus mastering off
  uint64_t dma_short = 0;         // PRD tables that end before the transfer
  uint64_t aborted = 0;           // commands answered with ABRT
  uint64_t io_errors = 0;         // image reads or writes that failed
  uint64_t stray_data = 0;        // data-port accesses with no transfer in progress
};

class IdeChannel {
 public:
  // Bus-master register offsets within the channel's 8 bytes of BAR4.
  static constexpr uint8_t kBmCommand = 0, kBmStatus = 2, kBmPrdTable = 4;

  IdeChannel(std::array<IdeDrive, 2> drives, const DmaAccess& dma, IdeCounters& counters);
  ~IdeChannel();
  IdeChannel(const IdeChannel&) = delete;
  IdeChannel& operator=(const IdeChannel&) = delete;

  // The command block (8 ports); the data port (offset 0) takes 2- and 4-byte accesses.
  uint32_t read_command_block(uint8_t reg, uint8_t size);
  void write_command_block(uint8_t reg, uint8_t size, uint32_t value);
  // `rep insw/insl`, `rep outsw/outsl` on the data port: `bytes` is the whole string.
  void read_data(std::span<uint8_t> bytes);
  void write_data(std::span<const uint8_t> bytes);
  // The control block: alternate status (read), device control (write).
  uint8_t read_alt_status() const;
  void write_device_control(uint8_t value);
  // Bus-master registers (offsets kBm*).
  uint32_t read_bus_master(uint8_t offset, uint8_t size) const;
  void write_bus_master(uint8_t offset, uint8_t size, uint32_t value);

  IrqLine& irq() { return irq_; }
  // Runs image I/O completions (the controller watches each backend's completion fd).
  void complete_io();

  // Crash recovery (docs/recovery.md). The channel's whole state as plain bytes, which the
  // controller commits to its state page; the PIO buffer goes to one of two slots in the page's
  // bulk area, so that a new buffer never overwrites the one the last commit refers to.
  struct Saved {
    struct Drive {
      uint8_t kind, status, error, multiple, write_cache, mode;  // mode: the disk's or the CD-ROM's
      TaskFile tf;
      DiskGeometry current;
      Cdrom::State cdrom;
    } drives[2];
    uint8_t device, control, bm_command, bm_status, irq_pending;
    uint32_t prd_table;
    uint8_t phase, active, waiting_for;  // waiting_for: the IoStep in flight
    uint8_t has_command, command_type, command_dma, command_fua;
    uint32_t block_sectors, byte_limit;
    uint64_t lba, left;
    uint8_t has_buffer, buffer_slot;
    uint32_t buffer_size, pos, end, block_start, block_bytes;
  };
  static constexpr size_t kBufferBytes = 65536;  // the largest buffer: a PIO read chunk, an ATAPI reply
  static constexpr size_t kBulkBytes = 2 * kBufferBytes;
  // From now on the channel keeps its buffer in `bulk` (kBulkBytes), and holds every image
  // I/O until release_io(): nothing outside the state page happens before the state that asks
  // for it is committed, so a restarted process that resumes that state does it once more.
  void keep_state_in(std::span<uint8_t> bulk);
  Saved save();
  // The state save() returned is committed: issue the I/O held since.
  void release_io();
  // Takes over a state saved by an earlier process; throws InputError if it is not one this
  // channel, with these drives, can be in. Then resume() issues the I/O that state waited for.
  void restore(const Saved& saved);
  void resume();

 private:
  enum class Phase : uint8_t { kIdle, kBusy, kPioIn, kPioOut, kPacket, kDmaWaiting, kDmaRunning };
  // The image I/O the channel waits for: what a restarted process issues again.
  enum class IoStep : uint8_t { kNone, kFlush, kAtaRead, kAtaWrite, kAtapiRead, kDma };
  struct Command;

  IdeDrive& selected() { return drives_[(device_ & 0x10) ? 1 : 0]; }
  const IdeDrive& selected() const { return drives_[(device_ & 0x10) ? 1 : 0]; }
  IdeDrive& active() { return drives_[active_]; }
  bool absent_selected() const { return selected().kind == IdeDrive::Kind::kNone; }

  void execute(uint8_t opcode);
  void reset_drives();
  void post_signature(IdeDrive& drive);
  void cancel();
  void raise_irq();
  void update_irq_line();
  void finish(uint8_t status);             // command done: status, interrupt
  void abort(uint8_t error_bits = 0x04);   // command failed: ERR + error register, interrupt
  // ATA: the address and count the task file gives (28- or 48-bit).
  bool address(bool ext, uint64_t& lba, uint32_t& sectors);
  void set_features();
  void flush();
  // Data transfers.
  void start_pio_in(std::shared_ptr<std::vector<uint8_t>> data, size_t block_bytes);
  void pio_block_done();
  void ata_read_chunk();
  void ata_write_block_done();
  void start_dma();
  bool guest_read(uint64_t address, void* out, size_t length) const;
  bool dma_iovecs(uint64_t length, std::vector<iovec>& iov, bool& longer);
  // ATAPI.
  void packet_received();
  void atapi_read_chunk();
  void atapi_next_block();
  void atapi_complete();
  void atapi_check();
  uint32_t atapi_byte_limit() const;
  // Runs `op` (the I/O of `step`) on the active drive's image; `then` runs on completion
  // unless the command was cancelled (reset, a new command) in between.
  void io(IoStep step, std::function<void(BlockBackend&, BlockBackend::Done)> op, std::function<void(int64_t)> then);
  void use_buffer(std::shared_ptr<std::vector<uint8_t>> buffer);
  void validate(const Saved& saved) const;

  std::array<IdeDrive, 2> drives_;
  const DmaAccess& dma_;
  IdeCounters& counters_;
  IrqLine irq_;
  bool irq_pending_ = false;

  uint8_t device_ = 0, control_ = 0;  // the device (select) and device control registers

  uint8_t bm_command_ = 0, bm_status_ = 0;
  uint32_t prd_table_ = 0;

  Phase phase_ = Phase::kIdle;
  IoStep waiting_for_ = IoStep::kNone;
  int active_ = 0;           // the drive running the command
  uint64_t generation_ = 0;  // bumped when a command ends early; stale I/O completions see it
  std::unique_ptr<Command> command_;
  // The PIO buffer (or an ATAPI reply for DMA): its current DRQ block is [block_start_, end_),
  // moved up to pos_. Each read has its own buffer, kept alive by its I/O until completion, so
  // a cancelled read never writes into a later one's.
  std::shared_ptr<std::vector<uint8_t>> buffer_;
  size_t pos_ = 0, end_ = 0, block_start_ = 0, block_bytes_ = 0;

  // Crash recovery (keep_state_in): the buffer's slots, which slot holds buffer number
  // saved_buffer_ (buffer_number_ counts buffers), and from where the guest wrote into it since.
  std::span<uint8_t> bulk_;
  bool hold_io_ = false;
  std::vector<std::function<void()>> held_io_;
  uint64_t buffer_number_ = 0, saved_buffer_ = 0;
  uint32_t slot_ = 0;
  size_t written_from_ = SIZE_MAX;
};

}  // namespace bulkhead::device
