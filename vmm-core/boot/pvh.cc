#include "vmm-core/boot/pvh.h"

#include <cstring>

#include "common/error.h"
#include "vmm-core/boot/layout.h"

namespace bulkhead::core {

namespace {

constexpr size_t kMaxProgramHeaders = 128;
constexpr uint64_t kMaxNoteSegment = 64 * 1024;

// Walks the notes of one PT_NOTE segment; returns the PVH entry or 0.
uint32_t find_pvh_note(const std::vector<uint8_t>& notes) {
  size_t pos = 0;
  auto align4 = [](uint64_t v) { return (v + 3) & ~3ull; };
  while (pos + 12 <= notes.size()) {
    uint32_t namesz, descsz, type;
    std::memcpy(&namesz, &notes[pos], 4);
    std::memcpy(&descsz, &notes[pos + 4], 4);
    std::memcpy(&type, &notes[pos + 8], 4);
    uint64_t name_at = pos + 12;
    uint64_t desc_at = name_at + align4(namesz);
    uint64_t next = desc_at + align4(descsz);
    if (next > notes.size()) throw InputError("kernel ELF has a malformed note");
    if (type == kXenElfnotePhys32Entry && namesz == 4 && std::memcmp(&notes[name_at], "Xen", 4) == 0) {
      uint64_t entry = 0;
      if (descsz == 4 || descsz == 8) std::memcpy(&entry, &notes[desc_at], descsz);
      if (entry == 0 || entry >= k4GiB) throw InputError("kernel's PVH entry note holds an invalid address");
      return static_cast<uint32_t>(entry);
    }
    pos = next;
  }
  return 0;
}

}  // namespace

PvhElf read_pvh_elf(int fd) {
  uint64_t size = file_size(fd, "kernel");
  Elf64_Ehdr eh;
  if (size < sizeof eh) throw InputError("kernel ELF header is truncated");
  read_at(fd, &eh, sizeof eh, 0, "kernel");
  if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB || eh.e_machine != EM_X86_64)
    throw InputError("kernel ELF is not a 64-bit little-endian x86-64 image");
  if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phnum > kMaxProgramHeaders)
    throw InputError("kernel ELF has an unusable program header table");
  if (eh.e_phoff > size || eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff)
    throw InputError("kernel ELF program headers lie outside the file");
  std::vector<Elf64_Phdr> phdrs(eh.e_phnum);
  read_at(fd, phdrs.data(), phdrs.size() * sizeof(Elf64_Phdr), eh.e_phoff, "kernel program headers");

  PvhElf elf{{}, 0};
  for (const Elf64_Phdr& ph : phdrs) {
    if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset) throw InputError("kernel ELF segment lies outside the file");
    if (ph.p_type == PT_LOAD) {
      if (ph.p_filesz > ph.p_memsz) throw InputError("kernel ELF segment's file size exceeds its memory size");
      elf.loads.push_back(ph);
    } else if (ph.p_type == PT_NOTE && !elf.entry) {
      if (ph.p_filesz > kMaxNoteSegment) throw InputError("kernel ELF note segment is too large");
      std::vector<uint8_t> notes(ph.p_filesz);
      read_at(fd, notes.data(), notes.size(), ph.p_offset, "kernel notes");
      elf.entry = find_pvh_note(notes);
    }
  }
  if (!elf.entry) throw InputError("kernel ELF has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); it cannot be booted");
  if (elf.loads.empty()) throw InputError("kernel ELF has no loadable segments");
  return elf;
}

BootEntry load_pvh_elf(const BootInputs& in, const GuestMemory& memory) {
  PvhElf elf = read_pvh_elf(in.kernel_fd);
  uint64_t kernel_end = 0;
  for (const Elf64_Phdr& ph : elf.loads) {
    if (ph.p_paddr < kHighMemoryStart) throw InputError("kernel ELF segment below 1 MiB collides with boot data");
    uint8_t* host = memory.require_range(ph.p_paddr, ph.p_memsz, "kernel ELF segment");
    read_at(in.kernel_fd, host, ph.p_filesz, ph.p_offset, "kernel segment");
    memory.zero(ph.p_paddr + ph.p_filesz, ph.p_memsz - ph.p_filesz, "kernel ELF segment's zeroed part");
    kernel_end = std::max(kernel_end, ph.p_paddr + ph.p_memsz);
  }
  memory.require_range(elf.entry, 1, "PVH entry point");

  HvmStartInfo info{};
  info.magic = kHvmStartMagic;
  info.version = 1;
  info.cmdline_paddr = kCmdlineAddr;
  info.rsdp_paddr = in.rsdp_address;
  if (in.initrd_fd >= 0) {
    HvmModlistEntry module{};
    module.paddr = load_initrd(in.initrd_fd, kernel_end, k4GiB, memory, &module.size);
    memory.write(kPvhModlistAddr, {reinterpret_cast<const uint8_t*>(&module), sizeof module}, "PVH module list");
    info.nr_modules = 1;
    info.modlist_paddr = kPvhModlistAddr;
  }
  std::vector<HvmMemmapEntry> memmap;
  for (const MemoryMapEntry& e : in.memory_map) memmap.push_back({e.address, e.size, static_cast<uint32_t>(e.type), 0});
  memory.write(kPvhMemmapAddr, {reinterpret_cast<const uint8_t*>(memmap.data()), memmap.size() * sizeof(HvmMemmapEntry)},
               "PVH memory map");
  info.memmap_paddr = kPvhMemmapAddr;
  info.memmap_entries = static_cast<uint32_t>(memmap.size());
  memory.write(kPvhStartInfoAddr, {reinterpret_cast<const uint8_t*>(&info), sizeof info}, "PVH start info");
  return {BootEntry::Mode::kProtected32, elf.entry, kPvhStartInfoAddr, 0};
}

}  // namespace bulkhead::core
