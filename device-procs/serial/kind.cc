#include "device-procs/serial/kind.h"

#include <fcntl.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <optional>

#include "common/error.h"
#include "launcher/resources.h"
#include "launcher/terminal.h"

namespace bulkhead::devices {

namespace {

// COM1, as every PC has it.
constexpr uint16_t kCom1Port = 0x3f8;
constexpr uint32_t kCom1Irq = 4;

class SerialInstance : public DeviceInstance {
 public:
  explicit SerialInstance(SerialSpec spec) : spec_(std::move(spec)) {}

  std::string name() const override { return "serial0"; }

  void open(launcher::VmSandbox& sandbox) override {
    switch (spec_.kind) {
      case SerialSpec::Kind::kStdio:
        input_ = launcher::duplicate(STDIN_FILENO, "standard input");
        output_ = launcher::duplicate(STDOUT_FILENO, "standard output");
        raw_terminal_.emplace(STDIN_FILENO);
        break;
      case SerialSpec::Kind::kFile:
        output_ = launcher::open_file(spec_.path, O_WRONLY | O_CREAT | O_TRUNC, "serial log file", 0640);
        sandbox.label_log(output_.get(), spec_.path);
        break;
      case SerialSpec::Kind::kUnix:
        listener_ = launcher::listen_unix(spec_.path);
        break;
      case SerialSpec::Kind::kPty: {
        std::string pty;
        input_ = launcher::open_pty(&pty);
        output_ = launcher::duplicate(input_.get(), "the pty");
        std::fprintf(stderr, "bulkhead: serial console on %s\n", pty.c_str());
        break;
      }
      case SerialSpec::Kind::kNone:
        break;
    }
  }

  ipc::DeviceConfig config(launcher::FdList& fds) const override {
    ipc::DeviceConfig config;
    ipc::SerialConfig* s = config.mutable_serial();
    s->set_input_fd(fds.add(input_.get()));
    s->set_output_fd(fds.add(output_.get()));
    s->set_listen_fd(fds.add(listener_.fd.get()));
    s->set_pty(spec_.kind == SerialSpec::Kind::kPty);
    s->set_output_positional(spec_.kind == SerialSpec::Kind::kFile);
    return config;
  }

  // A console log may grow without bound (the guest decides how much it writes).
  launcher::RoleLimits limits() const override { return {RLIM_INFINITY, 64}; }

  ipc::DeviceSlot slot() const override {
    ipc::DeviceSlot slot;
    ipc::LegacyAttachment* legacy = slot.mutable_legacy();
    legacy->set_kind("serial");
    ipc::LegacyAttachment::Window* w = legacy->add_windows();
    w->set_space(ipc::LegacyAttachment::Window::PORT_IO);
    w->set_base(kCom1Port);
    w->set_size(8);
    legacy->add_irqs()->set_gsi(kCom1Irq);  // ISA: edge-triggered
    legacy->set_restartable(true);          // its state lives in the core's state page
    slot.mutable_acpi()->set_name("COM1");
    slot.mutable_acpi()->set_hid("PNP0501");
    slot.mutable_acpi()->set_uid(1);
    return slot;
  }

  std::vector<int> removable_dirs() const override {
    if (listener_.file.dir_fd() >= 0) return {listener_.file.dir_fd()};
    return {};
  }

 private:
  SerialSpec spec_;
  UniqueFd input_, output_;
  launcher::UnixListener listener_;
  std::optional<launcher::RawTerminal> raw_terminal_;
};

class SerialKind : public DeviceKind {
 public:
  SerialKind() {
    name = "serial";
    executable = "bulkhead-serial";
    process_name = "bh-serial";
    policy = "serial";
    selinux_type = "bulkhead_serial_t";
    summary = "16550A UART as COM1 (ports 0x3f8-0x3ff, ISA IRQ 4, ACPI PNP0501); legacy device protocol";
    example = {"--serial", "none"};
  }
  std::vector<OptionSpec> options() const override {
    return {{"--serial", "stdio|file=PATH|unix=PATH|pty|none",
             "COM1's host end: this terminal, a log file, a unix socket that listens (one client at a time), a "
             "pty, or nothing",
             "", std::nullopt, false, "stdio"}};
  }
  std::vector<std::unique_ptr<DeviceInstance>> plan(const std::vector<OptionValues>& values,
                                                    const VmContext&) const override {
    std::vector<std::unique_ptr<DeviceInstance>> instances;
    // Every PC has a COM1: without --serial it is this terminal.
    instances.push_back(std::make_unique<SerialInstance>(parse_serial(values.at(0).at(0))));
    return instances;
  }
};

}  // namespace

SerialSpec parse_serial(const std::string& text) {
  SerialSpec spec;
  auto with_path = [&](const char* prefix, SerialSpec::Kind kind) {
    std::string p(prefix);
    if (text.rfind(p, 0) != 0) return false;
    spec.kind = kind;
    spec.path = text.substr(p.size());
    if (spec.path.empty()) throw InputError("--serial " + text + " needs a path after '='");
    return true;
  };
  if (text == "stdio") spec.kind = SerialSpec::Kind::kStdio;
  else if (text == "pty") spec.kind = SerialSpec::Kind::kPty;
  else if (text == "none") spec.kind = SerialSpec::Kind::kNone;
  else if (!with_path("file=", SerialSpec::Kind::kFile) && !with_path("unix=", SerialSpec::Kind::kUnix))
    throw InputError("--serial '" + text + "' is not one of stdio, file=PATH, unix=PATH, pty, none");
  return spec;
}

const DeviceKind& serial_kind() {
  static const SerialKind kind;
  return kind;
}

}  // namespace bulkhead::devices
