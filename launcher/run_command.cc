#include "launcher/run_command.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <vector>

#include "common/error.h"
#include "common/log.h"
#include "ipc/control.pb.h"
#include "launcher/device_command.h"
#include "launcher/disk_spec.h"
#include "launcher/resources.h"
#include "launcher/sandbox.h"
#include "launcher/spawn.h"
#include "launcher/terminal.h"
#include "vhost-user/virtio_types.h"
#include "vmm-core/boot/kernel_image.h"

namespace bulkhead::launcher {

namespace {

constexpr uint16_t kCom1Port = 0x3f8;
constexpr uint32_t kCom1Irq = 4;
constexpr uint32_t kMaxCpus = 254;
constexpr auto kDeviceExitGrace = std::chrono::seconds(5);
constexpr uint64_t kCoreFileAllowance = 64ull << 20;

struct SerialStreams {
  UniqueFd input, output;
  UnixListener listener;
};

SerialStreams open_serial(const SerialSpec& spec) {
  SerialStreams s;
  switch (spec.kind) {
    case SerialSpec::Kind::kStdio:
      s.input = duplicate(STDIN_FILENO, "standard input");
      s.output = duplicate(STDOUT_FILENO, "standard output");
      break;
    case SerialSpec::Kind::kFile:
      s.output = open_file(spec.path, O_WRONLY | O_CREAT | O_TRUNC, "serial log file", 0640);
      break;
    case SerialSpec::Kind::kUnix:
      s.listener = listen_unix(spec.path);
      break;
    case SerialSpec::Kind::kPty: {
      std::string name;
      s.input = open_pty(&name);
      s.output = duplicate(s.input.get(), "the pty");
      fprintf(stderr, "bulkhead: serial console on %s\n", name.c_str());
      break;
    }
    case SerialSpec::Kind::kNone:
      break;
  }
  return s;
}

class Supervisor {
 public:
  Supervisor(RoleProcess core, std::vector<RoleProcess> devices, UniqueFd signals)
      : core_(std::move(core)), devices_(std::move(devices)), signals_(std::move(signals)) {}

  int run();

 private:
  bool on_core_message();
  void kill_all();
  void wait_for_devices();

  RoleProcess core_;
  std::vector<RoleProcess> devices_;
  UniqueFd signals_;
  std::optional<ipc::VmStopped> stopped_;
  std::string device_failure_;
  int interrupted_by_ = 0;
};

bool Supervisor::on_core_message() {
  ipc::RoleEvent event;
  std::vector<UniqueFd> fds;
  try {
    if (!core_.control->receive(event, fds)) return false;
  } catch (const std::exception& e) {
    spdlog::warn("bad message from the core: {}", e.what());
    return false;
  }
  if (event.has_vm_stopped()) stopped_ = event.vm_stopped();
  return true;
}

void Supervisor::kill_all() {
  // Roles run as pid 1 of their own pid namespace, where SIGTERM without a handler is
  // ignored; SIGKILL always ends them.
  if (!core_.reaped) ::kill(core_.pid, SIGKILL);
  for (auto& d : devices_)
    if (!d.reaped) ::kill(d.pid, SIGKILL);
}

void Supervisor::wait_for_devices() {
  // Devices finish on their own once the core is gone (flushing guest output first).
  auto deadline = std::chrono::steady_clock::now() + kDeviceExitGrace;
  for (auto& d : devices_) {
    while (!try_reap(d)) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        ::kill(d.pid, SIGKILL);
        deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
        continue;
      }
      pollfd p{d.pidfd.get(), POLLIN, 0};
      ::poll(&p, 1, static_cast<int>(left.count()));
    }
  }
}

int Supervisor::run() {
  while (!try_reap(core_)) {
    std::vector<pollfd> fds = {{signals_.get(), POLLIN, 0}, {core_.pidfd.get(), POLLIN, 0},
                               {core_.control->fd(), POLLIN, 0}};
    for (auto& d : devices_) fds.push_back({d.pidfd.get(), d.reaped ? short{0} : short{POLLIN}, 0});
    // poll() over descriptors this supervisor owns.
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      // One siginfo record from our signalfd.
      if (::read(signals_.get(), &info, sizeof info) == sizeof info && !interrupted_by_) {
        interrupted_by_ = static_cast<int>(info.ssi_signo);
        kill_all();
      }
    }
    if (fds[2].revents & POLLIN) on_core_message();
    for (size_t i = 0; i < devices_.size(); ++i) {
      if ((fds[3 + i].revents & POLLIN) && try_reap(devices_[i]) && device_failure_.empty() && !interrupted_by_) {
        device_failure_ = devices_[i].role + " " + describe_exit(devices_[i]);
      }
    }
  }
  // The core's last report may still sit in the socket after it exited.
  for (;;) {
    pollfd p{core_.control->fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN) || !on_core_message()) break;
  }
  wait_for_devices();

  if (interrupted_by_) {
    fprintf(stderr, "bulkhead: stopped by signal %d (%s)\n", interrupted_by_, strsignal(interrupted_by_));
    return 128 + interrupted_by_;
  }
  if (!stopped_) {
    std::string why = "bh-core " + describe_exit(core_);
    if (!device_failure_.empty()) why += " after " + device_failure_;
    fprintf(stderr, "bulkhead: error: the VM failed: %s\n", why.c_str());
    return kExitVmmError;
  }
  switch (stopped_->reason()) {
    case ipc::VmStopped::GUEST_EXIT:
      return static_cast<int>(stopped_->exit_code());
    case ipc::VmStopped::GUEST_RESET:
    case ipc::VmStopped::GUEST_POWEROFF:
      fprintf(stderr, "bulkhead: %s\n", stopped_->message().c_str());
      return 0;
    case ipc::VmStopped::CONFIG_ERROR:
      fprintf(stderr, "bulkhead: error: %s\n", stopped_->message().c_str());
      return kExitUsage;
    default: {
      std::string why = stopped_->message();
      if (!device_failure_.empty()) why += " (" + device_failure_ + ")";
      fprintf(stderr, "bulkhead: error: the VM failed: %s\n", why.c_str());
      return kExitVmmError;
    }
  }
}

