// The policy/*.policy files, embedded at build time (see policy/CMakeLists.txt).
#pragma once

#include <cstddef>

namespace bulkhead::policy {

struct EmbeddedPolicy {
  const char* name;
  const char* text;
};

extern const EmbeddedPolicy kEmbeddedPolicies[];
extern const size_t kEmbeddedPolicyCount;

}  // namespace bulkhead::policy
