#include "device-procs/common/net_host.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "launcher/resources.h"

namespace bulkhead::devices {

namespace {

constexpr int kVnetHeaderSize = 12;

bool exists(const std::string& path) { return ::access(path.c_str(), F_OK) == 0; }

std::optional<std::array<uint8_t, 6>> parse_mac(const std::string& text) {
  std::array<uint8_t, 6> mac{};
  unsigned b[6];
  char tail;
  if (std::sscanf(text.c_str(), "%2x:%2x:%2x:%2x:%2x:%2x%c", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5], &tail) != 6 ||
      text.size() != 17)
    return std::nullopt;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(b[i]);
  return mac;
}

// "tcp:127.0.0.1:8080-:22", as QEMU's hostfwd; an empty host address means 127.0.0.1.
ipc::SlirpConfig::Forward parse_forward(const std::string& option, const std::string& text) {
  auto bad = [&](const std::string& why) {
    return InputError(option + ": hostfwd=" + text + ": " + why + " (expected tcp|udp:[HOSTADDR]:HOSTPORT-:GUESTPORT)");
  };
  ipc::SlirpConfig::Forward f;
  size_t colon = text.find(':');
  std::string proto = text.substr(0, colon);
  if (colon == std::string::npos || (proto != "tcp" && proto != "udp")) throw bad("no tcp: or udp:");
  f.set_udp(proto == "udp");
  size_t dash = text.find('-', colon);
  size_t port_colon = text.rfind(':', dash);
  if (dash == std::string::npos || port_colon == std::string::npos || port_colon <= colon ||
      text.compare(dash, 2, "-:") != 0)
    throw bad("malformed");
  std::string host = text.substr(colon + 1, port_colon - colon - 1);
  if (host.empty()) host = "127.0.0.1";
  in_addr a;
  if (inet_pton(AF_INET, host.c_str(), &a) != 1) throw bad("'" + host + "' is not an IPv4 address");
  f.set_host_address(host);
  auto port = [&](const std::string& p) {
    size_t used = 0;
    unsigned long v = 0;
    try {
      v = std::stoul(p, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (p.empty() || used != p.size() || v == 0 || v > 65535) throw bad("'" + p + "' is not a port");
    return static_cast<uint32_t>(v);
  };
  f.set_host_port(port(text.substr(port_colon + 1, dash - port_colon - 1)));
  f.set_guest_port(port(text.substr(dash + 2)));
  return f;
}

// A forwarded host port must be free now: once the VM's processes run, nobody could say so.
void check_port_free(const ipc::SlirpConfig::Forward& f) {
  UniqueFd probe(::socket(AF_INET, (f.udp() ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0));
  if (!probe) throw_errno("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(f.host_port()));
  inet_pton(AF_INET, f.host_address().c_str(), &addr.sin_addr);
  int one = 1;
  ::setsockopt(probe.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);  // as slirp binds it
  // A throw-away bind to learn whether the port is taken; closed at once.
  if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw InputError("--net hostfwd: host port " + f.host_address() + ":" + std::to_string(f.host_port()) +
                     " is not free: " + std::strerror(errno));
}

ifreq interface_request(const std::string& name) {
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
  return ifr;
}

UniqueFd open_tap_queue(const std::string& name, bool multiqueue) {
  UniqueFd tap = launcher::open_file("/dev/net/tun", O_RDWR | O_NONBLOCK, "the tun/tap device");
  ifreq ifr = interface_request(name);
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multiqueue ? IFF_MULTI_QUEUE : 0);
  // TUNSETIFF on the descriptor just opened: attach it to (or create) the tap `name`.
  if (::ioctl(tap.get(), TUNSETIFF, &ifr) != 0)
    throw InputError("cannot attach to tap '" + name + "': " + std::strerror(errno) +
                     (multiqueue ? " (queues=N needs a tap made with multi_queue)" : ""));
  int size = kVnetHeaderSize;
  // The virtio-net header in front of each frame is the 12-byte one virtio 1.x drivers use.
  if (::ioctl(tap.get(), TUNSETVNETHDRSZ, &size) != 0) throw_errno("TUNSETVNETHDRSZ");
  return tap;
}

// Bridge configuration goes through an ioctl socket of the host's.
void interface_ioctl(unsigned long request, ifreq& ifr, const char* what) {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock) throw_errno("socket");
  // A network-interface ioctl with a request block we filled in.
  if (::ioctl(sock.get(), request, &ifr) != 0) throw InputError(std::string(what) + ": " + std::strerror(errno));
}

std::string host_nameservers() {
  std::ifstream in("/etc/resolv.conf");
  std::string line, kept;
  while (std::getline(in, line))
    if (line.rfind("nameserver", 0) == 0 || line.rfind("search", 0) == 0) kept += line + "\n";
  return kept;
}

}  // namespace

const ProcessRole& slirp_role() {
  static const ProcessRole role{"bulkhead-slirp", "bh-slirp", "slirp", "bulkhead_slirp_t", true};
  return role;
}

NetSpec parse_net(const std::string& text, uint32_t max_queues) {
  const std::string option = "--net '" + text + "'";
  OptionItems items = parse_option_items("--net", text, {"hostfwd", "restrict", "mac", "queues", "model"});
  NetSpec spec;
  if (items.first == "user") spec.kind = NetSpec::Kind::kUser;
  else if (items.first.rfind("tap=", 0) == 0) spec.kind = NetSpec::Kind::kTap, spec.interface = items.first.substr(4);
  else if (items.first.rfind("bridge=", 0) == 0) spec.kind = NetSpec::Kind::kBridge, spec.interface = items.first.substr(7);
  else throw InputError(option + ": expected user, tap=NAME or bridge=BRIDGE first");
  if (spec.kind != NetSpec::Kind::kUser && (spec.interface.empty() || spec.interface.size() >= IFNAMSIZ))
    throw InputError(option + ": '" + spec.interface + "' is not an interface name");
  for (const auto& [key, value] : items.items) {
    if (key == "hostfwd" || key == "restrict") {
      if (spec.kind != NetSpec::Kind::kUser) throw InputError(option + ": " + key + " is for user-mode networking");
      if (key == "hostfwd") spec.forwards.push_back(parse_forward(option, value));
      else if (value == "on" || value == "off") spec.restrict = value == "on";
      else throw InputError(option + ": restrict takes on or off");
    } else if (key == "mac") {
      spec.mac = parse_mac(value);
      if (!spec.mac) throw InputError(option + ": '" + value + "' is not a MAC address like 52:54:00:12:34:56");
      if ((*spec.mac)[0] & 1) throw InputError(option + ": " + value + " is a multicast address");
    } else if (key == "queues") {
      size_t used = 0;
      unsigned long n = 0;
      try {
        n = std::stoul(value, &used);
      } catch (const std::exception&) {
        used = 0;
      }
      if (used != value.size() || n == 0 || n > max_queues)
        throw InputError(option + ": queues must be a number from 1 to " + std::to_string(max_queues));
      spec.queues = static_cast<uint32_t>(n);
    } else if (key == "model") {
      spec.model = value;
    }
  }
  return spec;
}

std::array<uint8_t, 6> derived_mac(const std::string& vm, const std::string& nic) {
  uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
  for (char c : vm + "/" + nic) h = (h ^ static_cast<uint8_t>(c)) * 0x100000001b3ull;
  std::array<uint8_t, 6> mac;
  for (int i = 0; i < 6; ++i) mac[i] = static_cast<uint8_t>(h >> (8 * i));
  mac[0] = static_cast<uint8_t>((mac[0] & 0xfc) | 0x02);  // locally administered, unicast
  return mac;
}

std::string format_mac(const std::array<uint8_t, 6>& mac) {
  char text[18];
  std::snprintf(text, sizeof text, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
  return text;
}

void NetHost::open(uint32_t queues) {
  switch (spec_.kind) {
    case NetSpec::Kind::kUser: {
      for (const auto& f : spec_.forwards) check_port_free(f);
      int pair[2];
      // The frame channel between the NIC's process and its bh-slirp helper.
      if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, pair) != 0) throw_errno("socketpair");
      device_end_.reset(pair[0]);
      helper_end_.reset(pair[1]);
      int size = 4 << 20;  // room for bursts of full-size frames each way
      for (int fd : pair) {
        ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
        ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
      }
      return;
    }
    case NetSpec::Kind::kTap:
      if (!exists("/sys/class/net/" + spec_.interface))  // TUNSETIFF would make one: refuse a typo
        throw InputError("--net tap=" + spec_.interface + ": there is no such network interface");
      if (!exists("/sys/class/net/" + spec_.interface + "/tun_flags"))
        throw InputError("--net tap=" + spec_.interface + ": " + spec_.interface + " is not a tap");
      for (uint32_t q = 0; q < queues; ++q) taps_.push_back(open_tap_queue(spec_.interface, queues > 1));
      break;
    case NetSpec::Kind::kBridge: {
      if (!exists("/sys/class/net/" + spec_.interface + "/bridge"))
        throw InputError("--net bridge=" + spec_.interface + ": there is no such bridge");
      // A new tap for this NIC (gone when the VM's last descriptor of it closes), attached to
      // the bridge the way qemu-bridge-helper does it.
      taps_.push_back(open_tap_queue("bht%d", queues > 1));
      ifreq tap{};
      // TUNGETIFF names the tap the kernel just made for us.
      if (::ioctl(taps_[0].get(), TUNGETIFF, &tap) != 0) throw_errno("TUNGETIFF");
      std::string name = tap.ifr_name;
      for (uint32_t q = 1; q < queues; ++q) taps_.push_back(open_tap_queue(name, true));
      ifreq bridge = interface_request(spec_.interface);
      interface_ioctl(SIOCGIFMTU, bridge, "reading the bridge's MTU");
      ifreq mtu = interface_request(name);
      mtu.ifr_mtu = bridge.ifr_mtu;
      interface_ioctl(SIOCSIFMTU, mtu, "setting the tap's MTU");
      mtu_ = static_cast<uint32_t>(bridge.ifr_mtu);
      ifreq mac = interface_request(name);
      interface_ioctl(SIOCGIFHWADDR, mac, "reading the tap's address");
      mac.ifr_hwaddr.sa_data[0] = static_cast<char>(0xfe);  // never the bridge's lowest address
      interface_ioctl(SIOCSIFHWADDR, mac, "setting the tap's address");
      ifreq add = interface_request(spec_.interface);
      add.ifr_ifindex = static_cast<int>(if_nametoindex(name.c_str()));
      interface_ioctl(SIOCBRADDIF, add, ("adding " + name + " to bridge " + spec_.interface).c_str());
      ifreq up = interface_request(name);
      interface_ioctl(SIOCGIFFLAGS, up, "reading the tap's flags");
      up.ifr_flags |= IFF_UP;
      interface_ioctl(SIOCSIFFLAGS, up, "bringing the tap up");
      return;
    }
  }
  ifreq mtu = interface_request(spec_.interface);
  interface_ioctl(SIOCGIFMTU, mtu, "reading the tap's MTU");
  mtu_ = static_cast<uint32_t>(mtu.ifr_mtu);
}

ipc::NetBackend NetHost::backend(launcher::FdList& fds) const {
  ipc::NetBackend b;
  for (const UniqueFd& tap : taps_) b.add_tap_fds(fds.add(tap.get()));
  b.set_packet_fd(fds.add(device_end_.get()));
  b.set_mtu(mtu_);
  return b;
}

std::optional<HelperStart> NetHost::helper(launcher::FdList& fds) const {
  if (spec_.kind != NetSpec::Kind::kUser) return std::nullopt;
  HelperStart h;
  h.role = &slirp_role();
  ipc::SlirpConfig* s = h.config.mutable_slirp();
  s->set_packet_fd(fds.add(helper_end_.get()));
  s->set_restrict(spec_.restrict);
  s->set_mtu(mtu_);
  for (const auto& f : spec_.forwards) *s->add_forwards() = f;
  h.limits = {0, 1024};  // its sockets count: one per guest connection
  h.root_files.push_back({"/etc/resolv.conf", host_nameservers()});
  return h;
}

void NicInstance::open(launcher::VmSandbox& sandbox) {
  host_.open(host_.spec().queues);
  std::string vm = !vm_name_.empty()          ? vm_name_
                   : sandbox.identity() ? sandbox.identity()->name()
                                        : "vm" + std::to_string(::getpid());
  mac_ = host_.spec().mac.value_or(derived_mac(vm, name_));
}

}  // namespace bulkhead::devices
