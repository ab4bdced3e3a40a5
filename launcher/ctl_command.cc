#include "launcher/ctl_command.h"

#include <dirent.h>
#include <poll.h>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <google/protobuf/util/json_util.h>
#include <memory>
#include <vector>

#include "common/error.h"
#include "ipc/ctl.pb.h"
#include "launcher/ctl_socket.h"
#include "launcher/options.h"

namespace bulkhead::launcher {

namespace {

namespace ctl = ipc::ctl;

std::string json_of(const google::protobuf::Message& message) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  [[maybe_unused]] auto status = google::protobuf::util::MessageToJsonString(message, &out, options);
  return out;
}

const char* state_name(ctl::Device::State s) {
  switch (s) {
    case ctl::Device::RUNNING: return "running";
    case ctl::Device::RESTARTING: return "restarting";
    default: return "failed";
  }
}

const char* event_name(ctl::Event::Kind k) {
  switch (k) {
    case ctl::Event::CRASH: return "crash";
    case ctl::Event::RESTART: return "restart";
    case ctl::Event::FAILED: return "failed";
    case ctl::Event::PAUSED: return "paused";
    case ctl::Event::RESUMED: return "resumed";
    default: return "vm-stopped";
  }
}

void print_status(const ctl::Reply& r, bool with_crashes) {
  std::printf("VM %s (supervisor pid %d): %s\n", r.vm().c_str(), r.pid(), r.state().c_str());
  std::printf("%-14s %-16s %-10s %-8s %-8s %s\n", "DEVICE", "PROCESS", "STATE", "PID", "RESTARTS",
              with_crashes ? "LAST CRASH" : "RESTARTABLE");
  for (const ctl::Device& d : r.devices()) {
    std::string pid = d.pid() ? std::to_string(d.pid()) : "-";
    std::printf("%-14s %-16s %-10s %-8s %-8u %s\n", d.name().c_str(), d.process().c_str(), state_name(d.state()),
                pid.c_str(), d.restarts(), with_crashes ? d.last_crash().c_str() : (d.restartable() ? "yes" : "no"));
  }
}

ctl::Reply ask(ipc::ControlChannel& channel, const ctl::Request& request) {
  channel.send(request);
  ctl::Reply reply;
  std::vector<UniqueFd> fds;
  if (!channel.receive(reply, fds)) throw InputError("the VM hung up without answering");
  return reply;
}

ctl::Request request_for(const CtlOptions& o) {
  ctl::Request r;
  r.set_version(ctl::CURRENT);
  if (o.command == "status") r.mutable_status();
  else if (o.command == "devices") r.mutable_devices();
  else if (o.command == "stop") r.mutable_stop()->set_timeout_s(o.timeout_s);
  else if (o.command == "kill") r.mutable_kill();
  else if (o.command == "restart-device") r.mutable_restart_device()->set_device(o.device);
  else if (o.command == "events") r.mutable_events();
  else if (o.command == "pause") r.mutable_pause();
  else if (o.command == "resume") r.mutable_resume();
  else if (o.command == "balloon-stats") r.mutable_balloon_stats();
  else if (o.command == "balloon") {
    try {
      r.mutable_balloon()->set_target_bytes(parse_memory_size(o.balloon_target));
    } catch (const InputError& e) {
      throw InputError(std::string("balloon: ") + e.what());
    }
  }
  return r;
}

// Waits for the VM to end: the supervisor closes every client when it exits.
bool wait_for_hang_up(ipc::ControlChannel& channel, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{channel.fd(), POLLIN, 0};
    // Our own connected socket.
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    ctl::Event ignored;
    std::vector<UniqueFd> fds;
    if (!channel.receive(ignored, fds)) return true;
  }
}

}  // namespace

std::pair<CLI::App*, CLI::App*> add_ctl_commands(CLI::App& app, CtlOptions& o) {
  CLI::App* ctl = app.add_subcommand("ctl", "Control a running VM through its control socket.");
  auto* vm = ctl->add_option("--vm", o.vm, "The VM's name (its state directory under --state-root)");
  auto* socket = ctl->add_option("--socket", o.socket, "The control socket itself");
  vm->excludes(socket);
  ctl->add_option("--state-root", o.state_root, "Where the VMs' state directories are")->capture_default_str();
  ctl->add_flag("--json", o.json, "Machine-readable output (one JSON object per line)");
  ctl->require_subcommand(1);
  auto command = [&](const char* name, const char* help) {
    CLI::App* c = ctl->add_subcommand(name, help);
    c->callback([&o, name] { o.command = name; });
    return c;
  };
  command("status", "The VM's state and each device's process, state, restarts and last crash");
  command("devices", "The VM's devices");
  command("stop", "Press the ACPI power button; stop the VM hard after --timeout")
      ->add_option("--timeout", o.timeout_s, "Seconds the guest has to power off")
      ->capture_default_str();
  command("kill", "Stop the VM at once");
  command("restart-device", "Restart a virtio device's process (also one marked failed)")
      ->add_option("device", o.device, "The device's name, as `status` shows it")
      ->required();
  command("events", "Stream crash, restart, pause and VM-stopped events until the VM ends");
  command("pause", "Stop every vCPU and the guest's clock; answers once they have stopped");
  command("resume", "Let a paused VM's vCPUs run again");
  command("balloon", "Ask the guest's balloon driver to leave the guest SIZE of memory (as QEMU's `balloon`); the "
                     "rest goes back to the host")
      ->add_option("size", o.balloon_target, "The memory the guest is to keep, e.g. 96M")
      ->required();
  command("balloon-stats", "The VM's memory, the balloon's target, what the guest keeps now, and the memory "
                           "statistics its driver last sent");

  CLI::App* list = app.add_subcommand("list", "List the VMs running on this host.");
  list->add_option("--state-root", o.state_root, "Where the VMs' state directories are")->capture_default_str();
  list->add_flag("--json", o.json, "Machine-readable output (one JSON object per VM)");
  return {ctl, list};
}

