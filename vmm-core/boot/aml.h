// An encoder for the small part of ACPI Machine Language (ACPI 6.4, chapter 20) that a
// DSDT describing fixed hardware needs: names, integers, strings, packages, buffers,
// devices, scopes, trivial methods, and resource templates (chapter 6.4).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace bulkhead::core::aml {

using Bytes = std::vector<uint8_t>;

// A name path such as "_HID", "PCI0", "\\_SB_.PCI0" or "\\_S5"; segments shorter than four
// characters are padded with '_'. Throws std::invalid_argument for an invalid segment.
Bytes name_path(std::string_view path);

Bytes integer(uint64_t value);
Bytes string(std::string_view text);
// A compressed EISA ID such as "PNP0A03", as an integer.
Bytes eisa_id(std::string_view id);
Bytes package(const std::vector<Bytes>& elements);
Bytes buffer(const Bytes& contents);

// Named objects and containers.
Bytes name(std::string_view path, const Bytes& value);
Bytes scope(std::string_view path, const std::vector<Bytes>& terms);
Bytes device(std::string_view path, const std::vector<Bytes>& terms);
// A method whose body returns one of its arguments unchanged (e.g. an _OSC that grants
// every capability the OS asks for).
Bytes method_returning_arg(std::string_view path, uint8_t arg_count, uint8_t returned_arg);

// A resource template (a buffer of resource descriptors ending with an end tag).
class ResourceTemplate {
 public:
  // A fixed range of `length` I/O ports at `base` (16-bit decode).
  ResourceTemplate& io(uint16_t base, uint8_t length);
  // ISA IRQs, edge-triggered, active high, exclusive.
  ResourceTemplate& irq(std::initializer_list<uint8_t> irqs);
  // Address-space windows a bridge produces (fixed minimum and maximum, positive decode).
  ResourceTemplate& bus_numbers(uint16_t first, uint16_t last);
  ResourceTemplate& io_window(uint16_t first, uint16_t last);
  ResourceTemplate& memory_window(uint32_t first, uint32_t last);
  ResourceTemplate& memory_window64(uint64_t first, uint64_t last);
  Bytes build() const;

 private:
  Bytes descriptors_;
};

}  // namespace bulkhead::core::aml
