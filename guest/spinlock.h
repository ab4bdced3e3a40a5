#pragma once

#include "arch.h"

namespace guest {

class SpinLock {
 public:
  void lock() {
    while (__atomic_exchange_n(&locked_, 1, __ATOMIC_ACQUIRE)) pause();
  }
  void unlock() { __atomic_store_n(&locked_, 0, __ATOMIC_RELEASE); }

 private:
  int locked_ = 0;
};

}  // namespace guest
