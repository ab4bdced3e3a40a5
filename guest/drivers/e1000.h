// An Intel 82540EM driver (polling), for the e1000 scenarios: reset through the I/O BAR as
// Linux does it, the MAC from the EEPROM (bit-banged like Linux, and through EERD), the PHY
// through MDIC, and rings of legacy descriptors; raw descriptors for hostile inputs.
#pragma once

#include <stdint.h>

#include "drivers/pci.h"

namespace guest {

class E1000Driver {
 public:
  static constexpr uint16_t kVendor = 0x8086, kDevice = 0x100e;
  static constexpr uint16_t kRing = 64;
  static constexpr uint32_t kBuffer = 2048;
  struct Descriptor {
    uint64_t address;
    uint16_t length;
    uint8_t cso, command, status, css;
    uint16_t special;
  };

  bool init();
  const uint8_t* mac() const { return mac_; }
  const PciFunction& function() const { return fn_; }
  uint32_t reg(uint32_t offset) const;
  void set(uint32_t offset, uint32_t value);
  // Register access through IOADDR/IODATA.
  uint32_t io_read(uint32_t offset);
  void io_write(uint32_t offset, uint32_t value);
  uint16_t eeprom_microwire(uint8_t word);
  uint16_t eeprom_eerd(uint8_t word);
  // A PHY register; *error set if MDIC reports one.
  uint16_t phy_read(uint8_t phy, uint8_t reg, bool* error);
  bool link_up();

  // Sends one frame in one legacy descriptor and waits until the device is done with it.
  bool send(const void* frame, uint32_t length);
  // Puts `count` descriptors on the ring as given and moves the tail past them; waits up to
  // `timeout_us` for the head to catch up. False if it did not.
  bool send_descriptors(const Descriptor* d, int count, uint64_t timeout_us, uint64_t tsc_per_us);
  // Pipelined (benchmarks): queues a frame without waiting; reap() returns how many finished.
  bool submit(const void* frame, uint32_t length);
  int reap();
  // The next received frame (without FCS), 0 if none waits.
  uint32_t receive(uint8_t* out, uint32_t size);
  // Back to the rings init() made, after a test pointed the device elsewhere.
  void restart_rings();

 private:
  void eecd_bit(uint32_t eecd, bool bit);
  PciFunction fn_{};
  uint64_t regs_ = 0;
  uint16_t io_ = 0;
  uint8_t mac_[6] = {};
  Descriptor* tx_ = nullptr;
  Descriptor* rx_ = nullptr;
  uint8_t* rx_buffers_ = nullptr;
  static constexpr uint16_t kReturnBatch = 16;
  uint16_t tx_tail_ = 0, tx_clean_ = 0, rx_next_ = 0, rx_unreturned_ = 0;
};

}  // namespace guest
