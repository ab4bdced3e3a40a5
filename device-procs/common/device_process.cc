#include "device-procs/common/device_process.h"

#include <sys/epoll.h>

#include "common/error.h"
#include "common/log.h"
#include "device-procs/common/adaptive_poll.h"
#include "ipc/control_channel.h"
#include "policy/confine.h"

namespace bulkhead::device {

namespace {

class VhostUserWork : public PolledWork {
 public:
  VhostUserWork(vhost_user::Backend& backend, vhost_user::BackendDevice& device) : backend_(backend), device_(device) {}
  bool poll() override {
    bool worked = backend_.poll();
    return device_.poll_completions() || worked;
  }
  bool busy() const override { return device_.busy(); }
  bool prepare_to_sleep() override { return !backend_.rearm(); }

 private:
  vhost_user::Backend& backend_;
  vhost_user::BackendDevice& device_;
};

}  // namespace

ipc::DeviceReport DeviceReports::answer(const ipc::DeviceQuery& query) const {
  ipc::DeviceReport report;
  if (answer_) report = answer_(query);
  else report.set_error("this device has nothing to report");
  report.set_id(query.id());
  return report;
}

int run_device_process(const char* process_name, const char* role, ipc::DeviceConfig::KindCase kind,
                       const ServeDevice& serve) {
  return run_device_process(process_name, role, kind,
                            [&serve](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop,
                                     DeviceReports&) { serve(config, fds, loop); });
}

int run_device_process(const char* process_name, const char* role, ipc::DeviceConfig::KindCase kind,
                       const ServeReportingDevice& serve) {
  init_process(process_name);
  try {
    ipc::ControlChannel control{UniqueFd(ipc::kControlFd)};
    ipc::StartRole start;
    std::vector<UniqueFd> fds;
    if (!control.receive(start, fds) || !start.has_device() || start.device().kind_case() != kind)
      throw InputError(std::string("no ") + role + " configuration received");
    policy::confine(start.confinement(), role, process_name);
    EventLoop loop;
    DeviceReports reports;
    loop.add(control.fd(), EPOLLIN | EPOLLRDHUP, [&](uint32_t events) {
      ipc::DeviceQuery query;
      std::vector<UniqueFd> unwanted;
      try {
        // The launcher going away ends the device too.
        if ((events & ~EPOLLIN) || !control.receive(query, unwanted)) return loop.stop();
        control.send(reports.answer(query));
      } catch (const std::exception& e) {
        spdlog::warn("cannot answer the supervisor: {}", e.what());
      }
    });
    serve(start.device(), fds, loop, reports);
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}

UniqueFd take_core_socket(const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds) {
  UniqueFd socket = ipc::take_fd(fds, config.core_socket_fd(), "the core's socket");
  if (!socket) throw InputError("no socket to the core");
  return socket;
}

void serve_vhost_user(vhost_user::Backend& backend, vhost_user::BackendDevice& device, EventLoop& loop,
                      std::chrono::microseconds window) {
  VhostUserWork work(backend, device);
  serve_adaptively(loop, work, window, [&] { return backend.connected(); });
}

}  // namespace bulkhead::device
