#include "vmm-core/boot/aml.h"

#include <stdexcept>
#include <string>

namespace bulkhead::core::aml {

namespace {

constexpr uint8_t kZeroOp = 0x00, kOneOp = 0x01, kOnesOp = 0xff;
constexpr uint8_t kBytePrefix = 0x0a, kWordPrefix = 0x0b, kDWordPrefix = 0x0c, kStringPrefix = 0x0d,
                  kQWordPrefix = 0x0e;
constexpr uint8_t kNameOp = 0x08, kScopeOp = 0x10, kBufferOp = 0x11, kPackageOp = 0x12, kMethodOp = 0x14,
                  kReturnOp = 0xa4, kArg0Op = 0x68;
constexpr uint8_t kExtOpPrefix = 0x5b, kDeviceOp = 0x82;
constexpr uint8_t kRootChar = '\\', kDualNamePrefix = 0x2e, kMultiNamePrefix = 0x2f;

void append(Bytes& out, const Bytes& more) { out.insert(out.end(), more.begin(), more.end()); }

template <typename T>
void append_le(Bytes& out, T value) {
  for (size_t i = 0; i < sizeof(T); ++i) out.push_back(static_cast<uint8_t>(static_cast<uint64_t>(value) >> (8 * i)));
}

// PkgLength (20.2.4): the encoded length counts its own bytes too.
Bytes with_package_length(uint8_t opcode, const Bytes& body, bool extended = false) {
  Bytes out;
  if (extended) out.push_back(kExtOpPrefix);
  out.push_back(opcode);
  size_t n = body.size();
  if (n + 1 < 0x40) {
    out.push_back(static_cast<uint8_t>(n + 1));
  } else {
    int extra = n + 2 < (1u << 12) ? 1 : n + 3 < (1u << 20) ? 2 : 3;
    size_t total = n + 1 + extra;
    if (total >= (1u << 28)) throw std::invalid_argument("AML package too large");
    out.push_back(static_cast<uint8_t>((extra << 6) | (total & 0xf)));
    for (int i = 0; i < extra; ++i) out.push_back(static_cast<uint8_t>(total >> (4 + 8 * i)));
  }
  append(out, body);
  return out;
}

Bytes name_segment(std::string_view seg) {
  if (seg.empty() || seg.size() > 4) throw std::invalid_argument("AML name segment '" + std::string(seg) + "'");
  Bytes out;
  for (size_t i = 0; i < 4; ++i) {
    char c = i < seg.size() ? seg[i] : '_';
    bool ok = (c >= 'A' && c <= 'Z') || c == '_' || (i > 0 && c >= '0' && c <= '9');
    if (!ok) throw std::invalid_argument("AML name segment '" + std::string(seg) + "'");
    out.push_back(static_cast<uint8_t>(c));
  }
  return out;
}

Bytes concat(const std::vector<Bytes>& parts) {
  Bytes out;
  for (const Bytes& p : parts) append(out, p);
  return out;
}

}  // namespace

Bytes name_path(std::string_view path) {
  Bytes out;
  if (!path.empty() && path[0] == '\\') {
    out.push_back(kRootChar);
    path.remove_prefix(1);
  }
  std::vector<Bytes> segments;
  while (!path.empty()) {
    size_t dot = path.find('.');
    segments.push_back(name_segment(path.substr(0, dot)));
    path = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  }
  if (segments.empty()) throw std::invalid_argument("empty AML name");
  if (segments.size() == 2) out.push_back(kDualNamePrefix);
  if (segments.size() > 2) {
    out.push_back(kMultiNamePrefix);
    out.push_back(static_cast<uint8_t>(segments.size()));
  }
  append(out, concat(segments));
  return out;
}

Bytes integer(uint64_t value) {
  Bytes out;
  if (value == 0) return {kZeroOp};
  if (value == 1) return {kOneOp};
  if (value == ~0ull) return {kOnesOp};
  if (value <= 0xff) {
    out.push_back(kBytePrefix);
    append_le(out, static_cast<uint8_t>(value));
  } else if (value <= 0xffff) {
    out.push_back(kWordPrefix);
    append_le(out, static_cast<uint16_t>(value));
  } else if (value <= 0xffffffff) {
    out.push_back(kDWordPrefix);
    append_le(out, static_cast<uint32_t>(value));
  } else {
    out.push_back(kQWordPrefix);
    append_le(out, value);
  }
  return out;
}

Bytes string(std::string_view text) {
  Bytes out(text.size() + 2, 0);  // prefix, characters, NUL
  out[0] = kStringPrefix;
  for (size_t i = 0; i < text.size(); ++i) out[i + 1] = static_cast<uint8_t>(text[i]);
  return out;
}

Bytes eisa_id(std::string_view id) {
  // Three letters (5 bits each, 'A' = 1) and four hex digits, stored big-endian.
  auto hex = [&](char c) -> uint32_t {
    if (c >= '0' && c <= '9') return static_cast<uint32_t>(c - '0');
    if (c >= 'A' && c <= 'F') return static_cast<uint32_t>(c - 'A' + 10);
    throw std::invalid_argument("EISA ID '" + std::string(id) + "'");
  };
  if (id.size() != 7) throw std::invalid_argument("EISA ID '" + std::string(id) + "'");
  uint32_t v = 0;
  for (int i = 0; i < 3; ++i) {
    if (id[i] < 'A' || id[i] > 'Z') throw std::invalid_argument("EISA ID '" + std::string(id) + "'");
    v = (v << 5) | static_cast<uint32_t>(id[i] - 'A' + 1);
  }
  for (int i = 3; i < 7; ++i) v = (v << 4) | hex(id[i]);
  uint32_t swapped = ((v & 0xff) << 24) | ((v & 0xff00) << 8) | ((v >> 8) & 0xff00) | (v >> 24);
  Bytes out{kDWordPrefix};
  append_le(out, swapped);
  return out;
}

Bytes package(const std::vector<Bytes>& elements) {
  if (elements.size() > 255) throw std::invalid_argument("AML package with more than 255 elements");
  Bytes body{static_cast<uint8_t>(elements.size())};
  append(body, concat(elements));
  return with_package_length(kPackageOp, body);
}

Bytes buffer(const Bytes& contents) {
  Bytes body = integer(contents.size());
  append(body, contents);
  return with_package_length(kBufferOp, body);
}

Bytes name(std::string_view path, const Bytes& value) {
  Bytes out{kNameOp};
  append(out, name_path(path));
  append(out, value);
  return out;
}

Bytes scope(std::string_view path, const std::vector<Bytes>& terms) {
  Bytes body = name_path(path);
  append(body, concat(terms));
  return with_package_length(kScopeOp, body);
}

Bytes device(std::string_view path, const std::vector<Bytes>& terms) {
  Bytes body = name_path(path);
  append(body, concat(terms));
  return with_package_length(kDeviceOp, body, true);
}

Bytes method_returning_arg(std::string_view path, uint8_t arg_count, uint8_t returned_arg) {
  if (arg_count > 7 || returned_arg >= arg_count) throw std::invalid_argument("AML method arguments");
  Bytes body = name_path(path);
  body.push_back(arg_count);  // MethodFlags: not serialized, sync level 0
  body.push_back(kReturnOp);
  body.push_back(static_cast<uint8_t>(kArg0Op + returned_arg));
  return with_package_length(kMethodOp, body);
}

// Resource descriptors (ACPI 6.4, 6.4.2 small and 6.4.3 large).
namespace {
constexpr uint8_t kSmallIrq = 0x22, kSmallIo = 0x47, kEndTag = 0x79;
constexpr uint8_t kWordAddressSpace = 0x88, kDWordAddressSpace = 0x87, kQWordAddressSpace = 0x8a;
constexpr uint8_t kSpaceMemory = 0, kSpaceIo = 1, kSpaceBus = 2;
constexpr uint8_t kProducerFixedWindow = 0x0c;  // MinFixed | MaxFixed, positive decode, producer
constexpr uint8_t kIoEntireRange = 0x03, kMemoryReadWrite = 0x01;

template <typename T>
void address_space(Bytes& out, uint8_t descriptor, uint8_t space, uint8_t type_flags, T first, T last) {
  out.push_back(descriptor);
  append_le(out, static_cast<uint16_t>(3 + 5 * sizeof(T)));
  out.push_back(space);
  out.push_back(kProducerFixedWindow);
  out.push_back(type_flags);
  append_le(out, T{0});  // granularity
  append_le(out, first);
  append_le(out, last);
  append_le(out, T{0});  // translation offset
  append_le(out, static_cast<T>(last - first + 1));
}
}  // namespace

ResourceTemplate& ResourceTemplate::io(uint16_t base, uint8_t length) {
  descriptors_.push_back(kSmallIo);
  descriptors_.push_back(1);  // 16-bit decode
  append_le(descriptors_, base);
  append_le(descriptors_, base);
  descriptors_.push_back(1);  // alignment
  descriptors_.push_back(length);
  return *this;
}

ResourceTemplate& ResourceTemplate::irq(std::initializer_list<uint8_t> irqs) {
  uint16_t mask = 0;
  for (uint8_t irq : irqs) {
    if (irq > 15) throw std::invalid_argument("ISA IRQ above 15");
    mask = static_cast<uint16_t>(mask | (1u << irq));
  }
  descriptors_.push_back(kSmallIrq);
  append_le(descriptors_, mask);
  return *this;
}

ResourceTemplate& ResourceTemplate::bus_numbers(uint16_t first, uint16_t last) {
  address_space(descriptors_, kWordAddressSpace, kSpaceBus, 0, first, last);
  return *this;
}

ResourceTemplate& ResourceTemplate::io_window(uint16_t first, uint16_t last) {
  address_space(descriptors_, kWordAddressSpace, kSpaceIo, kIoEntireRange, first, last);
  return *this;
}

ResourceTemplate& ResourceTemplate::memory_window(uint32_t first, uint32_t last) {
  address_space(descriptors_, kDWordAddressSpace, kSpaceMemory, kMemoryReadWrite, first, last);
  return *this;
}

ResourceTemplate& ResourceTemplate::memory_window64(uint64_t first, uint64_t last) {
  address_space(descriptors_, kQWordAddressSpace, kSpaceMemory, kMemoryReadWrite, first, last);
  return *this;
}

Bytes ResourceTemplate::build() const {
  Bytes contents = descriptors_;
  contents.push_back(kEndTag);
  contents.push_back(0);  // checksum 0: "treat as valid"
  return buffer(contents);
}

}  // namespace bulkhead::core::aml
