// A thread that watches eventfds the core must handle itself (a device's interrupt while its
// MSI-X vector is masked, INTx emulation, vring errors) and runs a callback for each signal.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "common/unique_fd.h"

namespace bulkhead::core {

class EventfdMonitor {
 public:
  EventfdMonitor();
  ~EventfdMonitor();

  // Ends the thread; later signals are ignored. Idempotent.
  void stop();

  // `callback` runs on the monitor thread while `fd` is readable. It must consume the count
  // itself (consume()), under whatever lock decides what a signal means: reading the count
  // here, before the callback's owner looked at its state, could lose a signal to a route
  // change that happened in between.
  void watch(int fd, std::function<void()> callback);
  void unwatch(int fd);
  // Resets an eventfd; true if it had been signalled.
  static bool consume(int fd);

 private:
  void run();

  UniqueFd epoll_;
  UniqueFd wake_;  // ends the thread
  std::mutex mutex_;
  std::map<int, std::shared_ptr<std::function<void()>>> callbacks_;
  std::thread thread_;
};

}  // namespace bulkhead::core
