// Density, CI-sized: many confined idle VMs started at once all reach their idle scenario,
// and stopping them leaves nothing behind (no process, state directory or VM uid). The full
// run, with memory and CPU per VM, is bench/density.py.
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <memory>

#include "launcher/vm_identity.h"
#include "tests/integration/vm_test.h"

namespace bulkhead::test {
namespace {

constexpr int kVms = 50;
// Processes running as one of the VMs' own uids.
std::vector<pid_t> vm_uid_processes() {
  std::vector<pid_t> found;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc", ec)) {
    std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::string uid = proc_status(std::stoi(name), "Uid");
    if (!uid.empty() && std::stoul(uid) >= launcher::kFirstVmUid) found.push_back(std::stoi(name));
  }
  return found;
}

class DensityTest : public VmTest {};

TEST_F(DensityTest, FiftyIdleVmsStartTogetherAndLeaveNothingBehind) {
  std::vector<std::unique_ptr<Subprocess>> vms;
  for (int i = 0; i < kVms; ++i)
    vms.push_back(std::make_unique<Subprocess>(
        run_args({"--name", "density" + std::to_string(i), "--memory", "64M", "--cmdline", "idle"})));
  for (int i = 0; i < kVms; ++i)
    ASSERT_TRUE(vms[i]->wait_for("BH-READY idle", 180s)) << "VM " << i << ":\n" << vms[i]->out() << vms[i]->err();
  EXPECT_EQ(role_processes().size(), 3u * kVms) << "a core, a serial port and the bh-respawn that restarts it, each";
  for (int i = 0; i < kVms; ++i) EXPECT_TRUE(std::filesystem::exists("/run/bulkhead/density" + std::to_string(i)));
  for (auto& vm : vms) vm->signal(SIGTERM);
  for (int i = 0; i < kVms; ++i) EXPECT_EQ(vms[i]->wait(60s), 128 + SIGTERM) << vms[i]->err();
  EXPECT_TRUE(wait_for_no_role_processes().empty());
  for (int i = 0; i < kVms; ++i)
    EXPECT_FALSE(std::filesystem::exists("/run/bulkhead/density" + std::to_string(i))) << "state directory of VM " << i;
  EXPECT_EQ(vm_uid_processes(), std::vector<pid_t>{}) << "processes still running as a VM's uid";
}

}  // namespace
}  // namespace bulkhead::test
