#include "device-procs/e1000/phy.h"

#include "device-procs/e1000/e1000_regs.h"

namespace bulkhead::device::e1000 {

namespace {
constexpr unsigned kBmcr = 0, kBmsr = 1, kAnar = 4, kAnlpar = 5, k1000tCtrl = 9, k1000tStatus = 10, kPscr = 0x10,
                   kPssr = 0x11, kEpscr = 0x14, kRxErrors = 0x15;
constexpr uint16_t kBmcrReset = 0x8000, kBmcrRestartAn = 0x0200;
constexpr uint16_t kBmsrLink = 0x0004, kBmsrAnComplete = 0x0020;
constexpr uint16_t kPssrLink = 0x0400;
// Registers that keep what the driver writes; other writes are refused (MDIC error).
constexpr bool writable(unsigned r) { return r == kBmcr || r == kAnar || r == k1000tCtrl || r == kPscr || r == kEpscr; }
}  // namespace

void Phy::reset() {
  regs_ = {};
  regs_[kBmcr] = 0x1140;  // auto-negotiation on, 1000 Mb/s, full duplex
  regs_[kBmsr] = 0x796d;  // capabilities, link, auto-negotiation complete
  regs_[2] = 0x0141;      // Marvell
  regs_[3] = 0x0c20;      // M88E1011, revision 0
  regs_[kAnar] = 0x0de1;
  regs_[kAnlpar] = 0x45e0;  // the partner: 10/100 both duplexes, acknowledged
  regs_[k1000tCtrl] = 0x0e00;
  regs_[k1000tStatus] = 0x3c00;  // partner 1000 full, local and remote receivers OK
  regs_[kPscr] = 0x0360;
  regs_[kPssr] = 0xac00;  // 1000, full duplex, resolved, link
  regs_[kEpscr] = 0x0d60;
  set_link(link_);
}

void Phy::set_link(bool up) {
  link_ = up;
  auto flag = [&](unsigned r, uint16_t bits) { regs_[r] = static_cast<uint16_t>(up ? regs_[r] | bits : regs_[r] & ~bits); };
  flag(kBmsr, kBmsrLink | kBmsrAnComplete);
  flag(kPssr, kPssrLink);
}

uint32_t Phy::access(uint32_t mdic) {
  unsigned phy = (mdic >> 21) & 31, r = (mdic >> 16) & 31;
  uint32_t done = (mdic & ~(0xffffu | kMdicError)) | kMdicReady;
  if (phy != kPhyAddress) return done | kMdicError;
  if (mdic & kMdicOpRead) {
    if (r == kRxErrors) return done;  // the receive-error counter: none
    return done | regs_[r];
  }
  if (!(mdic & kMdicOpWrite) || !writable(r)) return done | kMdicError | (mdic & 0xffff);
  uint16_t value = static_cast<uint16_t>(mdic);
  if (r == kBmcr) value &= static_cast<uint16_t>(~(kBmcrReset | kBmcrRestartAn));  // self-clearing
  regs_[r] = value;
  return done | value;
}

}  // namespace bulkhead::device::e1000
