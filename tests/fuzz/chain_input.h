// The input layout fuzz_net_device and fuzz_balloon share (tests/fuzz/make_seeds.py writes
// both): one chain for one of a device's queues, then payload bytes.
//   [queue selector][descriptor count % 9] then per descriptor {gpa le32, length le16, flags}
#pragma once

#include <cstring>
#include <vector>

#include "tests/unit/fake_driver.h"

namespace bulkhead::test {

struct ChainInput {
  uint32_t queue = 0;
  std::vector<vhost_user::Descriptor> chain;  // addresses inside GuestRam
  const uint8_t* rest = nullptr;              // the bytes after the descriptors
  size_t rest_size = 0;
};

// `size` must be at least 2.
inline ChainInput decode_chain_input(const uint8_t* data, size_t size, uint32_t queues) {
  ChainInput input;
  input.queue = data[0] % queues;
  size_t count = data[1] % 9, at = 2;
  for (size_t i = 0; i < count && at + 7 <= size; ++i, at += 7) {
    uint32_t gpa;
    uint16_t length;
    std::memcpy(&gpa, data + at, 4);
    std::memcpy(&length, data + at + 4, 2);
    input.chain.push_back({gpa % GuestRam::kSize, length, static_cast<uint16_t>(data[at + 6] & 7), 0});
  }
  input.rest = data + at;
  input.rest_size = size - at;
  return input;
}

// Makes `chain` available on `ring` (each chain starts 8 slots after the last) and kicks.
inline void publish_chain(DriverQueue& ring, const std::vector<vhost_user::Descriptor>& chain, int kick) {
  if (chain.empty()) return;
  ring.add_chain(static_cast<uint16_t>(ring.avail_idx() * 8 % ring.size()), chain);
  FrontEnd::kick(kick);
}

}  // namespace bulkhead::test
