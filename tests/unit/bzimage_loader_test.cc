// Linux boot protocol: the zero page a 64-bit bzImage entry gets, and refused images.
#include "vmm-core/boot/bzimage.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "tests/unit/test_files.h"
#include "vmm-core/boot/layout.h"
#include "vmm-core/platform.h"

namespace bulkhead::core {
namespace {

using test::get;
using test::memory_file;
using test::put;

struct BzSpec {
  uint16_t version = 0x020f;
  uint16_t xloadflags = 1;
  uint64_t pref_address = 0x1000000;
  uint32_t init_size = 0x800000;
  uint32_t cmdline_size = 2047;
};

std::vector<uint8_t> make_bzimage(const BzSpec& spec) {
  std::vector<uint8_t> f(1024 + 4096, 0);
  f[0x1ef] = 0xff;  // the sentinel a boot loader must not copy
  f[0x1f1] = 1;     // setup sectors: payload at (1 + 1) * 512
  put<uint16_t>(f, 0x1fe, 0xaa55);
  f[0x200] = 0xeb;
  f[0x201] = 0x66;  // header ends at 0x268
  std::memcpy(&f[0x202], "HdrS", 4);
  put<uint16_t>(f, 0x206, spec.version);
  f[0x211] = 1;  // LOADED_HIGH
  put<uint32_t>(f, 0x22c, 0x7fffffff);
  put<uint32_t>(f, 0x230, 0x200000);
  put<uint16_t>(f, 0x236, spec.xloadflags);
  put<uint32_t>(f, 0x238, spec.cmdline_size);
  put<uint64_t>(f, 0x258, spec.pref_address);
  put<uint32_t>(f, 0x260, spec.init_size);
  for (size_t i = 1024; i < f.size(); ++i) f[i] = static_cast<uint8_t>(i * 7);
  return f;
}

class BzImageTest : public ::testing::Test {
 protected:
  GuestMemory memory{128 << 20};
  BootEntry load(const std::vector<uint8_t>& file, const std::string& cmdline = "console=ttyS0", int initrd = -1) {
    UniqueFd fd = memory_file(file);
    BootInputs in{fd.get(), initrd, cmdline, build_memory_map(memory), 0xe0000};
    return load_bzimage(in, memory);
  }
  const uint8_t* zero_page() { return memory.host_range(kZeroPageAddr, 4096); }
};

TEST_F(BzImageTest, EntersAt64BitEntryWithBootParams) {
  BootEntry entry = load(make_bzimage({}));
  EXPECT_EQ(entry.mode, BootEntry::Mode::kLong64);
  EXPECT_EQ(entry.rip, 0x1000000u + 0x200);
  EXPECT_EQ(entry.rsi, kZeroPageAddr);
  const uint8_t* kernel = memory.host_range(0x1000000, 4096);
  EXPECT_EQ(kernel[0], static_cast<uint8_t>(1024 * 7));
  EXPECT_EQ(kernel[4095], static_cast<uint8_t>((1024 + 4095) * 7));
}

TEST_F(BzImageTest, ZeroPageCarriesHeaderLoaderAndMemoryMap) {
  load(make_bzimage({}));
  const uint8_t* zp = zero_page();
  EXPECT_EQ(zp[0x1ef], 0) << "sentinel stays zero or the kernel wipes boot_params";
  EXPECT_EQ(std::memcmp(zp + 0x202, "HdrS", 4), 0);
  EXPECT_EQ(zp[zero_page::kTypeOfLoader], 0xff);
  EXPECT_EQ(zp[zero_page::kLoadFlags] & 0x81, 0x81);
  EXPECT_EQ(get<uint32_t>(zp + zero_page::kCmdLinePtr), kCmdlineAddr);
  EXPECT_EQ(get<uint64_t>(zp + zero_page::kAcpiRsdpAddr), 0xe0000u);
  int entries = zp[zero_page::kE820Entries];
  ASSERT_GE(entries, 3);
  uint64_t last_end = 0, ram_end = 0;
  bool kvm_pages_reserved = false;
  for (int i = 0; i < entries; ++i) {
    const uint8_t* e = zp + zero_page::kE820Table + i * zero_page::kE820EntrySize;
    EXPECT_GE(get<uint64_t>(e), last_end) << "sorted, non-overlapping";
    last_end = get<uint64_t>(e) + get<uint64_t>(e + 8);
    if (get<uint32_t>(e + 16) == 1) ram_end = last_end;
    kvm_pages_reserved |= get<uint64_t>(e) == platform::kKvmIdentityMapAddr && get<uint32_t>(e + 16) == 2;
  }
  EXPECT_EQ(ram_end, 128ull << 20);
  EXPECT_TRUE(kvm_pages_reserved) << "KVM's identity map and TSS pages are not RAM for the guest";
}

TEST_F(BzImageTest, IdentityMapsFourGiB) {
  load(make_bzimage({}));
  auto* tables = reinterpret_cast<const uint64_t*>(memory.host_range(kPageTablesAddr, 6 * 4096));
  EXPECT_EQ(tables[0] & ~0xfffull, kPageTablesAddr + 0x1000);
  uint64_t pd3_last = tables[1024 + 3 * 512 + 511];
  EXPECT_EQ(pd3_last & ~0xfffull, (4ull << 30) - (2 << 20));
  EXPECT_EQ(pd3_last & 0x83, 0x83u) << "present, writable, 2 MiB";
}

TEST_F(BzImageTest, InitrdLandsBelowItsLimitWithSizeRecorded) {
  UniqueFd initrd = memory_file(std::vector<uint8_t>(8192, 1));
  load(make_bzimage({}), "x", initrd.get());
  uint32_t addr = get<uint32_t>(zero_page() + zero_page::kRamdiskImage);
  EXPECT_EQ(get<uint32_t>(zero_page() + zero_page::kRamdiskSize), 8192u);
  EXPECT_GE(addr, 0x1000000u + 0x800000) << "above the kernel's init_size";
  EXPECT_EQ(memory.host_range(addr, 1)[0], 1);
}

TEST_F(BzImageTest, RefusesOldProtocolsAnd32BitOnlyKernels) {
  EXPECT_THROW(load(make_bzimage({.version = 0x020a})), InputError);
  EXPECT_THROW(load(make_bzimage({.xloadflags = 0})), InputError);
}

TEST_F(BzImageTest, RefusesTooLongCommandLine) {
  EXPECT_THROW(load(make_bzimage({.cmdline_size = 16}), std::string(17, 'a')), InputError);
}

TEST_F(BzImageTest, ReportsMemoryTooSmallForTheKernel) {
  try {
    load(make_bzimage({.init_size = 200u << 20}));
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("--memory"), std::string::npos) << e.what();
  }
}

TEST_F(BzImageTest, ProbeRecognizesIt) {
  UniqueFd fd = memory_file(make_bzimage({}));
  EXPECT_EQ(probe_kernel(fd.get()), KernelFormat::kBzImage);
  UniqueFd old = memory_file(make_bzimage({.version = 0x0200}));
  EXPECT_THROW(probe_kernel(old.get()), InputError);
}

}  // namespace
}  // namespace bulkhead::core
