#include "vmm-core/pci/msix.h"

#include <cstring>

namespace bulkhead::core {

namespace {
constexpr uint8_t kCapabilityId = 0x11;
constexpr uint16_t kControlEnable = 1u << 15, kControlFunctionMask = 1u << 14;
constexpr uint32_t kEntrySize = 16;
}  // namespace

Msix::Msix(uint16_t vectors, IrqRouter& router, EventfdMonitor& monitor, std::function<void(int)> monitor_callback,
           std::function<void()> intx_fallback)
    : entries_(vectors), router_(router), monitor_(monitor), monitor_callback_(std::move(monitor_callback)),
      intx_fallback_(std::move(intx_fallback)) {}

Msix::~Msix() {
  for (auto& [fd, s] : sources_) {
    if (s.state == Source::State::kIrqfd) router_.deassign_irqfd(fd, s.gsi);
    if (s.state == Source::State::kMonitored) monitor_.unwatch(fd);
  }
  for (Entry& e : entries_)
    if (e.gsi >= 0) router_.remove_msi(static_cast<uint32_t>(e.gsi));
}

std::vector<uint8_t> Msix::capability(uint8_t bir) const {
  std::vector<uint8_t> cap(12, 0);
  cap[0] = kCapabilityId;
  uint16_t control = static_cast<uint16_t>(entries_.size() - 1);
  std::memcpy(&cap[2], &control, 2);
  uint32_t table = kTableOffset | bir, pba = kPbaOffset | bir;
  std::memcpy(&cap[4], &table, 4);
  std::memcpy(&cap[8], &pba, 4);
  return cap;
}

bool Msix::deliverable(uint16_t vector) const {
  return enabled_ && !function_masked_ && vector < entries_.size() && !entries_[vector].masked;
}

void Msix::deliver(uint16_t vector) {
  if (!enabled_) return intx_fallback_();
  if (vector >= entries_.size()) return;  // no vector: the event is dropped, as the spec says
  Entry& e = entries_[vector];
  if (function_masked_ || e.masked) {
    e.pending = true;
    return;
  }
  router_.signal_msi(e.address, e.data);
}

void Msix::refresh(int fd, Source& s) {
  Source::State want = deliverable(s.vector) ? Source::State::kIrqfd : Source::State::kMonitored;
  uint32_t gsi = 0;
  if (want == Source::State::kIrqfd) {
    Entry& e = entries_[s.vector];
    if (e.gsi < 0) e.gsi = static_cast<int>(router_.add_msi(e.address, e.data));
    gsi = static_cast<uint32_t>(e.gsi);
  }
  if (s.state == want && (want != Source::State::kIrqfd || s.gsi == gsi)) return;
  if (s.state == Source::State::kIrqfd) router_.deassign_irqfd(fd, s.gsi);
  if (s.state == Source::State::kMonitored) monitor_.unwatch(fd);
  if (want == Source::State::kIrqfd) {
    router_.assign_irqfd(fd, gsi);
    s.gsi = gsi;
  } else {
    monitor_.watch(fd, [this, fd] { monitor_callback_(fd); });
  }
  s.state = want;
}

void Msix::refresh_all() {
  for (auto& [fd, s] : sources_) refresh(fd, s);
}

void Msix::bind(int fd, uint16_t vector) {
  Source& s = sources_[fd];
  s.vector = vector;
  refresh(fd, s);
}

void Msix::unbind(int fd) {
  auto it = sources_.find(fd);
  if (it == sources_.end()) return;
  if (it->second.state == Source::State::kIrqfd) router_.deassign_irqfd(fd, it->second.gsi);
  if (it->second.state == Source::State::kMonitored) monitor_.unwatch(fd);
  sources_.erase(it);
}

void Msix::notify(uint16_t vector) { deliver(vector); }

void Msix::on_signal(int fd) {
  // A stale wake-up for a source that became an irqfd meanwhile: KVM owns its count now.
  auto it = sources_.find(fd);
  if (it == sources_.end() || it->second.state != Source::State::kMonitored) return;
  if (EventfdMonitor::consume(fd)) deliver(it->second.vector);
}

void Msix::control_written(uint16_t control) {
  bool was_open = enabled_ && !function_masked_;
  enabled_ = control & kControlEnable;
  function_masked_ = control & kControlFunctionMask;
  refresh_all();
  if (!was_open && enabled_ && !function_masked_)
    for (uint16_t v = 0; v < entries_.size(); ++v)
      if (entries_[v].pending && !entries_[v].masked) {
        entries_[v].pending = false;
        router_.signal_msi(entries_[v].address, entries_[v].data);
      }
}

void Msix::region_read(uint64_t offset, std::span<uint8_t> data) const {
  std::fill(data.begin(), data.end(), 0);
  if (data.size() != 4 && data.size() != 8) return;
  for (size_t i = 0; i < data.size(); i += 4) {
    uint64_t at = offset + i;
    uint32_t value = 0;
    if (at < kPbaOffset) {
      uint64_t index = at / kEntrySize;
      if (index >= entries_.size()) continue;
      const Entry& e = entries_[index];
      switch (at % kEntrySize) {
        case 0: value = static_cast<uint32_t>(e.address); break;
        case 4: value = static_cast<uint32_t>(e.address >> 32); break;
        case 8: value = e.data; break;
        case 12: value = e.masked ? 1 : 0; break;
        default: break;
      }
    } else {
      uint64_t first = (at - kPbaOffset) * 8;
      for (uint64_t bit = 0; bit < 32 && first + bit < entries_.size(); ++bit)
        if (entries_[first + bit].pending) value |= 1u << bit;
    }
    std::memcpy(&data[i], &value, 4);
  }
}

void Msix::region_write(uint64_t offset, std::span<const uint8_t> data) {
  if ((data.size() != 4 && data.size() != 8) || offset >= kPbaOffset) return;  // the PBA is read-only
  for (size_t i = 0; i < data.size(); i += 4) {
    uint64_t at = offset + i;
    uint64_t index = at / kEntrySize;
    if (index >= entries_.size()) continue;
    uint32_t value;
    std::memcpy(&value, &data[i], 4);
    Entry& e = entries_[index];
    switch (at % kEntrySize) {
      case 0: e.address = (e.address & ~0xffffffffull) | value; break;
      case 4: e.address = (e.address & 0xffffffffull) | (static_cast<uint64_t>(value) << 32); break;
      case 8: e.data = value; break;
      case 12: {
        bool was_masked = e.masked;
        e.masked = value & 1;
        if (was_masked && !e.masked && e.pending && enabled_ && !function_masked_) {
          e.pending = false;
          router_.signal_msi(e.address, e.data);
        }
        break;
      }
      default: break;
    }
    if (e.gsi >= 0) router_.update_msi(static_cast<uint32_t>(e.gsi), e.address, e.data);
  }
  refresh_all();
}

}  // namespace bulkhead::core
