#include "vmm-core/cpuid.h"

#include <gtest/gtest.h>

namespace bulkhead::core {
namespace {

const kvm_cpuid_entry2* find(const std::vector<kvm_cpuid_entry2>& v, uint32_t function, uint32_t index = 0) {
  for (const auto& e : v)
    if (e.function == function && e.index == index) return &e;
  return nullptr;
}

std::vector<kvm_cpuid_entry2> supported() {
  std::vector<kvm_cpuid_entry2> s(3);
  s[0].function = 1;
  s[0].ebx = 0xffffffff;  // garbage that must be replaced
  s[1].function = 0xb;    // the host's topology must not leak through
  s[1].ebx = 99;
  s[2].function = 4;
  s[2].eax = 0xfc000121;
  return s;
}

TEST(Cpuid, Leaf1CarriesApicIdAndCount) {
  auto c = build_cpuid(supported(), 2, 4);
  const auto* leaf1 = find(c, 1);
  ASSERT_NE(leaf1, nullptr);
  EXPECT_EQ(leaf1->ebx >> 24, 2u);
  EXPECT_EQ((leaf1->ebx >> 16) & 0xff, 4u);
  EXPECT_TRUE(leaf1->ecx & (1u << 31)) << "hypervisor bit";
  EXPECT_TRUE(leaf1->edx & (1u << 28)) << "HTT with several logical CPUs";
}

TEST(Cpuid, ExtendedTopologyDescribesCoresNotTheHost) {
  auto c = build_cpuid(supported(), 3, 6);
  const auto* smt = find(c, 0xb, 0);
  const auto* core = find(c, 0xb, 1);
  const auto* end = find(c, 0xb, 2);
  ASSERT_TRUE(smt && core && end);
  EXPECT_EQ(smt->ebx, 1u);
  EXPECT_EQ(core->ebx, 6u);
  EXPECT_EQ(core->eax, 3u) << "ceil(log2(6)) APIC-ID bits for the package";
  EXPECT_EQ(core->edx, 3u);
  EXPECT_EQ((end->ecx >> 8) & 0xff, 0u) << "level type 0 ends the list";
  EXPECT_EQ(find(c, 0xb, 0)->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX, KVM_CPUID_FLAG_SIGNIFCANT_INDEX);
}

TEST(Cpuid, CacheLeafCountsCores) {
  auto c = build_cpuid(supported(), 0, 2);
  EXPECT_EQ(find(c, 4)->eax >> 26, 1u);
  EXPECT_EQ(find(c, 4)->eax & 0x3fff, 0x121u);
}

TEST(Cpuid, AddsKvmSignatureWhenMissing) {
  auto c = build_cpuid(supported(), 0, 1);
  const auto* sig = find(c, 0x40000000);
  ASSERT_NE(sig, nullptr);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(&sig->ebx), 4), "KVMK");
}

std::vector<kvm_cpuid_entry2> with_xsave() {
  std::vector<kvm_cpuid_entry2> s(4);
  s[0].function = 1;
  s[0].ecx = (1u << 26) | (1u << 27) | (1u << 28) | (1u << 13) | 1u;  // XSAVE, OSXSAVE, AVX, CX16, SSE3
  s[1].function = 7;
  s[1].ebx = (1u << 5) | (1u << 16) | (1u << 3);  // AVX2, AVX512F, BMI1
  s[2].function = 0xd;
  s[2].eax = 7;
  s[3].function = 0x80000001;
  s[3].ecx = (1u << 11) | (1u << 5);  // XOP, ABM
  return s;
}

TEST(Cpuid, TheBaselineModelHasNoXsaveManagedState) {
  auto c = build_cpuid(with_xsave(), 0, 1);
  EXPECT_EQ(find(c, 1)->ecx & ((1u << 26) | (1u << 27) | (1u << 28)), 0u) << "no XSAVE, OSXSAVE, AVX";
  EXPECT_TRUE(find(c, 1)->ecx & (1u << 13)) << "CMPXCHG16B stays (Windows needs it)";
  EXPECT_TRUE(find(c, 1)->ecx & 1u) << "SSE3 stays";
  EXPECT_EQ(find(c, 7)->ebx, 1u << 3) << "AVX2 and AVX-512 go, BMI1 stays";
  EXPECT_EQ(find(c, 0xd), nullptr) << "no XSAVE leaf at all";
  EXPECT_EQ(find(c, 0x80000001)->ecx, 1u << 5) << "no XOP";
}

TEST(Cpuid, TheHostModelKeepsWhatKvmSupports) {
  auto c = build_cpuid(with_xsave(), 0, 1, CpuModel{true});
  EXPECT_TRUE(find(c, 1)->ecx & (1u << 26));
  EXPECT_TRUE(find(c, 7)->ebx & (1u << 16));
  ASSERT_NE(find(c, 0xd), nullptr);
  EXPECT_EQ(find(c, 0xd)->eax, 7u);
}

}  // namespace
}  // namespace bulkhead::core
