#include "launcher/supervisor.h"

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

namespace {
constexpr auto kDeviceExitGrace = std::chrono::seconds(5);
// A device that crashes again this soon after its restart is in a crash loop: back off.
constexpr auto kQuickCrash = std::chrono::seconds(1);
constexpr auto kFirstBackoff = std::chrono::milliseconds(10), kMaxBackoff = std::chrono::milliseconds(1000);

constexpr size_t kMaxCtlClients = 16;
// A device process's answer to a query (DeviceReport): how long it may take, and its bounds.
constexpr auto kDeviceReportTimeout = std::chrono::seconds(1);
constexpr size_t kMaxReportValues = 32, kMaxReportName = 32, kMaxReportError = 200;

std::string plural(size_t n, const char* what) { return std::to_string(n) + " " + what + (n == 1 ? "" : "s"); }
}  // namespace

bool well_formed(const ipc::DeviceReport& report) {
  auto plain = [](const std::string& name) {
    return !name.empty() && name.size() <= kMaxReportName &&
           name.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-") == std::string::npos;
  };
  return report.values_size() <= static_cast<int>(kMaxReportValues) && report.error().size() <= kMaxReportError &&
         std::all_of(report.values().begin(), report.values().end(),
                     [&](const ipc::DeviceReport::Value& v) { return plain(v.name()); });
}

Supervisor::Supervisor(SupervisedVm vm, UniqueFd signals)
    : name_(std::move(vm.name)),
      core_(std::move(vm.core)),
      helpers_(std::move(vm.helpers)),
      respawner_(std::move(vm.respawner)),
      restarts_(vm.restarts),
      ctl_(std::move(vm.ctl)),
      signals_(std::move(signals)) {
  for (SupervisedDevice& d : vm.devices) {
    Device device;
    static_cast<SupervisedDevice&>(device) = std::move(d);
    devices_.push_back(std::move(device));
  }
}

bool Supervisor::on_core_message() {
  ipc::RoleEvent event;
  std::vector<UniqueFd> fds;
  try {
    if (!core_.control->receive(event, fds)) return false;
  } catch (const std::exception& e) {
    spdlog::warn("bad message from the core: {}", e.what());
    return false;
  }
  if (event.ready()) core_ready_ = true;
  if (event.has_vm_stopped()) stopped_ = event.vm_stopped();
  if (event.has_device_lost()) on_device_lost(event.device_lost());
  if (event.has_paused() || event.has_resumed()) {
    paused_ = event.has_paused();
    pause_asked_.reset();
    emit(paused_ ? ipc::ctl::Event::PAUSED : ipc::ctl::Event::RESUMED, "", paused_ ? "every vCPU stopped" : "the vCPUs run again");
    answer_waiting_clients();
  }
  if (event.has_balloon()) on_balloon_state(event.balloon());
  return true;
}

void Supervisor::on_device_lost(const ipc::DeviceLost& lost) {
  if (std::none_of(devices_.begin(), devices_.end(), [&](const Device& d) { return d.slot == lost.device(); })) {
    // A third party's back-end: its socket is the operator's, there is nothing to restart.
    fprintf(stderr, "bulkhead: error: the vhost-user back-end of %s went away%s; the device stays down and the VM "
            "runs on without it\n", lost.device().c_str(), lost.why().empty() ? "" : (" (" + lost.why() + ")").c_str());
    ipc::CoreRequest request;
    request.set_device_failed(lost.device());
    tell_core(request);
    return;
  }
  for (Device& d : devices_) {
    if (d.slot != lost.device() || d.generation != lost.generation() || d.state != Device::State::kRunning) continue;
    d.lost_reported = true;
    d.lost_why = lost.why();
    // A process that stopped answering is ended here and restarted like a crashed one. One
    // that saw the core shut its socket may have exited first: it is restarted now.
    if (d.process.reaped) on_device_exit(d);
    else ::kill(d.process.pid, SIGKILL);
  }
}

void Supervisor::tell_core(const ipc::CoreRequest& request, std::span<const int> fds) {
  try {
    core_.control->send(request, fds);
  } catch (const std::exception& e) {
    spdlog::warn("cannot reach the core: {}", e.what());  // it is ending; its exit says why
  }
}

