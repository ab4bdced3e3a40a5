#include <algorithm>

#include "common/error.h"
#include "device-procs/device_kind.h"

namespace bulkhead::devices {

// Each kind's entry lives in its own folder.
extern const DeviceKind& serial_kind();
extern const DeviceKind& ide_kind();
extern const DeviceKind& virtio_scsi_kind();
extern const DeviceKind& virtio_net_kind();
extern const DeviceKind& e1000_kind();
extern const DeviceKind& virtio_balloon_kind();
extern const DeviceKind& vhost_user_peer_kind();
#ifdef BULKHEAD_TEST_DEVICES
extern const DeviceKind& scratch_kind();
#endif

const std::vector<const DeviceKind*>& device_table() {
  static const std::vector<const DeviceKind*> table = {
      &serial_kind(),
      &ide_kind(),
      &virtio_scsi_kind(),
      &virtio_net_kind(),
      &e1000_kind(),
      &virtio_balloon_kind(),
      &vhost_user_peer_kind(),
#ifdef BULKHEAD_TEST_DEVICES
      &scratch_kind(),
#endif
  };
  return table;
}

const DeviceKind* find_kind(std::string_view name) {
  for (const DeviceKind* kind : device_table())
    if (kind->name == name) return kind;
  return nullptr;
}

std::vector<ProcessRole> process_roles() {
  std::vector<ProcessRole> roles;
  auto add = [&](const ProcessRole& role) {
    for (const ProcessRole& r : roles)
      if (r.executable == role.executable) return;
    roles.push_back(role);
  };
  for (const DeviceKind* kind : device_table()) {
    if (!kind->executable.empty()) add({kind->executable, kind->process_name, kind->policy, kind->selinux_type});
    for (const ProcessRole* helper : kind->helper_roles) add(*helper);
  }
  return roles;
}

std::optional<std::string> OptionItems::get(const std::string& key) const {
  for (const auto& [k, v] : items)
    if (k == key) return v;
  return std::nullopt;
}

OptionItems parse_option_items(const std::string& option, const std::string& text,
                               const std::vector<std::string>& known_keys) {
  OptionItems parsed;
  size_t start = 0;
  for (bool first = true;; first = false) {
    size_t comma = text.find(',', start);
    std::string item = text.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
    if (first) {
      parsed.first = item;
    } else {
      size_t eq = item.find('=');
      std::string key = item.substr(0, eq), value = eq == std::string::npos ? "" : item.substr(eq + 1);
      if (std::find(known_keys.begin(), known_keys.end(), key) == known_keys.end()) {
        std::string known;
        for (const std::string& k : known_keys) known += (known.empty() ? "" : ", ") + k;
        throw InputError(option + " '" + text + "': unknown option '" + key + "' (known: " + known + ")");
      }
      parsed.items.emplace_back(key, value);
    }
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return parsed;
}

}  // namespace bulkhead::devices
