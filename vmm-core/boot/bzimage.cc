#include "vmm-core/boot/bzimage.h"

#include <cstring>

#include "common/error.h"
#include "vmm-core/boot/layout.h"

namespace bulkhead::core {

namespace {

constexpr uint16_t kMinimumVersion = 0x020c;  // 2.12: xloadflags, 64-bit entry
constexpr uint16_t kXlfKernel64 = 1 << 0;
constexpr uint8_t kLoadedHigh = 1 << 0;
constexpr uint8_t kCanUseHeap = 1 << 7;
constexpr uint64_t kEntry64Offset = 0x200;

template <typename T>
T field(const uint8_t* header, size_t offset) {
  T value;
  std::memcpy(&value, header + offset, sizeof value);
  return value;
}

template <typename T>
void put(uint8_t* page, size_t offset, T value) {
  std::memcpy(page + offset, &value, sizeof value);
}

}  // namespace

BzImage read_bzimage(int fd) {
  uint64_t size = file_size(fd, "kernel");
  uint8_t head[0x400] = {};
  if (size < sizeof head) throw InputError("bzImage is truncated");
  read_at(fd, head, sizeof head, 0, "kernel");
  BzImage image{};
  image.version = field<uint16_t>(head, 0x206);
  if (image.version < kMinimumVersion)
    throw InputError("bzImage uses boot protocol " + std::to_string(image.version >> 8) + "." +
                     std::to_string(image.version & 0xff) + "; 2.12 or newer is required");
  if (!(field<uint16_t>(head, 0x236) & kXlfKernel64)) throw InputError("bzImage has no 64-bit entry point");
  if (!(head[0x211] & kLoadedHigh)) throw InputError("bzImage is a zImage (loads low); not supported");
  uint64_t setup_sectors = head[0x1f1] ? head[0x1f1] : 4;
  image.payload_offset = (setup_sectors + 1) * 512;
  if (image.payload_offset >= size) throw InputError("bzImage has no protected-mode kernel after its setup code");
  image.payload_size = size - image.payload_offset;
  size_t header_end = 0x202 + head[0x201];  // the header ends where its jump instruction lands
  header_end = std::min<size_t>(header_end, zero_page::kE820Table);
  image.setup_header.assign(head + zero_page::kSetupHeader, head + header_end);
  image.load_address = field<uint64_t>(head, 0x258);
  if (image.load_address < kHighMemoryStart) image.load_address = kHighMemoryStart;
  image.init_size = field<uint32_t>(head, 0x260);
  image.initrd_addr_max = field<uint32_t>(head, 0x22c);
  image.cmdline_size = field<uint32_t>(head, 0x238);
  if (image.init_size < image.payload_size) image.init_size = static_cast<uint32_t>(image.payload_size);
  return image;
}

BootEntry load_bzimage(const BootInputs& in, const GuestMemory& memory) {
  BzImage image = read_bzimage(in.kernel_fd);
  if (in.cmdline.size() > image.cmdline_size)
    throw InputError("kernel command line is " + std::to_string(in.cmdline.size()) + " bytes; this kernel takes at most " +
                     std::to_string(image.cmdline_size));
  uint64_t kernel_end = image.load_address + image.init_size;
  if (kernel_end > memory.low_end())
    throw InputError("this kernel needs " + std::to_string((kernel_end >> 20) + 1) + " MiB of memory to boot; give the VM more --memory");
  read_at(in.kernel_fd, memory.require_range(image.load_address, image.payload_size, "kernel"), image.payload_size,
          image.payload_offset, "kernel");

  uint8_t* page = memory.require_range(kZeroPageAddr, 4096, "boot_params");
  std::memset(page, 0, 4096);
  std::memcpy(page + zero_page::kSetupHeader, image.setup_header.data(), image.setup_header.size());
  page[zero_page::kTypeOfLoader] = 0xff;
  page[zero_page::kLoadFlags] |= kCanUseHeap;
  put<uint16_t>(page, zero_page::kHeapEndPtr, 0xfe00);
  put<uint32_t>(page, zero_page::kCode32Start, static_cast<uint32_t>(image.load_address));
  put<uint32_t>(page, zero_page::kCmdLinePtr, static_cast<uint32_t>(kCmdlineAddr));
  put<uint64_t>(page, zero_page::kAcpiRsdpAddr, in.rsdp_address);
  if (in.initrd_fd >= 0) {
    uint64_t initrd_size;
    uint64_t initrd = load_initrd(in.initrd_fd, kernel_end, uint64_t{image.initrd_addr_max} + 1, memory, &initrd_size);
    put<uint32_t>(page, zero_page::kRamdiskImage, static_cast<uint32_t>(initrd));
    put<uint32_t>(page, zero_page::kRamdiskSize, static_cast<uint32_t>(initrd_size));
  }
  if (in.memory_map.size() > zero_page::kE820MaxEntries) throw InputError("memory map has too many entries");
  page[zero_page::kE820Entries] = static_cast<uint8_t>(in.memory_map.size());
  for (size_t i = 0; i < in.memory_map.size(); ++i) {
    uint8_t* entry = page + zero_page::kE820Table + i * zero_page::kE820EntrySize;
    put<uint64_t>(entry, 0, in.memory_map[i].address);
    put<uint64_t>(entry, 8, in.memory_map[i].size);
    put<uint32_t>(entry, 16, static_cast<uint32_t>(in.memory_map[i].type));
  }

  // Identity map of the first 4 GiB with 2 MiB pages, as the 64-bit entry requires.
  constexpr uint64_t kPresentWritable = 0x3, kLargePage = 0x80;
  auto* tables = reinterpret_cast<uint64_t*>(memory.require_range(kPageTablesAddr, 6 * 4096, "boot page tables"));
  std::memset(tables, 0, 6 * 4096);
  tables[0] = (kPageTablesAddr + 0x1000) | kPresentWritable;  // PML4[0] -> PDPT
  for (uint64_t i = 0; i < 4; ++i) {
    tables[512 + i] = (kPageTablesAddr + 0x2000 + i * 0x1000) | kPresentWritable;  // PDPT[i] -> PD i
    for (uint64_t j = 0; j < 512; ++j)
      tables[1024 + i * 512 + j] = ((i * 512 + j) << 21) | kPresentWritable | kLargePage;
  }
  return {BootEntry::Mode::kLong64, image.load_address + kEntry64Offset, 0, kZeroPageAddr};
}

}  // namespace bulkhead::core
