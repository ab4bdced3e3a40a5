// PVH ELF loading: placement, start_info contents, and hostile images.
#include "vmm-core/boot/pvh.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/unit/test_files.h"
#include "vmm-core/boot/layout.h"

namespace bulkhead::core {
namespace {

using test::get;
using test::memory_file;
using test::put;

constexpr uint64_t kLoadAddr = 0x100000;
constexpr uint32_t kEntry = 0x100040;

struct ElfSpec {
  uint64_t paddr = kLoadAddr;
  uint64_t filesz = 0x200;
  uint64_t memsz = 0x3000;
  bool with_note = true;
  uint32_t note_type = kXenElfnotePhys32Entry;
  uint64_t entry = kEntry;
  uint32_t desc_size = 8;
  uint8_t elf_class = ELFCLASS64;
};

std::vector<uint8_t> make_elf(const ElfSpec& spec) {
  std::vector<uint8_t> f(0x1000 + spec.filesz, 0);
  Elf64_Ehdr eh{};
  std::memcpy(eh.e_ident, ELFMAG, SELFMAG);
  eh.e_ident[EI_CLASS] = spec.elf_class;
  eh.e_ident[EI_DATA] = ELFDATA2LSB;
  eh.e_machine = EM_X86_64;
  eh.e_phoff = sizeof eh;
  eh.e_phentsize = sizeof(Elf64_Phdr);
  eh.e_phnum = spec.with_note ? 2 : 1;
  put(f, 0, eh);
  Elf64_Phdr load{};
  load.p_type = PT_LOAD;
  load.p_offset = 0x1000;
  load.p_paddr = spec.paddr;
  load.p_filesz = spec.filesz;
  load.p_memsz = spec.memsz;
  put(f, sizeof eh, load);
  for (uint64_t i = 0; i < spec.filesz; ++i) f[0x1000 + i] = static_cast<uint8_t>(i + 1);
  if (spec.with_note) {
    Elf64_Phdr note{};
    note.p_type = PT_NOTE;
    note.p_offset = 0x800;
    note.p_filesz = 12 + 4 + spec.desc_size;
    put(f, sizeof eh + sizeof load, note);
    put<uint32_t>(f, 0x800, 4);
    put<uint32_t>(f, 0x804, spec.desc_size);
    put<uint32_t>(f, 0x808, spec.note_type);
    std::memcpy(&f[0x80c], "Xen", 4);
    if (spec.desc_size == 8) put<uint64_t>(f, 0x810, spec.entry);
    else put<uint32_t>(f, 0x810, static_cast<uint32_t>(spec.entry));
  }
  return f;
}

class PvhLoaderTest : public ::testing::Test {
 protected:
  GuestMemory memory{64 << 20};
  BootEntry load(const std::vector<uint8_t>& file, int initrd_fd = -1, std::string cmdline = "console=ttyS0") {
    UniqueFd fd = memory_file(file);
    BootInputs in{fd.get(), initrd_fd, cmdline, build_memory_map(memory), 0xe0000};
    write_cmdline(cmdline, memory);
    return load_pvh_elf(in, memory);
  }
};

TEST_F(PvhLoaderTest, LoadsSegmentsAndZeroesBss) {
  memory.host_range(kLoadAddr + 0x200, 1)[0] = 0xcc;  // garbage where BSS goes
  BootEntry entry = load(make_elf({}));
  EXPECT_EQ(entry.mode, BootEntry::Mode::kProtected32);
  EXPECT_EQ(entry.rip, kEntry);
  EXPECT_EQ(entry.rbx, kPvhStartInfoAddr);
  const uint8_t* host = memory.host_range(kLoadAddr, 0x3000);
  EXPECT_EQ(host[0], 1);
  EXPECT_EQ(host[0x1ff], 0x200 & 0xff);
  EXPECT_EQ(host[0x200], 0) << "p_memsz beyond p_filesz is zeroed";
}

TEST_F(PvhLoaderTest, StartInfoDescribesCmdlineMemoryAndAcpi) {
  load(make_elf({}), -1, "hello smp");
  auto info = get<HvmStartInfo>(memory.host_range(kPvhStartInfoAddr, sizeof(HvmStartInfo)));
  EXPECT_EQ(info.magic, kHvmStartMagic);
  EXPECT_EQ(info.version, 1u);
  EXPECT_EQ(info.nr_modules, 0u);
  EXPECT_EQ(info.rsdp_paddr, 0xe0000u);
  EXPECT_STREQ(reinterpret_cast<const char*>(memory.host_range(info.cmdline_paddr, 10)), "hello smp");
  ASSERT_GE(info.memmap_entries, 3u);
  uint64_t ram = 0;
  for (uint32_t i = 0; i < info.memmap_entries; ++i) {
    auto e = get<HvmMemmapEntry>(memory.host_range(info.memmap_paddr + i * sizeof(HvmMemmapEntry), sizeof(HvmMemmapEntry)));
    if (e.type == 1) ram += e.size;
  }
  EXPECT_EQ(ram, (64ull << 20) - 0x100000 + 0x9fc00) << "all RAM but the BIOS hole is usable";
}

TEST_F(PvhLoaderTest, InitrdBecomesTheOnlyModuleAtTheTopOfLowMemory) {
  std::vector<uint8_t> initrd(10000, 0x5a);
  UniqueFd initrd_fd = memory_file(initrd);
  load(make_elf({}), initrd_fd.get());
  auto info = get<HvmStartInfo>(memory.host_range(kPvhStartInfoAddr, sizeof(HvmStartInfo)));
  ASSERT_EQ(info.nr_modules, 1u);
  auto module = get<HvmModlistEntry>(memory.host_range(info.modlist_paddr, sizeof(HvmModlistEntry)));
  EXPECT_EQ(module.size, 10000u);
  EXPECT_EQ(module.paddr % 4096, 0u);
  EXPECT_LE(module.paddr + module.size, 64ull << 20);
  EXPECT_GT(module.paddr, kLoadAddr + 0x3000);
  EXPECT_EQ(memory.host_range(module.paddr, 1)[0], 0x5a);
}

TEST_F(PvhLoaderTest, FourByteEntryNoteIsAccepted) {
  EXPECT_EQ(load(make_elf({.desc_size = 4})).rip, kEntry);
}

TEST_F(PvhLoaderTest, RejectsImagesWithoutAPvhNote) {
  EXPECT_THROW(load(make_elf({.with_note = false})), InputError);
  EXPECT_THROW(load(make_elf({.note_type = 5})), InputError);
  EXPECT_THROW(load(make_elf({.entry = 0})), InputError);
  EXPECT_THROW(load(make_elf({.entry = 1ull << 33})), InputError);
}

TEST_F(PvhLoaderTest, RejectsSegmentsOutsideRamOrBelowOneMiB) {
  EXPECT_THROW(load(make_elf({.paddr = 63ull << 20, .memsz = 2ull << 20})), InputError);
  EXPECT_THROW(load(make_elf({.paddr = 0x8000})), InputError);
  EXPECT_THROW(load(make_elf({.paddr = ~0ull - 0x100})), InputError) << "address arithmetic must not wrap";
}

TEST_F(PvhLoaderTest, RejectsMalformedHeaders) {
  auto elf = make_elf({});
  EXPECT_THROW(load(make_elf({.filesz = 0x200, .memsz = 0x100})), InputError) << "filesz > memsz";
  EXPECT_THROW(load(make_elf({.elf_class = ELFCLASS32})), InputError);
  auto truncated = elf;
  truncated.resize(0x1000 + 0x80);
  EXPECT_THROW(load(truncated), InputError) << "segment runs past the end of the file";
  auto bad_phoff = elf;
  put<uint64_t>(bad_phoff, offsetof(Elf64_Ehdr, e_phoff), 1ull << 40);
  EXPECT_THROW(load(bad_phoff), InputError);
  auto many_phdrs = elf;
  put<uint16_t>(many_phdrs, offsetof(Elf64_Ehdr, e_phnum), 60000);
  EXPECT_THROW(load(many_phdrs), InputError);
  auto bad_note = elf;
  put<uint32_t>(bad_note, 0x804, 0xfffffff0);  // descriptor size runs off the segment
  EXPECT_THROW(load(bad_note), InputError);
}

TEST_F(PvhLoaderTest, ProbeTellsFormatsApart) {
  UniqueFd elf = memory_file(make_elf({}));
  EXPECT_EQ(probe_kernel(elf.get()), KernelFormat::kPvhElf);
  UniqueFd junk = memory_file(std::vector<uint8_t>(4096, 0x90));
  EXPECT_THROW(probe_kernel(junk.get()), InputError);
  UniqueFd tiny = memory_file({0x7f, 'E'});
  EXPECT_THROW(probe_kernel(tiny.get()), InputError);
}

TEST_F(PvhLoaderTest, CommandLineLongerThanTheLimitIsRefused) {
  EXPECT_THROW(write_cmdline(std::string(kCmdlineMax, 'x'), memory), InputError);
  EXPECT_NO_THROW(write_cmdline(std::string(kCmdlineMax - 1, 'x'), memory));
}

}  // namespace
}  // namespace bulkhead::core
