#include "tests/support/subprocess.h"

#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace bulkhead::test {

namespace {
int wait_status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

Subprocess::Subprocess(const std::vector<std::string>& argv, bool keep_stdin) {
  int in[2], out[2], err[2];
  if (::pipe2(in, O_CLOEXEC) || ::pipe2(out, O_CLOEXEC) || ::pipe2(err, O_CLOEXEC)) throw std::runtime_error("pipe2");
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t test = ::getpid();
  pid_ = ::fork();
  if (pid_ == 0) {
    ::setpgid(0, 0);
    // A test program that is killed (a ctest timeout, ^C) takes what it started with it: an
    // orphaned lab QEMU once kept both host CPUs busy through a whole CI run. (Tests start
    // their subprocesses from the main thread, whose exit is what the signal follows.)
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != test) ::_exit(127);
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    ::dup2(err[1], 2);
    ::execv(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  stdin_.reset(in[1]);
  stdout_.reset(out[0]);
  stderr_.reset(err[0]);
  ::fcntl(stdout_.get(), F_SETFL, O_NONBLOCK);
  ::fcntl(stderr_.get(), F_SETFL, O_NONBLOCK);
  if (!keep_stdin) close_stdin();
}

Subprocess::~Subprocess() {
  if (!exited_ && pid_ > 0) {
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

void Subprocess::pump(std::chrono::milliseconds timeout) {
  pollfd fds[2] = {{stdout_.get(), POLLIN, 0}, {stderr_.get(), POLLIN, 0}};
  if (::poll(fds, 2, static_cast<int>(timeout.count())) <= 0) return;
  char buffer[4096];
  for (int i = 0; i < 2; ++i) {
    if (!fds[i].revents) continue;
    ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
    if (n > 0) (i == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
  }
}

bool Subprocess::wait_for(const std::string& needle, std::chrono::milliseconds timeout, bool from_stderr) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  const std::string& text = from_stderr ? err_ : out_;
  while (text.find(needle) == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
    pump(std::min(left, std::chrono::milliseconds(exited_ ? 10 : 100)));
    if (exited_) {
      // Drain what is left, then give up.
      for (int i = 0; i < 10; ++i) pump(10ms);
      return text.find(needle) != std::string::npos;
    }
  }
  return true;
}

void Subprocess::write_stdin(const std::string& data) {
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(stdin_.get(), data.data() + done, data.size() - done);
    if (n <= 0) break;
    done += static_cast<size_t>(n);
  }
}

void Subprocess::close_stdin() { stdin_.reset(); }

void Subprocess::set_stdout_pipe_size(int bytes) { ::fcntl(stdout_.get(), F_SETPIPE_SZ, bytes); }

void Subprocess::pause_reading(std::chrono::milliseconds duration) { std::this_thread::sleep_for(duration); }

bool Subprocess::running() {
  if (!exited_ && ::waitpid(pid_, &status_, WNOHANG) == pid_) exited_ = true;
  return !exited_;
}

void Subprocess::signal(int sig) { ::kill(pid_, sig); }

int Subprocess::wait(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!exited_) {
    if (::waitpid(pid_, &status_, WNOHANG) == pid_) {
      exited_ = true;
      break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, &status_, 0);
      exited_ = true;
      for (int i = 0; i < 5; ++i) pump(10ms);
      return -1;
    }
    pump(50ms);
  }
  // Collect the rest of the output up to end-of-file.
  for (int i = 0; i < 200; ++i) {
    pollfd fds[2] = {{stdout_.get(), POLLIN, 0}, {stderr_.get(), POLLIN, 0}};
    if (::poll(fds, 2, 20) <= 0) break;
    bool any = false;
    char buffer[4096];
    for (int j = 0; j < 2; ++j) {
      if (!fds[j].revents) continue;
      ssize_t n = ::read(fds[j].fd, buffer, sizeof buffer);
      if (n > 0) {
        (j == 0 ? out_ : err_).append(buffer, static_cast<size_t>(n));
        any = true;
      }
    }
    if (!any) break;
  }
  return wait_status_to_code(status_);
}

std::string bin_dir() { return BULKHEAD_BIN_DIR; }
std::string bulkhead() { return bin_dir() + "/bulkhead"; }
std::string test_guest() { return bin_dir() + "/bulkhead-test-guest.elf"; }

std::vector<pid_t> role_processes() {
  std::vector<pid_t> pids;
  DIR* proc = ::opendir("/proc");
  if (!proc) return pids;
  while (dirent* e = ::readdir(proc)) {
    pid_t pid = static_cast<pid_t>(std::atoi(e->d_name));
    if (pid <= 0) continue;
    std::ifstream comm("/proc/" + std::string(e->d_name) + "/comm");
    std::string name;
    std::getline(comm, name);
    std::ifstream stat("/proc/" + std::string(e->d_name) + "/stat");
    std::string stat_line;
    std::getline(stat, stat_line);
    bool zombie = stat_line.find(") Z") != std::string::npos;
    if (name.rfind("bh-", 0) == 0 && !zombie) pids.push_back(pid);
  }
  ::closedir(proc);
  return pids;
}

std::map<std::string, pid_t> roles_of(pid_t launcher, bool with_respawner) {
  std::map<std::string, pid_t> roles;
  for (pid_t pid : role_processes()) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    std::getline(stat, line);
    size_t close = line.rfind(')');
    if (close == std::string::npos) continue;
    std::istringstream fields(line.substr(close + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent != launcher) continue;
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "bh-respawn" && !with_respawner) continue;
    roles[name] = pid;
  }
  return roles;
}

std::string proc_status(pid_t pid, const std::string& field) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind(field + ":", 0) == 0) {
      std::string value = line.substr(field.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  return "";
}

std::vector<pid_t> wait_for_no_role_processes(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto pids = role_processes();
    if (pids.empty() || std::chrono::steady_clock::now() > deadline) return pids;
    std::this_thread::sleep_for(20ms);
  }
}

std::string kvm_unavailable_reason() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0) return std::string("/dev/kvm cannot be opened: ") + std::strerror(errno);
  ::close(fd);
  return "";
}

bool have_program(const std::string& name) {
  for (const char* dir : {"/usr/bin/", "/bin/", "/usr/local/bin/", "/usr/sbin/", "/sbin/"})
    if (::access((dir + name).c_str(), X_OK) == 0) return true;
  return false;
}

}  // namespace bulkhead::test