// PVM (pagetable-based virtualization) emulates guest kernel code, without CMPXCHG16B.
bool host_is_pvm() { return ::access("/sys/module/kvm_pvm", F_OK) == 0; }

UniqueFd connect_unix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) throw InputError("vhost-user socket path '" + path + "' is too long");
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // A fresh socket, connected to the back-end the user named.
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throw_errno("socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
    throw InputError("cannot connect to vhost-user back-end '" + path + "': " + std::strerror(errno));
  return fd;
}

}  // namespace

VhostUserSpec parse_vhost_user(const std::string& text) {
  VhostUserSpec spec;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    std::string item = text.substr(start, end == std::string::npos ? std::string::npos : end - start);
    size_t eq = item.find('=');
    std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
    if (key == "type") spec.type = value;
    else if (key == "socket") spec.socket = value;
    else throw InputError("--vhost-user '" + text + "': unknown key '" + key + "' (expected type= and socket=)");
    if (end == std::string::npos) break;
    start = end + 1;
  }
  if (spec.type != "scsi" && spec.type != "blk" && spec.type != "net")
    throw InputError("--vhost-user '" + text + "': type must be scsi, blk or net");
  if (spec.socket.empty()) throw InputError("--vhost-user '" + text + "': socket=PATH is missing");
  return spec;
}

