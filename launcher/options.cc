#include "launcher/options.h"

#include <cctype>
#include <limits>

#include "common/error.h"

namespace bulkhead::launcher {

uint64_t parse_memory_size(const std::string& text) {
  size_t i = 0;
  uint64_t value = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) {
    uint64_t digit = static_cast<uint64_t>(text[i] - '0');
    if (value > (std::numeric_limits<uint64_t>::max() - digit) / 10) throw InputError("memory size '" + text + "' is too large");
    value = value * 10 + digit;
    ++i;
  }
  if (i == 0) throw InputError("memory size '" + text + "' is not a size (try 256M or 2G)");
  std::string suffix = text.substr(i);
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  int shift;
  if (suffix.empty() || suffix == "M" || suffix == "MB" || suffix == "MIB") shift = 20;
  else if (suffix == "K" || suffix == "KB" || suffix == "KIB") shift = 10;
  else if (suffix == "G" || suffix == "GB" || suffix == "GIB") shift = 30;
  else if (suffix == "T" || suffix == "TB" || suffix == "TIB") shift = 40;
  else if (suffix == "B") shift = 0;
  else throw InputError("memory size '" + text + "' has an unknown unit '" + text.substr(i) + "' (use K, M, G or T)");
  if (value > (std::numeric_limits<uint64_t>::max() >> shift)) throw InputError("memory size '" + text + "' is too large");
  return value << shift;
}

}  // namespace bulkhead::launcher
