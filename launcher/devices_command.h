// `bulkhead devices`: the device table, for people (and, as Markdown, for docs/devices.md).
#pragma once

#include <string>

namespace bulkhead::launcher {

int list_devices(bool markdown);
// The table as docs/devices.md shows it.
std::string device_table_markdown();

}  // namespace bulkhead::launcher
