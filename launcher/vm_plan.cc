#include "launcher/vm_plan.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>

#include "common/error.h"
#include "launcher/options.h"
#include "launcher/spawn.h"

namespace bulkhead::launcher {

namespace {

using devices::DeviceKind;
using devices::Mode;
using devices::OptionSpec;

constexpr uint32_t kMaxCpus = 254;

// "bus=ide" -> ("bus", "ide").
std::pair<std::string, std::string> split_selector(const std::string& selector) {
  size_t eq = selector.find('=');
  return {selector.substr(0, eq), eq == std::string::npos ? "" : selector.substr(eq + 1)};
}

// The value of `key` among the comma-separated items of `text`, if any.
std::optional<std::string> item_value(const std::string& text, const std::string& key) {
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    if (item.rfind(key + "=", 0) == 0) return item.substr(key.size() + 1);
    if (end == std::string::npos) break;
    start = end + 1;
  }
  return std::nullopt;
}

const char* mode_name(Mode mode) { return mode == Mode::kFull ? "full" : "paravirt"; }

}  // namespace

void add_device_options(CLI::App& run, std::map<std::string, std::vector<std::string>>& values) {
  std::vector<std::string> names;
  std::map<std::string, std::string> help;
  std::map<std::string, bool> repeatable;
  for (const DeviceKind* kind : devices::device_table())
    for (const OptionSpec& o : kind->options()) {
      if (!help.count(o.name)) names.push_back(o.name);
      std::string& h = help[o.name];
      if (!h.empty()) h += "\n";
      h += o.value_help + (o.selector.empty() ? "" : "," + o.selector) + ": " + o.help;
      if (!o.default_value.empty()) h += " (default " + o.default_value + ")";
      repeatable[o.name] = repeatable[o.name] || o.repeatable;
    }
  for (const std::string& name : names) {
    CLI::Option* option = run.add_option(name, values[name], help[name]);
    if (!repeatable[name]) option->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::Throw);
  }
}

std::map<const DeviceKind*, std::vector<devices::OptionValues>> route_device_options(
    const std::map<std::string, std::vector<std::string>>& given, Mode mode, const std::vector<const DeviceKind*>& table) {
  std::map<const DeviceKind*, std::vector<devices::OptionValues>> routed;
  std::map<std::string, std::vector<std::pair<const DeviceKind*, size_t>>> takers;  // option -> (kind, index)
  for (const DeviceKind* kind : table) {
    std::vector<OptionSpec> options = kind->options();
    routed[kind].resize(options.size());
    for (size_t i = 0; i < options.size(); ++i) takers[options[i].name].push_back({kind, i});
  }
  for (const auto& [name, occurrences] : given) {
    if (occurrences.empty()) continue;
    auto it = takers.find(name);
    if (it == takers.end()) throw InputError("no device takes " + name);
    const auto& candidates = it->second;
    for (const std::string& value : occurrences) {
      const DeviceKind* chosen = nullptr;
      size_t index = 0;
      if (candidates.size() == 1) {
        std::tie(chosen, index) = candidates[0];
      } else {
        std::string key = split_selector(candidates[0].first->options()[candidates[0].second].selector).first;
        std::optional<std::string> wanted = item_value(value, key);
        std::string known;
        for (const auto& [kind, i] : candidates) {
          OptionSpec spec = kind->options()[i];
          auto [k, v] = split_selector(spec.selector);
          known += (known.empty() ? "" : ", ") + v;
          if (wanted ? *wanted == v : spec.default_in == mode) std::tie(chosen, index) = std::pair{kind, i};
        }
        if (!chosen && wanted) throw InputError(name + " '" + value + "': " + key + " must be one of " + known);
        if (!chosen)
          throw InputError(name + " '" + value + "': no device takes it in " + mode_name(mode) + " mode; give " + key +
                           "=" + known);
      }
      routed[chosen][index].push_back(value);
    }
  }
  for (const DeviceKind* kind : table) {
    std::vector<OptionSpec> options = kind->options();
    for (size_t i = 0; i < options.size(); ++i)
      if (routed[kind][i].empty() && !options[i].default_value.empty() &&
          (!given.count(options[i].name) || given.at(options[i].name).empty()))
        routed[kind][i].push_back(options[i].default_value);
  }
  return routed;
}

std::vector<std::string> role_policies() {
  std::vector<std::string> roles = {"core", "supervisor"};
  for (const devices::ProcessRole& role : devices::process_roles()) roles.push_back(role.policy);
  return roles;
}

