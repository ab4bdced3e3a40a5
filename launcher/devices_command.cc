#include "launcher/devices_command.h"

#include <cstdio>

#include "device-procs/device_kind.h"

namespace bulkhead::launcher {

namespace {

// A Markdown table cell: a '|' would end it.
std::string cell(const std::string& text) {
  std::string escaped;
  for (char c : text) escaped += c == '|' ? std::string("\\|") : std::string(1, c);
  return escaped;
}

std::string options_of(const devices::DeviceKind& kind, bool markdown) {
  std::string options;
  for (const devices::OptionSpec& o : kind.options()) {
    std::string spelled = o.name + " " + o.value_help + (o.selector.empty() ? "" : "," + o.selector);
    if (markdown) spelled = cell(spelled);
    options += (options.empty() ? "" : markdown ? "<br>" : "; ") + (markdown ? "`" + spelled + "`" : spelled);
  }
  return options;
}

std::string or_dash(const std::string& s, const std::string& prefix = "", const std::string& suffix = "") {
  return s.empty() ? "-" : prefix + s + suffix;
}

}  // namespace

std::string device_table_markdown() {
  std::string table =
      "| kind | options of `bulkhead run` | process | seccomp policy | SELinux domain | what the guest sees |\n"
      "|---|---|---|---|---|---|\n";
  for (const devices::DeviceKind* kind : devices::device_table()) {
    std::string process = or_dash(kind->process_name, "`", "`"), policy = or_dash(kind->policy, "`policy/", ".policy`"),
                domain = or_dash(kind->selinux_type, "`", "`");
    for (const devices::ProcessRole* helper : kind->helper_roles) {
      process += "<br>helper `" + helper->process_name + "`";
      policy += "<br>`policy/" + helper->policy + ".policy`";
      domain += "<br>`" + helper->selinux_type + "`";
    }
    table += "| " + kind->name + " | " + options_of(*kind, true) + " | " + process + " | " + policy + " | " + domain +
             " | " + kind->summary + " |\n";
  }
  return table;
}

int list_devices(bool markdown) {
  if (markdown) {
    std::fputs(device_table_markdown().c_str(), stdout);
    return 0;
  }
  for (const devices::DeviceKind* kind : devices::device_table()) {
    std::printf("%s\n  options:  %s\n  process:  %s (seccomp %s, SELinux %s)\n  %s\n", kind->name.c_str(),
                options_of(*kind, false).c_str(), or_dash(kind->process_name).c_str(),
                or_dash(kind->policy, "policy/", ".policy").c_str(), or_dash(kind->selinux_type).c_str(),
                kind->summary.c_str());
    for (const devices::ProcessRole* helper : kind->helper_roles)
      std::printf("  helper:   %s (seccomp policy/%s.policy, SELinux %s)\n", helper->process_name.c_str(),
                  helper->policy.c_str(), helper->selinux_type.c_str());
    if (kind->standalone()) std::printf("  also a standalone back-end: bulkhead device %s\n", kind->name.c_str());
  }
  return 0;
}

}  // namespace bulkhead::launcher
