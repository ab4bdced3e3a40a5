// The virtio device types Bulkhead attaches, in one table: the device ID, the name the
// command line uses, the PCI class the transport presents, and how much configuration space
// the core exposes (what Linux's driver reads).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace bulkhead::vhost_user {

struct VirtioType {
  uint16_t id;
  std::string_view name;
  uint32_t pci_class;    // base class << 16 | subclass << 8
  uint32_t config_size;  // bytes of device configuration
  uint16_t default_queues;  // when the back-end does not say (no MQ protocol feature)
};

inline constexpr VirtioType kVirtioTypes[] = {
    {1, "net", 0x020000, 12, 2},       // mac, status, max_virtqueue_pairs, mtu
    {2, "blk", 0x010000, 60, 1},       // up to write_zeroes_may_unmap
    {5, "balloon", 0x050000, 16, 2},   // num_pages, actual, free_page_hint_cmd_id, poison_val
    {8, "scsi", 0x010000, 36, 3},      // mass storage, as QEMU presents virtio-scsi too
};

inline std::optional<VirtioType> virtio_type(uint16_t id) {
  for (const VirtioType& t : kVirtioTypes)
    if (t.id == id) return t;
  return std::nullopt;
}
inline std::optional<VirtioType> virtio_type(std::string_view name) {
  for (const VirtioType& t : kVirtioTypes)
    if (t.name == name) return t;
  return std::nullopt;
}

}  // namespace bulkhead::vhost_user
