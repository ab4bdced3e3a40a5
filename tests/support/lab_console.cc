// bh-lab-console: types into a VM's serial console and reads the answers, for tests that run
// inside the nested lab (where there is no Python or expect). Connects to a
// `bulkhead run --serial unix=SOCKET` console and runs the steps in order:
//   expect=TEXT   wait until TEXT appears in the output (after what earlier steps matched)
//   send=TEXT     type TEXT and a newline
//   run=COMMAND   run COMMAND with /bin/sh here (in L1), its output on our stdout
//   eof           wait until the VM closes the console (it ended)
//   reconnect     wait until the console closes (its serial process was killed), then connect
//                 again (the restarted process accepts)
// Everything the VM printed goes to LOG. Exits 0 when every step succeeded, 1 (naming the
// step) when one timed out.
//
//   bh-lab-console SOCKET LOG TIMEOUT_SECONDS STEP...
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

using Clock = std::chrono::steady_clock;

int connect_console(const std::string& path, Clock::time_point deadline) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof addr.sun_path) return -1;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  // The launcher creates the socket as it starts; wait for it to be there.
  while (Clock::now() < deadline) {
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0 && ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
    if (fd >= 0) ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return -1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s SOCKET LOG TIMEOUT_SECONDS STEP...\n", argv[0]);
    return 2;
  }
  auto deadline = Clock::now() + std::chrono::seconds(std::stoi(argv[3]));
  FILE* log = std::fopen(argv[2], "w");
  int fd = connect_console(argv[1], deadline);
  if (!log || fd < 0) {
    std::fprintf(stderr, "bh-lab-console: cannot connect to %s\n", argv[1]);
    return 1;
  }
  std::string output;
  size_t matched = 0;  // where the next expect starts looking
  bool eof = false;
  std::string why;  // why the last read_some() failed, for the step that gives up
  auto read_some = [&]() {
    pollfd p{fd, POLLIN, 0};
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    int ready = left > 0 ? ::poll(&p, 1, static_cast<int>(left)) : 0;
    if (ready <= 0) {
      why = ready == 0 ? "timed out" : std::string("poll failed: ") + std::strerror(errno);
      return false;
    }
    char buffer[4096];
    ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n <= 0) {
      why = n == 0 ? "the VM closed the console" : std::string("read failed: ") + std::strerror(errno);
      eof = true;
      return false;
    }
    output.append(buffer, static_cast<size_t>(n));
    std::fwrite(buffer, 1, static_cast<size_t>(n), log);
    std::fflush(log);
    return true;
  };
  for (int i = 4; i < argc; ++i) {
    std::string step = argv[i];
    if (step.rfind("expect=", 0) == 0) {
      std::string text = step.substr(7);
      size_t at;
      while ((at = output.find(text, matched)) == std::string::npos)
        if (!read_some()) {
          std::fprintf(stderr, "bh-lab-console: step %d: '%s' did not appear (%s)\n", i - 3, text.c_str(), why.c_str());
          return 1;
        }
      matched = at + text.size();
    } else if (step.rfind("send=", 0) == 0) {
      std::string line = step.substr(5) + "\n";
      if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return 1;
    } else if (step.rfind("run=", 0) == 0) {
      std::fflush(stdout);
      [[maybe_unused]] int status = std::system(step.substr(4).c_str());  // a measurement; its output tells
    } else if (step == "reconnect") {
      while (!eof)
        if (!read_some() && !eof) {
          std::fprintf(stderr, "bh-lab-console: step %d: the console stayed open\n", i - 3);
          return 1;
        }
      ::close(fd);
      eof = false;
      fd = connect_console(argv[1], deadline);
      if (fd < 0) {
        std::fprintf(stderr, "bh-lab-console: step %d: cannot connect to %s again\n", i - 3, argv[1]);
        return 1;
      }
      matched = output.size();
    } else if (step == "eof") {
      while (!eof)
        if (!read_some() && !eof) {
          std::fprintf(stderr, "bh-lab-console: step %d: the console stayed open\n", i - 3);
          return 1;
        }
    } else {
      std::fprintf(stderr, "bh-lab-console: unknown step '%s'\n", step.c_str());
      return 2;
    }
  }
  return 0;
}