namespace {

// The free 2 MiB pages of the hugetlb pool: free, less those other mappings reserved.
uint64_t free_huge_pages() {
  auto read_count = [](const char* name) -> uint64_t {
    std::ifstream in(std::string("/sys/kernel/mm/hugepages/hugepages-2048kB/") + name);
    uint64_t value = 0;
    in >> value;
    return value;
  };
  uint64_t free = read_count("free_hugepages"), reserved = read_count("resv_hugepages");
  return free > reserved ? free - reserved : 0;
}

// `--memory SIZE[,hugepages=on]`.
void plan_memory(const std::string& text, VmPlan& plan) {
  devices::OptionItems items = devices::parse_option_items("--memory", text, {"hugepages"});
  std::string size_text = items.first;
  plan.memory = parse_memory_size(size_text);
  uint64_t host_memory = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (plan.memory < (16ull << 20)) throw InputError("--memory " + size_text + " is too small; the minimum is 16M");
  if (plan.memory % 4096) throw InputError("--memory " + size_text + " is not a multiple of 4 KiB");
  if (plan.memory > host_memory)
    throw InputError("--memory " + size_text + " exceeds this host's " + std::to_string(host_memory >> 20) + " MiB of RAM");
  std::string huge = items.get("hugepages").value_or("off");
  if (huge != "on" && huge != "off") throw InputError("--memory " + text + ": hugepages takes on or off");
  plan.hugepages = huge == "on";
  if (!plan.hugepages) return;
  constexpr uint64_t kHugePage = 2ull << 20;
  if (plan.memory % kHugePage) throw InputError("--memory " + text + ": with hugepages=on the size must be a multiple of 2M");
  uint64_t needed = plan.memory / kHugePage, available = free_huge_pages();
  if (available < needed)
    throw InputError("--memory " + text + " needs " + std::to_string(needed) + " free 2 MiB huge pages and " +
                     std::to_string(available) + " are free (raise /proc/sys/vm/nr_hugepages)");
}

}  // namespace

RestartPolicy parse_restart_policy(const std::string& text) {
  auto bad = [&] { return InputError("--device-restarts '" + text + "' is not COUNT/SECONDS (e.g. 5/60)"); };
  size_t slash = text.find('/');
  if (slash == std::string::npos) throw bad();
  auto number = [&](const std::string& digits, uint32_t max) {
    if (digits.empty() || digits.size() > 6 || digits.find_first_not_of("0123456789") != std::string::npos) throw bad();
    uint32_t n = static_cast<uint32_t>(std::stoul(digits));
    if (n > max) throw bad();
    return n;
  };
  RestartPolicy policy;
  policy.max_restarts = number(text.substr(0, slash), 100000);
  policy.window = std::chrono::seconds(number(text.substr(slash + 1), 86400));
  if (policy.window.count() == 0) throw bad();
  return policy;
}

std::vector<uint32_t> parse_vcpu_pin(const std::string& text, uint32_t cpus, const cpu_set_t& allowed) {
  std::vector<uint32_t> host_cpus;
  for (size_t start = 0;;) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (item.empty() || item.size() > 4 || item.find_first_not_of("0123456789") != std::string::npos)
      throw InputError("--vcpu-pin '" + text + "' is not a list of host CPU numbers (e.g. 2,3)");
    uint32_t cpu = static_cast<uint32_t>(std::stoul(item));
    if (cpu >= CPU_SETSIZE || !CPU_ISSET(cpu, &allowed))
      throw InputError("--vcpu-pin '" + text + "': host CPU " + item + " does not exist or is not one this process may use");
    host_cpus.push_back(cpu);
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (host_cpus.size() != cpus)
    throw InputError("--vcpu-pin '" + text + "' names " + std::to_string(host_cpus.size()) + " host CPUs for " +
                     std::to_string(cpus) + " vCPUs: give one per vCPU");
  return host_cpus;
}

VmPlan plan_vm(const RunOptions& options) {
  VmPlan plan;
  plan_memory(options.memory, plan);
  if (options.cpus == 0 || options.cpus > kMaxCpus) throw InputError("--cpus must be between 1 and " + std::to_string(kMaxCpus));
  plan.cpus = options.cpus;
  if (options.vcpu_pin) {
    cpu_set_t allowed;
    // Our own affinity mask, into a local set.
    if (::sched_getaffinity(0, sizeof allowed, &allowed) != 0) throw_errno("sched_getaffinity");
    plan.vcpu_host_cpus = parse_vcpu_pin(*options.vcpu_pin, options.cpus, allowed);
  }
  plan.kernel = options.kernel.value_or(executable_dir() + "/bulkhead-test-guest.elf");
  plan.initrd = options.initrd;
  plan.cmdline = options.cmdline;
  plan.cpu_model = options.cpu == "host" ? ipc::CoreConfig::HOST : ipc::CoreConfig::BASELINE;
  plan.restarts = parse_restart_policy(options.device_restarts);
  check_selftest(options.sandbox.selftest, role_policies());

  Mode mode = options.mode == "full" ? Mode::kFull : Mode::kParavirt;
  plan.context = {mode, options.cpus, options.device_poll_us, options.sandbox.name.value_or(""), plan.memory,
                  plan.hugepages ? 2ull << 20 : 4096};
  auto routed = route_device_options(options.device_options, mode);
  for (const DeviceKind* kind : devices::device_table())
    for (auto& instance : kind->plan(routed[kind], plan.context)) plan.devices.push_back({kind, std::move(instance)});
  return plan;
}

}  // namespace bulkhead::launcher
