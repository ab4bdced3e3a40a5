// How fast can a vCPU thread in the core reach a device in another process? Compares the
// designs considered for legacy devices (docs/legacy-device-protocol.md):
//   - a request/reply message over a SOCK_SEQPACKET socket (vfio-user style),
//   - the shared access ring, device sleeping on an eventfd after each access (poll 0),
//   - the shared access ring, device polling for a while after each access (adaptive),
//   - a posted write on the ring (no reply),
//   - one ATA sector by string PIO (rep insw: 256 words): item by item, as before string
//     accesses existed, and as one string access.
// Each device runs in a forked child process, as in a real VM.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <benchmark/benchmark.h>

#include <chrono>
#include <cstring>
#include <functional>

#include "common/event_loop.h"
#include "device-procs/common/legacy_device_server.h"
#include "ipc/legacy_device/access_ring.h"

using namespace bulkhead;

namespace {

// Runs `child` in a forked process that dies with us; returns its pid.
pid_t fork_device(const std::function<void()>& child) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    child();
    ::_exit(0);
  }
  return pid;
}

void stop(pid_t pid) {
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
}

void BM_SocketRoundTrip(benchmark::State& state) {
  int sv[2];
  ::socketpair(AF_UNIX, SOCK_SEQPACKET, 0, sv);
  pid_t pid = fork_device([&] {
    uint64_t msg[3];
    while (::read(sv[1], msg, sizeof msg) > 0) {
      msg[2] = msg[1] * 3;
      if (::write(sv[1], msg, sizeof msg) < 0) break;
    }
  });
  uint64_t msg[3] = {2, 5, 0};
  for (auto _ : state) {
    benchmark::DoNotOptimize(::write(sv[0], msg, sizeof msg));
    benchmark::DoNotOptimize(::read(sv[0], msg, sizeof msg));
  }
  stop(pid);
  ::close(sv[0]);
  ::close(sv[1]);
}
BENCHMARK(BM_SocketRoundTrip)->UseRealTime();

// A device model that answers reads with offset * 3 and ignores writes.
class RingDevice : public device::LegacyDeviceModel {
 public:
  legacy::DeviceInfo info() const override { return {}; }
  uint64_t read(uint8_t, uint64_t offset, uint8_t) override { return offset * 3; }
  void write(uint8_t, uint64_t, uint8_t, uint64_t) override {}
  void attach_irq(uint32_t, UniqueFd, UniqueFd) override {}
};

// A device process served by the real LegacyDeviceServer, handed the ring over its socket
// exactly as the core does it.
struct RingDeviceProcess {
  explicit RingDeviceProcess(uint32_t poll_us) {
    int sv[2];
    ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv);
    pid = fork_device([sv] {
      ::close(sv[0]);
      EventLoop loop;
      RingDevice model;
      device::LegacyDeviceServer server(model, loop, UniqueFd(sv[1]));
      server.run();
    });
    ::close(sv[1]);
    core = std::make_unique<vhost_user::Connection>(UniqueFd(sv[0]));
    ring.set_peer_socket(core->fd());
    legacy::AccessRingSetting setting{poll_us, 0};
    int fds[] = {ring.memfd(), ring.kick_fd(), ring.notify_fd()};
    core->send_with_ack(vhost_user::Message::make(static_cast<uint32_t>(legacy::Request::kSetAccessRing), setting), fds,
                        "the access ring");
  }
  ~RingDeviceProcess() { stop(pid); }
  legacy::AccessRingProducer ring;
  std::unique_ptr<vhost_user::Connection> core;
  pid_t pid;
};

// A read needs the device's answer. Between reads the vCPU spends `gap_us` in the guest,
// as on this host where each PIO exit costs tens of microseconds: the device's poll window
// decides whether it is still awake when the next access comes.
void BM_RingRead(benchmark::State& state) {
  RingDeviceProcess device(static_cast<uint32_t>(state.range(0)));
  auto gap = std::chrono::microseconds(state.range(1));
  uint64_t offset = 0;
  for (auto _ : state) {
    benchmark::DoNotOptimize(device.ring.read(0, ++offset & 7, 1));
    state.PauseTiming();
    auto until = std::chrono::steady_clock::now() + gap;
    while (std::chrono::steady_clock::now() < until) __builtin_ia32_pause();
    state.ResumeTiming();
  }
}
BENCHMARK(BM_RingRead)
    ->ArgNames({"poll_us", "gap_us"})
    ->Args({0, 0})
    ->Args({0, 90})
    ->Args({50, 90})
    ->Args({200, 90})
    ->UseRealTime();

// A write is posted: the vCPU only fills a slot (and kicks a sleeping device).
void BM_RingPostedWrite(benchmark::State& state) {
  RingDeviceProcess device(static_cast<uint32_t>(state.range(0)));
  for (auto _ : state) device.ring.write(0, 7, 1, 1);
  device.ring.read(0, 0, 1);
}
BENCHMARK(BM_RingPostedWrite)->ArgNames({"poll_us"})->Arg(0)->Arg(200)->UseRealTime();

// One 512-byte sector through the 16-bit ATA data port, device polling. `string` 0: one
// access per word (what a vCPU did before string accesses); 1: the whole string at once.
void BM_RingSectorRead(benchmark::State& state) {
  RingDeviceProcess device(200);
  bool string = state.range(0);
  uint8_t sector[512];
  for (auto _ : state) {
    if (string) {
      device.ring.read_string(0, 0, 2, 256, sector);
    } else {
      for (int i = 0; i < 256; ++i) {
        uint64_t v = device.ring.read(0, 0, 2);
        std::memcpy(sector + 2 * i, &v, 2);
      }
    }
    benchmark::DoNotOptimize(sector);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 512);
}
BENCHMARK(BM_RingSectorRead)->ArgNames({"string"})->Arg(0)->Arg(1)->UseRealTime();

// The same sector written (rep outsw): posted either way, but one slot instead of 256.
void BM_RingSectorWrite(benchmark::State& state) {
  RingDeviceProcess device(200);
  bool string = state.range(0);
  uint8_t sector[512] = {};
  for (auto _ : state) {
    if (string) device.ring.write_string(0, 0, 2, 256, sector);
    else
      for (int i = 0; i < 256; ++i) device.ring.write(0, 0, 2, sector[2 * i]);
  }
  device.ring.read(0, 0, 1);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * 512);
}
BENCHMARK(BM_RingSectorWrite)->ArgNames({"string"})->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
