// The serving loop every device process shares: adaptive polling
// (docs/legacy-device-protocol.md). While work keeps coming the device polls for more, so a
// guest's back-to-back requests find it awake and need no wake-up (on this host a wake-up
// costs more than the work); after `window` without work it asks for notifications again
// and sleeps until an event arrives. A window of 0 sleeps after every batch.
#pragma once

#include <chrono>
#include <functional>

#include "common/event_loop.h"

namespace bulkhead::device {

class PolledWork {
 public:
  virtual ~PolledWork() = default;
  // Handles whatever is pending without waiting; true if there was any.
  virtual bool poll() = 0;
  // Work in flight elsewhere (I/O in the kernel's workers) that keeps the window open.
  virtual bool busy() const { return false; }
  // Asks for notifications before the device sleeps; false if work arrived meanwhile.
  virtual bool prepare_to_sleep() = 0;
  virtual void woke_up() {}
};

// Serves until `keep_going()` is false or the loop is stopped. `window` may change meanwhile
// (the core sets it after the loop started).
void serve_adaptively(EventLoop& loop, PolledWork& work, const std::chrono::microseconds& window,
                      const std::function<bool()>& keep_going);

}  // namespace bulkhead::device
