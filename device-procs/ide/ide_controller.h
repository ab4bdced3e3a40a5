// The PIIX3 IDE function (8086:7010) in compatibility mode, as Linux's ata_piix drives it:
// two channels at the legacy ports (0x1f0-0x1f7 and 0x3f6 on ISA IRQ 14, 0x170-0x177 and 0x376
// on IRQ 15) and the bus-master DMA engine in BAR4. Up to four drives: ATA disks and ATAPI
// CD-ROMs, each on its image, read and written through the block backend virtio-scsi uses.
//
// Its state (both channels, their PIO buffers and the configuration space) lives in the core's
// state page, so a process started after a crash resumes every command where the last commit
// left it: image I/O and DMA begin only once the state that asks for them is committed, and a
// restarted process issues again what that state was waiting for. Reads and writes of the
// same sectors from the same guest buffers are idempotent, so the guest sees a command take
// longer, never an error. At most one interrupt is spurious (raised before the commit, then
// raised again by the new process).
#pragma once

#include <array>
#include <memory>
#include <type_traits>

#include "common/event_loop.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/ide/ide_channel.h"

namespace bulkhead::device {

class IdeController : public LegacyDeviceModel {
 public:
  // Register windows, as the device table's slot places them.
  enum Region : uint8_t {
    kPrimaryCommand = 0,
    kPrimaryControl = 1,
    kSecondaryCommand = 2,
    kSecondaryControl = 3,
    kBusMaster = 4,
    kConfig = 5,
  };
  static constexpr uint32_t kPrimaryIrq = 14, kSecondaryIrq = 15;

  // `drives`: primary master, primary slave, secondary master, secondary slave.
  IdeController(EventLoop& loop, std::array<IdeDrive, 4> drives);
  ~IdeController() override;

  legacy::DeviceInfo info() const override;
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size) override;
  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) override;
  void read_string(uint8_t region, uint64_t offset, uint8_t size, std::span<uint8_t> items) override;
  void write_string(uint8_t region, uint64_t offset, uint8_t size, std::span<const uint8_t> items) override;
  void attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) override;
  void attach_memory(const vhost_user::MemoryMap& memory) override { dma_.memory = &memory; }
  void begin_serving() override;
  StateLayout state_layout() const override;
  void attach_state(StatePage& page) override;
  void save_state() override;

  const IdeCounters& counters() const { return counters_; }

 private:
  uint64_t read_config(uint64_t offset, uint8_t size) const;
  void write_config(uint64_t offset, uint8_t size, uint64_t value);

  // What the state page's snapshot holds; the channels' buffers are in its bulk area.
  struct Snapshot {
    IdeChannel::Saved channels[2];
    uint8_t config[256];
    uint8_t bus_master;
  };
  static_assert(std::is_trivially_copyable_v<Snapshot>);

  EventLoop& loop_;
  DmaAccess dma_;
  IdeCounters counters_;
  std::array<std::unique_ptr<IdeChannel>, 2> channels_;
  std::vector<int> watched_;  // completion fds on the loop
  std::array<uint8_t, 256> config_{};  // device-specific configuration space (0x40-0xff)
  StatePage* state_ = nullptr;
};

}  // namespace bulkhead::device