void Supervisor::on_device_exit(Device& d) {
  give_up_queries(d, d.process.role + " exited", true);
  // A device exits on its own (status 0) when its socket to the core hangs up: the core is
  // ending, unless the core reported it lost first.
  bool crashed = !WIFEXITED(d.process.wait_status) || WEXITSTATUS(d.process.wait_status) != 0 || d.lost_reported;
  if (vm_ending() || !crashed) return;
  std::string how = d.process.role + " (" + d.slot + ") " + describe_exit(d.process);
  if (d.lost_reported && !d.lost_why.empty()) how += " after the core lost it (" + d.lost_why + ")";
  if (d.restart_requested) {
    d.restart_requested = false;
    return restart(d, true);
  }
  emit(ipc::ctl::Event::CRASH, d.slot, how);
  // Before the core is ready it has no device to reconnect: its start fails, naming this one.
  if (!d.restartable || !respawner_ || !core_ready_) {
    if (device_failure_.empty()) device_failure_ = how;  // the core reports the VM failed
    return;
  }
  Clock::time_point now = Clock::now();
  d.crashes.push_back(now);
  while (!d.crashes.empty() && now - d.crashes.front() > restarts_.window) d.crashes.pop_front();
  if (d.crashes.size() > restarts_.max_restarts)
    return give_up(d, how + "; it crashed " + plural(d.crashes.size(), "time") + " within " +
                          std::to_string(restarts_.window.count()) + " s");
  d.quick_crashes = now - d.started < kQuickCrash ? d.quick_crashes + 1 : 0;
  auto backoff = d.quick_crashes ? std::min<std::chrono::milliseconds>(kFirstBackoff * (1u << std::min(d.quick_crashes - 1, 7u)), kMaxBackoff)
                                 : std::chrono::milliseconds(0);
  d.state = Device::State::kRestarting;
  d.restart_at = now + backoff;
  d.last_crash = how;
  if (backoff.count() == 0) restart(d);
}

void Supervisor::restart(Device& d, bool asked) {
  Respawner::Respawned fresh;
  try {
    fresh = respawner_->respawn(d.plan_index);
  } catch (const std::exception& e) {
    return give_up(d, d.last_crash + "; starting it again failed: " + e.what());
  }
  fresh.process.role = d.process.role;
  d.process = std::move(fresh.process);
  d.state = Device::State::kRunning;
  d.started = Clock::now();
  d.lost_reported = false;
  d.lost_why.clear();
  ++d.generation;
  ipc::CoreRequest request;
  ipc::CoreRequest::DeviceReconnect* reconnect = request.mutable_reconnect();
  reconnect->set_device(d.slot);
  reconnect->set_socket_fd(0);
  reconnect->set_generation(d.generation);
  int fd = fresh.core_socket.get();
  tell_core(request, {&fd, 1});
  if (asked)
    fprintf(stderr, "bulkhead: restarted %s (%s) as bulkhead ctl asked\n", d.process.role.c_str(), d.slot.c_str());
  else
    fprintf(stderr, "bulkhead: warning: %s; restarted it (%s within %lld s)\n", d.last_crash.c_str(),
            plural(d.crashes.size(), "restart").c_str(), static_cast<long long>(restarts_.window.count()));
  emit(ipc::ctl::Event::RESTART, d.slot, "restarted as pid " + std::to_string(d.process.pid));
}

void Supervisor::give_up(Device& d, const std::string& why) {
  d.state = Device::State::kFailed;
  d.last_crash = why;
  fprintf(stderr, "bulkhead: error: %s; it stays down and the VM runs on without it\n", why.c_str());
  emit(ipc::ctl::Event::FAILED, d.slot, why);
  ipc::CoreRequest request;
  request.set_device_failed(d.slot);
  tell_core(request);
}

int Supervisor::next_deadline_ms() const {
  int soonest = -1;
  auto consider = [&](Clock::time_point at) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(at - Clock::now()).count();
    int ms = static_cast<int>(std::max<long long>(left, 0));
    if (soonest < 0 || ms < soonest) soonest = ms;
  };
  for (const Device& d : devices_) {
    if (d.state == Device::State::kRestarting) consider(d.restart_at);
    for (const Device::Query& q : d.queries) consider(q.deadline);
  }
  if (hard_stop_at_) consider(*hard_stop_at_);
  return soonest;
}

