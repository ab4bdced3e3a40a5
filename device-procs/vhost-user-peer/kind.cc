// A third party's vhost-user back-end (qemu-storage-daemon, DPDK, virtiofsd...) as a device of
// the VM: `--vhost-user type=TYPE,socket=PATH`. There is no Bulkhead process to start: the
// launcher connects to the socket and the core's generic front-end drives it.
#include <sys/socket.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"
#include "device-procs/device_kind.h"
#include "vhost-user/virtio_types.h"

namespace bulkhead::devices {

namespace {

class PeerInstance : public DeviceInstance {
 public:
  PeerInstance(std::string name, vhost_user::VirtioType type, std::string socket)
      : name_(std::move(name)), type_(type), path_(std::move(socket)) {}

  std::string name() const override { return name_; }

  void open(launcher::VmSandbox&) override {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path_.size() >= sizeof addr.sun_path) throw InputError("vhost-user socket path '" + path_ + "' is too long");
    std::memcpy(addr.sun_path, path_.c_str(), path_.size() + 1);
    // A fresh socket, connected to the back-end the user named.
    socket_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!socket_) throw_errno("socket");
    if (::connect(socket_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw InputError("cannot connect to vhost-user back-end '" + path_ + "': " + std::strerror(errno));
  }
  ipc::DeviceConfig config(launcher::FdList&) const override { return {}; }
  launcher::RoleLimits limits() const override { return {}; }
  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    slot.mutable_virtio()->set_device_type(type_.id);
    return slot;
  }
  UniqueFd take_backend_socket() override { return std::move(socket_); }

 private:
  std::string name_;
  vhost_user::VirtioType type_;
  std::string path_;
  UniqueFd socket_;
};

class PeerKind : public DeviceKind {
 public:
  PeerKind() {
    name = "vhost-user";
    summary = "a third party's vhost-user back-end (no Bulkhead process); virtio-pci over vhost-user";
    example = {};
  }
  std::vector<OptionSpec> options() const override {
    std::string types;
    for (const auto& t : vhost_user::kVirtioTypes) types += (types.empty() ? "" : "|") + std::string(t.name);
    return {{"--vhost-user", "type=" + types + ",socket=PATH",
             "A third party's vhost-user back-end listening on PATH (e.g. qemu-storage-daemon --export "
             "type=vhost-user-blk)",
             "", std::nullopt, true, ""}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext&) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    for (const std::string& text : values.at(0)) {
      std::optional<vhost_user::VirtioType> type;
      std::string socket;
      size_t start = 0;
      while (start <= text.size()) {
        size_t end = text.find(',', start);
        std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
        size_t eq = item.find('=');
        std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
        if (key == "type") type = vhost_user::virtio_type(value);
        else if (key == "socket") socket = value;
        else throw InputError("--vhost-user '" + text + "': unknown key '" + key + "' (expected type= and socket=)");
        if (key == "type" && !type) throw InputError("--vhost-user '" + text + "': type must be one of " + types());
        if (end == std::string::npos) break;
        start = end + 1;
      }
      if (!type) throw InputError("--vhost-user '" + text + "': type=" + types() + " is missing");
      if (socket.empty()) throw InputError("--vhost-user '" + text + "': socket=PATH is missing");
      std::string name = "vhost-user-" + std::string(type->name) + std::to_string(instances.size());
      instances.push_back(std::make_unique<PeerInstance>(name, *type, socket));
    }
    return instances;
  }

 private:
  static std::string types() {
    std::string list;
    for (const auto& t : vhost_user::kVirtioTypes) list += (list.empty() ? "" : ", ") + std::string(t.name);
    return list;
  }
};

}  // namespace

const DeviceKind& vhost_user_peer_kind() {
  static const PeerKind kind;
  return kind;
}

}  // namespace bulkhead::devices
