#include "launcher/device_command.h"

#include <poll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstring>
#include <set>

#include "common/error.h"
#include "ipc/control.pb.h"
#include "launcher/resources.h"
#include "launcher/spawn.h"
#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

namespace {

// Waits for `device` to exit or a termination signal; returns the signal number or 0.
int wait_device(RoleProcess& device, int signals) {
  for (;;) {
    pollfd fds[2] = {{device.pidfd.get(), POLLIN, 0}, {signals, POLLIN, 0}};
    // poll() over a pidfd and a signalfd we own.
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[1].revents & POLLIN) {
      signalfd_siginfo info;
      // One record from our signalfd.
      if (::read(signals, &info, sizeof info) == sizeof info) {
        stop_role(device);
        return static_cast<int>(info.ssi_signo);
      }
    }
    if ((fds[0].revents & POLLIN) && try_reap(device)) return 0;
  }
}

}  // namespace

RoleProcess start_device(const devices::DeviceKind& kind, const devices::DeviceInstance& instance,
                         const VmSandbox& sandbox, int connection, bool as_sibling) {
  SpawnOptions options = sandbox.spawn_options(kind.selinux_type);
  options.as_sibling = as_sibling;
  RoleProcess device = spawn_role(executable_dir() + "/" + kind.executable, kind.process_name, options);
  ipc::StartRole start;
  FdList fds;
  *start.mutable_confinement() = sandbox.confinement(kind.policy, instance.limits());
  *start.mutable_device() = instance.config(fds);
  start.mutable_device()->set_core_socket_fd(fds.add(connection));
  device.control->send(start, fds.all());
  return device;
}

std::optional<RoleProcess> start_helper(const devices::DeviceInstance& instance, const VmSandbox& sandbox) {
  FdList fds;
  std::optional<devices::HelperStart> helper = instance.helper(fds);
  if (!helper) return std::nullopt;
  const devices::ProcessRole& role = *helper->role;
  RoleProcess process = spawn_role(executable_dir() + "/" + role.executable, role.process_name,
                                   sandbox.spawn_options(role.selinux_type, role.host_network));
  ipc::StartRole start;
  ipc::Confinement* confinement = start.mutable_confinement();
  *confinement = sandbox.confinement(role.policy, helper->limits);
  if (confinement->enabled()) {
    confinement->set_host_network(role.host_network);
    for (const auto& [path, content] : helper->root_files) {
      ipc::Confinement::RootFile* file = confinement->add_root_files();
      file->set_path(path);
      file->set_content(content);
    }
  }
  *start.mutable_device() = helper->config;
  process.control->send(start, fds.all());
  return process;
}

void add_standalone_options(CLI::App& device, DeviceOptions& options) {
  std::set<std::string> added;
  for (const devices::DeviceKind* kind : devices::device_table())
    for (const devices::OptionSpec& o : kind->standalone_options()) {
      if (!added.insert(o.name).second) continue;
      std::string help = o.value_help + " (" + kind->name + "): " + o.help;
      if (!o.default_value.empty()) help += " (default " + o.default_value + ")";
      CLI::Option* option = device.add_option(o.name, options.device_options[o.name], help);
      if (!o.repeatable) option->expected(1)->multi_option_policy(CLI::MultiOptionPolicy::Throw);
    }
}

int serve_device(const DeviceOptions& options) {
  const devices::DeviceKind* kind = devices::find_kind(options.kind);
  std::string known;
  for (const devices::DeviceKind* k : devices::device_table())
    if (k->standalone()) known += (known.empty() ? "" : ", ") + k->name;
  if (!kind || !kind->standalone()) throw InputError("unknown device kind '" + options.kind + "' (known: " + known + ")");
  if (options.socket.has_value() == options.fd.has_value()) throw InputError("give exactly one of --socket PATH and --fd N");
  std::vector<devices::OptionSpec> specs = kind->standalone_options();
  std::vector<devices::OptionValues> values(specs.size());
  for (const auto& [name, occurrences] : options.device_options) {
    if (occurrences.empty()) continue;
    auto it = std::find_if(specs.begin(), specs.end(), [&](const devices::OptionSpec& s) { return s.name == name; });
    if (it == specs.end()) throw InputError(kind->name + " takes no " + name);
    values[it - specs.begin()] = occurrences;
  }
  for (size_t i = 0; i < specs.size(); ++i)
    if (values[i].empty() && !specs[i].default_value.empty()) values[i].push_back(specs[i].default_value);
  check_selftest(options.sandbox.selftest, role_policies());
  std::unique_ptr<devices::DeviceInstance> instance = kind->plan_standalone(values);
  // Memory for the device's own structures; the front-end's guest RAM is charged to it.
  VmSandbox sandbox = VmSandbox::prepare(options.sandbox, {256ull << 20, 256, 100000, 100000});
  instance->open(sandbox);

  UnixListener listener;
  UniqueFd connection;
  if (options.socket) {
    listener = listen_unix(*options.socket);
    std::fprintf(stderr, "bulkhead: %s listening on %s\n", kind->name.c_str(), options.socket->c_str());
  } else {
    int type = 0;
    socklen_t len = sizeof type;
    // getsockopt on the descriptor the caller named, to check it is a stream socket.
    if (*options.fd < 0 || ::getsockopt(*options.fd, SOL_SOCKET, SO_TYPE, &type, &len) != 0 || type != SOCK_STREAM)
      throw InputError("--fd " + std::to_string(*options.fd) + " is not a connected stream socket");
    connection = duplicate(*options.fd, "the --fd socket");
    ::close(*options.fd);
  }
  sandbox.announce();
  sigset_t old_mask;
  UniqueFd signals = block_termination_signals(&old_mask);
  std::optional<RoleProcess> helper = start_helper(*instance, sandbox);
  int stopped_by = 0;
  for (;;) {
    if (listener.fd) {
      pollfd fds[2] = {{listener.fd.get(), POLLIN, 0}, {signals.get(), POLLIN, 0}};
      // Waits for a front-end or a termination signal.
      if (::poll(fds, 2, -1) < 0 && errno != EINTR) throw_errno("poll");
      if (fds[1].revents & POLLIN) {
        signalfd_siginfo info;
        // One record from our signalfd.
        if (::read(signals.get(), &info, sizeof info) == sizeof info) stopped_by = static_cast<int>(info.ssi_signo);
        break;
      }
      // accept4 on our listening socket; the connection goes to the device process.
      connection.reset(::accept4(listener.fd.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!connection) continue;
    }
    RoleProcess device = start_device(*kind, *instance, sandbox, connection.get());
    connection.reset();
    stopped_by = wait_device(device, signals.get());
    if (stopped_by || !listener.fd) break;
    std::fprintf(stderr, "bulkhead: front-end disconnected; waiting for the next one\n");
  }
  if (helper) stop_role(*helper);
  ::sigprocmask(SIG_SETMASK, &old_mask, nullptr);
  return stopped_by ? 128 + stopped_by : 0;
}

}  // namespace bulkhead::launcher
