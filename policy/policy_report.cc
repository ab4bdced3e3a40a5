// bulkhead-seccomp-report: what each role's seccomp policy allows, for the README's table
// and for operators reviewing a build. The roles are the core, the supervisor, and every
// process role of the device table (devices and their helpers).
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "device-procs/device_kind.h"
#include "policy/seccomp_policy.h"

int main() {
  std::vector<std::string> roles = {"core"};
  for (const bulkhead::devices::ProcessRole& role : bulkhead::devices::process_roles()) roles.push_back(role.policy);
  roles.push_back("supervisor");
  for (const std::string& role : roles) {
    std::vector<bulkhead::policy::Rule> rules = bulkhead::policy::load_policy(role);
    std::set<std::string> filtered;
    for (const auto& r : rules)
      if (r.kind == bulkhead::policy::Rule::Kind::kAllowIfIn || r.kind == bulkhead::policy::Rule::Kind::kAllowIfNone)
        filtered.insert(r.syscall);
    std::string names;
    for (const std::string& n : filtered) names += (names.empty() ? "" : ", ") + n;
    std::printf("%-12s %3zu system calls allowed; argument-filtered: %s\n", role.c_str(),
                bulkhead::policy::allowed_syscall_count(rules), names.c_str());
  }
  return 0;
}
