// Per-role seccomp allowlists: readable policy files (policy/*.policy), embedded into the
// binaries at build time, compiled with libseccomp. Default action: kill the process.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace bulkhead::policy {

struct Rule {
  enum class Kind { kAllow, kAllowIfIn, kAllowIfNone, kErrno } kind = Kind::kAllow;
  std::string syscall;
  unsigned arg = 0;
  std::vector<uint64_t> values;  // kAllowIfIn: allowed values; kAllowIfNone: one mask
  int error = 0;                 // kErrno
  std::string where;             // "core.policy:12", for messages
};

// The rules of policy `role` ("core", "serial", ...), includes resolved. Throws
// std::invalid_argument naming the file and line of a malformed rule.
std::vector<Rule> load_policy(std::string_view role);
// Parses one policy text (exposed for tests); includes are looked up among the embedded ones.
std::vector<Rule> parse_policy(std::string_view name, std::string_view text);

enum class Violation { kKill, kTrap };

// Installs the filter for all threads of the calling process. With kTrap, a forbidden call
// is logged ("<role>: seccomp: forbidden system call N (name)") before the process dies.
void install_seccomp(const std::vector<Rule>& rules, Violation violation, const std::string& role);

// How many distinct system calls a policy allows (for the README's table).
size_t allowed_syscall_count(const std::vector<Rule>& rules);

}  // namespace bulkhead::policy
