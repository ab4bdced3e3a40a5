#include "device-procs/e1000/eeprom.h"

#include "device-procs/e1000/e1000_regs.h"

namespace bulkhead::device::e1000 {

namespace {
constexpr uint32_t kOpcodeRead = 0b110;
constexpr int kOpcodeAndAddressBits = 3 + 6;
}  // namespace

Eeprom::Eeprom(const std::array<uint8_t, 6>& mac) {
  // The layout QEMU's 82540EM has (and real boards), with our MAC address.
  static constexpr uint16_t kTemplate[kWords] = {
      0x0000, 0x0000, 0x0000, 0x0000, 0xffff, 0x0000, 0x0000, 0x0000, 0x3000, 0x1000, 0x6403, 0x100e, 0x8086,
      0x100e, 0x8086, 0x3040, 0x0008, 0x2000, 0x7e14, 0x0048, 0x1000, 0x00d8, 0x0000, 0x2700, 0x6cc9, 0x3150,
      0x0722, 0x040b, 0x0984, 0x0000, 0xc000, 0x0706, 0x1008, 0x0000, 0x0f04, 0x7fff, 0x4d01, 0xffff, 0xffff,
      0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0100, 0x4000, 0x121c, 0xffff,
      0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0x0000};
  for (int i = 0; i < kWords; ++i) words_[i] = kTemplate[i];
  for (int i = 0; i < 3; ++i) words_[i] = static_cast<uint16_t>(mac[2 * i] | mac[2 * i + 1] << 8);
  uint16_t sum = 0;
  for (int i = 0; i < kWords - 1; ++i) sum = static_cast<uint16_t>(sum + words_[i]);
  words_[kWords - 1] = static_cast<uint16_t>(kChecksumTotal - sum);
}

uint32_t Eeprom::read_eecd() const {
  uint32_t v = (eecd_ & (kEecdSk | kEecdCs | kEecdDi | kEecdReq)) | kEecdPres;
  if (eecd_ & kEecdReq) v |= kEecdGnt;
  if (data_out_) v |= kEecdDo;
  return v;  // SIZE clear: a 64-word part
}

void Eeprom::write_eecd(uint32_t value) {
  bool was_selected = eecd_ & kEecdCs, was_clocked = eecd_ & kEecdSk;
  eecd_ = value;
  bool selected = value & kEecdCs, clock = value & kEecdSk;
  if (!selected || !was_selected) {  // deselected, or a new selection: start over
    shifted_in_ = 0;
    bits_in_ = 0;
    sending_ = false;
    data_out_ = true;  // "ready"
    return;
  }
  if (clock && !was_clocked && !sending_) {  // rising edge: latch a bit from the host
    shifted_in_ = (shifted_in_ << 1) | ((value & kEecdDi) ? 1 : 0);
    if (++bits_in_ == kOpcodeAndAddressBits) {
      if ((shifted_in_ >> 6) == kOpcodeRead) {
        sending_ = true;
        sending_word_ = words_[shifted_in_ & 0x3f];
        bits_left_ = 16;
      }
      shifted_in_ = 0;
      bits_in_ = 0;  // any other opcode (erase/write enable, write) is ignored
    }
  } else if (!clock && was_clocked && sending_) {  // falling edge: the next bit, MSB first
    if (bits_left_ > 0) {
      --bits_left_;
      data_out_ = (sending_word_ >> bits_left_) & 1;
    } else {
      data_out_ = true;
    }
  }
}

void Eeprom::write_eerd(uint32_t value) {
  if (!(value & kEerdStart)) {
    eerd_ = value & ~kEerdDone;
    return;
  }
  unsigned address = (value >> 8) & 0xff;
  eerd_ = (value & 0xff00) | kEerdDone | static_cast<uint32_t>(word(address)) << 16;
}

}  // namespace bulkhead::device::e1000
