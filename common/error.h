// Errors that carry the context a user needs.
#pragma once

#include <stdexcept>
#include <string>
#include <system_error>

namespace bulkhead {

// A failed system call: what we were doing, plus strerror(errno).
class SystemError : public std::system_error {
 public:
  SystemError(int err, const std::string& what) : std::system_error(err, std::generic_category(), what) {}
};

[[noreturn]] void throw_errno(const std::string& what);

// Bad input from a user, a file or a peer; the message names the problem.
class InputError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace bulkhead
