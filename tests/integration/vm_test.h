// Shared set-up for tests that boot VMs: skip loudly without KVM, and check that no role
// process outlives a test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>

#include "tests/support/subprocess.h"

namespace bulkhead::test {

class VmTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why = kvm_unavailable_reason();
    if (!why.empty()) GTEST_SKIP() << "needs KVM: " << why;
    ASSERT_TRUE(role_processes().empty()) << "role processes from an earlier test are still running";
  }
  void TearDown() override {
    if (IsSkipped()) return;
    EXPECT_TRUE(wait_for_no_role_processes().empty()) << "a bh-* process outlived its VM";
  }
  // stderr without the launcher's "bulkhead: note: ..." lines (no cgroup v2, no SELinux).
  static std::string without_notes(const std::string& err) {
    std::string kept;
    for (size_t start = 0; start < err.size();) {
      size_t end = err.find('\n', start);
      end = end == std::string::npos ? err.size() : end + 1;
      if (err.compare(start, 16, "bulkhead: note: ") != 0) kept += err.substr(start, end - start);
      start = end;
    }
    return kept;
  }
  // Bad input: a one-line error naming the problem (`mentions`), exit status 2, no output.
  static void expect_usage_error(const std::vector<std::string>& argv, const std::string& mentions) {
    Subprocess p(argv, false);
    EXPECT_EQ(p.wait(30s), 2) << p.err();
    std::string err = without_notes(p.err());
    EXPECT_EQ(err.rfind("bulkhead: error: ", 0), 0u) << p.err();
    EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << "one line: " << p.err();
    EXPECT_NE(p.err().find(mentions), std::string::npos) << "expected '" << mentions << "' in: " << p.err();
    EXPECT_EQ(p.out(), "");
  }
  static std::vector<std::string> run_args(std::vector<std::string> extra) {
    std::vector<std::string> args = {bulkhead(), "run"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  }
};

}  // namespace bulkhead::test
