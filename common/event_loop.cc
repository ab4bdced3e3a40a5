#include "common/event_loop.h"

#include <sys/epoll.h>

#include <cerrno>

#include "common/error.h"

namespace bulkhead {

EventLoop::EventLoop() {
  // A fresh epoll instance owned by epoll_.
  epoll_.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_) throw_errno("epoll_create1");
}

bool EventLoop::add(int fd, uint32_t events, Callback callback) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  // Registers a descriptor we hold; the kernel copies `ev`.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
    if (errno == EPERM) return false;
    throw_errno("epoll_ctl ADD");
  }
  callbacks_[fd] = std::move(callback);
  return true;
}

void EventLoop::modify(int fd, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.fd = fd;
  // Same descriptor, new interest set.
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, fd, &ev) != 0) throw_errno("epoll_ctl MOD");
}

void EventLoop::remove(int fd) {
  // Removing a registered descriptor; the event argument is ignored.
  ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  callbacks_.erase(fd);
}

int EventLoop::run_once(int timeout_ms) {
  epoll_event events[16];
  // Fills at most 16 events into the local array.
  int n = ::epoll_wait(epoll_.get(), events, 16, timeout_ms);
  if (n < 0) {
    if (errno == EINTR) return 0;
    throw_errno("epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    // Looked up again per event: an earlier callback may have removed this descriptor.
    auto it = callbacks_.find(events[i].data.fd);
    if (it != callbacks_.end()) {
      Callback callback = it->second;
      callback(events[i].events);
    }
  }
  return n;
}

}  // namespace bulkhead
