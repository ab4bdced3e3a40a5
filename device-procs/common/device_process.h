// The life of every device process; its main() is one call to run_device_process():
//  1. receive its StartRole from the launcher on fd 3, with its descriptors;
//  2. confine itself as `role` (policy/confine.cc), before it reads anything a guest or a
//     peer controls;
//  3. build and serve the device (`serve`) until the core or front-end hangs up, or the
//     launcher goes away.
// Errors are logged on stderr and make the exit status 1.
#pragma once

#include <chrono>
#include <functional>
#include <vector>

#include "common/event_loop.h"
#include "common/unique_fd.h"
#include "ipc/control.pb.h"
#include "vhost-user/backend.h"

namespace bulkhead::device {

using ServeDevice = std::function<void(const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop)>;

int run_device_process(const char* process_name, const char* role, ipc::DeviceConfig::KindCase kind,
                       const ServeDevice& serve);

// What a device process tells the supervisor when it asks (an ipc DeviceQuery on the control
// socket): a device with something to tell sets the answer while it serves. Without one,
// every query is answered with an error.
class DeviceReports {
 public:
  using Answer = std::function<ipc::DeviceReport(const ipc::DeviceQuery&)>;
  void answer_with(Answer answer) { answer_ = std::move(answer); }
  ipc::DeviceReport answer(const ipc::DeviceQuery& query) const;

 private:
  Answer answer_;
};

using ServeReportingDevice =
    std::function<void(const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop, DeviceReports& reports)>;

int run_device_process(const char* process_name, const char* role, ipc::DeviceConfig::KindCase kind,
                       const ServeReportingDevice& serve);

// The socket to the core (or front-end) that `config` names; throws InputError if missing.
UniqueFd take_core_socket(const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds);

// Serves a vhost-user back-end with adaptive polling of its rings and its device's
// completions, until the front-end hangs up.
void serve_vhost_user(vhost_user::Backend& backend, vhost_user::BackendDevice& device, EventLoop& loop,
                      std::chrono::microseconds window);

}  // namespace bulkhead::device
