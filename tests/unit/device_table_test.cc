// The device table: every kind is confined (a seccomp policy, an SELinux domain with its
// executable's file context), documented (docs/devices.md shows the table as it is), and
// the command line reaches the right kind.
#include "device-procs/device_kind.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "common/error.h"
#include "launcher/devices_command.h"
#include "launcher/vm_plan.h"
#include "policy/seccomp_policy.h"

namespace bulkhead::devices {
namespace {

std::string read_source(const std::string& path) {
  std::ifstream in(std::string(BULKHEAD_SOURCE_DIR) + "/" + path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(DeviceTable, EveryKindWithAProcessIsConfined) {
  for (const DeviceKind* kind : device_table()) {
    SCOPED_TRACE(kind->name);
    if (kind->executable.empty()) {
      EXPECT_TRUE(kind->policy.empty() && kind->selinux_type.empty() && kind->helper_roles.empty())
          << "a kind without a process has no role";
    }
  }
  std::string te = read_source("selinux/bulkhead.te"), fc = read_source("selinux/bulkhead.fc");
  ASSERT_FALSE(te.empty());
  std::vector<ProcessRole> roles = process_roles();
  ASSERT_GE(roles.size(), 4u) << "serial, virtio-scsi, virtio-net and bh-slirp at least";
  for (const ProcessRole& role : roles) {
    SCOPED_TRACE(role.executable);
    EXPECT_NO_THROW(policy::load_policy(role.policy)) << "policy/" << role.policy << ".policy";
    EXPECT_GT(policy::allowed_syscall_count(policy::load_policy(role.policy)), 0u);
    ASSERT_EQ(role.selinux_type.rfind("bulkhead_", 0), 0u);
    ASSERT_GT(role.selinux_type.size(), 11u);
    std::string name = role.selinux_type.substr(9, role.selinux_type.size() - 11);
    EXPECT_NE(te.find("bulkhead_role_template(" + name + ")"), std::string::npos) << "selinux/bulkhead.te declares the domain";
    EXPECT_NE(fc.find("/" + role.executable + "\t"), std::string::npos) << "selinux/bulkhead.fc labels the executable";
    EXPECT_NE(fc.find("bulkhead_" + name + "_exec_t"), std::string::npos);
    EXPECT_FALSE(role.process_name.empty());
    EXPECT_LE(role.process_name.size(), 15u) << "a process name the kernel keeps whole";
  }
}

TEST(DeviceTable, NamesExecutablesAndOptionsAreUnambiguous) {
  std::set<std::string> names, executables, processes;
  std::map<std::string, std::set<std::string>> selectors;  // option -> selectors of its kinds
  for (const DeviceKind* kind : device_table()) {
    EXPECT_TRUE(names.insert(kind->name).second) << kind->name;
    EXPECT_EQ(find_kind(kind->name), kind);
    for (const OptionSpec& o : kind->options()) {
      EXPECT_EQ(o.name.rfind("--", 0), 0u) << o.name;
      EXPECT_TRUE(selectors[o.name].insert(o.selector).second) << o.name << " " << o.selector << " twice";
    }
  }
  for (const ProcessRole& role : process_roles()) {
    EXPECT_TRUE(executables.insert(role.executable).second) << role.executable;
    EXPECT_TRUE(processes.insert(role.process_name).second) << role.process_name;
  }
  for (const auto& [option, kinds] : selectors) {
    if (kinds.size() > 1) {
      EXPECT_EQ(kinds.count(""), 0u) << option << ": shared options need a selector on every kind";
    }
  }
}

TEST(DeviceTable, DocsShowTheTableAsItIs) {
  std::string docs = read_source("docs/devices.md");
  std::stringstream rows(launcher::device_table_markdown());
  for (std::string row; std::getline(rows, row);)  // each row (a build without test devices has fewer)
    EXPECT_NE(docs.find(row + "\n"), std::string::npos)
        << "docs/devices.md is out of date; its table is `bulkhead devices --markdown`:\n"
        << launcher::device_table_markdown();
}

// Two kinds sharing an option, as virtio-scsi and IDE share --disk.
class FakeKind : public DeviceKind {
 public:
  FakeKind(std::string n, std::string selector, Mode mode) : selector_(std::move(selector)), mode_(mode) { name = n; }
  std::vector<OptionSpec> options() const override {
    return {{"--disk", "PATH", "", selector_, mode_, true, ""}, {"--flag", "X", "", "", std::nullopt, false, "dflt"}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>&, const VmContext&) const override {
    return {};
  }

 private:
  std::string selector_;
  Mode mode_;
};

TEST(OptionRouting, SelectorsPickTheKindAndTheModeDecidesTheRest) {
  FakeKind scsi("scsi", "bus=scsi", Mode::kParavirt), ide("ide", "bus=ide", Mode::kFull);
  std::vector<const DeviceKind*> table = {&scsi, &ide};
  std::map<std::string, std::vector<std::string>> given = {{"--disk", {"a.img", "b.img,bus=ide", "c.img,bus=scsi,ro"}}};
  auto paravirt = launcher::route_device_options(given, Mode::kParavirt, table);
  EXPECT_EQ(paravirt[&scsi][0], (OptionValues{"a.img", "c.img,bus=scsi,ro"}));
  EXPECT_EQ(paravirt[&ide][0], (OptionValues{"b.img,bus=ide"}));
  auto full = launcher::route_device_options(given, Mode::kFull, table);
  EXPECT_EQ(full[&scsi][0], (OptionValues{"c.img,bus=scsi,ro"}));
  EXPECT_EQ(full[&ide][0], (OptionValues{"a.img", "b.img,bus=ide"}));
  EXPECT_EQ(full[&scsi][1], (OptionValues{"dflt"})) << "an absent option takes its default";
  EXPECT_THROW(launcher::route_device_options({{"--disk", {"d.img,bus=floppy"}}}, Mode::kFull, table), InputError);
  EXPECT_THROW(launcher::route_device_options({{"--nonsense", {"x"}}}, Mode::kFull, table), InputError);
}

TEST(OptionRouting, TheRealTableGivesEveryVmItsSerialPort) {
  auto routed = launcher::route_device_options({}, Mode::kParavirt);
  const DeviceKind* serial = find_kind("serial");
  ASSERT_NE(serial, nullptr);
  EXPECT_EQ(routed[serial][0], (OptionValues{"stdio"}));
  auto instances = serial->plan(routed[serial], {});
  ASSERT_EQ(instances.size(), 1u);
  ipc::DeviceSlot slot = instances[0]->slot();
  EXPECT_EQ(slot.legacy().kind(), "serial");
  EXPECT_EQ(slot.acpi().hid(), "PNP0501") << "ACPI describes it as COM1";
}

TEST(OptionItems, FirstItemAndKnownKeys) {
  OptionItems items = parse_option_items("--disk", "/a/b.img,ro,bus=scsi", {"ro", "bus"});
  EXPECT_EQ(items.first, "/a/b.img");
  EXPECT_EQ(items.get("ro"), "");
  EXPECT_EQ(items.get("bus"), "scsi");
  EXPECT_EQ(items.get("cache"), std::nullopt);
  EXPECT_THROW(parse_option_items("--disk", "/a.img,cache=none", {"ro", "bus"}), InputError);
}

}  // namespace
}  // namespace bulkhead::devices
