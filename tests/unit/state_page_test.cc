// The state page a legacy device process keeps its state in across restarts.
#include "device-procs/common/state_page.h"

#include <sys/mman.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "common/error.h"

namespace bulkhead::device {
namespace {

constexpr size_t kSnapshot = 40, kBulk = 100;

UniqueFd page_memfd(size_t size = StatePage::bytes(kSnapshot, kBulk)) {
  UniqueFd fd(::memfd_create("state-test", MFD_CLOEXEC));
  EXPECT_EQ(::ftruncate(fd.get(), static_cast<off_t>(size)), 0);
  return fd;
}
UniqueFd dup_fd(const UniqueFd& fd) { return UniqueFd(::dup(fd.get())); }
std::vector<uint8_t> snapshot(uint8_t fill) { return std::vector<uint8_t>(kSnapshot, fill); }

TEST(StatePage, AFreshPageHoldsNoState) {
  UniqueFd fd = page_memfd();
  StatePage page(std::move(fd), kSnapshot, kBulk);
  EXPECT_TRUE(page.committed().empty());
  EXPECT_EQ(page.applied(), 0u);
  EXPECT_EQ(page.bulk().size(), kBulk);
}

// What the next process of the device finds: the last commit, with its ring position.
TEST(StatePage, TheNextProcessFindsTheLastCommitAndItsRingPosition) {
  UniqueFd fd = page_memfd();
  {
    StatePage page(dup_fd(fd), kSnapshot, kBulk);
    for (uint8_t i = 1; i <= 3; ++i) {
      page.set_applied(10u * i);
      page.commit(snapshot(i));
    }
    std::memset(page.bulk().data(), 0xab, kBulk);
  }
  StatePage next(dup_fd(fd), kSnapshot, kBulk);
  ASSERT_EQ(next.committed().size(), kSnapshot);
  EXPECT_EQ(std::vector<uint8_t>(next.committed().begin(), next.committed().end()), snapshot(3));
  EXPECT_EQ(next.applied(), 30u);
  EXPECT_EQ(next.bulk()[kBulk - 1], 0xab) << "bulk bytes stay where they were";
  // A commit before the next batch keeps the ring position.
  next.commit(snapshot(4));
  EXPECT_EQ(StatePage(dup_fd(fd), kSnapshot, kBulk).applied(), 30u);
}

// A process killed in the middle of a commit wrote only the copy that is not committed.
TEST(StatePage, ACommitCutShortLeavesThePreviousOneWhole) {
  UniqueFd fd = page_memfd();
  StatePage page(dup_fd(fd), kSnapshot, kBulk);
  page.set_applied(7);
  page.commit(snapshot(1));
  page.set_applied(8);
  page.commit(snapshot(2));
  // Scribble over everything but the header and the committed copy (its ring position sits
  // just before its snapshot), as an interrupted commit of the other copy would.
  Mapping raw = Mapping::map(fd.get(), StatePage::bytes(kSnapshot, kBulk), PROT_READ | PROT_WRITE);
  auto* base = static_cast<uint8_t*>(raw.data());
  std::ptrdiff_t committed_from_bulk = page.committed().data() - page.bulk().data();  // the two mappings agree on offsets
  size_t keep_from = static_cast<size_t>(static_cast<std::ptrdiff_t>(StatePage::bytes(kSnapshot, kBulk) - kBulk) +
                                         committed_from_bulk) - 8;
  for (size_t i = 64; i < StatePage::bytes(kSnapshot, kBulk) - kBulk; ++i)
    if (i < keep_from || i >= keep_from + 8 + kSnapshot) base[i] = 0x5a;
  StatePage next(dup_fd(fd), kSnapshot, kBulk);
  EXPECT_EQ(std::vector<uint8_t>(next.committed().begin(), next.committed().end()), snapshot(2));
  EXPECT_EQ(next.applied(), 8u);
}

TEST(StatePage, APageTooSmallOrOfAnotherLayoutIsRefused) {
  EXPECT_THROW(StatePage(page_memfd(64), kSnapshot, kBulk), InputError);
  UniqueFd fd = page_memfd(StatePage::bytes(kSnapshot + 8, kBulk));
  StatePage(dup_fd(fd), kSnapshot, kBulk).commit(snapshot(1));
  EXPECT_THROW(StatePage(dup_fd(fd), kSnapshot + 8, kBulk), InputError);
}

}  // namespace
}  // namespace bulkhead::device
