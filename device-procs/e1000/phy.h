// The 82540EM's PHY (a Marvell M88E1011, at address 1 on MDIO), as Linux's e1000 sees it
// through MDIC: its IDs, a 1000/full link whose state the NIC sets, auto-negotiation that
// completes at once, and the registers Linux reads and writes. Accesses complete at once.
#pragma once

#include <array>
#include <cstdint>

namespace bulkhead::device::e1000 {

class Phy {
 public:
  Phy() { reset(); }
  void reset();
  // MDIC: a write starts a read or a write; the value it leaves to be read back.
  uint32_t access(uint32_t mdic);
  void set_link(bool up);
  bool link() const { return link_; }
  uint16_t reg(unsigned index) const { return regs_[index & 31]; }

 private:
  std::array<uint16_t, 32> regs_{};
  bool link_ = true;
};

}  // namespace bulkhead::device::e1000