int run_vm(const RunOptions& options) {
  // Everything is checked and opened before any process starts: bad input leaves nothing behind.
  uint64_t memory = parse_memory_size(options.memory);
  uint64_t host_memory = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
  if (memory < (16ull << 20)) throw InputError("--memory " + options.memory + " is too small; the minimum is 16M");
  if (memory % 4096) throw InputError("--memory " + options.memory + " is not a multiple of 4 KiB");
  if (memory > host_memory)
    throw InputError("--memory " + options.memory + " exceeds this host's " + std::to_string(host_memory >> 20) + " MiB of RAM");
  if (options.cpus == 0 || options.cpus > kMaxCpus)
    throw InputError("--cpus must be between 1 and " + std::to_string(kMaxCpus));
  SerialSpec serial_spec = parse_serial(options.serial);

  std::string dir = executable_dir();
  std::string kernel_path = options.kernel.value_or(dir + "/bulkhead-test-guest.elf");
  UniqueFd kernel = open_file(kernel_path, O_RDONLY, "kernel");
  core::probe_kernel(kernel.get());
  UniqueFd initrd;
  if (options.initrd) {
    initrd = open_file(*options.initrd, O_RDONLY, "initrd");
    core::file_size(initrd.get(), "initrd");
  }
  std::vector<DiskImage> disks;
  for (const std::string& spec : options.disks) disks.push_back(open_disk(spec));
  std::vector<VhostUserSpec> backend_specs;
  for (const std::string& text : options.vhost_user) backend_specs.push_back(parse_vhost_user(text));
  UniqueFd kvm = open_file("/dev/kvm", O_RDWR, "KVM device");

  VmSandbox sandbox = VmSandbox::prepare(options.sandbox, limits_for(memory, options.cpus));
  for (DiskImage& disk : disks) sandbox.label_image(disk.fd.get(), disk.read_only, disk.path);
  sandbox.label_image(kernel.get(), true, kernel_path);
  if (initrd) sandbox.label_image(initrd.get(), true, *options.initrd);
  // Sockets made from here on (the console's, those to vhost-user back-ends, every socket
  // between the VM's processes) carry the VM's label.
  std::optional<SvirtLabels::SocketLabelScope> socket_label;
  if (sandbox.labels()) socket_label.emplace(sandbox.labels()->socket_context());
  SerialStreams serial = open_serial(serial_spec);
  std::vector<std::pair<VhostUserSpec, UniqueFd>> backends;
  for (VhostUserSpec& spec : backend_specs) {
    UniqueFd socket = connect_unix(spec.socket);
    backends.emplace_back(std::move(spec), std::move(socket));
  }
  if (serial_spec.kind == SerialSpec::Kind::kFile) sandbox.label_log(serial.output.get(), serial_spec.path);

  int pair[2];
  // The legacy device protocol socket between the core and the serial device.
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) throw_errno("socketpair");
  UniqueFd core_side(pair[0]), serial_side(pair[1]);

  std::optional<RawTerminal> raw_terminal;
  if (serial_spec.kind == SerialSpec::Kind::kStdio) raw_terminal.emplace(STDIN_FILENO);
  sigset_t old_mask;
  UniqueFd signals = block_termination_signals(&old_mask);

  sandbox.announce();
  RoleProcess serial_process = spawn_role(dir + "/bulkhead-serial", "bh-serial", sandbox.spawn_options("serial"));
  {
    ipc::StartRole start;
    FdList fds;
    // A console log may grow without bound (the guest decides); other roles never grow files.
    *start.mutable_confinement() = sandbox.confinement("serial", {RLIM_INFINITY, 64});
    ipc::DeviceConfig* device = start.mutable_device();
    device->set_core_socket_fd(fds.add(serial_side.get()));
    ipc::SerialConfig* s = device->mutable_serial();
    s->set_input_fd(fds.add(serial.input.get()));
    s->set_output_fd(fds.add(serial.output.get()));
    s->set_listen_fd(fds.add(serial.listener.fd.get()));
    s->set_pty(serial_spec.kind == SerialSpec::Kind::kPty);
    serial_process.control->send(start, fds.all());
  }
  std::vector<RoleProcess> devices;
  devices.push_back(std::move(serial_process));
  UniqueFd scsi_core_side;
  if (!disks.empty()) {
    int sv[2];
    // The vhost-user socket between the core (front-end) and the virtio-scsi process.
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw_errno("socketpair");
    scsi_core_side.reset(sv[0]);
    UniqueFd device_side(sv[1]);
    devices.push_back(
        start_virtio_scsi(sandbox, disks, std::min(options.cpus, 8u), options.device_poll_us, device_side.get()));
  }
  RoleProcess core_process = spawn_role(dir + "/bulkhead-core", "bh-core", sandbox.spawn_options("core"));
  {
    ipc::StartRole start;
    FdList fds;
    // Guest RAM is one memfd the core sizes; rings and inflight areas are small ones.
    *start.mutable_confinement() = sandbox.confinement("core", {memory + kCoreFileAllowance, 4096});
    ipc::CoreConfig* c = start.mutable_core();
    c->set_kvm_fd(fds.add(kvm.get()));
    c->set_kernel_fd(fds.add(kernel.get()));
    c->set_initrd_fd(fds.add(initrd.get()));
    c->set_memory_bytes(memory);
    c->set_cpus(options.cpus);
    c->set_cmdline(options.cmdline);
    c->set_device_poll_us(options.device_poll_us);
    c->set_cpu_model(options.cpu == "host" ? ipc::CoreConfig::HOST : ipc::CoreConfig::BASELINE);
    c->set_hide_cmpxchg16b(host_is_pvm());
    ipc::DeviceSlot* slot = c->add_devices();
    slot->set_name("serial0");
    slot->set_socket_fd(fds.add(core_side.get()));
    ipc::LegacyAttachment* serial_attach = slot->mutable_legacy();
    serial_attach->set_kind("serial");
    ipc::LegacyAttachment::Window* w = serial_attach->add_windows();
    w->set_base(kCom1Port);
    w->set_size(8);
    serial_attach->add_irqs()->set_gsi(kCom1Irq);
    slot->mutable_acpi()->set_name("COM1");
    slot->mutable_acpi()->set_hid("PNP0501");
    slot->mutable_acpi()->set_uid(1);
    if (scsi_core_side) {
      ipc::DeviceSlot* v = c->add_devices();
      v->set_name("virtio-scsi0");
      v->mutable_virtio()->set_device_type(8);
      v->set_socket_fd(fds.add(scsi_core_side.get()));
    }
    for (size_t i = 0; i < backends.size(); ++i) {
      ipc::DeviceSlot* v = c->add_devices();
      const std::string& type = backends[i].first.type;
      v->set_name("vhost-user-" + type + std::to_string(i));
      v->mutable_virtio()->set_device_type(vhost_user::virtio_type(type)->id);
      v->set_socket_fd(fds.add(backends[i].second.get()));
    }
    core_process.control->send(start, fds.all());
  }
  // The children hold their own copies now.
  kvm.reset();
  kernel.reset();
  initrd.reset();
  core_side.reset();
  serial_side.reset();
  serial.input.reset();
  serial.output.reset();
  serial.listener.fd.reset();
  scsi_core_side.reset();
  disks.clear();
  backends.clear();
  socket_label.reset();

  // From here on the launcher only supervises; it keeps no more than that needs.
  std::vector<int> removable;
  if (serial.listener.file.dir_fd() >= 0) removable.push_back(serial.listener.file.dir_fd());
  sandbox.confine_launcher(removable);

  Supervisor supervisor(std::move(core_process), std::move(devices), std::move(signals));
  int status = supervisor.run();
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return status;
}

}  // namespace bulkhead::launcher
