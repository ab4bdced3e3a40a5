// libFuzzer: hostile SCSI commands. The input is a CDB (up to 32 bytes) and a data-out
// buffer; the disk must answer every command and never write beyond the data-in buffer.
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <optional>

#include "device-procs/virtio-scsi/scsi_disk.h"

using namespace bulkhead;
using namespace bulkhead::device;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static BlockBackend backend = [] {
    UniqueFd image(::memfd_create("fuzz-disk", MFD_CLOEXEC));
    if (!image || ::ftruncate(image.get(), 1 << 20) != 0) __builtin_trap();
    return BlockBackend(std::move(image), 1 << 20);
  }();
  static ScsiDisk disk(backend, {false, "FUZZ"});
  if (size < 1) return 0;
  size_t cdb_len = std::min<size_t>(data[0] % 33, size - 1);
  std::vector<uint8_t> cdb(data + 1, data + 1 + cdb_len);
  std::vector<uint8_t> out(data + 1 + cdb_len, data + size);
  std::vector<uint8_t> in(4096 + 16, 0x5a);  // 16 guard bytes after what the disk may use
  vhost_user::GuestBuffers data_out(std::vector<vhost_user::HostRange>{{out.data(), out.size()}});
  vhost_user::GuestBuffers data_in(std::vector<vhost_user::HostRange>{{in.data(), 4096}});
  std::optional<scsi::Result> result;
  disk.execute(cdb, data_out, data_in, [&](const scsi::Result& r) { result = r; });
  backend.submit();
  backend.wait_all();
  if (!result || result->data_in > 4096) __builtin_trap();
  for (size_t i = 4096; i < in.size(); ++i)
    if (in[i] != 0x5a) __builtin_trap();
  return 0;
}
