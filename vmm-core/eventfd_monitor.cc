#include "vmm-core/eventfd_monitor.h"

#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/error.h"

namespace bulkhead::core {

EventfdMonitor::EventfdMonitor() {
  // Fresh epoll and eventfd instances owned by this object.
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  wake_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!epoll_ || !wake_) throw_errno("creating the eventfd monitor");
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wake_.get();
  // Registers our own wake-up eventfd.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wake_.get(), &ev) != 0) throw_errno("epoll_ctl");
  thread_ = std::thread([this] {
    // Names this thread without /proc.
    ::prctl(PR_SET_NAME, "bh-irq-monitor", 0, 0, 0);
    run();
  });
}

EventfdMonitor::~EventfdMonitor() { stop(); }

void EventfdMonitor::stop() {
  if (!thread_.joinable()) return;
  uint64_t one = 1;
  // Tells the thread to finish; an 8-byte eventfd write cannot fail here.
  [[maybe_unused]] ssize_t n = ::write(wake_.get(), &one, sizeof one);
  thread_.join();
}

void EventfdMonitor::watch(int fd, std::function<void()> callback) {
  std::lock_guard lock(mutex_);
  callbacks_[fd] = std::make_shared<std::function<void()>>(std::move(callback));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  // epoll_ctl is safe while the thread waits in epoll_wait.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) throw_errno("epoll_ctl ADD");
}

void EventfdMonitor::unwatch(int fd) {
  std::lock_guard lock(mutex_);
  if (!callbacks_.erase(fd)) return;
  // Removing a descriptor we registered.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
}

bool EventfdMonitor::consume(int fd) {
  uint64_t count;
  // An 8-byte read of a non-blocking eventfd: the count, or EAGAIN when it was not signalled.
  return ::read(fd, &count, sizeof count) == sizeof count;
}

void EventfdMonitor::run() {
  for (;;) {
    epoll_event events[16];
    // Waits on our epoll instance into a local array.
    int n = ::epoll_wait(epoll_.get(), events, 16, -1);
    for (int i = 0; i < n; ++i) {
      int fd = events[i].data.fd;
      if (fd == wake_.get()) return;
      std::shared_ptr<std::function<void()>> callback;
      {
        std::lock_guard lock(mutex_);
        auto it = callbacks_.find(fd);
        if (it != callbacks_.end()) callback = it->second;
      }
      if (callback) (*callback)();
    }
  }
}

}  // namespace bulkhead::core
