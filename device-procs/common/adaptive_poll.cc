#include "device-procs/common/adaptive_poll.h"

#include <sched.h>

namespace bulkhead::device {

namespace {
// While polling, other events (control messages, timers, sockets) are looked at this often.
constexpr int kSpinsBetweenEventChecks = 64;
}  // namespace

void serve_adaptively(EventLoop& loop, PolledWork& work, const std::chrono::microseconds& window,
                      const std::function<bool()>& keep_going) {
  auto last_work = std::chrono::steady_clock::now();
  int spins = 0;
  while (!loop.stopped() && keep_going()) {
    bool worked = work.poll();
    auto now = std::chrono::steady_clock::now();
    bool busy = work.busy();
    if (worked || busy) last_work = now;
    if (now - last_work < window) {
      if (++spins % kSpinsBetweenEventChecks == 0) loop.run_once(0);
      // I/O the kernel handed to its worker threads needs this CPU more than our spinning.
      if (!worked && busy) sched_yield();
      else __builtin_ia32_pause();
      continue;
    }
    if (!work.prepare_to_sleep()) continue;
    loop.run_once(-1);
    work.woke_up();
    last_work = std::chrono::steady_clock::now();
  }
}

}  // namespace bulkhead::device
