// A small epoll loop for a single-threaded device process.
#pragma once

#include <cstdint>
#include <functional>
#include <unordered_map>

#include "common/unique_fd.h"

namespace bulkhead {

class EventLoop {
 public:
  using Callback = std::function<void(uint32_t events)>;

  EventLoop();

  // Returns false (and registers nothing) for descriptors epoll cannot watch, such as
  // regular files, which are always ready.
  bool add(int fd, uint32_t events, Callback callback);
  void modify(int fd, uint32_t events);
  void remove(int fd);

  // Waits up to `timeout_ms` (-1: no limit) and runs callbacks; returns how many ran.
  int run_once(int timeout_ms);
  void stop() { stopped_ = true; }
  // Readable while callbacks are due: a loop of another kind (libslirp's poll) can wait on it.
  int fd() const { return epoll_.get(); }
  bool stopped() const { return stopped_; }

 private:
  UniqueFd epoll_;
  std::unordered_map<int, Callback> callbacks_;
  bool stopped_ = false;
};

}  // namespace bulkhead
