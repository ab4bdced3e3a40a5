// The IOAPIC, for interrupt lines above the 8259's 16 (PCI INTx on GSIs 16-23).
#pragma once

#include <stdint.h>

namespace guest {

// Routes IOAPIC pin `pin` to `vector` on the CPU with APIC ID `apic_id`, level-triggered or
// edge-triggered, unmasked.
void ioapic_route(uint8_t pin, uint8_t vector, bool level, uint8_t apic_id);
void ioapic_mask(uint8_t pin);

}  // namespace guest
