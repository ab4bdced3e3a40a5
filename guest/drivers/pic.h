// The pair of 8259A interrupt controllers.
#pragma once

#include <stdint.h>

namespace guest {

// Remaps IRQ 0-15 to vectors kPicVectorBase.., all lines masked.
void pic_init();
void pic_unmask(uint8_t irq);
void pic_mask(uint8_t irq);
void pic_eoi(uint8_t irq);

}  // namespace guest
