#include "device-procs/ide/ide_controller.h"

#include <sys/epoll.h>

#include <cstring>

#include "common/error.h"
#include "common/log.h"

namespace bulkhead::device {

namespace {
constexpr char kKind[] = "ide";
constexpr uint16_t kCommandBusMaster = 1u << 2;
// IDETIM (0x40 primary, 0x42 secondary): bit 15 enables the channel's decode. Firmware sets it
// on real machines; ata_piix ignores a channel without it, and there is no firmware here.
constexpr uint16_t kIdetimDecodeEnable = 0x8000;
}  // namespace

IdeController::IdeController(EventLoop& loop, std::array<IdeDrive, 4> drives) : loop_(loop) {
  for (int c = 0; c < 2; ++c) {
    for (int d = 0; d < 2; ++d) {  // each drive has its own image and so its own backend
      IdeDrive& drive = drives[2 * c + d];
      if (!drive.backend) continue;
      watched_.push_back(drive.backend->completion_fd());
      loop_.add(watched_.back(), EPOLLIN, [this, c](uint32_t) {
        channels_[c]->complete_io();
        save_state();
      });
    }
    channels_[c] = std::make_unique<IdeChannel>(std::array<IdeDrive, 2>{std::move(drives[2 * c]), std::move(drives[2 * c + 1])},
                                                dma_, counters_);
  }
  for (uint64_t at : {0x40, 0x42}) {
    config_[at] = static_cast<uint8_t>(kIdetimDecodeEnable);
    config_[at + 1] = static_cast<uint8_t>(kIdetimDecodeEnable >> 8);
  }
}

IdeController::~IdeController() {
  for (int fd : watched_) loop_.remove(fd);
}

legacy::DeviceInfo IdeController::info() const {
  legacy::DeviceInfo info{};
  std::strncpy(info.kind, kKind, sizeof info.kind);
  info.num_regions = 6;
  info.num_irqs = 2;  // IRQ 14, IRQ 15
  info.flags = legacy::kDeviceNeedsGuestMemory | legacy::kDeviceHasPciFunction;
  info.region_size[kPrimaryCommand] = info.region_size[kSecondaryCommand] = 8;
  info.region_size[kPrimaryControl] = info.region_size[kSecondaryControl] = 1;
  info.region_size[kBusMaster] = 16;
  info.region_size[kConfig] = 256;
  info.pci.vendor = 0x8086;
  info.pci.device = 0x7010;  // PIIX3 IDE
  info.pci.class_code = 0x010180;  // IDE, both channels in compatibility mode, bus master
  info.pci.interrupt_pin = 0;      // compatibility mode uses ISA IRQs 14 and 15, not INTx
  info.pci.config_region = kConfig;
  info.pci.bars[4] = {16, static_cast<uint8_t>(legacy::BarKind::kIo), kBusMaster, 0};
  return info;
}

void IdeController::attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) {
  if (index < 2) channels_[index]->irq().attach(loop_, std::move(trigger), std::move(resample));
}

uint64_t IdeController::read(uint8_t region, uint64_t offset, uint8_t size) {
  switch (region) {
    case kPrimaryCommand:
    case kSecondaryCommand:
      return channels_[region / 2]->read_command_block(static_cast<uint8_t>(offset), size);
    case kPrimaryControl:
    case kSecondaryControl:
      return channels_[region / 2]->read_alt_status();
    case kBusMaster:
      return channels_[offset / 8]->read_bus_master(static_cast<uint8_t>(offset % 8), size);
    case kConfig:
      return read_config(offset, size);
    default:
      return ~0ull;
  }
}

void IdeController::write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) {
  switch (region) {
    case kPrimaryCommand:
    case kSecondaryCommand:
      return channels_[region / 2]->write_command_block(static_cast<uint8_t>(offset), size, static_cast<uint32_t>(value));
    case kPrimaryControl:
    case kSecondaryControl:
      return channels_[region / 2]->write_device_control(static_cast<uint8_t>(value));
    case kBusMaster:
      return channels_[offset / 8]->write_bus_master(static_cast<uint8_t>(offset % 8), size, static_cast<uint32_t>(value));
    case kConfig:
      return write_config(offset, size, value);
    default:
      return;
  }
}

// The data port's strings go to the channel in one piece; anything else, item by item.
void IdeController::read_string(uint8_t region, uint64_t offset, uint8_t size, std::span<uint8_t> items) {
  if ((region == kPrimaryCommand || region == kSecondaryCommand) && offset == 0 && (size == 2 || size == 4))
    return channels_[region / 2]->read_data(items);
  LegacyDeviceModel::read_string(region, offset, size, items);
}

void IdeController::write_string(uint8_t region, uint64_t offset, uint8_t size, std::span<const uint8_t> items) {
  if ((region == kPrimaryCommand || region == kSecondaryCommand) && offset == 0 && (size == 2 || size == 4))
    return channels_[region / 2]->write_data(items);
  LegacyDeviceModel::write_string(region, offset, size, items);
}

LegacyDeviceModel::StateLayout IdeController::state_layout() const {
  return {sizeof(Snapshot), 2 * IdeChannel::kBulkBytes};
}

void IdeController::attach_state(StatePage& page) {
  state_ = &page;
  for (size_t c = 0; c < 2; ++c) channels_[c]->keep_state_in(page.bulk().subspan(c * IdeChannel::kBulkBytes));
  std::span<const uint8_t> committed = page.committed();
  if (committed.empty()) return;
  Snapshot snapshot;
  // committed is sizeof(Snapshot) bytes (state_layout()); the channels check what they say.
  std::memcpy(&snapshot, committed.data(), sizeof snapshot);
  if (snapshot.bus_master > 1) throw InputError("the saved IDE state is inconsistent: bus mastering");
  for (size_t c = 0; c < 2; ++c) channels_[c]->restore(snapshot.channels[c]);
  std::memcpy(config_.data(), snapshot.config, config_.size());
  dma_.bus_master = snapshot.bus_master;
  spdlog::info("resuming the IDE state of a previous process");
}

void IdeController::begin_serving() {
  for (auto& channel : channels_) channel->resume();
  save_state();
}

void IdeController::save_state() {
  if (!state_) return;
  Snapshot snapshot{};
  for (size_t c = 0; c < 2; ++c) snapshot.channels[c] = channels_[c]->save();
  std::memcpy(snapshot.config, config_.data(), config_.size());
  snapshot.bus_master = dma_.bus_master;
  // A trivially copyable struct, committed as its bytes.
  state_->commit({reinterpret_cast<const uint8_t*>(&snapshot), sizeof snapshot});
  for (auto& channel : channels_) channel->release_io();
}

uint64_t IdeController::read_config(uint64_t offset, uint8_t size) const {
  uint64_t value = 0;
  if (offset >= legacy::kPciDeviceConfigStart && offset + size <= config_.size())
    std::memcpy(&value, &config_[offset], size);
  return value;
}

void IdeController::write_config(uint64_t offset, uint8_t size, uint64_t value) {
  if (offset == legacy::kPciConfigCommand && size == 2) {
    dma_.bus_master = value & kCommandBusMaster;
    return;
  }
  // Timing registers (IDETIM, SIDETIM, UDMA): stored, read back, no effect on emulated drives.
  if (offset >= legacy::kPciDeviceConfigStart && offset + size <= config_.size())
    std::memcpy(&config_[offset], &value, size);
}

}  // namespace bulkhead::device
