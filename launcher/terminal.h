// Puts an interactive terminal into raw mode for the guest's console and restores it.
#pragma once

#include <termios.h>

namespace bulkhead::launcher {

class RawTerminal {
 public:
  // Does nothing unless `fd` is a terminal. Ctrl-C still signals the launcher (ISIG kept).
  explicit RawTerminal(int fd);
  ~RawTerminal();
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  int fd_;
  bool active_ = false;
  termios saved_{};
};

}  // namespace bulkhead::launcher
