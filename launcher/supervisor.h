// The supervisor: the launcher once a VM's processes run. It reaps them, restarts crashed
// virtio device processes (through bh-respawn) for the core to reconnect, forwards
// termination signals, reports how the VM ended and turns that into the exit status.
#pragma once

#include <chrono>
#include <deque>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ipc/control.pb.h"
#include "ipc/ctl.pb.h"
#include "launcher/ctl_socket.h"
#include "launcher/respawner.h"
#include "launcher/spawn.h"
#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

// Whether a device process's answer to a query has the shape the supervisor passes on: a few
// values with short plain names (lower-case letters, digits, '-') and a short error. It is a
// confined process's word, and the operator's terminal shows it.
bool well_formed(const ipc::DeviceReport& report);

// One device process of the VM.
struct SupervisedDevice {
  RoleProcess process;
  uint32_t plan_index = 0;   // what bh-respawn starts again
  std::string slot;          // the core's name for the device, e.g. "virtio-scsi0"
  bool restartable = false;  // the core can set a new process of it up (run_command.cc)
};

// Everything of one running VM that the supervisor watches and serves.
struct SupervisedVm {
  std::string name;
  RoleProcess core;
  std::vector<SupervisedDevice> devices;
  std::vector<RoleProcess> helpers;  // bh-slirp: they stop once the devices have
  std::optional<Respawner> respawner;
  RestartPolicy restarts;
  std::optional<CtlListener> ctl;  // `bulkhead ctl` (none without a state directory)
};

class Supervisor {
 public:
  Supervisor(SupervisedVm vm, UniqueFd signals);

  // Returns the launcher's exit status (see the README's table).
  int run();

 private:
  using Clock = std::chrono::steady_clock;
  struct Device : SupervisedDevice {
    enum class State { kRunning, kRestarting, kFailed } state = State::kRunning;
    Clock::time_point started = Clock::now(), restart_at{};
    std::deque<Clock::time_point> crashes;  // those within the policy's window
    uint32_t quick_crashes = 0;             // in a row, each within a second of its start
    uint32_t generation = 0;                // restarts so far: the core counts reconnects alike
    bool lost_reported = false;             // the core gave up this generation's connection
    bool restart_requested = false;         // by `bulkhead ctl restart-device`: not a crash
    std::string lost_why;                   // ... and why, if not a plain hang-up
    std::string last_crash;                 // how it ended, for the restart's report
    // `ctl balloon-stats` replies that wait for this process's DeviceReport.
    struct Query {
      uint64_t id, client;
      ipc::ctl::Reply reply;
      Clock::time_point deadline;
    };
    std::vector<Query> queries;
  };
  struct CtlClient {
    ipc::ControlChannel channel;
    bool events = false;  // streams Event messages
    bool gone = false;    // hung up, or stopped reading: dropped
    bool awaiting_core = false;  // asked to pause or resume: answered when the core has
    uint64_t id = 0;             // in order of connection (balloon answers find their client)
  };

  bool on_core_message();
  void on_device_lost(const ipc::DeviceLost& lost);
  void on_device_exit(Device& device);
  // `asked`: by `bulkhead ctl restart-device`, not after a crash.
  void restart(Device& device, bool asked = false);
  void give_up(Device& device, const std::string& why);
  void tell_core(const ipc::CoreRequest& request, std::span<const int> fds = {});
  // Milliseconds until the next restart or hard stop is due, or -1.
  int next_deadline_ms() const;
  bool vm_ending() const { return interrupted_by_ || core_.reaped || stopped_ || !stopped_by_.empty(); }
  void kill_all();
  void wait_for_devices();
  // The control socket: one request per message, one reply each (ipc/ctl.proto).
  void on_ctl_request(CtlClient& client);
  // Empty when the core answers first (pause, resume): on_core_message replies then.
  std::optional<ipc::ctl::Reply> answer(const ipc::ctl::Request& request, CtlClient& client);
  // Why the VM cannot be paused (`pause`) or resumed now, or "".
  std::string pause_refusal(bool pause) const;
  // Sends the request; the core's RoleEvent.paused or .resumed answers it.
  void ask_core_to_pause(bool pause);
  void answer_waiting_clients();
  // The core's answer to the oldest balloon request goes to the client that asked, if it is
  // still there; for `balloon-stats`, after the balloon's process has added the guest's.
  void on_balloon_state(const ipc::BalloonState& state);
  void on_device_report(Device& device);
  // Answers the device's queries that are past their deadline, or all of them, saying why.
  void give_up_queries(Device& device, const std::string& why, bool all);
  void reply_to(uint64_t client_id, const ipc::ctl::Reply& reply);
  void reply(CtlClient& client, const ipc::ctl::Reply& reply);
  ipc::ctl::Reply restart_device(const std::string& name);
  void describe(ipc::ctl::Reply& reply) const;
  void emit(ipc::ctl::Event::Kind kind, const std::string& device, const std::string& message);
  int finish();  // reports how the VM ended, returns the exit status

  std::string name_;
  RoleProcess core_;
  std::vector<Device> devices_;
  std::vector<RoleProcess> helpers_;
  std::optional<Respawner> respawner_;
  RestartPolicy restarts_;
  std::optional<CtlListener> ctl_;
  std::vector<CtlClient> clients_;
  uint64_t next_client_id_ = 1;
  struct BalloonAsk {
    uint64_t client;
    bool stats;  // balloon-stats: the guest's statistics too
  };
  std::deque<BalloonAsk> balloon_asks_;  // balloon requests the core has not answered
  uint64_t next_query_id_ = 1;
  UniqueFd signals_;
  bool core_ready_ = false;  // it built the VM: it can reconnect devices from now on
  bool paused_ = false;      // the core said so
  std::optional<bool> pause_asked_;  // sent to the core, not answered yet: pause (true) or resume
  std::optional<ipc::VmStopped> stopped_;
  std::string device_failure_;
  int interrupted_by_ = 0;
  std::string stopped_by_;  // "bulkhead ctl kill", ...: the operator ended the VM
  std::optional<Clock::time_point> hard_stop_at_;  // `ctl stop`: if the guest has not powered off
  uint32_t hard_stop_after_s_ = 0;
};

}  // namespace bulkhead::launcher
