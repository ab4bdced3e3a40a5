// bh-balloon: a virtio-balloon device as a vhost-user back-end, in its own process. It
// is handed only its vhost-user socket; guest RAM arrives with the memory table.
#include "common/log.h"
#include "device-procs/common/device_process.h"
#include "device-procs/virtio-balloon/balloon_device.h"

using namespace bulkhead;

int main() {
  return device::run_device_process(
      "bh-balloon", "virtio-balloon", ipc::DeviceConfig::kVirtioBalloon,
      [](const ipc::DeviceConfig& config, std::vector<UniqueFd>& fds, EventLoop& loop, device::DeviceReports& reports) {
        const ipc::VirtioBalloonConfig& balloon = config.virtio_balloon();
        device::BalloonDevice::Options options;
        options.target_pages = balloon.target_pages();
        options.free_page_reporting = balloon.free_page_reporting();
        options.deflate_on_oom = balloon.deflate_on_oom();
        options.stats_interval = std::chrono::seconds(balloon.stats_interval_s());
        options.host_page_size = balloon.host_page_size() ? balloon.host_page_size() : 4096;
        device::BalloonDevice device(loop, options);
        vhost_user::Backend backend(device, loop, device::take_core_socket(config, fds));
        device.attach(backend);
        // `bulkhead ctl balloon-stats`: the guest's statistics, as its driver last sent them.
        reports.answer_with([&device](const ipc::DeviceQuery& query) {
          ipc::DeviceReport report;
          if (!query.balloon_stats()) {
            report.set_error("bh-balloon reports only the guest's memory statistics");
            return report;
          }
          if (!device.counters().stats_updates) {
            report.set_error("the guest's driver has sent no statistics yet");
            return report;
          }
          for (size_t tag = 0; tag < device.stats().size(); ++tag) {
            if (!device.stats()[tag]) continue;
            ipc::DeviceReport::Value* value = report.add_values();
            value->set_name(device::BalloonDevice::stat_name(tag));
            value->set_value(*device.stats()[tag]);
          }
          return report;
        });
        // Nothing to poll for: every request is done before the kick's callback returns.
        device::serve_vhost_user(backend, device, loop, std::chrono::microseconds(0));
        const auto& c = device.counters();
        if (c.outside_ram || c.repeated || c.not_inflated || c.ignored || c.malformed)
          spdlog::warn("the guest sent page numbers that were ignored: {} outside guest RAM, {} already in the balloon, "
                       "{} deflated but not in it, {} beyond a buffer's limit; {} malformed buffers",
                       c.outside_ram, c.repeated, c.not_inflated, c.ignored, c.malformed);
        if (c.inflated || c.reported_bytes)
          spdlog::info("balloon: {} pages inflated, {} deflated, {} MiB returned to the host ({} MiB of it reported free)",
                       c.inflated, c.deflated, c.returned_bytes >> 20, c.reported_bytes >> 20);
      });
}
