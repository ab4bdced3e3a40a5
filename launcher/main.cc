// bulkhead: the launcher CLI.
#include <CLI/CLI.hpp>

#include <cstdio>

#include "common/error.h"
#include "common/log.h"
#include "launcher/ctl_command.h"
#include "launcher/device_command.h"
#include "launcher/devices_command.h"
#include "launcher/run_command.h"

using namespace bulkhead;

int main(int argc, char** argv) {
  init_process("bulkhead");
  CLI::App app{"Bulkhead: a KVM virtual machine monitor with each device in its own confined process.", "bulkhead"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "bulkhead 0.1");

  launcher::RunOptions run;
  CLI::App* run_cmd = app.add_subcommand("run", "Boot a VM. Without --kernel, boots the built-in test guest as a demo.");
  run_cmd->add_option("--kernel", run.kernel, "Kernel: an ELF with a PVH note (e.g. Linux vmlinux) or a Linux bzImage");
  run_cmd->add_option("--initrd", run.initrd, "Initial ramdisk");
  run_cmd->add_option("--cmdline", run.cmdline, "Kernel command line");
  run_cmd->add_option("--memory", run.memory, "Guest RAM, e.g. 256M or 2G (a plain number means MiB)")->capture_default_str();
  run_cmd->add_option("--cpus", run.cpus, "Number of vCPUs")->capture_default_str();
  run_cmd->add_option("--vcpu-pin", run.vcpu_pin,
                      "Host CPUs for the vCPU threads, one per vCPU in order (e.g. 2,3): each vCPU thread runs only there");
  run_cmd->add_option("--cpu", run.cpu,
                      "CPU model: baseline (no XSAVE/AVX state, like QEMU's default) or host (all that KVM supports)")
      ->check(CLI::IsMember({"baseline", "host"}))
      ->capture_default_str();
  run_cmd->add_option("--mode", run.mode,
                      "Device set: paravirt (virtio) or full (emulated PC hardware, for guests without virtio drivers); "
                      "per-device options override it")
      ->check(CLI::IsMember({"paravirt", "full"}))
      ->capture_default_str();
  run_cmd->add_option("--device-poll-us", run.device_poll_us,
                      "How long device processes keep polling for work before sleeping (0-1000; default: "
                      "200 for disks and legacy devices, 0 for NICs, which measured faster without)")
      ->check(CLI::Range(0, 1000));
  run_cmd->add_option("--device-restarts", run.device_restarts,
                      "Restart a crashed virtio device process at most COUNT times in SECONDS; after that it "
                      "stays down, the driver is told it needs a reset, and the VM runs on")
      ->type_name("COUNT/SECONDS")
      ->capture_default_str();
  launcher::add_device_options(*run_cmd, run.device_options);
  launcher::add_sandbox_options(*run_cmd, run.sandbox);

  launcher::DeviceOptions device;
  CLI::App* device_cmd = app.add_subcommand(
      "device",
      "Run one of Bulkhead's device processes as a standalone vhost-user back-end for another VMM.\n"
      "Example, with QEMU as the front-end:\n"
      "  bulkhead device virtio-scsi --socket /run/scsi0.sock --disk /var/lib/images/disk.raw\n"
      "  qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=1G,share=on -numa node,memdev=mem \\\n"
      "      -chardev socket,id=scsi0,path=/run/scsi0.sock -device vhost-user-scsi-pci,chardev=scsi0");
  device_cmd->add_option("kind", device.kind, "Device kind (see `bulkhead devices`)")->required();
  device_cmd->add_option("--socket", device.socket,
                         "Listen on this unix socket (a stale one is replaced) and serve one front-end at a time, "
                         "across reconnects");
  device_cmd->add_option("--fd", device.fd, "Serve the already-connected socket on this descriptor, then exit");
  launcher::add_standalone_options(*device_cmd, device);
  launcher::add_sandbox_options(*device_cmd, device.sandbox);

  bool markdown = false;
  CLI::App* devices_cmd = app.add_subcommand("devices", "List the kinds of devices a VM can have (the device table).");
  devices_cmd->add_flag("--markdown", markdown, "As the Markdown table of docs/devices.md");

  launcher::CtlOptions ctl;
  auto [ctl_cmd, list_cmd] = launcher::add_ctl_commands(app, ctl);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::fprintf(stderr, "bulkhead: error: %s\n", e.what());
    return launcher::kExitUsage;
  }
  try {
    if (run_cmd->parsed()) return launcher::run_vm(run);
    if (device_cmd->parsed()) return launcher::serve_device(device);
    if (devices_cmd->parsed()) return launcher::list_devices(markdown);
    if (ctl_cmd->parsed()) return launcher::run_ctl(ctl);
    if (list_cmd->parsed()) return launcher::list_vms(ctl);
  } catch (const InputError& e) {
    std::fprintf(stderr, "bulkhead: error: %s\n", e.what());
    return launcher::kExitUsage;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bulkhead: error: %s\n", e.what());
    return launcher::kExitVmmError;
  }
  return launcher::kExitUsage;
}