void Supervisor::describe(ipc::ctl::Reply& reply) const {
  reply.set_vm(name_);
  reply.set_pid(::getpid());
  reply.set_state(vm_ending() || hard_stop_at_ ? "stopping" : paused_ ? "paused" : "running");
  for (const Device& d : devices_) {
    ipc::ctl::Device* out = reply.add_devices();
    out->set_name(d.slot);
    out->set_process(d.process.role);
    out->set_state(d.state == Device::State::kRunning      ? ipc::ctl::Device::RUNNING
                   : d.state == Device::State::kRestarting ? ipc::ctl::Device::RESTARTING
                                                           : ipc::ctl::Device::FAILED);
    out->set_pid(d.state == Device::State::kRunning && !d.process.reaped ? d.process.pid : 0);
    out->set_restarts(d.generation);
    out->set_last_crash(d.last_crash);
    out->set_restartable(d.restartable);
  }
}

ipc::ctl::Reply Supervisor::restart_device(const std::string& name) {
  ipc::ctl::Reply reply;
  auto it = std::find_if(devices_.begin(), devices_.end(), [&](const Device& d) { return d.slot == name; });
  if (it == devices_.end()) {
    std::string known;
    for (const Device& d : devices_) known += (known.empty() ? "" : ", ") + d.slot;
    reply.set_error("no device '" + name + "' in this VM (its devices: " + known + ")");
    return reply;
  }
  Device& d = *it;
  if (!d.restartable || !respawner_) {
    reply.set_error(name + " cannot be restarted: its state would be lost with its process");
    return reply;
  }
  if (vm_ending()) {
    reply.set_error("the VM is stopping");
    return reply;
  }
  // An operator's restart starts the crash count afresh (Cloud Hypervisor's issue 8764: a
  // device latched off for good).
  d.crashes.clear();
  d.quick_crashes = 0;
  if (d.state == Device::State::kRunning && !d.process.reaped) {
    d.restart_requested = true;
    ::kill(d.process.pid, SIGKILL);  // on_device_exit starts it again
  } else {
    restart(d, true);
  }
  reply.set_ok(true);
  describe(reply);
  return reply;
}

std::string Supervisor::pause_refusal(bool pause) const {
  if (vm_ending() || hard_stop_at_) return "the VM is stopping";
  if (!core_ready_) return "the VM is still starting";
  if (pause_asked_) return *pause_asked_ ? "the VM is pausing already" : "the VM is resuming already";
  if (pause == paused_) return pause ? "the VM is paused already" : "the VM is not paused";
  return "";
}

void Supervisor::ask_core_to_pause(bool pause) {
  ipc::CoreRequest request;
  if (pause) request.set_pause(true);
  else request.set_resume(true);
  tell_core(request);
  pause_asked_ = pause;
}

void Supervisor::answer_waiting_clients() {
  for (CtlClient& c : clients_) {
    if (!c.awaiting_core) continue;
    c.awaiting_core = false;
    ipc::ctl::Reply done;
    done.set_version(ipc::ctl::CURRENT);
    done.set_ok(true);
    describe(done);
    reply(c, done);
  }
}

void Supervisor::reply_to(uint64_t client_id, const ipc::ctl::Reply& reply) {
  auto client = std::find_if(clients_.begin(), clients_.end(), [&](const CtlClient& c) { return c.id == client_id; });
  if (client != clients_.end()) this->reply(*client, reply);
}

