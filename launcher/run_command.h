// `bulkhead run`: a straight pipeline. The options become a plan (vm_plan.h: devices from the
// table, each checked); the plan's host resources are opened and labelled; the VM's processes
// start; the launcher confines itself and supervises them until the VM ends.
#pragma once

#include "launcher/vm_plan.h"

namespace bulkhead::launcher {

// Returns the exit status the launcher should exit with. Throws InputError for bad input,
// before any process starts.
int run_vm(const RunOptions& options);

}  // namespace bulkhead::launcher
