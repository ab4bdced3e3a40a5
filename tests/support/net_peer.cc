#include "tests/support/net_peer.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <future>

#include "tests/support/lab.h"

namespace bulkhead::test {

namespace {

UniqueFd bound_udp(const std::string& address, uint16_t port) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  inet_pton(AF_INET, address.c_str(), &a.sin_addr);
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return {};
  return s;
}

uint16_t port_of(int s) {
  sockaddr_in a{};
  socklen_t len = sizeof a;
  return ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0 ? ntohs(a.sin_port) : 0;
}

}  // namespace

UdpEcho::UdpEcho(const std::string& address, const std::string& netns) {
  stop_ = UniqueFd(::eventfd(0, EFD_CLOEXEC));
  std::promise<uint16_t> bound;
  std::future<uint16_t> port = bound.get_future();
  thread_ = std::thread([this, address, netns, &bound] {
    if (!netns.empty()) {
      UniqueFd ns(::open(("/var/run/netns/" + netns).c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) return bound.set_value(0);  // this thread only
    }
    for (int attempt = 0; attempt < 50; ++attempt) {  // two neighbouring ports
      UniqueFd echo = bound_udp(address, 0);
      uint16_t p = echo ? port_of(echo.get()) : 0;
      UniqueFd sink = p && p < 65535 ? bound_udp(address, static_cast<uint16_t>(p + 1)) : UniqueFd();
      if (!sink) continue;
      int bytes = 16 << 20;  // a burst must not overflow it (root may exceed rmem_max)
      ::setsockopt(sink.get(), SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof bytes);
      bound.set_value(p);
      return serve(std::move(echo), std::move(sink));
    }
    bound.set_value(0);
  });
  port_ = port.get();
}

UdpEcho::~UdpEcho() {
  uint64_t one = 1;
  if (::write(stop_.get(), &one, sizeof one) != sizeof one) std::abort();
  thread_.join();
}

void UdpEcho::serve(UniqueFd echo, UniqueFd sink) {
  for (;;) {
    pollfd fds[3] = {{echo.get(), POLLIN, 0}, {sink.get(), POLLIN, 0}, {stop_.get(), POLLIN, 0}};
    if (::poll(fds, 3, -1) < 0 || (fds[2].revents & POLLIN)) return;
    char buffer[65536];
    if (fds[0].revents & POLLIN) {
      sockaddr_in peer{};
      socklen_t peer_len = sizeof peer;
      ssize_t n = ::recvfrom(echo.get(), buffer, sizeof buffer, 0, reinterpret_cast<sockaddr*>(&peer), &peer_len);
      if (n > 0 && ::sendto(echo.get(), buffer, static_cast<size_t>(n), 0, reinterpret_cast<sockaddr*>(&peer), peer_len) == n)
        ++echoed_;
    }
    if ((fds[1].revents & POLLIN) && ::recv(sink.get(), buffer, sizeof buffer, 0) > 0) ++sunk_;
  }
}

NetNamespace::NetNamespace() : name_("bh-test-" + std::to_string(::getpid())) {
  std::string out;
  ok_ = run_command("ip netns add " + name_, &out) == 0;
  if (!ok_) why_ = out;
}

NetNamespace::~NetNamespace() {
  std::string out;
  if (ok_) run_command("ip netns del " + name_, &out);
}

std::string NetNamespace::ip(const std::string& args) {
  std::string out;
  if (run_command("ip -n " + name_ + " " + args, &out) != 0) ADD_FAILURE() << "ip " << args << ": " << out;
  return out;
}

std::vector<std::string> NetNamespace::exec(std::vector<std::string> argv) const {
  argv.insert(argv.begin(), {"/usr/bin/ip", "netns", "exec", name_});
  return argv;
}

}  // namespace bulkhead::test