void Supervisor::on_balloon_state(const ipc::BalloonState& state) {
  if (balloon_asks_.empty()) return;
  BalloonAsk ask = balloon_asks_.front();
  balloon_asks_.pop_front();
  ipc::ctl::Reply done;
  done.set_version(ipc::ctl::CURRENT);
  if (!state.error().empty()) {
    done.set_error(state.error());
    return reply_to(ask.client, done);
  }
  done.set_ok(true);
  describe(done);
  ipc::ctl::BalloonState* balloon = done.mutable_balloon();
  balloon->set_memory_bytes(state.memory_bytes());
  balloon->set_target_bytes(state.target_bytes());
  balloon->set_guest_bytes(state.guest_bytes());
  if (!ask.stats) return reply_to(ask.client, done);
  auto device = std::find_if(devices_.begin(), devices_.end(), [&](const Device& d) { return d.slot == state.device(); });
  if (device == devices_.end() || device->state != Device::State::kRunning || device->process.reaped ||
      !device->process.control) {
    balloon->set_stats_missing(state.device() + " is not running");
    return reply_to(ask.client, done);
  }
  ipc::DeviceQuery query;
  query.set_id(next_query_id_++);
  query.set_balloon_stats(true);
  try {
    device->process.control->send(query);
  } catch (const std::exception& e) {
    balloon->set_stats_missing(std::string("cannot ask ") + device->process.role + ": " + e.what());
    return reply_to(ask.client, done);
  }
  device->queries.push_back({query.id(), ask.client, std::move(done), Clock::now() + kDeviceReportTimeout});
}

void Supervisor::on_device_report(Device& d) {
  ipc::DeviceReport report;
  std::vector<UniqueFd> unwanted;
  try {
    if (!d.process.control->receive(report, unwanted)) return give_up_queries(d, d.process.role + " exited", true);
  } catch (const std::exception&) {
    return give_up_queries(d, d.process.role + " sent a malformed report", true);
  }
  auto query = std::find_if(d.queries.begin(), d.queries.end(), [&](const Device::Query& q) { return q.id == report.id(); });
  if (query == d.queries.end()) return;  // one given up on already, or made up
  ipc::ctl::BalloonState* balloon = query->reply.mutable_balloon();
  if (!well_formed(report)) {
    balloon->set_stats_missing(d.process.role + " sent a malformed report");
  } else if (!report.error().empty()) {
    balloon->set_stats_missing(report.error());
  } else {
    for (const ipc::DeviceReport::Value& v : report.values()) {
      ipc::ctl::BalloonState::Stat* stat = balloon->add_guest_stats();
      stat->set_name(v.name());
      stat->set_value(v.value());
    }
  }
  reply_to(query->client, query->reply);
  d.queries.erase(query);
}

void Supervisor::give_up_queries(Device& d, const std::string& why, bool all) {
  Clock::time_point now = Clock::now();
  std::erase_if(d.queries, [&](Device::Query& q) {
    if (!all && now < q.deadline) return false;
    q.reply.mutable_balloon()->set_stats_missing(why);
    reply_to(q.client, q.reply);
    return true;
  });
}

void Supervisor::reply(CtlClient& client, const ipc::ctl::Reply& reply) {
  try {
    client.channel.send(reply);
  } catch (const std::exception&) {
    client.gone = true;  // not reading its answers
  }
}

std::optional<ipc::ctl::Reply> Supervisor::answer(const ipc::ctl::Request& request, CtlClient& client) {
  ipc::ctl::Reply reply;
  reply.set_version(ipc::ctl::CURRENT);
  if (request.version() != ipc::ctl::CURRENT) {
    reply.set_error("this VM speaks control protocol version " + std::to_string(ipc::ctl::CURRENT) + ", not " +
                    std::to_string(request.version()));
    return reply;
  }
  using R = ipc::ctl::Request;
  switch (request.command_case()) {
    case R::kStatus:
    case R::kDevices:
      reply.set_ok(true);
      describe(reply);
      break;
    case R::kEvents:
      client.events = true;
      reply.set_ok(true);
      describe(reply);
      break;
    case R::kStop: {
      if (vm_ending()) {
        reply.set_error("the VM is stopping already");
        break;
      }
      // A paused guest cannot see the button: it runs again first.
      if (paused_ || pause_asked_.value_or(false)) ask_core_to_pause(false);
      ipc::CoreRequest press;
      press.set_power_button(true);
      tell_core(press);
      hard_stop_after_s_ = request.stop().timeout_s();
      hard_stop_at_ = Clock::now() + std::chrono::seconds(hard_stop_after_s_);
      reply.set_ok(true);
      describe(reply);
      break;
    }
    case R::kKill:
      if (stopped_by_.empty()) stopped_by_ = "bulkhead ctl kill";
      kill_all();
      reply.set_ok(true);
      describe(reply);
      break;
    case R::kPause:
    case R::kResume: {
      bool pause = request.command_case() == R::kPause;
      std::string refusal = pause_refusal(pause);
      if (!refusal.empty()) {
        reply.set_error(refusal);
        break;
      }
      ask_core_to_pause(pause);
      client.awaiting_core = true;
      return std::nullopt;
    }
    case R::kBalloon:
    case R::kBalloonStats: {
      if (vm_ending()) {
        reply.set_error("the VM is stopping");
        break;
      }
      if (!core_ready_) {
        reply.set_error("the VM is still starting");
        break;
      }
      ipc::CoreRequest ask;
      if (request.has_balloon()) ask.mutable_balloon()->set_target_bytes(request.balloon().target_bytes());
      else ask.mutable_balloon();
      tell_core(ask);
      balloon_asks_.push_back({client.id, request.has_balloon_stats()});
      return std::nullopt;
    }
    case R::kRestartDevice: {
      ipc::ctl::Reply restarted = restart_device(request.restart_device().device());
      restarted.set_version(ipc::ctl::CURRENT);
      return restarted;
    }
    default:
      reply.set_error("unknown command");
  }
  return reply;
}