int run_ctl(const CtlOptions& o) {
  if (!o.vm && !o.socket) throw InputError("bulkhead ctl needs --vm NAME or --socket PATH");
  std::string path = o.socket ? *o.socket : control_socket_path(o.state_root, *o.vm);
  ctl::Request request = request_for(o);  // bad arguments fail before the VM is asked
  ipc::ControlChannel channel = connect_control_socket(path);
  ctl::Reply reply = ask(channel, request);
  if (!reply.ok()) throw InputError(reply.error());
  if (o.json) std::printf("%s\n", json_of(reply).c_str());
  if (o.command == "status" && !o.json) print_status(reply, true);
  if (o.command == "devices" && !o.json) print_status(reply, false);
  if (o.command == "restart-device" && !o.json) std::printf("restarting %s\n", o.device.c_str());
  if ((o.command == "pause" || o.command == "resume") && !o.json)
    std::printf("VM %s %s\n", reply.vm().c_str(), reply.state().c_str());
  if ((o.command == "balloon" || o.command == "balloon-stats") && !o.json) {
    const ctl::BalloonState& b = reply.balloon();
    fmt::print("VM {}: memory {} MiB, target {} MiB, the guest keeps {} MiB ({} MiB in the balloon)\n", reply.vm(),
               b.memory_bytes() >> 20, b.target_bytes() >> 20, b.guest_bytes() >> 20,
               (b.memory_bytes() - b.guest_bytes()) >> 20);
    if (o.command == "balloon-stats" && !b.stats_missing().empty())
      fmt::print("guest memory statistics: none ({})\n", b.stats_missing());
    else if (o.command == "balloon-stats")
      for (const ctl::BalloonState::Stat& stat : b.guest_stats()) fmt::print("  {:<20} {}\n", stat.name(), stat.value());
  }
  if (o.command == "stop" || o.command == "kill") {
    std::fflush(stdout);
    auto patience = std::chrono::seconds(o.command == "stop" ? o.timeout_s + 10 : 10);
    if (!wait_for_hang_up(channel, patience)) throw std::runtime_error("the VM did not end in time");
    if (!o.json) std::printf("VM %s stopped\n", reply.vm().c_str());
  }
  if (o.command == "events") {
    if (!o.json) std::printf("events of VM %s until it ends:\n", reply.vm().c_str());
    std::fflush(stdout);
    for (;;) {
      ctl::Event event;
      std::vector<UniqueFd> fds;
      if (!channel.receive(event, fds)) break;  // the VM ended
      if (o.json) std::printf("%s\n", json_of(event).c_str());
      else if (event.device().empty()) std::printf("%s: %s\n", event_name(event.kind()), event.message().c_str());
      else std::printf("%s %s: %s\n", event_name(event.kind()), event.device().c_str(), event.message().c_str());
      std::fflush(stdout);
    }
  }
  return 0;
}

int list_vms(const CtlOptions& o) {
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::opendir(o.state_root.c_str()), ::closedir);
  if (!dir) {
    if (errno != ENOENT) throw InputError("cannot read " + o.state_root + ": " + std::strerror(errno));
  }
  std::vector<std::string> names;
  while (dir && (errno = 0, true)) {
    dirent* e = ::readdir(dir.get());
    if (!e) break;
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  }
  std::sort(names.begin(), names.end());
  if (!o.json) std::printf("%-20s %-9s %-8s %s\n", "NAME", "STATE", "PID", "DEVICES");
  for (const std::string& name : names) {
    ctl::Reply reply;
    try {
      ipc::ControlChannel channel = connect_control_socket(control_socket_path(o.state_root, name));
      ctl::Request request;
      request.set_version(ctl::CURRENT);
      request.mutable_status();
      reply = ask(channel, request);
    } catch (const std::exception&) {
      continue;  // not a VM's directory, or a VM that is gone
    }
    if (o.json) {
      std::printf("%s\n", json_of(reply).c_str());
      continue;
    }
    std::string devices;
    for (const ctl::Device& d : reply.devices())
      devices += (devices.empty() ? "" : ",") + d.name() + (d.state() == ctl::Device::RUNNING ? "" : "(" + std::string(state_name(d.state())) + ")");
    std::printf("%-20s %-9s %-8d %s\n", reply.vm().c_str(), reply.state().c_str(), reply.pid(), devices.c_str());
  }
  return 0;
}

}  // namespace bulkhead::launcher
