// The host end of a NIC, the same for every NIC model (virtio-net, e1000): a tap, whose frames
// carry a virtio-net header (IFF_VNET_HDR: checksum and segmentation offloads pass through),
// or the packet socket to the user-mode networking helper (bh-slirp), one plain Ethernet
// frame per message. The device process gets them as descriptors and opens nothing.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "common/unique_fd.h"
#include "ipc/control.pb.h"

namespace bulkhead::device {

// The virtio-net header (virtio 1.x, 5.1.6), as taps read and write it with a 12-byte
// TUNSETVNETHDRSZ.
struct VirtioNetHeader {
  uint8_t flags;
  uint8_t gso_type;
  uint16_t hdr_len;
  uint16_t gso_size;
  uint16_t csum_start;
  uint16_t csum_offset;
  uint16_t num_buffers;
};
static_assert(sizeof(VirtioNetHeader) == 12);
inline constexpr uint8_t kNetHeaderNeedsCsum = 1, kNetHeaderDataValid = 2;
inline constexpr uint8_t kGsoNone = 0, kGsoTcpV4 = 1, kGsoUdp = 3, kGsoTcpV6 = 4, kGsoEcn = 0x80;

// The largest frame either direction carries: 64 KiB of IP plus an Ethernet and VLAN header.
inline constexpr size_t kMaxFrame = 65535 + 14 + 4;

class NetBackend {
 public:
  virtual ~NetBackend() = default;
  // Frames carry a VirtioNetHeader in front (and may be partially checksummed or GSO).
  virtual bool offloads() const = 0;
  virtual size_t queues() const = 0;
  // Readable when frames wait on `queue`.
  virtual int fd(size_t queue) const = 0;
  // Sends one frame (its header first, for a back-end with offloads). False if the host end
  // refused it; the frame is then dropped (and the caller counts it). A host end that cannot
  // take it now keeps it (see congested()).
  virtual bool send(size_t queue, std::span<const iovec> frame) = 0;
  // Frames wait for the host end to take them: the device takes no more from the guest until
  // flush() says they are gone (its fd is writable again: EPOLLOUT).
  virtual bool congested(size_t /*queue*/) const { return false; }
  virtual bool flush(size_t /*queue*/) { return true; }
  // Receives one frame (header first, for a back-end with offloads) into `buffer`; its
  // length, or 0 when none waits.
  virtual size_t receive(size_t queue, std::span<uint8_t> buffer) = 0;
  // Which offloads the guest takes on what it receives (TUN_F_* flags, for a tap).
  virtual void set_guest_offloads(unsigned /*tun_flags*/) {}
};

// From the launcher's description and the descriptors it handed over.
std::unique_ptr<NetBackend> make_net_backend(const ipc::NetBackend& config, std::vector<UniqueFd>& fds);

}  // namespace bulkhead::device