void Supervisor::on_ctl_request(CtlClient& client) {
  ipc::ctl::Request request;
  std::vector<UniqueFd> fds;
  std::optional<ipc::ctl::Reply> answered;
  try {
    if (!client.channel.receive(request, fds)) {
      client.gone = true;
      return;
    }
    answered = answer(request, client);
  } catch (const InputError& e) {
    answered.emplace().set_error(std::string("bad request: ") + e.what());
  }
  if (answered) reply(client, *answered);
}

void Supervisor::emit(ipc::ctl::Event::Kind kind, const std::string& device, const std::string& message) {
  ipc::ctl::Event event;
  event.set_kind(kind);
  event.set_device(device);
  event.set_message(message);
  for (CtlClient& c : clients_) {
    if (!c.events) continue;
    try {
      c.channel.send(event);
    } catch (const std::exception&) {
      c.gone = true;  // a subscriber that does not read loses its stream
    }
  }
}

void Supervisor::kill_all() {
  // Roles run as pid 1 of their own pid namespace, where SIGTERM without a handler is
  // ignored; SIGKILL always ends them.
  if (!core_.reaped) ::kill(core_.pid, SIGKILL);
  for (auto& d : devices_)
    if (!d.process.reaped) ::kill(d.process.pid, SIGKILL);
  for (auto& h : helpers_)
    if (!h.reaped) ::kill(h.pid, SIGKILL);
}

