// The serial device's entry in the device table: `--serial`, its host streams, and COM1.
#pragma once

#include <string>

#include "device-procs/device_kind.h"

namespace bulkhead::devices {

struct SerialSpec {
  enum class Kind { kStdio, kFile, kUnix, kPty, kNone } kind = Kind::kStdio;
  std::string path;  // kFile, kUnix
};

// "stdio", "file=PATH", "unix=PATH", "pty" or "none"; throws InputError naming the problem.
SerialSpec parse_serial(const std::string& text);

const DeviceKind& serial_kind();

}  // namespace bulkhead::devices
