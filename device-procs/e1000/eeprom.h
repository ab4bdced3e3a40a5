// The 82540EM's 64-word Microwire EEPROM, as Linux's e1000 reads it: bit-banged through EECD
// (opcode 110b, a 6-bit address, 16 data bits MSB first), or a word at a time through EERD.
// It holds the MAC address and a checksum word that makes the 64 words sum to 0xBABA. Writes
// (ethtool -E) are not kept: the image is the launcher's.
#pragma once

#include <array>
#include <cstdint>

namespace bulkhead::device::e1000 {

class Eeprom {
 public:
  static constexpr int kWords = 64;
  static constexpr uint16_t kChecksumTotal = 0xbaba;

  explicit Eeprom(const std::array<uint8_t, 6>& mac);

  // EECD: the value last written (clock, chip select, data in, request), data out, present,
  // and the grant whenever requested.
  uint32_t read_eecd() const;
  void write_eecd(uint32_t value);
  // EERD: a write with START reads the addressed word at once.
  uint32_t read_eerd() const { return eerd_; }
  void write_eerd(uint32_t value);
  uint16_t word(unsigned index) const { return words_[index % kWords]; }

 private:
  std::array<uint16_t, kWords> words_{};
  uint32_t eecd_ = 0, eerd_ = 0;
  // The Microwire shift state: bits latched since chip select rose, and the word being sent.
  uint32_t shifted_in_ = 0;
  int bits_in_ = 0;
  bool sending_ = false;
  uint16_t sending_word_ = 0;
  int bits_left_ = 0;
  bool data_out_ = true;
};

}  // namespace bulkhead::device::e1000
