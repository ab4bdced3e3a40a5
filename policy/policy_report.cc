// bulkhead-seccomp-report: what each role's seccomp policy allows, for the README's table
// and for operators reviewing a build.
#include <cstdio>
#include <set>
#include <string>

#include "policy/seccomp_policy.h"

int main() {
  for (const char* role : {"core", "serial", "virtio-scsi", "supervisor"}) {
    std::vector<bulkhead::policy::Rule> rules = bulkhead::policy::load_policy(role);
    std::set<std::string> filtered;
    for (const auto& r : rules)
      if (r.kind == bulkhead::policy::Rule::Kind::kAllowIfIn || r.kind == bulkhead::policy::Rule::Kind::kAllowIfNone)
        filtered.insert(r.syscall);
    std::string names;
    for (const std::string& n : filtered) names += (names.empty() ? "" : ", ") + n;
    std::printf("%-12s %3zu system calls allowed; argument-filtered: %s\n", role,
                bulkhead::policy::allowed_syscall_count(rules), names.c_str());
  }
  return 0;
}