void Supervisor::wait_for_devices() {
  // Devices finish on their own once the core is gone (flushing guest output first).
  auto deadline = std::chrono::steady_clock::now() + kDeviceExitGrace;
  for (auto& device : devices_) {
    RoleProcess& d = device.process;
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
                               {core_.control->fd(), POLLIN, 0}, {ctl_ ? ctl_->fd() : -1, POLLIN, 0}};
    constexpr size_t kFirstDevice = 4;
    for (auto& d : devices_) fds.push_back({d.process.pidfd.get(), d.process.reaped ? short{0} : short{POLLIN}, 0});
    size_t first_helper = fds.size();
    for (auto& h : helpers_) fds.push_back({h.pidfd.get(), h.reaped ? short{0} : short{POLLIN}, 0});
    size_t first_client = fds.size();
    for (auto& c : clients_) fds.push_back({c.channel.fd(), POLLIN, 0});
    size_t first_report = fds.size();  // device processes that owe a DeviceReport
    for (auto& d : devices_)
      fds.push_back({d.queries.empty() || !d.process.control ? -1 : d.process.control->fd(), POLLIN, 0});
    // poll() over descriptors this supervisor owns.
    if (::poll(fds.data(), fds.size(), next_deadline_ms()) < 0 && errno != EINTR) throw_errno("poll");
    if (fds[0].revents & POLLIN) {
      signalfd_siginfo info;
      // One siginfo record from our signalfd.
      if (::read(signals_.get(), &info, sizeof info) == sizeof info && !interrupted_by_) {
        interrupted_by_ = static_cast<int>(info.ssi_signo);
        kill_all();
      }
    }
    // The core's reports first: one that a device was lost comes before that device's exit.
    if (fds[2].revents & POLLIN) on_core_message();
    for (size_t i = 0; i < devices_.size(); ++i) {
      Device& d = devices_[i];
      if ((fds[kFirstDevice + i].revents & POLLIN) && try_reap(d.process)) on_device_exit(d);
      if (d.state == Device::State::kRestarting && !vm_ending() && Clock::now() >= d.restart_at) restart(d);
    }
    for (size_t i = 0; i < helpers_.size(); ++i) {
      // The guest keeps running; what the helper served (its NIC's host network) is gone.
      if ((fds[first_helper + i].revents & POLLIN) && try_reap(helpers_[i]) && !interrupted_by_)
        fprintf(stderr, "bulkhead: warning: %s %s; its NIC is cut off from the host's network\n",
                helpers_[i].role.c_str(), describe_exit(helpers_[i]).c_str());
    }
    for (size_t i = 0; i < clients_.size(); ++i) {
      if (fds[first_client + i].revents & POLLIN) on_ctl_request(clients_[i]);
      else if (fds[first_client + i].revents) clients_[i].gone = true;
    }
    for (size_t i = 0; i < devices_.size(); ++i) {
      Device& d = devices_[i];
      if (d.queries.empty()) continue;
      if (fds[first_report + i].revents) on_device_report(d);
      give_up_queries(d, d.process.role + " did not answer within " + std::to_string(kDeviceReportTimeout.count()) + " s",
                      false);
    }
    std::erase_if(clients_, [](const CtlClient& c) { return c.gone; });
    if ((fds[3].revents & POLLIN) && clients_.size() < kMaxCtlClients)
      if (std::optional<ipc::ControlChannel> client = ctl_->accept())
        clients_.push_back({.channel = std::move(*client), .id = next_client_id_++});
    if (hard_stop_at_ && Clock::now() >= *hard_stop_at_ && stopped_by_.empty()) {
      stopped_by_ = "bulkhead ctl stop (the guest did not power off within " + std::to_string(hard_stop_after_s_) + " s)";
      kill_all();
    }
  }
  // The core's last report may still sit in the socket after it exited.
  for (;;) {
    pollfd p{core_.control->fd(), POLLIN, 0};
    if (::poll(&p, 1, 0) <= 0 || !(p.revents & POLLIN) || !on_core_message()) break;
  }
  wait_for_devices();
  for (auto& h : helpers_) stop_role(h);
  respawner_.reset();
  return finish();
}

int Supervisor::finish() {
  std::string message;
  int status;
  if (!stopped_by_.empty()) {
    message = "bulkhead: stopped by " + stopped_by_;
    status = 128 + SIGKILL;
  } else if (interrupted_by_) {
    message = "bulkhead: stopped by signal " + std::to_string(interrupted_by_) + " (" + strsignal(interrupted_by_) + ")";
    if (!device_failure_.empty()) message += " after " + device_failure_;
    status = 128 + interrupted_by_;
  } else if (!stopped_) {
    message = "bulkhead: error: the VM failed: bh-core " + describe_exit(core_);
    if (!device_failure_.empty()) message += " after " + device_failure_;
    status = kExitVmmError;
  } else {
    switch (stopped_->reason()) {
      case ipc::VmStopped::GUEST_EXIT:
        status = static_cast<int>(stopped_->exit_code());
        break;
      case ipc::VmStopped::GUEST_RESET:
      case ipc::VmStopped::GUEST_POWEROFF:
        message = "bulkhead: " + stopped_->message();
        status = 0;
        break;
      case ipc::VmStopped::CONFIG_ERROR:
        message = "bulkhead: error: " + stopped_->message();
        status = kExitUsage;
        break;
      default:
        message = "bulkhead: error: the VM failed: " + stopped_->message();
        if (!device_failure_.empty()) message += " (" + device_failure_ + ")";
        status = kExitVmmError;
    }
  }
  if (!message.empty()) fprintf(stderr, "%s\n", message.c_str());
  emit(ipc::ctl::Event::VM_STOPPED, "",
       message.empty() ? "the guest exited with status " + std::to_string(status) : message.substr(10));
  return status;
}

}  // namespace bulkhead::launcher
