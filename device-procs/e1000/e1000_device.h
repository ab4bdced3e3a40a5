// An Intel 82540EM ("e1000", 8086:100E) behind the legacy device protocol: its registers in
// a 128 KiB memory BAR and through IOADDR/IODATA in an I/O BAR, the EEPROM and PHY, level
// INTx with interrupt throttling, and transmit and receive rings in guest memory, in front of
// the same host ends as virtio-net (NetBackend: user-mode networking or a tap).
//
// Guest input is hostile: every ring index is checked against its ring, every walk over a
// ring is bounded by its size, a packet being gathered is bounded (64 KiB plus headers) and
// dropped whole when it overflows, offload offsets are checked against the frame, frames
// longer than the receive limits are dropped (QEMU CVE-2012-6075), descriptors and buffers
// are reached only in guest RAM (a ring or buffer pointed at a BAR, this device's own
// included, is refused: CVE-2021-3416 class), and a register write during a transmit pass
// cannot start another (CVE-2021-20257 class).
#pragma once

#include <array>
#include <memory>
#include <span>
#include <vector>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "device-procs/common/irq_line.h"
#include "device-procs/common/legacy_device_server.h"
#include "device-procs/common/net_backend.h"
#include "device-procs/e1000/e1000_regs.h"
#include "device-procs/e1000/eeprom.h"
#include "device-procs/e1000/offload.h"
#include "device-procs/e1000/phy.h"

namespace bulkhead::device {

class E1000Device : public LegacyDeviceModel {
 public:
  static constexpr const char* kKind = "e1000";
  static constexpr uint8_t kRegisters = 0, kIoPorts = 1, kConfig = 2;
  // The largest packet a transmit ring may gather: a TSO packet of 64 KiB and its headers.
  static constexpr size_t kMaxTxPacket = 65536 + 256;
  // Frames the device receives at most: without LPE 1518 bytes (1522 tagged), with it 16 KiB.
  static constexpr size_t kMaxFrame = 1518, kMaxLongFrame = 16384 - 4;

  // What the guest did wrong and what the host end refused, dropped and counted.
  struct Counters {
    uint64_t tx_frames = 0, tx_bytes = 0, rx_frames = 0, rx_bytes = 0;
    uint64_t tx_overflow = 0;     // packets beyond kMaxTxPacket
    uint64_t tx_bad_offload = 0;  // offsets or segment sizes that do not fit the packet
    uint64_t tx_refused = 0;      // the host end did not take the frame
    uint64_t dma_refused = 0;     // descriptors or buffers outside guest RAM
    uint64_t ring_invalid = 0;    // heads or tails outside their rings
    uint64_t rx_oversize = 0;     // frames beyond the receive limits
    uint64_t rx_filtered = 0;     // not for this NIC
  };

  E1000Device(EventLoop& loop, std::unique_ptr<NetBackend> backend, const std::array<uint8_t, 6>& mac);
  ~E1000Device() override;

  legacy::DeviceInfo info() const override;
  uint64_t read(uint8_t region, uint64_t offset, uint8_t size) override;
  void write(uint8_t region, uint64_t offset, uint8_t size, uint64_t value) override;
  void attach_irq(uint32_t index, UniqueFd trigger, UniqueFd resample) override;
  void attach_memory(const vhost_user::MemoryMap& memory) override { memory_ = &memory; }

  const Counters& counters() const { return counters_; }
  bool interrupt_level() const { return intx_.level(); }
  // The host end went away (or came back): the link follows, with a link-status interrupt.
  void set_link(bool up);

 private:
  struct TxPacket {
    std::vector<uint8_t> bytes;
    bool overflow = false;  // beyond kMaxTxPacket
    bool unreadable = false;  // a buffer outside guest RAM
    bool tse = false, ip_checksum = false, l4_checksum = false, vlan = false;
    uint16_t vlan_tag = 0;
    bool started = false;
    // Legacy descriptors' checksum (IC): start from the first, offset from the last.
    bool legacy_checksum = false;
    uint8_t legacy_start = 0, legacy_offset = 0;
  };

  uint32_t reg_read(uint32_t offset);
  void reg_write(uint32_t offset, uint32_t value);
  uint32_t& reg(uint32_t offset) { return regs_[(offset % e1000::kRegisterSpace) / 4]; }
  uint32_t reg(uint32_t offset) const { return regs_[(offset % e1000::kRegisterSpace) / 4]; }
  void reset();

  // Interrupts: ICR causes, the IMS mask, and ITR's minimum interval between assertions.
  void raise(uint32_t causes);
  void update_interrupt();
  void on_throttle_timer();

  // DMA within guest RAM only, and only while the guest lets the device master the bus.
  bool dma_read(uint64_t gpa, void* out, size_t length);
  bool dma_write(uint64_t gpa, const void* in, size_t length);

  void transmit();
  void transmit_descriptor(const uint8_t* descriptor);
  void finish_packet();
  void send_packet();
  void send_frame(std::span<uint8_t> frame);

  // Receiving: frames wait in `rx_frame_` until the ring has room for them.
  void receive();
  bool deliver(std::span<const uint8_t> frame);
  bool accepts(std::span<const uint8_t> frame) const;
  uint32_t rx_buffer_size() const;
  uint32_t ring_size(uint32_t length_register) const;
  void watch_backend(bool on);
  void update_events();
  void count_frame(uint32_t packets, uint32_t octets_low, uint32_t size_bins, std::span<const uint8_t> frame);

  EventLoop& loop_;
  std::unique_ptr<NetBackend> backend_;
  const std::array<uint8_t, 6> mac_;
  const vhost_user::MemoryMap* memory_ = nullptr;
  std::vector<vhost_user::HostRange> dma_ranges_;  // reused by every DMA
  IrqLine intx_;
  UniqueFd throttle_timer_;
  bool throttled_ = false;

  std::vector<uint32_t> regs_;
  e1000::Eeprom eeprom_;
  e1000::Phy phy_;
  uint32_t io_address_ = 0;
  uint16_t pci_command_ = 0;
  e1000::OffloadContext tso_context_, checksum_context_;
  TxPacket packet_;
  bool transmitting_ = false;  // a transmit pass is running: TDT writes from it only note more work
  bool tx_pending_ = false;
  std::vector<uint8_t> rx_frame_;
  size_t rx_length_ = 0;
  bool watching_ = true;    // frames are read from the host end (EPOLLIN)
  bool congested_ = false;  // transmits wait for it to drain (EPOLLOUT)
  Counters counters_;
};

}  // namespace bulkhead::device
