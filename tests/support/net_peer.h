// The host's side of the network tests: a UDP echo server (and a sink beside it) for the test
// guest's datagrams, and a network namespace of the test's own for taps and bridges.
#pragma once

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "common/unique_fd.h"

namespace bulkhead::test {

// A UDP echo server on `address` at a port the kernel picks, and a sink counting datagrams on
// the next port, inside the network namespace `netns` (a name under /var/run/netns) or ours.
class UdpEcho {
 public:
  explicit UdpEcho(const std::string& address, const std::string& netns = "");
  ~UdpEcho();
  UdpEcho(const UdpEcho&) = delete;
  UdpEcho& operator=(const UdpEcho&) = delete;
  uint16_t port() const { return port_; }  // 0 if it could not start
  int echoed() const { return echoed_; }
  int sunk() const { return sunk_; }

 private:
  void serve(UniqueFd echo, UniqueFd sink);
  UniqueFd stop_;
  std::thread thread_;
  uint16_t port_ = 0;
  std::atomic<int> echoed_{0}, sunk_{0};
};

// A network namespace (`ip netns`), removed with everything in it.
class NetNamespace {
 public:
  NetNamespace();
  ~NetNamespace();
  bool ok() const { return ok_; }
  const std::string& why() const { return why_; }
  const std::string& name() const { return name_; }
  // `ip -n NAME ARGS`; its output (a failure is a test failure).
  std::string ip(const std::string& args);
  // argv run inside the namespace.
  std::vector<std::string> exec(std::vector<std::string> argv) const;

 private:
  std::string name_, why_;
  bool ok_ = false;
};

}  // namespace bulkhead::test
