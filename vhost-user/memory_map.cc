#include "vhost-user/memory_map.h"

#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>

#include "common/error.h"

namespace bulkhead::vhost_user {

namespace {
bool overlaps(uint64_t a, uint64_t a_len, uint64_t b, uint64_t b_len) { return a < b + b_len && b < a + a_len; }
bool wraps(uint64_t base, uint64_t len) { return base + len < base; }
}  // namespace

void MemoryMap::add(const MemoryRegion& r, UniqueFd fd) {
  if (!fd) throw InputError("memory region without a descriptor");
  if (r.memory_size == 0 || wraps(r.guest_phys_addr, r.memory_size) || wraps(r.userspace_addr, r.memory_size) ||
      wraps(r.mmap_offset, r.memory_size))
    throw InputError("memory region with an invalid size or address");
  if (regions_.size() >= kMaxMemSlots) throw InputError("too many memory regions");
  for (const Region& other : regions_) {
    if (overlaps(r.guest_phys_addr, r.memory_size, other.desc.guest_phys_addr, other.desc.memory_size) ||
        overlaps(r.userspace_addr, r.memory_size, other.desc.userspace_addr, other.desc.memory_size))
      throw InputError("memory regions overlap");
  }
  struct stat st;
  // fstat on the descriptor the front-end sent, to check it covers the region.
  if (::fstat(fd.get(), &st) != 0) throw_errno("fstat of a memory region");
  if (static_cast<uint64_t>(st.st_size) < r.mmap_offset + r.memory_size)
    throw InputError("memory region extends past the end of its file");
  // Maps from offset 0, as libvhost-user does, so any mmap_offset works.
  Mapping mapping = Mapping::map(fd.get(), r.mmap_offset + r.memory_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE);
  regions_.push_back(Region{r, std::move(mapping)});
}

std::optional<uint64_t> MemoryMap::host_to_gpa(const uint8_t* host) const {
  for (const Region& r : regions_)
    if (host >= r.host() && host < r.host() + r.desc.memory_size) return r.desc.guest_phys_addr + (host - r.host());
  return std::nullopt;
}

bool MemoryMap::remove(const MemoryRegion& r) {
  auto it = std::find_if(regions_.begin(), regions_.end(), [&](const Region& x) {
    return x.desc.guest_phys_addr == r.guest_phys_addr && x.desc.userspace_addr == r.userspace_addr &&
           x.desc.memory_size == r.memory_size;
  });
  if (it == regions_.end()) return false;
  regions_.erase(it);
  return true;
}

uint8_t* MemoryMap::gpa_to_host(uint64_t gpa, uint64_t len) const {
  for (const Region& r : regions_) {
    uint64_t start = r.desc.guest_phys_addr;
    if (gpa >= start && gpa - start <= r.desc.memory_size && len <= r.desc.memory_size - (gpa - start))
      return r.host() + (gpa - start);
  }
  return nullptr;
}

bool MemoryMap::gpa_to_ranges(uint64_t gpa, uint64_t len, std::vector<HostRange>& out) const {
  while (len) {
    const Region* hit = nullptr;
    for (const Region& r : regions_)
      if (gpa >= r.desc.guest_phys_addr && gpa - r.desc.guest_phys_addr < r.desc.memory_size) hit = &r;
    if (!hit) return false;
    uint64_t offset = gpa - hit->desc.guest_phys_addr;
    uint64_t piece = std::min(len, hit->desc.memory_size - offset);
    out.push_back({hit->host() + offset, piece});
    gpa += piece;
    len -= piece;
  }
  return true;
}

uint8_t* MemoryMap::uva_to_host(uint64_t uva, uint64_t len) const {
  for (const Region& r : regions_) {
    uint64_t start = r.desc.userspace_addr;
    if (uva >= start && uva - start <= r.desc.memory_size && len <= r.desc.memory_size - (uva - start))
      return r.host() + (uva - start);
  }
  return nullptr;
}

}  // namespace bulkhead::vhost_user
